"""Bad input never costs a stack (issue 15 items 3 and 4), as a user runs the CLI: an empty
protected-pattern list is a configuration error (exit 2), never "no protection"; `ci` checks
every input before anything, so a bad one can never destroy the branch's existing stack."""

from __future__ import annotations

from tests.e2e.conftest import Project


def stacks(project: Project) -> set[str]:
    return {row["stack"] for row in project.json("ls")}


def test_an_empty_protected_pattern_list_refuses_to_run(project: Project) -> None:
    for value in ("", ","):
        proc = project.run("up", "--branch", "main", BRANCHENV_PROTECTED_PATTERNS=value)
        assert proc.returncode == 2, proc.stderr
        assert "BRANCHENV_PROTECTED_PATTERNS" in proc.stderr and "Traceback" not in proc.stderr
    assert "main" not in stacks(project)


def test_bad_input_to_ci_never_destroys_the_existing_stack(project: Project) -> None:
    up = project.json("up", "--branch", "feature/keep-me")
    stack = up["stack"]
    try:
        for bad, flag in (
            (("--profile", "foo"), "--profile"),
            (("--ttl", "3000000d"), "--ttl"),
            (("--ready-timeout", "inf"), "--ready-timeout"),
            (("--allow-shared", ""), "--allow-shared"),
            # Arguments for pytest are input too: checked (pytest --collect-only) before `up`.
            (("--", "--no-such-pytest-flag"), "--no-such-pytest-flag"),
            (("--", "-k", "a and"), "-k"),
        ):
            proc = project.run("ci", "--branch", "feature/keep-me", *bad)
            assert proc.returncode == 2, (bad, proc.stderr)
            assert flag in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
            assert stack in stacks(project), f"ci {' '.join(bad)} destroyed the stack"
        assert project.json("outputs", "--branch", "feature/keep-me") == up["outputs"]
    finally:
        project.run("down", "--branch", "feature/keep-me")
