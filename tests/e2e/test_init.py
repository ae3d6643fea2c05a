"""`branchenv init` in a user's existing project: a commented branchenv.toml and an example
suite that `branchenv ci` then runs green against the project's own stack; refusals (no
program, files already there) write nothing."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.conftest import cli_result, subprocess_env
from tests.e2e.own_project import UserProject


def test_init_then_ci_runs_the_example_suite_on_the_users_own_stack(
    own_project: UserProject,
) -> None:
    project = own_project
    (project.root / "branchenv.toml").unlink()  # a Pulumi project that knows nothing of us
    written = project.json("init")
    assert written["kind"] == "pulumi" and written["program"] == "."
    assert sorted(written["written"]) == [
        "branchenv.toml",
        "tests/integration/test_branchenv_example.py",
    ]
    config = (project.root / "branchenv.toml").read_text()
    assert config.count("\n# ") >= 10  # commented for a person
    again = project.run("init")
    assert again.returncode == 2 and "--force" in again.stderr
    assert project.run("init", "--force").returncode == 0

    shown = project.json("config", "show")["settings"]
    assert shown["program"]["value"] == "." and shown["suite"]["value"] == "tests/integration"

    # Outside branchenv the example skips, so it can sit beside unit tests.
    plain = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/integration"],
        cwd=project.root,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "skipped" in plain.stdout and "passed" not in plain.stdout

    reports = project.root / "reports"
    ci = project.run("ci", "--branch", "feature/init", "--report-dir", str(reports), timeout=300)
    assert ci.returncode == 0, ci.stdout + ci.stderr
    outcomes = {
        case.get("name"): ("skipped" if case.find("skipped") is not None else "passed")
        for case in ET.parse(reports / "junit.xml").getroot().iter("testcase")
        if case.find("failure") is None and case.find("error") is None
    }
    assert outcomes["test_the_stack_has_its_outputs"] == "passed"
    assert outcomes["test_the_stack_resources_carry_its_tag"] == "passed"
    assert outcomes["test_the_endpoint_answers"] == "skipped"  # a bucket and a queue: no URL
    assert len(outcomes) == 5


def test_init_refuses_a_directory_without_a_program_and_writes_nothing(tmp_path: Path) -> None:
    from tests.e2e.conftest import EXE

    proc = subprocess.run(
        [str(EXE), "init"], cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True
    )
    assert proc.returncode == 2, proc.stderr
    assert "Pulumi.yaml" in proc.stderr and "--program" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_init_in_a_terraform_module(tmp_path: Path) -> None:
    from tests.e2e.conftest import EXE

    module = tmp_path / "infra"
    module.mkdir()
    (module / "main.tf").write_text('variable "prefix" { type = string }\n')
    proc = subprocess.run(
        [str(EXE), "init", "--program", "infra", "--json"],
        cwd=tmp_path,
        env=subprocess_env(),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    out = cli_result(proc.stdout)
    assert out["kind"] == "terraform" and out["program"] == "infra"
    assert 'program = "infra"' in (tmp_path / "branchenv.toml").read_text()
