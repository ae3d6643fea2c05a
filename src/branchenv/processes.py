"""The external programs branchenv starts for an engine (terraform, tofu): each in a process
group of its own, announced while it runs to whoever listens.

`ci`'s watchdog listens: when `ci` is killed (SIGKILL reaches no handler), the engine's child
would run on, orphaned, still applying the stack the watchdog is about to destroy (and holding
its state lock). Told of each group (its leader's pid and start time), the watchdog stops it
first, only when the group provably is that one. A group of its own also means a signal sent
to `ci`'s group reaches the child only through `ci`, which stops it itself
(:func:`stop_group`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from typing import Protocol


class ChildListener(Protocol):
    """Hears of the process groups engines start (``ci``'s watchdog)."""

    def child_started(self, pid: int) -> None:
        """``pid`` started and leads its own process group."""
        ...

    def child_ended(self, pid: int) -> None:
        """``pid`` ended (reaped): its group is no longer this run's."""
        ...


_listeners: list[ChildListener] = []
_lock = threading.Lock()


@contextlib.contextmanager
def announced_to(listener: ChildListener) -> Iterator[None]:
    """Tell ``listener`` of every engine child started in the block."""
    with _lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(listener)


def started(pid: int) -> None:
    """An engine child (leading its own group) started: every listener hears of it."""
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        listener.child_started(pid)


def ended(pid: int) -> None:
    """An engine child ended."""
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        listener.child_ended(pid)


def stop_group(proc: subprocess.Popen[str], *, grace_s: float) -> None:
    """Stop a child leading its own group that its caller gave up on (an interrupt or an error
    while waiting for it): SIGINT, the signal terraform stops gracefully on (releasing its
    state lock), then SIGKILL after ``grace_s``. Reaps it."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
