"""Destructive commands ask first on a terminal (a real pty): `reap --yes` shows what will go
and asks for the target's name, `down` on a stack someone else created asks for the stack's
name; with stdin not a terminal (or `down --yes`) nobody is asked."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from collections.abc import Iterator

import pytest

from branchenv.naming import names_for
from tests.conftest import subprocess_env
from tests.e2e.conftest import E2E_DEFAULTS, EXE
from tests.e2e.tiny_project import TinyProject, make_tiny_project


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyProject]:
    project = make_tiny_project(tmp_path_factory.mktemp("prompt") / "shop")
    try:
        yield project
    finally:
        project.stop()


def _on_a_pty(
    project: TinyProject,
    *args: str,
    answer: str,
    timeout: float = 120,
    stdin_pipe: bool = False,
    **env: str,
) -> tuple[int, str]:
    """Run the CLI with a pty as stdin, stdout and stderr; type ``answer`` at the prompt.
    With ``stdin_pipe`` stdin is an empty pipe instead (stdout and stderr stay the pty): only
    stdin decides whether anybody is asked."""
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [str(EXE), *args],
        cwd=project.root,
        env=subprocess_env(**{**E2E_DEFAULTS, "COLUMNS": "200", **env}),
        stdin=subprocess.DEVNULL if stdin_pipe else child,
        stdout=child,
        stderr=child,
        close_fds=True,
    )
    os.close(child)
    seen = b""
    answered = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(main, 4096)
                except OSError:  # the child closed the pty
                    break
                if not chunk:
                    break
                seen += chunk
                if not answered and b"to go on" in seen:
                    os.write(main, answer.encode() + b"\n")
                    answered = True
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=30)
    finally:
        os.close(main)
        if proc.poll() is None:
            proc.kill()
    return code, seen.decode(errors="replace").replace("\r\n", "\n")


def _stacks(project: TinyProject) -> set[str]:
    return {r["stack"] for r in project.result("ls")}


def test_reap_yes_asks_on_a_terminal_and_not_in_a_pipe(tiny: TinyProject) -> None:
    stack = names_for("feature/old").stack
    tiny.result("up", "--branch", "feature/old", "--ttl", "1s")
    try:
        time.sleep(1.5)
        code, screen = _on_a_pty(tiny, "reap", "--yes", answer="nope")
        assert "Type the target's name (local) to go on" in screen, screen
        assert stack in screen and "destroys 1 stack" in screen, screen
        assert code == 1 and "nothing was changed" in screen, screen
        assert stack in _stacks(tiny), "a wrong answer destroyed the stack"

        # stdin not a terminal (stdout and stderr still are): nobody is asked. Explicit, not
        # inherited: a pytest run from a terminal would hand its own tty to the child.
        code, screen = _on_a_pty(tiny, "reap", "--yes", answer="local", stdin_pipe=True)
        assert code == 0 and "to go on" not in screen, screen
        assert stack not in _stacks(tiny)
    finally:
        tiny.run("down", "--branch", "feature/old", "--yes")


def test_down_asks_for_a_stack_someone_else_created(tiny: TinyProject) -> None:
    stack = names_for("feature/alices").stack
    tiny.result("up", "--branch", "feature/alices", GITHUB_ACTOR="alice")
    try:
        code, screen = _on_a_pty(tiny, "down", "--branch", "feature/alices", answer="no")
        assert "created by alice" in screen and "1 resource" in screen, screen
        assert f"Type the stack name ({stack})" in screen, screen
        assert code == 1 and stack in _stacks(tiny)

        code, screen = _on_a_pty(tiny, "down", "--branch", "feature/alices", answer=stack)
        assert code == 0, screen
        assert stack not in _stacks(tiny)
    finally:
        tiny.run("down", "--branch", "feature/alices", "--yes")


@pytest.mark.parametrize("how", ["--yes", "stdin-pipe"])
def test_down_of_a_foreign_stack_does_not_ask_with_yes_or_a_pipe(
    tiny: TinyProject, how: str
) -> None:
    branch = f"feature/bobs-{how.strip('-')}"
    stack = names_for(branch).stack
    tiny.result("up", "--branch", branch, GITHUB_ACTOR="bob")
    try:
        flags = ("--yes",) if how == "--yes" else ()
        code, screen = _on_a_pty(
            tiny, "down", "--branch", branch, *flags, answer="x", stdin_pipe=how != "--yes"
        )
        assert code == 0 and "to go on" not in screen, screen
        assert stack not in _stacks(tiny)
    finally:
        tiny.run("down", "--branch", branch, "--yes")


def test_down_of_ones_own_stack_does_not_ask(tiny: TinyProject) -> None:
    tiny.result("up", "--branch", "feature/mine")
    code, screen = _on_a_pty(tiny, "down", "--branch", "feature/mine", answer="x")
    assert code == 0 and "to go on" not in screen, screen
