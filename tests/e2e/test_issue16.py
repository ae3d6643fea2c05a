"""Issue 16's list, one test per item, each run as a user runs the CLI (a real subprocess on a
real project with its own local cloud). Written before the fixes; each failed first."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from branchenv.naming import names_for
from tests.conftest import REPO_ROOT, subprocess_env
from tests.e2e.conftest import EXE
from tests.e2e.tiny_project import TinyProject, cloud_running, make_tiny_project

NOTES = 0 if shutil.which("pulumi") else 1  # the "no pulumi CLI: using inprocess" note
MONEY = re.compile(r"^-?[0-9]+\.[0-9]{6}$")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyProject]:
    project = make_tiny_project(tmp_path_factory.mktemp("tiny") / "shop")
    try:
        yield project
    finally:
        project.stop()


def _money(value: object) -> None:
    assert isinstance(value, dict) and set(value) == {"amount", "currency"}, value
    assert MONEY.match(value["amount"]) and value["currency"] == "USD", value


# --- 1. --json prints nothing on a refusal or bad input; money is prose ----------------------


def test_json_errors_are_an_envelope_on_stdout(tiny: TinyProject) -> None:
    refused = tiny.envelope("ci", "--branch", "main", exit=3)
    assert refused["schema"] == 1 and refused["ok"] is False
    assert refused["error"]["exit"] == 3 and refused["error"]["code"] == "safety_refusal"
    assert "protected" in refused["error"]["message"] and refused["error"]["hint"]
    bad = tiny.envelope("up", "--branch", "feature/x", "--ttl", "bogus", exit=2)
    assert bad["ok"] is False and "--ttl" in bad["error"]["message"]
    usage = tiny.envelope("ls", "--no-such-flag", exit=2)
    assert usage["error"]["code"] == "usage" and "--no-such-flag" in usage["error"]["message"]


def test_json_money_is_a_rounded_decimal_string_with_its_currency(tiny: TinyProject) -> None:
    stack = tiny.result("up", "--branch", "feature/money")["stack"]
    try:
        rows = {r["stack"]: r for r in tiny.result("ls")}  # ls's result is the list of rows
        _money(rows[stack]["cost_hourly"])
        _money(rows[stack]["cost_so_far"])
        report = tiny.result("cost", "--branch", "feature/money")
        for key in ("hourly", "so_far", "projected_to_expiry"):
            _money(report["totals"][key])
        ran = tiny.result("ci", "--branch", "feature/money-ci")
        for key in ("hourly", "so_far", "projected_to_expiry"):
            _money(ran["cost"][key])
    finally:
        tiny.run("down", "--branch", "feature/money", "--yes")


# --- 2. the wrong flag named; hints that lead nowhere ------------------------------------------


def test_errors_name_their_flag_and_a_fix_that_works(tiny: TinyProject) -> None:
    grace = tiny.run("reap", "--orphan-grace", "bogus")
    assert grace.returncode == 2 and "--orphan-grace 'bogus'" in grace.stderr
    assert "--ttl" not in grace.stderr

    main = tiny.run("test", "--branch", "main")
    assert main.returncode == 3, main.stderr
    assert "branchenv up --branch main" not in main.stderr
    assert "protected" in main.stderr and "--branch" in main.stderr

    nosuch = tiny.run("outputs", "--branch", "nosuch")
    assert nosuch.returncode == 1
    assert "branchenv up --branch nosuch" in nosuch.stderr and "branchenv ls" in nosuch.stderr

    cost = tiny.run("cost", "--branch", "nosuch")
    assert cost.returncode == 1 and "no stack" in cost.stderr and "nosuch" in cost.stderr
    assert cost.stdout == ""

    render = tiny.run("render", "--program", "infra/nope")
    assert render.returncode == 2 and "--program" in render.stderr
    assert "[tool.branchenv]" not in render.stderr


def test_no_pulumi_config_set_hint_without_a_pulumi_cli(tmp_path: Path) -> None:
    program = (
        "import pulumi\n"
        'greeting = pulumi.Config().require("greeting")\n'
        'pulumi.export("greeting", greeting)\n'
    )
    project = make_tiny_project(tmp_path / "cfg", program=program)
    try:
        proc = project.run("up", "--branch", "feature/cfg")
        assert proc.returncode in (1, 2), proc.stderr
        assert "pulumi config set" not in proc.stderr
        assert "greeting" in proc.stderr and "stacks/Pulumi.local.yaml" in proc.stderr
        assert len(proc.stderr.strip().splitlines()[-1]) > 0
        assert "\tplease" not in proc.stderr
    finally:
        project.stop()


# --- 3. side effects before validation ---------------------------------------------------------


def test_nothing_starts_before_the_input_is_checked(tmp_path: Path, tiny: TinyProject) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = tiny.run("up", "--branch", "feature/x", cwd=empty)
    assert proc.returncode == 2
    assert not (empty / ".branchenv").exists()

    tiny.run("cloud", "stop")
    reports = tiny.root / "reports"
    reports.mkdir(exist_ok=True)
    (reports / "junit.xml").write_text("<testsuites/>")
    for args, code in (
        (("up", "--branch", "feature/x", "--profile", "bogus"), 2),
        (("preview", "--branch", "feature/x", "--profile", "bogus"), 2),
        (("down", "--branch", "main"), 3),
        (("ci", "--branch", "main"), 3),
        (("ci", "--branch", "feature/x", "--profile", "bogus"), 2),
        (("test", "--branch", "main"), 3),
        (("up", "--branch", "feature/x", "--ttl", "100000d"), 2),
        (("ci", "--branch", "feature/x", "--suite", "nope"), 2),
        (("pool", "fill", "--size", "100000"), 2),
        (("reap", "--yes", "--orphan-grace", "bogus"), 2),
        (("down", "--branch", "feature/x", "--engine", "nope"), 2),
    ):
        proc = tiny.run(*args)
        assert proc.returncode == code, (args, proc.stderr)
        assert not cloud_running(tiny), f"{args} started the local cloud before failing"
    assert (reports / "junit.xml").exists(), "a refused ci cleared the earlier reports"


# --- 4. flags that differ across commands -------------------------------------------------------


def test_the_same_flags_everywhere(tiny: TinyProject) -> None:
    assert tiny.run("ls", "--target", "local").returncode == 0
    assert tiny.run("ls", "-t", "local").returncode == 0
    assert json.loads(tiny.run("reap", "-f", "json").stdout)["ok"] is True
    assert tiny.run("config", "show", "-t", "aws").returncode == 0
    for command in ("up", "ls", "reap", "cost", "ci"):
        text = tiny.run(command, "--help").stdout
        assert "auto" in text, f"{command} --help does not list `auto` for --engine"
        assert "<bool>" not in text, f"{command} --help shows a <bool> metavar"
    ci_help = " ".join(tiny.run("ci", "--help").stdout.split())
    assert "3 refused" in ci_help


# --- 5. tables, wording, plurals, notes, money precision ---------------------------------------


def test_tables_fit_80_columns_and_read_alike(tiny: TinyProject) -> None:
    branch = "feature/a-rather-long-branch-name-for-the-table"
    stack = names_for(branch).stack
    up = tiny.run("up", "--branch", branch, "--ttl", "1s")
    try:
        assert up.returncode == 0, up.stderr
        assert "1 resource," in up.stdout and "1 resources" not in up.stdout
        assert up.stderr.count("note: no `pulumi` CLI") == NOTES
        time.sleep(2)
        ls = tiny.run("ls", COLUMNS="80")
        assert ls.returncode == 0, ls.stderr
        assert max(len(line) for line in ls.stdout.splitlines()) <= 80, ls.stdout
        assert stack[-8:] in ls.stdout, "the stack's hash is cut off"
        assert re.search(r"expired \d+s ago", ls.stdout), ls.stdout
        reap = tiny.run("reap", COLUMNS="80")
        assert max(len(line) for line in reap.stdout.splitlines()) <= 80, reap.stdout
        assert re.search(r"expired \d+s ago", reap.stdout), reap.stdout
        assert reap.stdout.count("note:") + reap.stderr.count("note:") <= 1
    finally:
        tiny.run("down", "--branch", branch, "--yes")

    ci = tiny.run("ci", "--branch", "feature/notes")
    assert ci.returncode == 0, ci.stderr
    assert ci.stderr.count("note: no `pulumi` CLI") == NOTES, ci.stderr
    assert "attempt(s)" not in ci.stdout and "stack(s)" not in ci.stdout

    actual = tiny.run("cost", "--all", "--actual")
    assert actual.returncode == 0, actual.stderr
    # the advice's own command names cost-allocation-tags twice (the call and its option)
    assert (actual.stdout + actual.stderr).count("take up to ~24 h") == 1

    up = tiny.run("up", "--branch", "feature/budget")
    try:
        over = tiny.run("cost", "--branch", "feature/budget", "--max-total", "0.000001")
        assert over.returncode == 1
        assert "$0.000001" in over.stderr and "$0.0000 " not in over.stderr
    finally:
        tiny.run("down", "--branch", "feature/budget", "--yes")


# --- 6. env typos; unbounded TTLs ----------------------------------------------------------------


def test_env_typos_and_ttls_past_the_cap(tiny: TinyProject) -> None:
    typo = tiny.run("config", "show", BRANCHENV_DEFUALT_TTL="2h")
    assert typo.returncode == 2
    assert "BRANCHENV_DEFUALT_TTL" in typo.stderr and "BRANCHENV_DEFAULT_TTL" in typo.stderr
    long = tiny.run("up", "--branch", "feature/long", "--ttl", "100000d")
    assert long.returncode == 2 and "max_ttl" in long.stderr and "--ttl" in long.stderr
    capped = tiny.run("up", "--branch", "feature/long", "--ttl", "10d", BRANCHENV_MAX_AGE="7d")
    assert capped.returncode == 2 and "max_age" in capped.stderr
    shown = tiny.result("config", "show")["settings"]
    assert shown["max_ttl"] == {"value": "30d", "source": "default"}


# --- 7. Ctrl-C during ci: an unfinished test counted as passed ------------------------------------

HALTING_SUITE = """\
import os
import time
from pathlib import Path

def test_one_passes():
    pass

def test_two_is_interrupted():
    Path(os.environ["MARKER"]).write_text("running")
    time.sleep(60)
"""


def test_an_interrupted_test_never_counts_as_passed(tmp_path: Path) -> None:
    project = make_tiny_project(tmp_path / "halt", suite=HALTING_SUITE)
    marker = tmp_path / "marker"
    try:
        proc = subprocess.Popen(
            [str(EXE), "ci", "--branch", "feature/halt", "--json"],
            cwd=project.root,
            env=subprocess_env(MARKER=str(marker)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert marker.exists(), "the suite never reached its second test"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err[-3000:]
        doc = json.loads(out)
        counts = doc["result"]["counts"]
        assert doc["result"]["status"] == "interrupted"
        assert counts["passed"] == 1 and counts["interrupted"] == 1, counts
        junit = (project.root / "reports" / "junit.xml").read_text()
        assert "test_two_is_interrupted" in junit and "interrupted" in junit
        summary = (project.root / "reports" / "summary.md").read_text()
        assert "1 passed" in summary and "1 interrupted" in summary
    finally:
        project.stop()


# --- 8. ci destroys a stack the user brought up by hand -------------------------------------------


def test_ci_keeps_a_stack_that_existed_before(tiny: TinyProject) -> None:
    branch = "feature/debugging"
    stack = tiny.result("up", "--branch", branch)["stack"]
    try:
        ran = tiny.run("ci", "--branch", branch)
        assert ran.returncode == 0, ran.stderr
        assert "existed before" in ran.stdout + ran.stderr
        assert stack in {r["stack"] for r in tiny.result("ls")}
        gone = tiny.result("ci", "--branch", branch, "--destroy-existing")
        assert gone["teardown"]["status"] == "destroyed"
        assert stack not in {r["stack"] for r in tiny.result("ls")}
    finally:
        tiny.run("down", "--branch", branch, "--yes")


# --- 9. ./dev installs with no sign of life ---------------------------------------------------------


def test_dev_shows_pip_progress(tmp_path: Path) -> None:
    """./dev's bootstrap, run for real with a recording stand-in for the venv's python."""
    (tmp_path / "dev").write_text((REPO_ROOT / "dev").read_text())
    (tmp_path / "dev").chmod(0o755)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    log = tmp_path / "calls.log"
    bindir = tmp_path / ".venv" / "bin"
    bindir.mkdir(parents=True)
    fake = bindir / "python"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    fake.chmod(0o755)
    proc = subprocess.run(
        ["./dev", "test", "--version"],
        cwd=tmp_path,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=60,
    )
    calls = log.read_text().splitlines()
    installs = [c for c in calls if "pip install" in c]
    assert installs, (calls, proc.stderr)
    assert all("--quiet" not in c and " -q" not in c for c in installs), installs
    assert any("-e .[dev]" in c for c in installs), installs
