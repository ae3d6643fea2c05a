"""branchenv.github: $GITHUB_OUTPUT and $GITHUB_STEP_SUMMARY, read back the way the runner
reads them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from branchenv.errors import OperationFailed
from branchenv.github import append_summary, publish_up, up_summary, write_outputs
from branchenv.metadata import StackMetadata
from branchenv.provision import UpOutcome


def parse_github_output(text: str) -> dict[str, str]:
    """The runner's reading of a GITHUB_OUTPUT file: ``name=value`` lines, and
    ``name<<DELIM`` ... ``DELIM`` blocks whose value is every line in between."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        eq, heredoc = line.find("="), line.find("<<")
        if heredoc != -1 and (eq == -1 or heredoc < eq):
            name, delimiter = line[:heredoc], line[heredoc + 2 :]
            body: list[str] = []
            while lines[i] != delimiter:  # IndexError = an unterminated block: a test failure
                body.append(lines[i])
                i += 1
            i += 1
            values[name] = "\n".join(body)
        else:
            name, _, value = line.partition("=")
            values[name] = value
    return values


@pytest.mark.parametrize(
    ("values", "expected_lines"),
    [
        ({"stack": "feature-x-1a2b"}, ["stack=feature-x-1a2b"]),
        ({"endpoint": "http://127.0.0.1:1/api/a"}, ["endpoint=http://127.0.0.1:1/api/a"]),
        ({"empty": ""}, ["empty="]),
        ({"a": "1", "b": "x=y"}, ["a=1", "b=x=y"]),
    ],
)
def test_single_line_values_use_name_equals_value(
    tmp_path: Path, values: dict[str, str], expected_lines: list[str]
) -> None:
    out = tmp_path / "out"
    assert write_outputs(values, env={"GITHUB_OUTPUT": str(out)}) == out
    assert out.read_text().splitlines() == expected_lines
    assert parse_github_output(out.read_text()) == values


def test_multiline_value_uses_the_heredoc_form(tmp_path: Path) -> None:
    out = tmp_path / "out"
    value = "line one\nstack=injected\nline three"
    write_outputs({"notes": value, "stack": "s1"}, env={"GITHUB_OUTPUT": str(out)})
    text = out.read_text()
    first = text.splitlines()[0]
    assert first.startswith("notes<<ghadelimiter_")
    # The injected "stack=" line stays inside the value: it cannot set another output.
    assert parse_github_output(text) == {"notes": value, "stack": "s1"}


@settings(max_examples=200, deadline=None)
@given(
    values=st.dictionaries(
        st.text(
            st.characters(blacklist_characters="=\r\n<", blacklist_categories=("Cs",)),
            min_size=1,
            max_size=12,
        ),
        st.text(st.characters(blacklist_characters="\r", blacklist_categories=("Cs",))),
        max_size=4,
    )
)
def test_any_values_round_trip(values: dict[str, str]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "out"
        out.write_text("earlier=1\n")  # the runner's file may already hold other steps' lines
        write_outputs(values, env={"GITHUB_OUTPUT": str(out)})
        assert parse_github_output(out.read_text()) == {"earlier": "1", **values}


@pytest.mark.parametrize("bad", ["", "a=b", "a\nb", "<<x"])
def test_bad_names_are_refused_and_nothing_is_written(tmp_path: Path, bad: str) -> None:
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="invalid GitHub output name"):
        write_outputs({"good": "1", bad: "2"}, env={"GITHUB_OUTPUT": str(out)})
    assert not out.exists()


def test_nothing_happens_outside_actions(tmp_path: Path) -> None:
    assert write_outputs({"a": "1"}, env={}) is None
    assert write_outputs({"a": "1"}, env={"GITHUB_OUTPUT": ""}) is None
    assert append_summary("# hi", env={}) is None
    assert list(tmp_path.iterdir()) == []


def test_summary_appends_and_ends_with_a_newline(tmp_path: Path) -> None:
    path = tmp_path / "summary.md"
    env = {"GITHUB_STEP_SUMMARY": str(path)}
    assert append_summary("# first", env=env) == path
    append_summary("second\n", env=env)
    assert path.read_text() == "# first\nsecond\n"


def test_an_unwritable_file_is_one_clear_error(tmp_path: Path) -> None:
    target = tmp_path / "missing-dir" / "out"
    with pytest.raises(OperationFailed, match=r"\$GITHUB_OUTPUT .*unset GITHUB_OUTPUT"):
        write_outputs({"a": "1"}, env={"GITHUB_OUTPUT": str(target)})
    with pytest.raises(OperationFailed, match="GITHUB_STEP_SUMMARY"):
        append_summary("x", env={"GITHUB_STEP_SUMMARY": str(target)})


def _outcome(outputs: dict[str, object]) -> UpOutcome:
    now = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    md = StackMetadata.create(
        stack="feature-x-1a2b",
        branch="feature/x",
        owner="dev@example.com",
        commit="abc123",
        ttl=dt.timedelta(hours=2),
        now=now,
        target="local",
        engine="inprocess",
    )
    return UpOutcome(
        stack="feature-x-1a2b",
        branch="feature/x",
        target="local",
        engine="inprocess",
        outputs=outputs,
        changes={"create": 18},
        resource_count=18,
        metadata=md,
        duration_s=3.2,
        notes=(),
    )


def test_publish_up_writes_stack_branch_endpoint_and_summary(tmp_path: Path) -> None:
    out, summary = tmp_path / "out", tmp_path / "summary.md"
    env = {"GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(summary)}
    written = publish_up(_outcome({"endpoint": "http://127.0.0.1:9/api/x", "n": 1}), env=env)
    assert written == (out, summary)
    assert parse_github_output(out.read_text()) == {
        "stack": "feature-x-1a2b",
        "branch": "feature/x",
        "endpoint": "http://127.0.0.1:9/api/x",
    }
    text = summary.read_text()
    assert "## branchenv up: `feature-x-1a2b`" in text
    assert "| endpoint | <http://127.0.0.1:9/api/x> |" in text
    assert "2025-01-02T05:04:05+00:00" in text


def test_publish_up_without_endpoint(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert publish_up(_outcome({}), env={"GITHUB_OUTPUT": str(out)}) == (out,)
    assert parse_github_output(out.read_text())["endpoint"] == ""
    assert "endpoint" not in up_summary(_outcome({}))
