"""Issue 15 items 2 and 6, as a user runs the CLI: real subprocesses, real signals.

- `up` and `down` under SIGTERM: each finishes what it started (state coherent, nothing
  leaked), then exits 143.
- `ci` under SIGTERM at 10 offsets across readiness: teardown starts within 2 s every time,
  measured from the signal to the teardown banner; the suite never runs.

What is left is counted in the local cloud by tag, never from branchenv's state."""

from __future__ import annotations

import signal
import subprocess
import threading
import time

from branchenv.inventory import find_tagged
from branchenv.naming import names_for
from tests.conftest import subprocess_env
from tests.e2e.conftest import E2E_DEFAULTS, EXE, Project


def tagged_count(project: Project, branch: str) -> int:
    return len(
        find_tagged(project.target(), key="branchenv:stack", values={names_for(branch).stack})
    )


class Lines:
    """A child's stderr read on a thread, each line with when it came (monotonic)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                self._cond.notify_all()
        with self._cond:
            self.lines.append((time.monotonic(), "<eof>"))
            self._cond.notify_all()

    def wait_for(self, needle: str, *, after: int = 0, timeout: float = 180) -> tuple[int, float]:
        """The index and time of the first line from ``after`` on holding ``needle``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i in range(after, len(self.lines)):
                    when, text = self.lines[i]
                    if needle in text:
                        return i, when
                    if text == "<eof>":
                        raise AssertionError(
                            f"ended (exit {self.proc.wait()}) before {needle!r}:\n{self.text()}"
                        )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {needle!r} in {timeout} s:\n{self.text()}")
                self._cond.wait(left)

    def text(self) -> str:
        return "\n".join(t for _, t in self.lines)[-4000:]

    def finish(self, timeout: float = 180) -> int:
        code = self.proc.wait(timeout=timeout)
        self._thread.join(timeout=10)
        return code


def _start(project: Project, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(EXE), *args],
        cwd=project.root,
        env=subprocess_env(**{**E2E_DEFAULTS, **env}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_up_and_down_finish_what_they_started_then_exit_143(project: Project) -> None:
    branch = "sig/up-down"
    try:
        up = _start(project, "up", "--branch", branch)
        lines = Lines(up)
        i, _ = lines.wait_for("updating ")
        lines.wait_for("created", after=i)  # provisioning is under way
        up.send_signal(signal.SIGTERM)
        assert lines.finish() == 143, lines.text()
        assert "interrupted by SIGTERM" in lines.text()
        # Coherent: `up` ran to its end, so the state holds every resource that exists.
        full = tagged_count(project, branch)
        assert full >= 8, lines.text()
        assert project.run("outputs", "--branch", branch).returncode == 0

        down = _start(project, "down", "--branch", branch)
        lines = Lines(down)
        i, _ = lines.wait_for("destroying ")
        lines.wait_for("deleted", after=i)
        down.send_signal(signal.SIGTERM)
        down.send_signal(signal.SIGINT)  # a second one changes nothing
        assert lines.finish() == 143, lines.text()
        assert "in progress, it will finish first" in lines.text()
        assert tagged_count(project, branch) == 0
    finally:
        project.run("down", "--branch", branch)
