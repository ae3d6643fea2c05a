"""Reports of a test run: JUnit XML (written by pytest's own ``--junitxml``) read back into
counts, a Markdown summary, and the GitHub Actions hand-offs (``$GITHUB_STEP_SUMMARY``,
``$GITHUB_OUTPUT``)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from branchenv.errors import OperationFailed
from branchenv.harness.latency import LatencyStats

OUTCOMES = ("passed", "failed", "error", "skipped")
COST_PLACEHOLDER = "not estimated yet"


@dataclasses.dataclass(frozen=True)
class CaseResult:
    """One test case as JUnit recorded it."""

    name: str
    classname: str
    outcome: str
    time_s: float
    message: str | None = None
    file: str | None = None
    """Where it failed, as pytest names the file (relative to its working directory)."""
    line: int | None = None
    """The line it failed at (1-based), when known."""

    @property
    def id(self) -> str:
        return f"{self.classname}::{self.name}" if self.classname else self.name


@dataclasses.dataclass(frozen=True)
class TestCounts:
    """Counts of a run, with every case."""

    __test__ = False  # not a pytest test class

    total: int
    passed: int
    failed: int
    errors: int
    skipped: int
    duration_s: float
    cases: tuple[CaseResult, ...] = ()

    @property
    def ok(self) -> bool:
        """Green: something ran and nothing failed or errored."""
        return self.failed == 0 and self.errors == 0 and self.passed > 0

    def slowest(self, n: int = 5) -> tuple[CaseResult, ...]:
        return tuple(sorted(self.cases, key=lambda c: c.time_s, reverse=True)[:n])

    def failures(self) -> tuple[CaseResult, ...]:
        return tuple(c for c in self.cases if c.outcome in ("failed", "error"))


EMPTY_COUNTS = TestCounts(total=0, passed=0, failed=0, errors=0, skipped=0, duration_s=0.0)


def parse_junit(path: Path) -> TestCounts:
    """Read a JUnit XML file (pytest's flavour: ``testsuites/testsuite/testcase``)."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise OperationFailed(
            f"no JUnit report at {path}: pytest did not finish (see its output above)"
        ) from None
    except ET.ParseError as exc:
        raise OperationFailed(f"JUnit report {path} is not valid XML ({exc})") from None
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    cases: list[CaseResult] = []
    duration = 0.0
    for suite in suites:
        duration += float(suite.get("time") or 0.0)
        for case in suite.iter("testcase"):
            outcome, message, text = "passed", None, ""
            for tag in ("failure", "error", "skipped"):
                child = case.find(tag)
                if child is not None:
                    outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                    message = (child.get("message") or (child.text or "")).strip()[:500] or None
                    text = child.text or ""
                    break
            file, line = (
                failure_location(text, case.get("file"), case.get("line"))
                if outcome in ("failed", "error")
                else (None, None)
            )
            cases.append(
                CaseResult(
                    name=case.get("name") or "",
                    classname=case.get("classname") or "",
                    outcome=outcome,
                    time_s=float(case.get("time") or 0.0),
                    message=message,
                    file=file,
                    line=line,
                )
            )
    tally = {o: sum(1 for c in cases if c.outcome == o) for o in OUTCOMES}
    return TestCounts(
        total=len(cases),
        passed=tally["passed"],
        failed=tally["failed"],
        errors=tally["error"],
        skipped=tally["skipped"],
        duration_s=duration,
        cases=tuple(cases),
    )


# pytest's traceback entries: "tests/test_x.py:12: AssertionError" (long), "...:12: in test_x"
_TRACEBACK_LOCATION = re.compile(r"^(?P<file>[^\s:][^:\n]*\.py):(?P<line>[0-9]+):", re.MULTILINE)


def failure_location(
    text: str, file_attr: str | None = None, line_attr: str | None = None
) -> tuple[str | None, int | None]:
    """Where a test failed: the first entry of pytest's traceback in the failure's text (the
    test function's own line), else the ``file``/``line`` attributes of JUnit's xunit1 flavour
    (the test's definition; that ``line`` counts from 0)."""
    found = _TRACEBACK_LOCATION.search(text)
    if found:
        return found["file"], int(found["line"])
    if file_attr:
        line = int(line_attr) + 1 if line_attr and line_attr.isdigit() else None
        return file_attr, line
    return None, None


@dataclasses.dataclass(frozen=True)
class Timings:
    """Where the wall time of a run went, in seconds (None: the phase did not run)."""

    provision_s: float | None = None
    ready_s: float | None = None
    test_s: float | None = None
    teardown_s: float | None = None
    total_s: float | None = None


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """Everything the Markdown summary shows."""

    command: str
    status: str
    stack: str
    branch: str
    target: str
    endpoint: str | None
    counts: TestCounts
    latency: tuple[LatencyStats, ...] = ()
    latency_p95_goal_ms: int | None = None
    time_to_ready_s: float | None = None
    timings: Timings | None = None
    cost: str | None = None
    notes: tuple[str, ...] = ()
    teardown: str | None = None
    """What teardown did, with the leak check's count (``destroyed ..., leaked: 0``); None when
    the command tears nothing down (`test`)."""


def _fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(summary: RunSummary, *, slowest: int = 5) -> str:
    """The Markdown summary of one run (what goes to ``$GITHUB_STEP_SUMMARY``)."""
    c = summary.counts
    icon = "✅" if summary.status == "passed" else "❌"
    lines = [
        f"## {icon} {summary.command}: {summary.status}",
        "",
        "| | |",
        "| --- | --- |",
        f"| stack | `{summary.stack}` (branch `{_cell(summary.branch)}`, target {summary.target}) |",
        f"| endpoint | {summary.endpoint or '-'} |",
        f"| tests | {c.passed} passed, {c.failed} failed, {c.errors} errors, "
        f"{c.skipped} skipped ({c.total} total) |",
        f"| time to ready | {_fmt_s(summary.time_to_ready_s)} |",
        f"| cost | {_cell(summary.cost) if summary.cost else COST_PLACEHOLDER} |",
    ]
    if summary.teardown is not None:
        lines.append(f"| teardown | {_cell(summary.teardown)} |")
    t = summary.timings
    if t is not None:
        lines += [
            "",
            "| provision | ready | test | teardown | total |",
            "| --- | --- | --- | --- | --- |",
            f"| {_fmt_s(t.provision_s)} | {_fmt_s(t.ready_s)} | {_fmt_s(t.test_s)} "
            f"| {_fmt_s(t.teardown_s)} | {_fmt_s(t.total_s)} |",
        ]
    failures = c.failures()
    if failures:
        lines += ["", "### Failures", ""]
        for case in failures:
            reason = f": {_cell(case.message[:200])}" if case.message else ""
            lines.append(f"- `{case.id}` ({case.outcome}){reason}")
    if summary.latency:
        goal = summary.latency_p95_goal_ms
        lines += [
            "",
            "### Latency" + (f" (p95 goal {goal} ms)" if goal else ""),
            "",
            "| probe | n | errors | p50 ms | p95 ms | p99 ms |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for s in summary.latency:
            lines.append(
                f"| {_cell(s.name)} | {s.count} | {s.errors} | {s.p50_ms:.1f} "
                f"| {s.p95_ms:.1f} | {s.p99_ms:.1f} |"
            )
    top = c.slowest(slowest)
    if top:
        lines += ["", f"### Slowest {len(top)} tests", "", "| test | time |", "| --- | --- |"]
        lines += [f"| `{_cell(case.id)}` | {case.time_s:.2f} s |" for case in top]
    if summary.notes:
        lines += ["", *(f"> {_cell(n)}" for n in summary.notes)]
    return "\n".join(lines) + "\n"


def publish_github(
    summary_markdown: str, values: Mapping[str, Any], env: Mapping[str, str]
) -> tuple[str, ...]:
    """Append the summary to ``$GITHUB_STEP_SUMMARY`` and ``values`` to ``$GITHUB_OUTPUT``
    when those are set (through :mod:`branchenv.github`); returns the paths written."""
    from branchenv.github import append_summary, write_outputs

    written = [
        append_summary(summary_markdown, env=env),
        write_outputs({k: "" if v is None else str(v) for k, v in values.items()}, env=env),
    ]
    return tuple(str(p) for p in written if p is not None)
