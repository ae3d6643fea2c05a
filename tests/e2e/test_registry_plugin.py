"""A third engine and program kind slot in through the public registry only (issue 11, Must
show): the tests' in-memory engine (tests/fakes.py) is installed as a `branchenv.plugins`
entry point, the way another package would ship one, and then the CLI, in a subprocess as a
user runs it, lists its stacks (`ls --json`), prices them (`cost`), plans and reaps them
(`reap`, `reap --yes`) and refuses a protected branch, with no edit to any of those modules."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, cli_result, subprocess_env
from tests.e2e.conftest import E2E_DEFAULTS, EXE
from tests.fakes import write_program


def install_plugin(site: Path) -> None:
    """A distribution on ``site`` whose entry point registers the fake engine and its kind."""
    site.mkdir(parents=True)
    (site / "branchenv_fake_plugin.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(REPO_ROOT)!r})\n"
        "from tests.fakes import register  # noqa: E402\n"
    )
    dist = site / "branchenv_fake_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: branchenv-fake-plugin\nVersion: 0.1\n"
    )
    (dist / "entry_points.txt").write_text(
        "[branchenv.plugins]\nfake = branchenv_fake_plugin:register\n"
    )


class Cli:
    def __init__(self, root: Path, site: Path) -> None:
        self.root, self.site = root, site

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(EXE), *args],
            cwd=self.root,
            env=subprocess_env(**E2E_DEFAULTS, PYTHONPATH=str(self.site)),
            capture_output=True,
            text=True,
            timeout=300,
        )

    def json(self, *args: str) -> Any:
        proc = self.run(*args, "--json")
        assert proc.returncode == 0, (args, proc.stderr)
        return cli_result(proc.stdout)


@pytest.fixture
def cli(tmp_path: Path) -> Any:
    install_plugin(tmp_path / "site")
    root = tmp_path / "proj"
    write_program(
        root,
        project="plugged",
        resources=[
            {"name": "jobs", "type": "aws:sqs/queue:Queue", "physical_name": "{prefix}-jobs"},
            {"name": "fn", "type": "aws:lambda/function:Function"},
        ],
        outputs={"queue_name": "{prefix}-jobs"},
    )
    subprocess.run(["git", "init", "-q", "-b", "feature/base", str(root)], check=True)
    tool = Cli(root, tmp_path / "site")
    try:
        yield tool
    finally:
        tool.run("cloud", "stop")


def test_a_registered_engine_is_listed_priced_reaped_and_guarded(cli: Cli) -> None:
    old = cli.json("up", "--branch", "feature/old", "--ttl", "1s")
    new = cli.json("up", "--branch", "feature/new", "--ttl", "24h")
    assert old["engine"] == new["engine"] == "fake"

    rows = {r["stack"]: r for r in cli.json("ls")}
    assert set(rows) == {old["stack"], new["stack"]}
    assert {r["engine"] for r in rows.values()} == {"fake"}
    assert rows[new["stack"]]["branch"] == "feature/new" and rows[new["stack"]]["managed"]
    assert rows[new["stack"]]["resource_count"] == 2

    cost = cli.json("cost", "--all")
    priced = {r["stack"]: r for r in cost["rows"]}
    assert set(priced) == {old["stack"], new["stack"]}
    assert all(r["hourly"] is not None for r in priced.values())

    refused = cli.run("up", "--branch", "main")
    assert refused.returncode == 3 and "protected pattern" in refused.stderr
    assert "main" not in {r["stack"] for r in cli.json("ls")}

    time.sleep(1.5)  # the old stack's TTL runs out
    plan = cli.json("reap")
    assert [r["stack"] for r in plan["reaped"]] == [old["stack"]]
    assert [r["status"] for r in plan["reaped"]] == ["planned"]
    done = cli.json("reap", "--yes")
    assert [(r["stack"], r["status"]) for r in done["reaped"]] == [(old["stack"], "destroyed")]
    assert {r["stack"] for r in cli.json("ls")} == {new["stack"]}

    cli.json("down", "--branch", "feature/new")
    assert cli.json("ls") == []


def test_a_fixed_shared_name_is_refused_by_up_and_ci_unless_allowed(tmp_path: Path) -> None:
    """Branch isolation through the CLI (issue 13 item 3): `up` and `ci` hand the engine the
    core's PlanCheck, so a fixed name not derived from the branch's prefix is refused (exit 3,
    naming the resource, its name and the fix) before anything exists; `--allow-shared NAME`
    lets that one name through."""
    install_plugin(tmp_path / "site")
    root = tmp_path / "proj"
    write_program(
        root,
        project="shared",
        resources=[
            {"name": "uploads", "type": "aws:s3/bucket:Bucket", "physical_name": "team-uploads"},
            {"name": "jobs", "type": "aws:sqs/queue:Queue", "physical_name": "{prefix}-jobs"},
        ],
    )
    (root / "tests").mkdir()
    (root / "tests" / "test_it.py").write_text("def test_it():\n    pass\n")
    subprocess.run(["git", "init", "-q", "-b", "feature/iso", str(root)], check=True)
    cli = Cli(root, tmp_path / "site")
    try:
        for command in ("up", "ci"):
            refused = cli.run(command)
            assert refused.returncode == 3, (command, refused.stdout, refused.stderr)
            assert "'uploads'" in refused.stderr and "'team-uploads'" in refused.stderr
            assert (
                "--allow-shared NAME" in refused.stderr and "Nothing was changed" in refused.stderr
            )
            assert cli.json("ls") == [], command

        wrong = cli.run("up", "--allow-shared", "other-name")
        assert wrong.returncode == 3 and "'team-uploads'" in wrong.stderr
        assert cli.json("ls") == []

        allowed = cli.json("up", "--allow-shared", "team-uploads")
        assert allowed["engine"] == "fake"
        assert [r["stack"] for r in cli.json("ls")] == [allowed["stack"]]
        # A `ci` refused by the check leaves the stack that existed before it alone.
        assert cli.run("ci").returncode == 3
        assert [r["stack"] for r in cli.json("ls")] == [allowed["stack"]]
        cli.json("down")
        assert cli.json("ls") == []

        passed = cli.json("ci", "--allow-shared", "team-uploads")
        assert passed["status"] == "passed" and passed["teardown"]["status"] == "destroyed"
        assert cli.json("ls") == []
    finally:
        cli.run("cloud", "stop")
