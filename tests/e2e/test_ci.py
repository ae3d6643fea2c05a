"""`branchenv ci` as CI runs it: green on the demo project, red on a failing suite, and the
stack destroyed in every case, including SIGTERM and SIGINT during the test phase. What is left
is checked in the local cloud by tag, never in branchenv's own state."""

from __future__ import annotations

import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from branchenv.inventory import TaggedResource, find_tagged
from branchenv.naming import names_for
from tests.conftest import cli_envelope, cli_result, subprocess_env
from tests.e2e.conftest import EXE, Project

FAILING_SUITE = """
def test_reaches_the_stack(branchenv_outputs):
    assert branchenv_outputs["table_name"].endswith("-orders")

def test_fails_on_purpose(branchenv_outputs):
    assert branchenv_outputs["table_name"] == "not-this-table"
"""

SLEEPING_SUITE = """
import os
import time
from pathlib import Path

def test_sleeps_in_the_test_phase(branchenv_outputs):
    Path(os.environ["BRANCHENV_TEST_MARKER"]).write_text(branchenv_outputs["table_name"])
    time.sleep(120)
"""


def tagged(project: Project, branch: str) -> list[TaggedResource]:
    stack = names_for(branch).stack
    return find_tagged(project.target(), key="branchenv:stack", values={stack})


def junit_cases(path: Path) -> dict[str, str]:
    """testcase name -> passed | failed | error | skipped."""
    out = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome = "passed"
        for tag, name in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
            if case.find(tag) is not None:
                outcome = name
        out[case.get("name", "")] = outcome
    return out


def test_ci_green_on_the_demo_project(project: Project, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    gh_summary, gh_output = tmp_path / "step-summary.md", tmp_path / "gh-output"
    proc = project.run(
        "ci",
        "--branch",
        "e2e/green",
        "--target",
        "local",
        "--report-dir",
        str(reports),
        "--json",
        GITHUB_STEP_SUMMARY=str(gh_summary),
        GITHUB_OUTPUT=str(gh_output),
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = cli_result(proc.stdout)
    assert out["status"] == "passed" and out["teardown"]["status"] == "destroyed"
    counts = out["counts"]
    assert counts["failed"] == counts["errors"] == counts["skipped"] == 0
    assert counts["passed"] == counts["total"] >= 20
    assert set(out["timings"]) >= {"provision_s", "ready_s", "test_s", "teardown_s"}
    assert all(v is not None for v in out["timings"].values())
    # JUnit from pytest, agreeing with the counts, every reference-suite area present
    cases = junit_cases(reports / "junit.xml")
    assert len(cases) == counts["total"] and set(cases.values()) == {"passed"}
    for name in (
        "test_create_order_contract",
        "test_poison_message_goes_to_dlq_after_max_receives",
        "test_table_has_point_in_time_recovery",
        "test_read_order_p95_within_slo",
        "test_dependency_fault_fails_fast_then_recovers[down]",
    ):
        assert name in cases
    summary = (reports / "summary.md").read_text()
    assert "branchenv ci: passed" in summary and "GET /orders/{id}" in summary
    assert "| cost |" in summary and "| time to ready |" in summary
    assert "/h, $" in summary and "projected to expiry" in summary  # the estimate, not a gap
    assert gh_summary.read_text() == summary
    outputs = dict(line.split("=", 1) for line in gh_output.read_text().splitlines() if "=" in line)
    assert outputs["stack"] == out["stack"] == names_for("e2e/green").stack
    assert outputs["passed"] == str(counts["passed"]) and outputs["failed"] == "0"
    assert outputs["endpoint"].startswith("http://127.0.0.1:")
    # nothing left behind
    assert tagged(project, "e2e/green") == []
    assert all(r["stack"] != out["stack"] for r in project.json("ls"))


def test_failing_suite_exits_1_and_destroys_the_stack(project: Project, tmp_path: Path) -> None:
    suite = tmp_path / "user_suite"
    suite.mkdir()
    (suite / "test_user.py").write_text(FAILING_SUITE)
    reports = tmp_path / "reports"
    proc = project.run(
        "ci", "--branch", "e2e/red", "--suite", str(suite), "--report-dir", str(reports)
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "ci failed: 1 passed, 1 failed" in proc.stdout
    assert junit_cases(reports / "junit.xml") == {
        "test_reaches_the_stack": "passed",
        "test_fails_on_purpose": "failed",
    }
    assert "test_fails_on_purpose` (failed)" in (reports / "summary.md").read_text()
    assert "teardown: destroyed" in proc.stdout
    assert tagged(project, "e2e/red") == []


def test_budget_gate_fails_right_after_provisioning(project: Project, tmp_path: Path) -> None:
    suite = tmp_path / "user_suite"
    suite.mkdir()
    (suite / "test_user.py").write_text(FAILING_SUITE)
    stack = names_for("e2e/budget").stack
    proc = project.run(
        "ci",
        "--branch",
        "e2e/budget",
        "--suite",
        str(suite),
        "--report-dir",
        str(tmp_path),
        "--max-hourly",
        "0.0001",
        "--json",
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    error = cli_envelope(proc.stdout)["error"]
    assert error["code"] == "budget_exceeded" and error["exit"] == 1, error
    message = error["message"]
    assert stack in message and "$0.0001/h" in message and "--max-hourly" in message
    assert not (tmp_path / "junit.xml").exists()  # the suite never ran
    assert tagged(project, "e2e/budget") == []


def test_keep_keeps_a_failed_stack(project: Project, tmp_path: Path) -> None:
    suite = tmp_path / "user_suite"
    suite.mkdir()
    (suite / "test_user.py").write_text(FAILING_SUITE)
    proc = project.run(
        "ci", "--branch", "e2e/keep", "--suite", str(suite), "--report-dir", str(tmp_path), "--keep"
    )
    try:
        assert proc.returncode == 1, proc.stderr[-3000:]
        assert "kept for debugging" in proc.stderr
        assert len(tagged(project, "e2e/keep")) == 9  # every tagged resource of the stack
    finally:
        project.run("down", "--branch", "e2e/keep", check=True)
    assert tagged(project, "e2e/keep") == []


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"]
)
def test_signal_during_tests_tears_down(
    project: Project, tmp_path: Path, signum: int, code: int
) -> None:
    suite = tmp_path / "sleeping_suite"
    suite.mkdir()
    (suite / "test_sleep.py").write_text(SLEEPING_SUITE)
    marker = tmp_path / "in-test-phase"
    branch = f"e2e/{signal.Signals(signum).name.lower()}"
    proc = subprocess.Popen(
        [str(EXE), "ci", "--branch", branch, "--suite", str(suite), "--report-dir", str(tmp_path)],
        cwd=project.root,
        env=subprocess_env(BRANCHENV_TEST_MARKER=str(marker)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(1200):  # wait (up to ~2 min) until the suite's test is running
            if marker.exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert marker.exists(), f"the test phase never started: {proc.communicate()[1][-3000:]}"
        assert len(tagged(project, branch)) == 9  # the stack is up while the test sleeps
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == code, stderr[-3000:]
    assert f"interrupted by {signal.Signals(signum).name} during test" in stderr
    assert "teardown: destroyed" in stdout
    assert tagged(project, branch) == []


PASSING_SUITE = """
def test_reaches_the_stack(branchenv_outputs, branchenv_http):
    assert branchenv_http.get(branchenv_outputs["endpoint"] + "/health").status_code == 200
"""


def test_test_runs_a_suite_against_an_existing_stack(project: Project, tmp_path: Path) -> None:
    suite = tmp_path / "user_suite"
    suite.mkdir()
    (suite / "test_user.py").write_text(PASSING_SUITE)
    missing = project.run("test", "--branch", "e2e/test-cmd", "--suite", str(suite))
    assert missing.returncode == 1 and "branchenv up --branch e2e/test-cmd" in missing.stderr
    project.run("up", "--branch", "e2e/test-cmd", check=True)
    try:
        proc = project.run(
            "test",
            "--branch",
            "e2e/test-cmd",
            "--suite",
            str(suite),
            "--report-dir",
            str(tmp_path / "reports"),
            "--json",
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = cli_result(proc.stdout)
        assert out["status"] == "passed" and out["counts"]["passed"] == 1
        assert junit_cases(tmp_path / "reports" / "junit.xml") == {
            "test_reaches_the_stack": "passed"
        }
        summary = (tmp_path / "reports" / "summary.md").read_text()
        assert "projected to expiry" in summary  # the stack's estimated cost
        assert len(tagged(project, "e2e/test-cmd")) == 9  # `test` leaves the stack up
    finally:
        project.run("down", "--branch", "e2e/test-cmd", check=True)
