"""Issue 15 items 2 and 6, as a user runs the CLI: real subprocesses, real signals.

- `up` and `down` under SIGTERM: each finishes what it started (state coherent, nothing
  leaked), then exits 143.
- `ci` under SIGTERM at 10 offsets across readiness: teardown starts within 2 s every time,
  measured from the signal to the teardown banner; the suite never runs.

What is left is counted in the local cloud by tag, never from branchenv's state."""

from __future__ import annotations

import contextlib
import http.server
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from branchenv.inventory import find_tagged
from branchenv.naming import names_for
from tests.conftest import subprocess_env
from tests.e2e.conftest import E2E_DEFAULTS, EXE, Project


def tagged_count_in(target: Any, branch: str) -> int:
    return len(find_tagged(target, key="branchenv:stack", values={names_for(branch).stack}))


def tagged_count(project: Project, branch: str) -> int:
    return tagged_count_in(project.target(), branch)


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
        i, _ = lines.wait_for("in progress, it will finish first", after=i)
        down.send_signal(signal.SIGINT)  # a second one changes nothing
        lines.wait_for("in progress, it will finish first", after=i + 1)
        assert lines.finish() == 143, lines.text()
        assert tagged_count(project, branch) == 0
    finally:
        project.run("down", "--branch", branch)


SLOW_READY_PROGRAM = """
import os

import pulumi
import pulumi_aws as aws

queue = aws.sqs.Queue("jobs")
pulumi.export("queue_url", queue.url)
pulumi.export("endpoint", os.environ["SLOW_HEALTH_URL"])
"""

MARKING_SUITE = """
import os
from pathlib import Path

def test_marks():
    Path(os.environ["SUITE_MARKER"]).touch()
"""

OFFSETS = 10
OFFSET_STEP_S = 0.2


class SlowUnhealthy(http.server.BaseHTTPRequestHandler):
    """Answers every request 503 after 0.7 s: readiness keeps probing (requests in flight
    and waits between them alternate) until its timeout."""

    def do_GET(self) -> None:
        time.sleep(0.7)
        with contextlib.suppress(OSError):  # the prober may be gone (stopped) by now
            self.send_response(503)
            self.end_headers()
            self.wfile.write(b"not yet")

    def log_message(self, *_args: object) -> None:
        pass


def test_sigterm_at_ten_offsets_across_readiness_starts_teardown_within_2s(
    own_project: Any, tmp_path: Path
) -> None:
    own_project.write_program(SLOW_READY_PROGRAM)
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_marks.py").write_text(MARKING_SUITE)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowUnhealthy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    latencies: list[float] = []
    branches = [f"sig/ready-{i}" for i in range(OFFSETS)]
    left = set(branches)
    try:
        for i, branch in enumerate(branches):
            marker = tmp_path / f"suite-ran-{i}"
            proc = subprocess.Popen(
                [
                    str(EXE),
                    "ci",
                    "--branch",
                    branch,
                    "--suite",
                    str(suite),
                    "--report-dir",
                    str(tmp_path / f"reports-{i}"),
                    "--ready-timeout",
                    "30",
                ],
                cwd=own_project.root,
                env=subprocess_env(
                    BRANCHENV_STATE_DIR=str(own_project.state_dir),
                    SLOW_HEALTH_URL=url,
                    SUITE_MARKER=str(marker),
                ),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            lines = Lines(proc)
            try:
                at, ready_banner = lines.wait_for("== ready")
                # From right at the banner (clients being made) to a few probe rounds in.
                time.sleep(max(0.0, ready_banner + i * OFFSET_STEP_S - time.monotonic()))
                sent = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                _, teardown_banner = lines.wait_for("== teardown", after=at)
                latencies.append(teardown_banner - sent)
                assert lines.finish() == 143, lines.text()
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            assert "interrupted by SIGTERM during ready" in lines.text(), lines.text()
            assert not marker.exists(), f"offset {i}: the suite ran"
            assert tagged_count_in(own_project.target(), branch) == 0, f"offset {i}"
            left.discard(branch)
    finally:
        server.shutdown()
        for branch in left:  # only what a failed offset may have left
            own_project.run("down", "--branch", branch)
    print(
        "SIGTERM -> teardown banner, s: "
        + ", ".join(f"{x:.3f}" for x in latencies)
        + f" (max {max(latencies):.3f})"
    )
    assert len(latencies) == OFFSETS and max(latencies) < 2.0, latencies
