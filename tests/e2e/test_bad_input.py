"""Bad input never costs a stack (issue 15 items 3 and 4), as a user runs the CLI: an empty
protected-pattern list is a configuration error (exit 2), never "no protection"; `ci` checks
every input before anything, so a bad one can never destroy the branch's existing stack."""

from __future__ import annotations

import concurrent.futures

from tests.e2e.conftest import Project


def stacks(project: Project) -> set[str]:
    return {row["stack"] for row in project.json("ls")}


def test_an_empty_protected_pattern_list_refuses_to_run(project: Project) -> None:
    for value in ("", ","):
        proc = project.run("up", "--branch", "main", BRANCHENV_PROTECTED_PATTERNS=value)
        assert proc.returncode == 2, proc.stderr
        assert "BRANCHENV_PROTECTED_PATTERNS" in proc.stderr and "Traceback" not in proc.stderr
    assert "main" not in stacks(project)


BAD_CI_INPUT: tuple[tuple[tuple[str, ...], str], ...] = (
    (("--profile", "foo"), "--profile"),
    (("--ttl", "3000000d"), "--ttl"),
    (("--ready-timeout", "inf"), "--ready-timeout"),
    (("--allow-shared", ""), "--allow-shared"),
    # Arguments for pytest are input too: checked (pytest --collect-only) before `up`.
    (("--", "--no-such-pytest-flag"), "--no-such-pytest-flag"),
    (("--", "-k", "a and"), "-k"),
)
"""(the bad arguments to `ci`, what its one-line error must name)"""


def test_bad_input_to_ci_never_destroys_the_existing_stack(project: Project) -> None:
    up = project.json("up", "--branch", "feature/keep-me")
    stack = up["stack"]
    try:
        # The six runs side by side: each must be refused before it touches anything, so none
        # can change what another sees, and a stack destroyed by any of them stays destroyed
        # (a refused run creates nothing). So one listing after all six shows what one after
        # each would; only which run did it is no longer told apart, and the exit codes and
        # messages still are.
        with concurrent.futures.ThreadPoolExecutor(len(BAD_CI_INPUT)) as pool:
            procs = list(
                pool.map(
                    lambda bad: project.run("ci", "--branch", "feature/keep-me", *bad),
                    (bad for bad, _ in BAD_CI_INPUT),
                )
            )
        for (bad, flag), proc in zip(BAD_CI_INPUT, procs, strict=True):
            assert proc.returncode == 2, (bad, proc.stderr)
            assert flag in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        tried = "; ".join(" ".join(bad) for bad, _ in BAD_CI_INPUT)
        assert stack in stacks(project), f"a bad ci ({tried}) destroyed the stack"
        assert project.json("outputs", "--branch", "feature/keep-me") == up["outputs"]
    finally:
        project.run("down", "--branch", "feature/keep-me")
