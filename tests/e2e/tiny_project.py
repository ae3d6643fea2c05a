"""The smallest real project the CLI tests run on: a Pulumi program of one bucket (named from
``branchenv:prefix``), a one-test suite in ``tests/``, a git repo; its own state dir (so its own
local cloud). `up`, `ci` and `down` on it take about a second each, which keeps the CLI's
contract tests (every command, success and failure) cheap."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import cli_envelope, subprocess_env
from tests.e2e.conftest import E2E_DEFAULTS, EXE

PROGRAM = """\
import pulumi
import pulumi_aws as aws

prefix = pulumi.Config("branchenv").require("prefix")
bucket = aws.s3.Bucket("data", bucket=f"{prefix}-data")
pulumi.export("bucket", bucket.bucket)
"""

SUITE = """\
def test_the_bucket_is_the_stacks(branchenv_outputs, branchenv_stack):
    assert branchenv_outputs["bucket"] == f"{branchenv_stack.stack}-data"
"""


@dataclass
class TinyProject:
    root: Path

    def run(
        self, *args: str, timeout: float = 180, cwd: Path | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(EXE), *args],
            cwd=cwd or self.root,
            env=subprocess_env(**{**E2E_DEFAULTS, "COLUMNS": "200", **env}),
            stdin=subprocess.DEVNULL,  # as in CI: never the tty pytest may have been run from
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def envelope(self, *args: str, exit: int = 0, **env: str) -> dict[str, Any]:
        """Run with ``--json``; the parsed envelope, after checking the exit code."""
        proc = self.run(*args, "--json", **env)
        assert proc.returncode == exit, (
            f"branchenv {' '.join(args)} --json exited {proc.returncode}, not {exit}\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        )
        doc: dict[str, Any] = cli_envelope(proc.stdout)
        return doc

    def result(self, *args: str, **env: str) -> Any:
        doc = self.envelope(*args, **env)
        assert doc["ok"] is True, doc
        return doc["result"]

    def target(self) -> Any:
        from branchenv.localcloud import LocalCloud

        return LocalCloud(self.root / ".branchenv").status().target("us-east-1")

    def stop(self) -> None:
        self.run("cloud", "stop", timeout=60)


def make_tiny_project(root: Path, *, program: str = PROGRAM, suite: str = SUITE) -> TinyProject:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Pulumi.yaml").write_text("name: tiny\nruntime: python\n")
    (root / "__main__.py").write_text(program)
    (root / "tests").mkdir(exist_ok=True)
    (root / "tests" / "test_stack.py").write_text(suite)
    (root / "branchenv.toml").write_text('program = "."\ndefault_target = "local"\n')
    (root / ".gitignore").write_text(".branchenv/\nreports/\n")
    for cmd in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "config", "user.email", "dev@example.com"],
        ["git", "config", "user.name", "Dev"],
        ["git", "add", "."],
        ["git", "commit", "-q", "-m", "tiny"],
    ):
        subprocess.run(cmd, cwd=root, check=True, capture_output=True)
    return TinyProject(root)


def cloud_running(project: TinyProject) -> bool:
    from branchenv.localcloud import LocalCloud

    return LocalCloud(project.root / ".branchenv").status().running
