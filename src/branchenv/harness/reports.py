"""Reports of a test run: JUnit XML (written by pytest's own ``--junitxml``) read back into
counts, a Markdown summary, and the GitHub Actions hand-offs (``$GITHUB_STEP_SUMMARY``,
``$GITHUB_OUTPUT``).

A test a signal stopped is *interrupted*, never passed. pytest's JUnit leaves such a test as an
empty ``<testcase>`` (no name, no outcome child); :func:`mark_interrupted` names it (from the
plugin's list of tests that started and never finished) and gives it
``<error type="interrupted">``, and :func:`parse_junit` counts either form as interrupted."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from branchenv.errors import OperationFailed
from branchenv.harness.latency import LatencyStats

OUTCOMES = ("passed", "failed", "error", "skipped", "interrupted")
COST_PLACEHOLDER = "not estimated yet"
INTERRUPTED = "interrupted"
"""The ``type`` of the ``<error>`` an interrupted test case carries in the JUnit report."""


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
    interrupted: int = 0
    """Tests a signal stopped before they finished (never counted as passed)."""

    @property
    def ok(self) -> bool:
        """Green: something ran and nothing failed, errored or was interrupted."""
        return self.failed == 0 and self.errors == 0 and self.interrupted == 0 and self.passed > 0

    def slowest(self, n: int = 5) -> tuple[CaseResult, ...]:
        return tuple(sorted(self.cases, key=lambda c: c.time_s, reverse=True)[:n])

    def failures(self) -> tuple[CaseResult, ...]:
        return tuple(c for c in self.cases if c.outcome in ("failed", "error", INTERRUPTED))

    def line(self) -> str:
        """``2 passed, 0 failed, 0 errors, 1 skipped`` (``, 1 interrupted`` when there is one)."""
        text = f"{self.passed} passed, {self.failed} failed, {self.errors} errors, "
        text += f"{self.skipped} skipped"
        if self.interrupted:
            text += f", {self.interrupted} interrupted"
        return text


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
                    if tag == "error" and child.get("type") == INTERRUPTED:
                        outcome = INTERRUPTED
                    message = (child.get("message") or (child.text or "")).strip()[:500] or None
                    text = child.text or ""
                    break
            else:
                if not case.get("name"):
                    # pytest's trace of a test cut short: it opened the case, never closed it.
                    outcome, message = INTERRUPTED, "the test did not finish"
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
        interrupted=tally[INTERRUPTED],
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


def junit_address(nodeid: str) -> tuple[str, str]:
    """(classname, name) of a pytest node id as pytest's JUnit writes them:
    ``tests/test_a.py::TestX::test_y[1]`` -> ``("tests.test_a.TestX", "test_y[1]")``."""
    parts = nodeid.split("::")
    path = parts[0].replace("\\", "/")
    if path.endswith(".py"):
        path = path[: -len(".py")]
    names = [path.replace("/", "."), *parts[1:]]
    return ".".join(names[:-1]), names[-1]


def mark_interrupted(path: Path, unfinished: Sequence[str], why: str) -> int:
    """Mark the tests in ``unfinished`` (pytest node ids that started and never finished) as
    interrupted in the JUnit report at ``path``: each gets its name (pytest leaves the case
    empty) and ``<error type="interrupted" message=why>``, and its suite's ``errors`` count
    goes up. Returns how many cases were marked (0 when there is no readable report)."""
    import xml.etree.ElementTree as ET

    try:
        tree = ET.parse(path)
    except (OSError, ET.ParseError):
        return 0
    root = tree.getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    if not suites:
        return 0
    marked = 0
    for nodeid in unfinished:
        classname, name = junit_address(nodeid)
        found = None
        for suite in suites:
            for case in suite.iter("testcase"):
                if (case.get("classname"), case.get("name")) == (classname, name) or (
                    not case.get("name") and len(case) == 0
                ):
                    found = (suite, case)
                    break
            if found:
                break
        if found is None:
            suite = suites[-1]
            found = (suite, ET.SubElement(suite, "testcase", {"time": "0.000"}))
        suite, case = found
        error = case.find("error")
        if error is not None and error.get("type") == INTERRUPTED:
            continue
        case.set("classname", classname)
        case.set("name", name)
        for child in list(case):
            if child.tag in ("failure", "error", "skipped"):
                case.remove(child)
        ET.SubElement(case, "error", {"type": INTERRUPTED, "message": why}).text = why
        suite.set("errors", str(int(suite.get("errors") or 0) + 1))
        suite.set("tests", str(sum(1 for _ in suite.iter("testcase"))))
        marked += 1
    if marked:
        tree.write(path, encoding="utf-8", xml_declaration=True)
    return marked


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
        f"| tests | {c.line()} ({c.total} total) |",
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
