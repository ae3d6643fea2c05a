"""Signals during a run: SIGINT and SIGTERM become an exception in the main thread, so that
``finally`` blocks (teardown) run, and are forwarded to the running test process.

:class:`SignalGuard` is used as a context manager around a whole run. Inside it:

- by default a signal raises :class:`Interrupted` in the main thread at once;
- inside :meth:`SignalGuard.deferred` (work that must not stop halfway, such as creating a
  stack whose state must record every resource) it is remembered and raised when the block
  ends;
- after :meth:`SignalGuard.shield` (teardown) it is only remembered: nothing may stop the
  teardown, and a second Ctrl-C does not either.

Every signal received while a child process is registered (``guard.child``) is sent on to it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """The run was stopped by a signal. A BaseException, so ``except Exception`` in probes and
    retries cannot swallow it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.signame = signal.Signals(signum).name
        super().__init__(f"interrupted by {self.signame}")

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process killed by it (130, 143)."""
        return 128 + self.signum


class SignalGuard:
    """Installs handlers for SIGINT and SIGTERM (main thread only) and restores them on exit."""

    def __init__(self, on_signal: Callable[[str], None] | None = None) -> None:
        self.child: Any = None  # a subprocess.Popen while one runs
        self.received: int | None = None
        self.forwarded_to: int | None = None
        self._say = on_signal or (lambda _msg: None)
        self._pending: int | None = None
        self._deferring = 0
        self._shielded = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> SignalGuard:
        if threading.current_thread() is threading.main_thread():
            for signum in HANDLED:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    @property
    def signame(self) -> str | None:
        return signal.Signals(self.received).name if self.received else None

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        first = self.received is None
        if first:
            self.received = signum
        child = self.child
        if child is not None and child.poll() is None:
            with contextlib.suppress(OSError):
                # The child leads its own process group: signal all of it (xdist workers, a
                # test's own subprocesses), as a terminal would; a child that is no group
                # leader gets the signal itself.
                if os.getpgid(child.pid) == child.pid:
                    os.killpg(child.pid, signum)
                else:
                    child.send_signal(signum)
                self.forwarded_to = child.pid
                self._say(f"received {name}: forwarded to the test process {child.pid}")
        if self._shielded:
            self._say(f"received {name}: teardown in progress, it will finish first")
            return
        if self._deferring:
            if self._pending is None:
                self._pending = signum
                self._say(f"received {name}: stopping once the current step is done")
            return
        if first:
            raise Interrupted(signum)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold signals during the block; raise :class:`Interrupted` after it if one came."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
        if not self._deferring and self._pending is not None and not self._shielded:
            signum, self._pending = self._pending, None
            raise Interrupted(signum)

    def shield(self) -> None:
        """From now on, signals are only recorded (and forwarded): teardown must finish."""
        self._shielded = True
