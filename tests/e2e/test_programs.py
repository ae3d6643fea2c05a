"""Several programs in one project (issue 11 item 2): `[programs.<name>]` beside the default
`program`; `up --program NAME` picks one; `ls`, `cost` and `reap` cover every configured
program, as a user runs them."""

from __future__ import annotations

import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

from tests.conftest import cli_result, subprocess_env
from tests.e2e.conftest import E2E_DEFAULTS, EXE

PROGRAM = """
import pulumi
import pulumi_aws as aws

queue = aws.sqs.Queue("{name}")
pulumi.export("queue_url", queue.url)
"""


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EXE), *args],
        cwd=root,
        env=subprocess_env(**E2E_DEFAULTS),
        capture_output=True,
        text=True,
        timeout=300,
    )


def ok_json(root: Path, *args: str) -> Any:
    proc = run(root, *args, "--json")
    assert proc.returncode == 0, (args, proc.stderr)
    return cli_result(proc.stdout)


def two_programs(tmp_path: Path, *, branch: str, settings: str = "") -> Path:
    """A git repository with the programs web (the default) and jobs (``[programs.jobs]``),
    on ``branch``; ``settings``: more top-level lines for branchenv.toml."""
    root = tmp_path / "mono"
    for name in ("web", "jobs"):
        (root / name).mkdir(parents=True)
        (root / name / "Pulumi.yaml").write_text(f"name: mono-{name}\nruntime: python\n")
        (root / name / "__main__.py").write_text(textwrap.dedent(PROGRAM.format(name=name)))
    (root / "branchenv.toml").write_text(
        f'program = "web"\n{settings}\n[programs.jobs]\npath = "jobs"\nengine = "inprocess"\n'
    )
    subprocess.run(["git", "init", "-q", "-b", branch, str(root)], check=True)
    return root


def test_ls_cost_and_reap_cover_every_configured_program(tmp_path: Path) -> None:
    root = two_programs(tmp_path, branch="feature/two")
    try:
        web = ok_json(root, "up", "--ttl", "1s")
        jobs = ok_json(root, "up", "--ttl", "1s", "--program", "jobs")
        assert web["stack"] == jobs["stack"]  # one branch, one stack per program
        assert web["outputs"]["queue_url"] != jobs["outputs"]["queue_url"]

        rows = ok_json(root, "ls")
        assert sorted((r["program"], r["stack"]) for r in rows) == [
            ("default", web["stack"]),
            ("jobs", web["stack"]),
        ]
        costs = ok_json(root, "cost", "--all")
        # Grouped by stack name: the branch's one row counts its stack in both programs.
        assert [(r["stack"], r["stacks"]) for r in costs["rows"]] == [(web["stack"], 2)]

        bad = run(root, "up", "--program", "nope")
        assert bad.returncode == 2 and "--program 'nope'" in bad.stderr
        assert "default, jobs" in bad.stderr

        time.sleep(1.5)  # both TTLs run out
        report = ok_json(root, "reap", "--yes")
        reaped = sorted((r["program"], r["status"]) for r in report["reaped"])
        assert reaped == [("default", "destroyed"), ("jobs", "destroyed")]
        assert ok_json(root, "ls") == []
    finally:
        run(root, "down")
        run(root, "down", "--program", "jobs")
        run(root, "cloud", "stop")


def test_pool_commands_act_on_the_program_named_by_program(tmp_path: Path) -> None:
    """`pool fill|status|drain --program NAME` work on NAME's pool (the flag was accepted and
    ignored: every pool command acted on the default program's pool)."""
    root = two_programs(tmp_path, branch="feature/pool", settings='pool_refill = "off"\n')
    try:
        filled = ok_json(root, "pool", "fill", "--size", "1", "--program", "jobs")
        assert len(filled["created"]) == 1
        rows = ok_json(root, "ls")
        assert [r["program"] for r in rows] == ["jobs"]
        jobs = ok_json(root, "pool", "status", "--program", "jobs")
        assert [s["stack"] for s in jobs["stacks"]] == filled["created"]
        assert ok_json(root, "pool", "status")["stacks"] == []  # web's pool: none made
        drained = ok_json(root, "pool", "drain", "--yes", "--program", "jobs")
        assert drained["destroy"] == filled["created"]
        assert ok_json(root, "ls") == []
    finally:
        run(root, "pool", "drain", "--yes", "--program", "jobs")
        run(root, "cloud", "stop")
