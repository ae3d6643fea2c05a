"""The guard's `finish` phase and an engine child in a process group of its own (as
branchenv.processes starts terraform and pulumi): one delivery leaves the child alone and the
step runs to its end; a second forwards SIGINT to the child's group, and the step's failure
then ends the run as interrupted. A real child records what it got; nothing is mocked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from branchenv import processes
from branchenv.harness.signals import Interrupted, SignalGuard

# Writes "ready", then waits for its release file; on SIGINT writes "SIGINT" and exits 1
# (as terraform does, interrupted).
CHILD = """
import pathlib, signal, sys, time
record, release = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
def on_int(signum, frame):
    record.write_text("SIGINT")
    sys.exit(1)
signal.signal(signal.SIGINT, on_int)
record.write_text("ready")
while not release.exists():
    time.sleep(0.02)
"""


def _wait_for(path: Path, text: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and path.read_text() == text:
            return
        time.sleep(0.02)
    raise AssertionError(f"{path} never read {text!r}")


def _step(tmp_path: Path, deliveries: int, said: list[str]) -> int:
    """An engine child as the step; ``deliveries`` SIGINTs once it runs; its exit code."""
    record, release = tmp_path / "record", tmp_path / "release"

    def work() -> int:
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(record), str(release)], process_group=0
        )
        processes.started(proc.pid)
        try:
            code = proc.wait()
            if code != 0:
                raise RuntimeError(f"the engine failed ({code}): interrupted")
            return code
        finally:
            processes.ended(proc.pid)

    def deliver() -> None:
        _wait_for(record, "ready")
        for _ in range(deliveries):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.3)  # each delivery acted on by the main thread before the next
        release.touch()

    import threading

    sender = threading.Thread(target=deliver)
    with SignalGuard(on_signal=said.append) as guard:
        sender.start()
        try:
            code = guard.finish(work, what="the step")
        finally:
            sender.join()
        assert guard.received == signal.SIGINT
    return code


def test_one_delivery_leaves_the_engine_alone_and_the_step_finishes(tmp_path: Path) -> None:
    said: list[str] = []
    code = _step(tmp_path, 1, said)
    assert code == 0
    assert (tmp_path / "record").read_text() == "ready"  # never got SIGINT
    assert any("a second Ctrl-C stops the engine" in line for line in said)


def test_two_deliveries_forward_sigint_to_the_engine_group(tmp_path: Path) -> None:
    record = tmp_path / "record"
    said: list[str] = []

    # The child's exit (1) is the engine's error: raised in the step, it ends the run as
    # interrupted (130), from that error.
    with pytest.raises(Interrupted) as caught:
        _step(tmp_path, 2, said)
    assert record.read_text() == "SIGINT"
    assert caught.value.exit_code == 130
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert any("SIGINT forwarded to the engine process" in line for line in said)
