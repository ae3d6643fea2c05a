"""branchenv.cifold: GitHub workflow commands and GitLab sections, read back the way the
runners read them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from branchenv import cifold
from branchenv.cifold import (
    Annotator,
    detect,
    endpoints,
    escape_data,
    escape_property,
    github_endgroup,
    github_error,
    github_group,
    github_notice,
    gitlab_section_end,
    gitlab_section_start,
    notice_text,
    relative_file,
    section_name,
    workflow_command,
)
from branchenv.errors import ConfigError
from branchenv.harness.reports import CaseResult, failure_location, parse_junit

# The runner's reading (actions/runner, ActionCommand.TryParseV2): "::", the command name, an
# optional space and comma-separated key=value properties, "::", the message. Unescaping
# replaces each escape in this order, "%25" last.
_DATA_ESCAPES = (("\r", "%0D"), ("\n", "%0A"), ("%", "%25"))
_PROPERTY_ESCAPES = (("\r", "%0D"), ("\n", "%0A"), (":", "%3A"), (",", "%2C"), ("%", "%25"))


def _unescape(text: str, escapes: tuple[tuple[str, str], ...]) -> str:
    for token, replacement in escapes:
        text = text.replace(replacement, token)
    return text


def parse_command(line: str) -> tuple[str, dict[str, str], str]:
    assert line.startswith("::"), line
    end = line.index("::", 2)
    info = line[2:end]
    name, _, props_text = info.partition(" ")
    props: dict[str, str] = {}
    for part in props_text.strip().split(","):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if sep:
            props[key] = _unescape(value, _PROPERTY_ESCAPES)
    return name, props, _unescape(line[end + 2 :], _DATA_ESCAPES)


# --- escaping -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "data", "prop"),
    [
        ("plain", "plain", "plain"),
        ("50%", "50%25", "50%25"),
        ("a\nb", "a%0Ab", "a%0Ab"),
        ("a\r\nb", "a%0D%0Ab", "a%0D%0Ab"),
        ("k: v, w", "k: v, w", "k%3A v%2C w"),
        ("%0A", "%250A", "%250A"),
        ("::error::x", "::error::x", "%3A%3Aerror%3A%3Ax"),
        ("", "", ""),
    ],
)
def test_escaping_table(raw: str, data: str, prop: str) -> None:
    assert escape_data(raw) == data
    assert escape_property(raw) == prop


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (github_group("provision: s1"), "::group::provision: s1"),
        (github_endgroup(), "::endgroup::"),
        (
            github_notice("hi", title="branchenv ci: passed"),
            "::notice title=branchenv ci%3A passed::hi",
        ),
        (
            github_error("boom\nmore", title="t", file="tests/test_a.py", line=3),
            "::error title=t,file=tests/test_a.py,line=3::boom%0Amore",
        ),
        (github_error("x", line=3), "::error::x"),  # a line without a file means nothing
        (github_error("x", title=None, file="a.py"), "::error file=a.py::x"),
        (workflow_command("notice", "m", {"title": None}), "::notice::m"),
    ],
)
def test_workflow_commands_table(line: str, expected: str) -> None:
    assert line == expected


@pytest.mark.parametrize(("command", "props"), [("Error", {}), ("", {}), ("error", {"a b": "1"})])
def test_bad_command_or_property_names_are_refused(command: str, props: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="invalid workflow command"):
        workflow_command(command, "m", props)


_text = st.text(st.characters(blacklist_categories=("Cs",)))


@settings(max_examples=300, deadline=None)
@given(message=_text, title=_text, file=_text, line=st.integers(min_value=1, max_value=10**6))
def test_any_error_round_trips_as_one_line(message: str, title: str, file: str, line: int) -> None:
    text = github_error(message, title=title, file=file, line=line)
    assert "\n" not in text and "\r" not in text
    assert parse_command(text) == (
        "error",
        {"title": title, "file": file, "line": str(line)},
        message,
    )


@settings(max_examples=200, deadline=None)
@given(raw=_text)
def test_escapes_round_trip(raw: str) -> None:
    assert _unescape(escape_data(raw), _DATA_ESCAPES) == raw
    assert _unescape(escape_property(raw), _PROPERTY_ESCAPES) == raw
    assert not re.search(r"[:,\r\n]", escape_property(raw))


# --- GitLab ---------------------------------------------------------------------------------


def test_gitlab_markers_are_the_documented_bytes() -> None:
    assert (
        gitlab_section_start("branchenv_test", "test: tests", ts=1700000000)
        == "\x1b[0Ksection_start:1700000000:branchenv_test[collapsed=true]\r\x1b[0Ktest: tests"
    )
    assert (
        gitlab_section_start("a", "h", ts=5, collapsed=False)
        == "\x1b[0Ksection_start:5:a\r\x1b[0Kh"
    )
    assert gitlab_section_end("branchenv_test", ts=1700000009) == (
        "\x1b[0Ksection_end:1700000009:branchenv_test\r\x1b[0K"
    )


@pytest.mark.parametrize(
    ("raw", "name"),
    [("provision", "provision"), ("a b/c", "a_b_c"), ("x.y-z_1", "x.y-z_1"), ("::", "section")],
)
def test_section_names_table(raw: str, name: str) -> None:
    assert section_name(raw) == name


@given(raw=_text)
def test_any_section_name_is_valid(raw: str) -> None:
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", section_name(raw))


@given(header=_text)
def test_a_header_cannot_end_the_marker_line(header: str) -> None:
    marker = gitlab_section_start("s", header, ts=1)
    head = marker.split("\r\x1b[0K", 1)[1]
    assert not re.search(r"[\x00-\x1f\x7f]", head)


# --- which CI -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "ci"),
    [
        ({}, None),
        ({"CI": "true"}, None),
        ({"GITHUB_ACTIONS": "true"}, "github"),
        ({"GITHUB_ACTIONS": "false"}, None),
        ({"GITLAB_CI": "true"}, "gitlab"),
        ({"GITHUB_ACTIONS": "true", "BRANCHENV_CI_ANNOTATIONS": "0"}, None),
        ({"GITLAB_CI": "true", "BRANCHENV_CI_ANNOTATIONS": "off"}, None),
        ({"GITHUB_ACTIONS": "true", "BRANCHENV_CI_ANNOTATIONS": "1"}, "github"),
        ({"BRANCHENV_CI_ANNOTATIONS": "1"}, None),  # on, but no CI to annotate for
    ],
)
def test_detect_table(env: dict[str, str], ci: str | None) -> None:
    assert detect(env) == ci


def test_a_bad_switch_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"BRANCHENV_CI_ANNOTATIONS='maybe'.*expected 0 or 1"):
        detect({"GITHUB_ACTIONS": "true", "BRANCHENV_CI_ANNOTATIONS": "maybe"})


def test_a_typo_in_the_switch_gets_did_you_mean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from branchenv.config import load_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BRANCHENV_CI_ANOTATIONS", "0")
    with pytest.raises(ConfigError, match="did you mean BRANCHENV_CI_ANNOTATIONS"):
        load_settings()
    monkeypatch.delenv("BRANCHENV_CI_ANOTATIONS")
    monkeypatch.setenv("BRANCHENV_CI_ANNOTATIONS", "0")
    load_settings()  # the right name is no unknown setting


# --- the annotator --------------------------------------------------------------------------


def _case(i: int, *, file: str | None = "tests/test_a.py", line: int | None = 7) -> CaseResult:
    return CaseResult(
        name=f"test_{i}",
        classname="tests.test_a",
        outcome="failed",
        time_s=0.1,
        message=f"assert {i} == 0",
        file=file,
        line=line,
    )


def test_a_phase_is_a_group_closed_even_when_it_raises(capsys: pytest.CaptureFixture[str]) -> None:
    a = Annotator("github")
    with pytest.raises(RuntimeError), a.phase("provision", "provision: s1"):
        print("inside")
        with a.phase("nested", "not folded on its own"):
            print("deeper")
        raise RuntimeError
    assert capsys.readouterr().out.splitlines() == [
        "::group::provision: s1",
        "inside",
        "deeper",
        "::endgroup::",
    ]


def test_a_gitlab_phase_is_a_section(capsys: pytest.CaptureFixture[str]) -> None:
    ticks = iter([100.0, 107.5])
    a = Annotator("gitlab", clock=lambda: next(ticks))
    with a.phase("test", "test: tests"):
        print("pytest output")
    a.error("not on gitlab")
    a.notice("nor this")
    assert capsys.readouterr().out.split("\n") == [
        "\x1b[0Ksection_start:100:test[collapsed=true]\r\x1b[0Ktest: tests",
        "pytest output",
        "\x1b[0Ksection_end:107:test\r\x1b[0K",
        "",
    ]


def test_off_writes_nothing_and_json_runs_write_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    off = Annotator.off()
    with off.phase("test", "t"):
        pass
    assert off.error("x") is False
    off.notice("n")
    off.failed_tests([_case(1)], base=Path("."))
    assert capsys.readouterr() == ("", "")
    on = Annotator("github", to_stderr=True)
    with on.phase("test", "t"):
        on.notice("n")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == ["::group::t", "::notice::n", "::endgroup::"]


@pytest.mark.parametrize(
    ("failures", "before", "annotated", "more"),
    [
        (3, 0, 3, None),
        (10, 0, 10, None),
        (11, 0, 9, 2),
        (60, 0, 9, 51),
        (10, 1, 8, 2),
        (5, 10, 0, None),
    ],
)
def test_failed_tests_stay_within_what_github_shows(
    capsys: pytest.CaptureFixture[str], failures: int, before: int, annotated: int, more: int | None
) -> None:
    a = Annotator("github")
    for _ in range(before):
        a.error("earlier")
    capsys.readouterr()
    assert a.failed_tests([_case(i) for i in range(failures)], base=Path(".")) == annotated
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) <= cifold.MAX_ERRORS - before
    parsed = [parse_command(line) for line in lines]
    assert [p[1]["title"] for p in parsed[:annotated]] == [
        f"tests.test_a::test_{i} failed" for i in range(annotated)
    ]
    assert all(
        p[1]["file"] == "tests/test_a.py" and p[1]["line"] == "7" for p in parsed[:annotated]
    )
    if more is None:
        assert len(parsed) == annotated
    else:
        assert parsed[-1][2].startswith(f"and {more} more failed tests")


def test_files_are_made_relative_to_the_workspace(tmp_path: Path) -> None:
    project = tmp_path / "repo" / "svc"
    assert relative_file("tests/t.py", base=project, workspace=str(tmp_path / "repo")) == (
        "svc/tests/t.py"
    )
    assert relative_file("tests/t.py", base=project, workspace=None) == "tests/t.py"
    assert relative_file("tests/t.py", base=project, workspace="/elsewhere") == "tests/t.py"


def test_endpoints_skip_secrets_and_hide_user_info() -> None:
    outputs = {
        "table_name": "t",
        "functions_url": "http://127.0.0.1:9/fn",
        "endpoint": "https://u:pw@api.example.com/x",
        "db_url": "[secret]",
        "admin_url": "not a url",
        "homepage": "http://not-an-endpoint-name",
    }
    assert endpoints(outputs) == [
        ("endpoint", "https://***@api.example.com/x"),
        ("functions_url", "http://127.0.0.1:9/fn"),
    ]
    assert notice_text("s1", endpoints(outputs), None) == (
        "stack s1\nendpoint: https://***@api.example.com/x\n"
        "functions_url: http://127.0.0.1:9/fn\ncost: not estimated"
    )


# --- where a test failed, from JUnit --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "file_attr", "line_attr", "expected"),
    [
        (
            "    assert x\nE   assert 0\n\ntests/test_x.py:3: AssertionError",
            None,
            None,
            ("tests/test_x.py", 3),
        ),
        (
            "tests/test_x.py:7: \n_ _ _\n\ntests/helpers.py:10: ValueError",
            None,
            None,
            ("tests/test_x.py", 7),
        ),
        (
            "tests/test_x.py:12: in test_b\n    helper()\nE   ValueError",
            None,
            None,
            ("tests/test_x.py", 12),
        ),
        ("no location here", "tests/test_x.py", "4", ("tests/test_x.py", 5)),
        ("", "tests/test_x.py", None, ("tests/test_x.py", None)),
        ("", None, None, (None, None)),
    ],
)
def test_failure_location_table(
    text: str, file_attr: str | None, line_attr: str | None, expected: tuple[str | None, int | None]
) -> None:
    assert failure_location(text, file_attr, line_attr) == expected


def test_parse_junit_keeps_where_each_test_failed(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="3">'
        '<testcase classname="tests.test_x" name="test_a" time="0.1">'
        '<failure message="AssertionError: boom">def test_a():\n&gt;       assert 0\n\n'
        "tests/test_x.py:3: AssertionError</failure></testcase>"
        '<testcase classname="tests.test_x" name="test_ok" time="0.1"/>'
        '<testcase classname="tests.test_x" name="test_s" time="0.1">'
        '<skipped message="why">tests/test_x.py:9: skipped</skipped></testcase>'
        "</testsuite></testsuites>"
    )
    cases = {c.name: c for c in parse_junit(junit).cases}
    assert (cases["test_a"].file, cases["test_a"].line) == ("tests/test_x.py", 3)
    assert (cases["test_ok"].file, cases["test_ok"].line) == (None, None)
    assert (cases["test_s"].file, cases["test_s"].line) == (None, None)
