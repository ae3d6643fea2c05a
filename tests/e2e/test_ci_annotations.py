"""`branchenv ci` in a CI's log (issue 16): on GitHub Actions each phase is a `::group::`, a
failed test or a refused command an `::error`, the end a `::notice` with the endpoints and the
cost; on GitLab CI each phase is a collapsible section; anywhere else, none of it. Run on the
tiny project (its own local cloud); the log is read the way the runners read it."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import pytest

from branchenv.naming import names_for
from tests.conftest import cli_envelope, subprocess_env
from tests.e2e.conftest import E2E_DEFAULTS, EXE
from tests.e2e.tiny_project import PROGRAM, SUITE, TinyProject, make_tiny_project
from tests.unit.test_cifold import parse_command

# The tiny program, plus a URL output the notice names (no readiness probe: not an `endpoint`)
# and a secret one it must never show.
ANNOTATED_PROGRAM = (
    PROGRAM
    + 'pulumi.export("docs_url", "https://docs.example.com/shop")\n'
    + 'pulumi.export("admin_url", pulumi.Output.secret("https://admin:hunter2@admin.example.com"))\n'
)
FAILING = """

def test_fails_on_purpose(branchenv_outputs):
    assert branchenv_outputs["bucket"] == "not-this-bucket"
"""
FAILING_LINE = SUITE.count("\n") + FAILING.count("\n")  # the assert: the suite's last line
PHASES = ("provision", "ready", "test", "teardown")
GROUP = re.compile(r"^::(group|endgroup)::(.*)$")
SECTION = re.compile(
    r"^\x1b\[0Ksection_(start|end):([0-9]+):([A-Za-z0-9_.-]+)(\[collapsed=true\])?\r\x1b\[0K(.*)$"
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyProject]:
    project = make_tiny_project(
        tmp_path_factory.mktemp("annotations") / "shop", program=ANNOTATED_PROGRAM
    )
    try:
        yield project
    finally:
        project.stop()


def merged(project: TinyProject, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run with stderr into stdout, one pipe, as a runner's log reads them (bytes decoded as
    they are: text mode would turn GitLab's CR into a line break)."""
    proc = subprocess.run(
        [str(EXE), *args],
        cwd=project.root,
        env=subprocess_env(**{**E2E_DEFAULTS, "COLUMNS": "200", **env}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=240,
    )
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(), None)


def commands(text: str, name: str) -> list[tuple[str, dict[str, str], str]]:
    return [parse_command(line) for line in text.split("\n") if line.startswith(f"::{name}")]


def test_github_actions_gets_a_group_per_phase_an_error_per_failed_test_and_a_notice(
    tiny: TinyProject,
) -> None:
    (tiny.root / "tests" / "test_stack.py").write_text(SUITE + FAILING)
    branch = "feature/gha-red"
    proc = merged(
        tiny, "ci", "--branch", branch, GITHUB_ACTIONS="true", GITHUB_WORKSPACE=str(tiny.root)
    )
    (tiny.root / "tests" / "test_stack.py").write_text(SUITE)
    log = proc.stdout
    assert proc.returncode == 1, log[-4000:]
    lines = log.split("\n")
    # one group per phase, in order, never nested, each holding its own banner
    folds = [(i, m) for i, line in enumerate(lines) if (m := GROUP.match(line))]
    kinds = [m.group(1) for _, m in folds]
    assert kinds == ["group", "endgroup"] * len(PHASES), kinds
    titles = [m.group(2) for _, m in folds if m.group(1) == "group"]
    assert [t.split(":")[0] for t in titles] == list(PHASES), titles
    stack = names_for(branch).stack
    assert titles[0].startswith(f"provision: {stack}") and titles[3] == f"teardown: {stack}"
    for (start, opened), (end, _) in zip(folds[::2], folds[1::2], strict=True):
        assert f"== {opened.group(2)}" in lines[start + 1 : end]
    inside = lines[folds[4][0] : folds[5][0]]
    assert any("FAILED tests/test_stack.py::test_fails_on_purpose" in x for x in inside), inside
    # one error, for the failed test only, with its file and line; outside every group
    errors = commands(log, "error")
    assert len(errors) == 1, errors
    _, props, message = errors[0]
    assert props["title"] == "tests.test_stack::test_fails_on_purpose failed"
    assert (props["file"], props["line"]) == ("tests/test_stack.py", str(FAILING_LINE))
    assert "not-this-bucket" in message
    assert lines.index(next(line for line in lines if line.startswith("::error"))) > folds[-1][0]
    # the notice: the stack, the URL outputs (never the secret one), the cost line
    (notice,) = commands(log, "notice")
    assert notice[1]["title"] == "branchenv ci: failed"
    assert notice[2].split("\n")[:2] == [
        f"stack {stack}",
        "docs_url: https://docs.example.com/shop",
    ]
    assert re.search(r"^cost: \$[0-9.]+/h, \$[0-9.]+ projected", notice[2], re.M), notice[2]
    assert "hunter2" not in log and "admin.example.com" not in log


def test_gitlab_ci_gets_a_collapsible_section_per_phase(tiny: TinyProject) -> None:
    branch = "feature/gitlab-green"
    proc = merged(tiny, "ci", "--branch", branch, GITLAB_CI="true")
    log = proc.stdout
    assert proc.returncode == 0, log[-4000:]
    markers = [m for line in log.split("\n") if (m := SECTION.match(line))]
    assert [(m.group(1), m.group(3)) for m in markers] == [
        (kind, phase) for phase in PHASES for kind in ("start", "end")
    ]
    for start, end in zip(markers[::2], markers[1::2], strict=True):
        assert start.group(4) == "[collapsed=true]" and start.group(5)
        assert int(start.group(2)) <= int(end.group(2))
        assert end.group(4) is None and end.group(5) == ""
    assert markers[0].group(5).startswith(f"provision: {names_for(branch).stack}")
    # GitLab has no annotations: no workflow command ever
    assert not re.search(r"^::", log, re.M)


def test_no_ci_no_folds_and_a_switch_turns_them_off(tiny: TinyProject) -> None:
    plain = merged(tiny, "ci", "--branch", "feature/no-ci")
    assert plain.returncode == 0, plain.stdout[-4000:]
    off = merged(
        tiny, "ci", "--branch", "feature/no-ci", GITHUB_ACTIONS="true", BRANCHENV_CI_ANNOTATIONS="0"
    )
    assert off.returncode == 0, off.stdout[-4000:]
    for log in (plain.stdout, off.stdout):
        assert "== provision" in log and "ci passed" in log
        assert not re.search(r"^::|section_(start|end):", log, re.M), log[-3000:]


def test_a_refusal_is_an_error_annotation_and_json_stays_one_document(tiny: TinyProject) -> None:
    proc = tiny.run("ci", "--branch", "main", GITHUB_ACTIONS="true")
    assert proc.returncode == 3, proc.stderr
    (error,) = commands(proc.stdout, "error")
    assert error[1] == {"title": "branchenv ci: refused (exit 3)"}
    assert "protected" in error[2] and "main" in error[2]
    # --json: stdout is the envelope alone, the annotation goes to stderr (the runner reads both)
    as_json = tiny.run("ci", "--branch", "main", "--json", GITHUB_ACTIONS="true")
    assert as_json.returncode == 3
    assert cli_envelope(as_json.stdout)["error"]["code"] == "safety_refusal"
    assert [e[1]["title"] for e in commands(as_json.stderr, "error")] == [
        "branchenv ci: refused (exit 3)"
    ]
    # bad input too (exit 2), and a bad value of the switch is bad input named as such
    bad = tiny.run("up", "--branch", "feature/x", "--ttl", "bogus", GITHUB_ACTIONS="true")
    assert bad.returncode == 2
    assert [e[1]["title"] for e in commands(bad.stdout, "error")] == [
        "branchenv up: bad input (exit 2)"
    ]
    switch = tiny.run("ls", GITHUB_ACTIONS="true", BRANCHENV_CI_ANNOTATIONS="maybe")
    assert switch.returncode == 2 and "BRANCHENV_CI_ANNOTATIONS" in switch.stderr


def test_up_ends_with_a_notice_and_test_folds_its_phases(tiny: TinyProject) -> None:
    branch = "feature/gha-up"
    stack = names_for(branch).stack
    try:
        proc = tiny.run("up", "--branch", branch, GITHUB_ACTIONS="true")
        assert proc.returncode == 0, proc.stderr[-3000:]
        (notice,) = commands(proc.stdout, "notice")
        assert notice[1] == {"title": f"branchenv up: {stack}"}
        assert "docs_url: https://docs.example.com/shop" in notice[2]
        assert "cost: $" in notice[2] and "hunter2" not in proc.stdout + proc.stderr
        # `test` on that stack: its two phases folded, the same notice, no error
        run = merged(tiny, "test", "--branch", branch, GITHUB_ACTIONS="true")
        assert run.returncode == 0, run.stdout[-3000:]
        folds = [m.groups() for line in run.stdout.split("\n") if (m := GROUP.match(line))]
        assert [(kind, title.split(":")[0]) for kind, title in folds] == [
            ("group", "ready"),
            ("endgroup", ""),
            ("group", "test"),
            ("endgroup", ""),
        ]
        assert commands(run.stdout, "error") == []
        ((_, props, message),) = commands(run.stdout, "notice")
        assert props == {"title": "branchenv test: passed"} and f"stack {stack}" in message
    finally:
        tiny.run("down", "--branch", branch, "--yes")
