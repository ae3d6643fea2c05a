"""processes.Tailed: an engine child's output read from files as it grows, every line once, in
order, split multi-byte characters and a last unterminated line included; and the child keeps
running when nobody reads any more (a pipe would SIGPIPE a Go program there)."""

from __future__ import annotations

import inspect
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from branchenv import processes

CHILD = r"""
import sys, time
out = sys.stdout.buffer
out.write("first line\n".encode()); out.flush()
snow = "snow \u2603\n".encode()
out.write(snow[:6]); out.flush(); time.sleep(0.2)  # the snowman split between two reads
out.write(snow[6:]); out.flush()
sys.stderr.write("to stderr\n"); sys.stderr.flush()
for i in range(300):
    out.write(f"line {i}\n".encode())
out.write(b"no newline at the end"); out.flush()
"""


def test_every_line_once_in_order_from_both_streams() -> None:
    got: list[str] = []
    errs: list[str] = []
    child = processes.Tailed(
        [sys.executable, "-c", CHILD],
        cwd=None,
        env=dict(os.environ),
        on_stdout=got.append,
        on_stderr=errs.append,
    )
    assert child.proc.wait(timeout=60) == 0
    child.finish()
    assert got[:2] == ["first line\n", "snow \u2603\n"]
    assert got[2:-1] == [f"line {i}\n" for i in range(300)]
    assert got[-1] == "no newline at the end"
    assert errs == ["to stderr\n"]


def test_the_child_runs_on_when_its_reader_is_gone(tmp_path: Path) -> None:
    """Writes after the tails stopped reading (as after `ci` died) neither fail nor stop it."""
    marker = tmp_path / "done"
    script = (
        "import sys, time\n"
        "time.sleep(0.5)\n"
        "for i in range(20000):\n"
        "    sys.stdout.write('x' * 100 + '\\n')\n"
        "sys.stdout.flush()\n"
        f"open({str(marker)!r}, 'w').write('ok')\n"
    )
    child = processes.Tailed(
        [sys.executable, "-c", script],
        cwd=None,
        env=dict(os.environ),
        on_stdout=lambda _line: None,
        on_stderr=lambda _line: None,
    )
    child.finish()  # the reader stops before the child has written anything
    assert child.proc.wait(timeout=60) == 0  # with a pipe: BrokenPipeError, exit 1
    assert marker.read_text() == "ok"


def test_a_failing_callback_loses_no_line_and_its_error_is_raised_after() -> None:
    """A progress callback that raises (a closed stdout) neither stops the reading nor the
    collection the caller maps errors from; wait() raises it once everything was read."""
    seen: list[str] = []

    def sink(line: str) -> None:
        seen.append(line)
        if line == "line 3\n":
            raise BrokenPipeError("stdout closed")

    script = "for i in range(10):\n    print(f'line {i}')\n"
    child = processes.Tailed(
        [sys.executable, "-c", script],
        cwd=None,
        env=dict(os.environ),
        on_stdout=sink,
        on_stderr=lambda _line: None,
    )
    with pytest.raises(BrokenPipeError):
        child.wait(grace_s=5)
    assert seen == [f"line {i}\n" for i in range(10)]


def test_a_second_interrupt_while_stopping_kills_the_group() -> None:
    """A child that ignores SIGINT, given up on, then the wait for its graceful stop itself
    interrupted (a second Ctrl-C): it is killed and reaped, never left running."""
    script = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)\n"
    proc = subprocess.Popen([sys.executable, "-c", script], process_group=0)
    try:
        time.sleep(0.5)  # its SIGINT handler is set
        real_wait = proc.wait

        def interrupted_wait(timeout: float | None = None) -> int:
            if timeout is not None:
                raise KeyboardInterrupt  # the second Ctrl-C, during the graceful wait
            return real_wait()

        proc.wait = interrupted_wait  # type: ignore[method-assign]
        with pytest.raises(KeyboardInterrupt):
            processes.stop_group(proc, grace_s=30)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()


def test_the_grouped_pulumi_command_runs_as_the_sdks_does() -> None:
    """GroupedCommand.run replaces pulumi.automation's PulumiCommand.run: the same parameters,
    so a newer SDK that changes them fails here, not at a user's `up`."""
    from pulumi import automation as auto

    from branchenv.engines.pulumi.command import GroupedCommand

    ours = inspect.signature(GroupedCommand.run)
    sdk = inspect.signature(auto.PulumiCommand.run)
    assert list(ours.parameters) == list(sdk.parameters)
    assert [p.default for p in ours.parameters.values()] == [
        p.default for p in sdk.parameters.values()
    ]
