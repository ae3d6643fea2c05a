"""How a pytest child's exit code and JUnit counts become ci/test's status and exit code."""

from __future__ import annotations

from pathlib import Path

import pytest

from branchenv.harness.publish import suite_status as _suite_status
from branchenv.harness.reports import TestCounts
from branchenv.harness.suite import ReportPaths, SuiteRun


def run(code: int | None) -> SuiteRun:
    return SuiteRun(command=("pytest",), exit_code=code, duration_s=1.0, latency=(), ready_s=None)


def counts(
    passed: int = 0, failed: int = 0, errors: int = 0, skipped: int = 0, interrupted: int = 0
) -> TestCounts:
    return TestCounts(
        total=passed + failed + errors + skipped + interrupted,
        passed=passed,
        failed=failed,
        errors=errors,
        skipped=skipped,
        duration_s=1.0,
        interrupted=interrupted,
    )


@pytest.mark.parametrize(
    ("code", "c", "status", "exit_code", "says"),
    [
        (0, counts(passed=3), "passed", 0, None),
        (0, counts(passed=3, skipped=2), "passed", 0, None),
        (0, counts(skipped=5), "failed", 1, "no test passed (5 skipped)"),
        (0, counts(), "failed", 1, "no test passed"),
        (1, counts(passed=2, failed=1), "failed", 1, None),
        (5, counts(), "failed", 1, "collected no tests"),
        (4, counts(), "error", 2, "rejected its arguments"),
        (3, counts(passed=1), "error", 1, "pytest exited 3"),
        (None, counts(), "error", 1, "did not run"),
        (2, counts(passed=1, interrupted=1), "interrupted", 1, "1 test unfinished"),
        (0, counts(passed=4, interrupted=1), "interrupted", 1, "did not complete"),
        (2, counts(errors=1), "failed", 1, None),  # a collection error exits 2 too
    ],
)
def test_suite_status(
    code: int | None, c: TestCounts, status: str, exit_code: int, says: str | None
) -> None:
    got_status, got_code, message = _suite_status(run(code), c)
    assert (got_status, got_code) == (status, exit_code)
    if says is None:
        assert message is None
    else:
        assert message is not None and says in message


def test_reports_of_an_earlier_run_are_cleared(tmp_path: Path) -> None:
    paths = ReportPaths.under(tmp_path)
    for p in (paths.junit, paths.summary, paths.stack_file, paths.plugin_report):
        p.write_text("from the last run")
    keep = tmp_path / "notes.txt"
    keep.write_text("mine")
    paths.clear()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
