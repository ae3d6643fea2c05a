"""Issue 15 item 6, the dead-man's switch, as a user runs `ci`: SIGKILL (which no handler can
see) delivered to a real `ci` at 10 offsets across provisioning of the demo stack, then once
during its tests. Afterwards `ci`'s watchdog has torn the stack down: 0 resources carrying the
stack's tag on the local cloud (counted there by tag, never from branchenv's state), the suite's
pytest process gone, and what it did written to the run's report dir. Before the watchdog,
both tests failed waiting for that report (the killed run's stack stayed up to its TTL).
Cost: 3 min for the 10 offsets on the shared 2-core machine (each killed run's teardown
overlaps the next run's provisioning), 30 s for each of the other two."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.conftest import subprocess_env
from tests.e2e.conftest import E2E_DEFAULTS, EXE, Project
from tests.e2e.test_signal_offsets import Lines, tagged_count

OFFSETS = 10
REPORT_JSON = "watchdog.json"  # what the watchdog did, in the run's report dir


def start_time(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot; None when it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def alive(pid: int, started: int | None) -> bool:
    """``pid`` runs (a zombie does not) and, given ``started``, is the process started then."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X") and (started is None or start_time(pid) == started)


SLEEPING_SUITE = """
import os, time
from pathlib import Path

def test_sleeps():
    Path(os.environ["SUITE_PID_FILE"]).write_text(str(os.getpid()))
    time.sleep(300)
"""


def _ci(project: Project, branch: str, suite: Path, reports: Path, *args: str, **env: str) -> Lines:
    proc = subprocess.Popen(
        [
            str(EXE),
            "ci",
            "--branch",
            branch,
            "--suite",
            str(suite),
            "--report-dir",
            str(reports),
            *args,
        ],
        cwd=project.root,
        env=subprocess_env(**{**E2E_DEFAULTS, **env}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return Lines(proc)


def _report(reports: Path, timeout: float = 180) -> dict[str, Any]:
    """Wait for the watchdog's report (written last, atomically). Fails when no watchdog acted,
    as before there was one: a killed `ci` left its stack up."""
    path = reports / REPORT_JSON
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"no watchdog report in {reports} after {timeout} s"
        time.sleep(0.2)
    report: dict[str, Any] = json.loads(path.read_text())
    return report


def _suite(tmp_path: Path, text: str) -> Path:
    suite = tmp_path / "suite"
    suite.mkdir(exist_ok=True)
    (suite / "test_it.py").write_text(text)
    return suite


def test_sigkill_of_ci_at_ten_offsets_across_provisioning_leaves_nothing(
    project: Project, tmp_path: Path
) -> None:
    suite = _suite(tmp_path, "def test_never_runs():\n    pass\n")
    # What provisioning prints: the progress lines between "updating" and "done:".
    calibrate = _ci(project, "wd/calibrate", suite, tmp_path / "calibrate")
    start, _ = calibrate.wait_for("updating ")
    end, _ = calibrate.wait_for("done:", after=start)
    assert calibrate.finish() == 0, calibrate.text()
    lines_in_up = end - start
    assert lines_in_up >= OFFSETS, lines_in_up

    branches = [f"wd/at-{i}" for i in range(OFFSETS)]
    passed = False
    reports: list[dict[str, Any]] = []
    try:
        for i, branch in enumerate(branches):
            lines = _ci(project, branch, suite, tmp_path / f"reports-{i}")
            at, _ = lines.wait_for("updating ")
            # Offsets spread across provisioning: after the n-th progress line (from none to
            # nearly all), then a few milliseconds more, to land inside the calls too.
            lines.wait_for("", after=at + lines_in_up * i // OFFSETS)
            time.sleep((i % 3) * 0.015)
            lines.proc.send_signal(signal.SIGKILL)
            assert lines.finish() == -signal.SIGKILL, f"offset {i}: `ci` had finished"
            # The next offset starts while this one's watchdog tears its stack down.
        for i, branch in enumerate(branches):
            out = tmp_path / f"reports-{i}"
            report = _report(out)
            reports.append(report)
            assert report["phase"] == "provision", report
            assert report["teardown"]["status"] in ("destroyed", "already-gone"), report
            assert report["teardown"]["leaked"] == [], report
            assert tagged_count(project, branch) == 0, f"offset {i}: {report}"
            assert "killed" in (out / "summary.md").read_text()
        # The kills really left resources for the watchdog to delete (else this could not fail)
        with_resources = sum(1 for r in reports if r["teardown"]["deleted"] > 0)
        assert with_resources >= OFFSETS // 2, reports
        passed = True
    finally:
        # Clean-up: after a pass, only what is still listed (the watchdogs removed the rest).
        if passed:
            project.down_left(branches)
        else:
            project.down_all(branches)


def test_sigkill_of_ci_during_its_tests_takes_the_stack_and_the_suite_down(
    project: Project, tmp_path: Path
) -> None:
    suite = _suite(tmp_path, SLEEPING_SUITE)
    pid_file = tmp_path / "suite.pid"
    out = tmp_path / "reports"
    branch = "wd/tests"
    lines = _ci(project, branch, suite, out, SUITE_PID_FILE=str(pid_file))
    suite_pid = 0
    try:
        deadline = time.monotonic() + 180
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pid_file.exists(), f"the suite never started:\n{lines.text()}"
        suite_pid = int(pid_file.read_text())
        suite_start = start_time(suite_pid)
        assert tagged_count(project, branch) == 9  # the stack is up while the test sleeps
        lines.proc.send_signal(signal.SIGKILL)
        assert lines.finish() == -signal.SIGKILL
        report = _report(out)
        assert report["phase"] == "suite", report
        assert report["suite"].endswith(("terminated", "killed")), report
        assert not alive(suite_pid, suite_start), "the pytest child outlived ci"
        assert report["teardown"]["status"] == "destroyed", report
        assert tagged_count(project, branch) == 0
        summary = (out / "summary.md").read_text()
        assert "killed" in summary and "| leaked | 0 |" in summary
    finally:
        if suite_pid and alive(suite_pid, None):
            os.kill(suite_pid, signal.SIGKILL)
        project.run("down", "--branch", branch)


def test_a_kept_stack_disarms_the_watchdog(project: Project, tmp_path: Path) -> None:
    suite = _suite(tmp_path, "def test_fails():\n    assert False\n")
    out = tmp_path / "reports"
    lines = _ci(project, "wd/keep", suite, out, "--keep")
    try:
        i, _ = lines.wait_for("armed: if this run dies")
        watchdog = int(lines.lines[i][1].split()[1])
        wd_start = start_time(watchdog)
        assert lines.finish(timeout=300) == 1, lines.text()
        assert "kept for debugging" in lines.text()
        deadline = time.monotonic() + 10
        while alive(watchdog, wd_start) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(watchdog, wd_start), "the watchdog stayed after ci finished"
        assert not (out / REPORT_JSON).exists()
        assert "disarmed (kept)" in (out / "watchdog.log").read_text()
        assert tagged_count(project, "wd/keep") == 9  # kept: nobody tore it down
    finally:
        project.run("down", "--branch", "wd/keep")
