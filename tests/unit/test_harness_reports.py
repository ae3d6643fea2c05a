"""Reports: JUnit read back, the Markdown summary, and GitHub's output/summary files."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from branchenv.errors import OperationFailed
from branchenv.github import format_outputs as github_output
from branchenv.harness.latency import summarize
from branchenv.harness.reports import (
    COST_PLACEHOLDER,
    RunSummary,
    Timings,
    junit_address,
    mark_interrupted,
    parse_junit,
    publish_github,
    render_markdown,
)

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="5" time="3.5">
<testcase classname="tests.test_a" name="test_ok" time="0.10"/>
<testcase classname="tests.test_a" name="test_slow" time="2.50"/>
<testcase classname="tests.test_a" name="test_bad" time="0.20">
  <failure message="assert 1 == 2">trace</failure></testcase>
<testcase classname="tests.test_b" name="test_err" time="0.30"><error message="fixture boom"/>
</testcase>
<testcase classname="tests.test_b" name="test_skip" time="0.00"><skipped message="no stack"/>
</testcase>
</testsuite></testsuites>
"""


def test_parse_junit_counts_and_cases(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(JUNIT)
    counts = parse_junit(path)
    assert (counts.total, counts.passed, counts.failed, counts.errors, counts.skipped) == (
        5,
        2,
        1,
        1,
        1,
    )
    assert not counts.ok
    assert counts.duration_s == 3.5
    assert [c.name for c in counts.slowest(2)] == ["test_slow", "test_err"]
    failed = {c.id: c.message for c in counts.failures()}
    assert failed == {
        "tests.test_a::test_bad": "assert 1 == 2",
        "tests.test_b::test_err": "fixture boom",
    }


@pytest.mark.parametrize("content", [None, "<testsuites><oops"])
def test_parse_junit_missing_or_broken(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "junit.xml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(OperationFailed, match=str(path)):
        parse_junit(path)


def test_markdown_summary_has_counts_latency_timings_and_cost(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(JUNIT)
    summary = RunSummary(
        command="branchenv ci",
        status="failed",
        stack="feature-x",
        branch="feature/x",
        target="local",
        endpoint="http://127.0.0.1:1/api/abc",
        counts=parse_junit(path),
        latency=(summarize("GET /orders/{id}", [10.0, 20.0, 30.0], errors=0),),
        latency_p95_goal_ms=500,
        time_to_ready_s=0.42,
        timings=Timings(provision_s=3.0, ready_s=0.4, test_s=5.0, teardown_s=1.0, total_s=9.4),
    )
    text = render_markdown(summary)
    assert "## ❌ branchenv ci: failed" in text
    assert "| tests | 2 passed, 1 failed, 1 errors, 1 skipped (5 total) |" in text
    assert "| time to ready | 0.42 s |" in text
    assert f"| cost | {COST_PLACEHOLDER} |" in text
    assert "| 3.00 s | 0.40 s | 5.00 s | 1.00 s | 9.40 s |" in text
    assert "| GET /orders/{id} | 3 | 0 | 20.0 | 30.0 | 30.0 |" in text
    assert "- `tests.test_a::test_bad` (failed): assert 1 == 2" in text
    assert text.index("test_slow") < text.index("test_err", text.index("Slowest"))
    priced = render_markdown(
        RunSummary(**{**summary.__dict__, "cost": "$0.02 (estimate)", "status": "passed"})
    )
    assert "| cost | $0.02 (estimate) |" in priced and "## ✅" in priced


def _parse_github_output(text: str) -> dict[str, str]:
    """Read $GITHUB_OUTPUT the way the Actions runner does."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line:
            i += 1
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, delimiter = line.split("<<", 1)
            body: list[str] = []
            i += 1
            while lines[i] != delimiter:
                body.append(lines[i])
                i += 1
            values[key] = "\n".join(body)
        else:
            key, value = line.split("=", 1)
            values[key] = value
        i += 1
    return values


@given(
    st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_-]{0,15}", fullmatch=True),
        st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r")),
        max_size=5,
    )
)
def test_github_output_round_trips_multiline_values(values: dict[str, str]) -> None:
    assert _parse_github_output(github_output(values)) == values


def test_github_output_rejects_bad_names() -> None:
    with pytest.raises(ValueError):
        github_output({"a=b": "x"})


def test_publish_github_appends_when_set(tmp_path: Path) -> None:
    summary, output = tmp_path / "summary.md", tmp_path / "output"
    summary.write_text("earlier step\n")
    env = {"GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(output)}
    written = publish_github("## run\n", {"stack": "s", "passed": 3, "failed": 0}, env)
    assert written == (str(summary), str(output))
    assert summary.read_text() == "earlier step\n## run\n"
    assert _parse_github_output(output.read_text()) == {"stack": "s", "passed": "3", "failed": "0"}
    assert publish_github("x", {"a": 1}, {}) == ()


def test_a_runs_cost_is_money_in_json_and_one_line_for_people() -> None:
    import jsonschema  # type: ignore[import-untyped]

    from branchenv.cli import output
    from branchenv.harness.publish import RunCost

    cost = RunCost(
        hourly=Decimal("0.00948173599315068493"),
        so_far=Decimal("0.0000001"),
        projected_to_expiry=Decimal("0.2275616638356164"),
        unpriced_types=("aws:sqs/queue:Queue",),
        lower_bound=True,
    )
    doc = output.to_jsonable(cost)
    assert doc["hourly"] == {"amount": "0.009482", "currency": "USD"}
    assert doc["so_far"] == {"amount": "0.000000", "currency": "USD"}
    schema = {"$defs": output.schema()["$defs"], "$ref": "#/$defs/cost_estimate"}
    jsonschema.Draft202012Validator(schema).validate(doc)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate({**doc, "line": cost.line()})
    assert cost.line() == (
        "$0.0095/h, $0.23 projected to expiry (estimate); unpriced: aws:sqs/queue:Queue "
        "(a lower bound)"
    )


# What pytest 8 writes when Ctrl-C stops its second test: the unfinished case has no name and no
# outcome child (the reporter was opened for its setup's duration and never closed).
INTERRUPTED_JUNIT = (
    '<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite '
    'name="pytest" errors="0" failures="0" skipped="0" tests="1" time="0.692"><testcase '
    'classname="tests.test_stack" name="test_one_passes" time="0.000" /><testcase time="0.000" />'
    "</testsuite></testsuites>"
)


def test_pytests_empty_testcase_of_an_interrupted_run_is_not_a_pass(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(INTERRUPTED_JUNIT)
    counts = parse_junit(path)
    assert (counts.passed, counts.interrupted, counts.total) == (1, 1, 2)
    assert not counts.ok
    assert counts.line() == "1 passed, 0 failed, 0 errors, 0 skipped, 1 interrupted"


@pytest.mark.parametrize(
    "junit",
    [
        INTERRUPTED_JUNIT,
        INTERRUPTED_JUNIT.replace('<testcase time="0.000" />', ""),  # no trace of it at all
        INTERRUPTED_JUNIT.replace(  # recorded under its name, still without an outcome
            '<testcase time="0.000" />',
            '<testcase classname="tests.test_stack" name="test_two_is_interrupted" time="1" />',
        ),
    ],
)
def test_mark_interrupted_names_the_unfinished_test(tmp_path: Path, junit: str) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(junit)
    nodeid = "tests/test_stack.py::test_two_is_interrupted"
    assert mark_interrupted(path, [nodeid], "interrupted by SIGINT") == 1
    counts = parse_junit(path)
    assert (counts.passed, counts.interrupted, counts.total) == (1, 1, 2)
    (case,) = counts.failures()
    assert case.id == "tests.test_stack::test_two_is_interrupted"
    assert (case.outcome, case.message) == ("interrupted", "interrupted by SIGINT")
    text = path.read_text()
    assert '<error type="interrupted" message="interrupted by SIGINT">' in text
    assert 'errors="1"' in text and 'tests="2"' in text
    assert mark_interrupted(path, [nodeid], "again") == 0  # marked once
    assert mark_interrupted(tmp_path / "none.xml", [nodeid], "x") == 0


@pytest.mark.parametrize(
    ("nodeid", "address"),
    [
        ("tests/test_a.py::test_b", ("tests.test_a", "test_b")),
        ("test_a.py::TestX::test_y[1-a/b]", ("test_a.TestX", "test_y[1-a/b]")),
    ],
)
def test_junit_address_is_pytests(nodeid: str, address: tuple[str, str]) -> None:
    assert junit_address(nodeid) == address


def test_the_summary_counts_an_interrupted_test(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(INTERRUPTED_JUNIT)
    summary = RunSummary(
        command="branchenv ci",
        status="interrupted",
        stack="feature-halt-1a2b3c4d",
        branch="feature/halt",
        target="local",
        endpoint=None,
        counts=parse_junit(path),
    )
    text = render_markdown(summary)
    assert "| tests | 1 passed, 0 failed, 0 errors, 0 skipped, 1 interrupted (2 total) |" in text
    assert "(interrupted)" in text  # listed with the failures
