"""Signals during a run (SIGINT, SIGTERM): none is ever lost, in any phase.

Why this shape: a Python signal handler runs wherever the main thread happens to be. One that
raises there can raise inside a finalizer or a weakref callback, where Python prints
"Exception ignored in: ..." and carries on, so the signal is lost (and a handler that raises
only once then ignores every later one). So here the handler never raises, prints or takes a
lock: it only records the delivery. The work of each phase runs on a worker thread, while the
main thread waits on it (polling every :data:`POLL_S`) and acts on every delivery itself:

=================  ========================================================================
phase              on each delivery
=================  ========================================================================
:meth:`finish`     the first: the step goes on to its end (creating a stack must record
                   every resource it made; starting the local cloud); the caller stops right
                   after it (:meth:`checkpoint`). The second: SIGINT to the process group of
                   each engine child running (terraform, pulumi: announced through
                   :func:`branchenv.processes.announced_to`, its leader proven to be that
                   child), which stops gracefully, writing its state; the step then ends with
                   the engine's error, raised as :class:`Interrupted`. Later ones: only said
                   (never SIGKILL: a killed terraform loses its state)
:meth:`cancel`     the phase's waits end at once (:meth:`sleep`) and the main thread
                   raises :class:`Interrupted` at once (readiness), leaving the worker behind
:meth:`run_child`  forwarded to the child's process group (the pytest suite, which runs its
                   own teardown); it gets :data:`CHILD_GRACE_S`, then is killed
:meth:`shielded`   only said: teardown must finish, a second Ctrl-C does not stop it either
=================  ========================================================================

The guard is installed before the first phase and stays until the run ends; a signal that
comes between phases is recorded too, and :meth:`checkpoint` (called before each phase that
may be skipped) raises it. Used by `ci`, `test`, `up` and `down`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

from branchenv import processes
from branchenv.harness.watchdog import start_time as _start_time

HANDLED = (signal.SIGINT, signal.SIGTERM)
POLL_S = 0.05
"""How often the waiting main thread looks at deliveries: the latency of acting on one."""
CHILD_GRACE_S = 15.0
"""How long a signalled child (the suite) may take for its own teardown before it is killed."""

T = TypeVar("T")


class Interrupted(BaseException):
    """The run was stopped by a signal. A BaseException, so ``except Exception`` in probes and
    retries cannot swallow it. Raised by the main thread in ordinary control flow (or by a
    worker's :meth:`SignalGuard.sleep`), never from inside the signal handler."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.signame = signal.Signals(signum).name
        super().__init__(f"interrupted by {self.signame}")

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process killed by it (130, 143)."""
        return 128 + self.signum


class SignalGuard:
    """Installs the recording handler for SIGINT and SIGTERM (main thread only), runs phases
    on worker threads (:meth:`finish`, :meth:`cancel`, :meth:`run_child`, :meth:`shielded`), and
    restores the previous handlers on exit."""

    def __init__(
        self,
        on_signal: Callable[[str], None] | None = None,
        *,
        child_grace_s: float = CHILD_GRACE_S,
    ) -> None:
        self.child: Any = None  # a subprocess.Popen while one runs (see start_child)
        self.on_child: Callable[[int | None], None] | None = None
        """Told the child's pid when it starts and None when it is done (`ci`'s watchdog)."""
        self.forwarded_to: int | None = None
        self.child_grace_s = child_grace_s
        self.cancelled = threading.Event()
        """Set by the main thread once a signal asks the run to stop: workers' waits end."""
        self._say = on_signal or (lambda _msg: None)
        self._deliveries: list[int] = []  # appended by the handler only
        self._acted = 0  # deliveries the main thread has acted on
        self._child_lock = threading.Lock()
        self._previous: dict[int, Any] = {}

    # --- the handler: records, nothing else ----------------------------------------------

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        # A list append is atomic under the GIL and takes no lock the interrupted code could
        # hold; everything else happens in the main thread's ordinary control flow.
        self._deliveries.append(signum)

    def __enter__(self) -> SignalGuard:
        if threading.current_thread() is threading.main_thread():
            for signum in HANDLED:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    # --- what was received ----------------------------------------------------------------

    @property
    def received(self) -> int | None:
        """The first signal received, or None."""
        return self._deliveries[0] if self._deliveries else None

    @property
    def signame(self) -> str | None:
        return signal.Signals(self.received).name if self.received else None

    @property
    def deliveries(self) -> tuple[int, ...]:
        """Every delivery so far, in order."""
        return tuple(self._deliveries)

    def checkpoint(self) -> None:
        """Raise :class:`Interrupted` if a signal has been received (at a phase boundary)."""
        first = self.received
        if first is not None:
            self.cancelled.set()
            raise Interrupted(first)

    def sleep(self, seconds: float) -> None:
        """A wait for worker threads that ends at once when the run is stopped (raising
        :class:`Interrupted`), instead of sleeping through the stop."""
        if self.cancelled.wait(max(0.0, seconds)):
            raise Interrupted(self.received or signal.SIGTERM)

    # --- the child process (the suite) ----------------------------------------------------

    def start_child(self, start: Callable[[], Any]) -> Any:
        """Start the child (``start()`` returns a Popen) unless the run was stopped already,
        and register it for forwarding; atomic with respect to forwarding, so a signal can
        never slip in between "not stopped" and "started"."""
        with self._child_lock:
            if self.received is not None:
                raise Interrupted(self.received)
            self.child = start()
            if self.on_child is not None:
                self.on_child(int(self.child.pid))
            return self.child

    def child_done(self) -> None:
        with self._child_lock:
            self.child = None
            if self.on_child is not None:
                self.on_child(None)

    def _signal_child(self, signum: int) -> int | None:
        with self._child_lock:
            child = self.child
            if child is None or child.poll() is not None:
                return None
            with contextlib.suppress(OSError):
                # The child leads its own process group: signal all of it (xdist workers, a
                # test's own subprocesses), as a terminal would; a child that is no group
                # leader gets the signal itself.
                if os.getpgid(child.pid) == child.pid:
                    os.killpg(child.pid, signum)
                else:
                    child.send_signal(signum)
                return int(child.pid)
            return None

    # --- phases -----------------------------------------------------------------------------

    def finish(self, work: Callable[[], T], *, what: str = "the current step") -> T:
        """Run ``work`` to its end even when signalled once (then say so); the caller calls
        :meth:`checkpoint` after it. A second delivery stops the engine children running
        (SIGINT to each one's group); ``work`` failing after that raises :class:`Interrupted`
        (from the engine's error). Nothing starts once a signal has come."""
        self.checkpoint()
        engines = EngineGroups()
        count = 0

        def on_signal(name: str) -> None:
            nonlocal count
            count += 1
            if count == 1:
                self._say(
                    f"received {name}: stopping once {what} is done "
                    "(a second Ctrl-C stops the engine gracefully)"
                )
                return
            pids = engines.interrupt()
            if pids:
                listed = ", ".join(str(pid) for pid in pids)
                self._say(
                    f"received {name} again: SIGINT forwarded to the engine process {listed}, "
                    "which stops gracefully"
                )
            elif engines.interrupted:
                self._say(f"received {name}: the engine is stopping and writing its state")
            else:
                self._say(f"received {name}: no engine is running; stopping once {what} is done")

        with processes.announced_to(engines):
            try:
                return self._run(work, on_signal)
            except Exception as exc:
                if engines.interrupted and self.received is not None:
                    raise Interrupted(self.received) from exc
                raise

    def cancel(self, work: Callable[[], T]) -> T:
        """Run ``work`` (which waits through :meth:`sleep`); on a signal, raise
        :class:`Interrupted` at once and leave the worker to end on its own."""
        self.checkpoint()
        return self._run(work, None)

    def run_child(self, work: Callable[[], T]) -> T:
        """Run ``work``, which starts a child through :meth:`start_child` and waits for it;
        every delivery is forwarded to the child, which gets ``child_grace_s`` from the first
        one, then its group is killed."""
        self.checkpoint()
        return self._run(work, self._forward, kill_after_s=self.child_grace_s)

    def shielded(self, work: Callable[[], T], *, what: str = "teardown") -> T:
        """Run ``work`` to its end whatever is received (teardown); deliveries are said and
        forwarded to a child still running."""

        def on_signal(name: str) -> None:
            self._forward(name)
            self._say(f"received {name}: {what} in progress, it will finish first")

        return self._run(work, on_signal)

    def _forward(self, name: str) -> None:
        pid = self._signal_child(signal.Signals[name])
        if pid is not None:
            self.forwarded_to = pid
            self._say(f"received {name}: forwarded to the test process {pid}")

    def _run(
        self,
        work: Callable[[], T],
        on_signal: Callable[[str], None] | None,
        *,
        kill_after_s: float | None = None,
    ) -> T:
        box: dict[str, Any] = {}
        done = threading.Event()

        def target() -> None:
            try:
                box["value"] = work()
            except BaseException as exc:  # handed to the main thread, raised there
                box["error"] = exc
            finally:
                done.set()

        worker = threading.Thread(target=target, name="branchenv-phase", daemon=True)
        worker.start()
        kill_at: float | None = None
        while not done.wait(POLL_S):
            if self._act(on_signal) and kill_after_s is not None and kill_at is None:
                kill_at = time.monotonic() + kill_after_s
            if kill_at is not None and time.monotonic() >= kill_at:
                pid = self._signal_child(signal.SIGKILL)
                if pid is not None:
                    self._say(f"the test process {pid} did not stop in time: killed")
                kill_at = None
        worker.join()
        if on_signal is not None:
            self._act(on_signal)  # what came during the last poll is said too
        if "error" in box:
            raise box["error"]
        value: T = box["value"]
        return value

    def _act(self, on_signal: Callable[[str], None] | None) -> bool:
        """Act on every delivery not acted on yet; whether there was one. With no
        ``on_signal`` (a :meth:`cancel` phase) the first one raises :class:`Interrupted`."""
        acted = False
        while self._acted < len(self._deliveries):
            name = signal.Signals(self._deliveries[self._acted]).name
            self._acted += 1
            acted = True
            if on_signal is None:
                self.cancelled.set()
                self._say(f"received {name}: stopping now")
                raise Interrupted(self._deliveries[0])
            on_signal(name)
        return acted


class EngineGroups:
    """The engine children running during a :meth:`SignalGuard.finish` phase (a
    :class:`branchenv.processes.ChildListener`): each pid with its start time, so a signal
    only reaches a group whose leader provably still is that child (not a reused pid)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[int, int | None] = {}
        self._signalled: set[int] = set()
        self.interrupted = False
        """Whether SIGINT was forwarded to an engine child in this phase."""

    def child_started(self, pid: int) -> None:
        started = _start_time(pid)
        with self._lock:
            self._running[pid] = started

    def child_ended(self, pid: int) -> None:
        with self._lock:
            self._running.pop(pid, None)
            self._signalled.discard(pid)

    def interrupt(self) -> list[int]:
        """SIGINT to the group of every running child not signalled yet; their pids."""
        sent: list[int] = []
        with self._lock:
            for pid, started in self._running.items():
                if pid in self._signalled or started is None:
                    continue
                with contextlib.suppress(OSError):
                    if os.getpgid(pid) == pid and _start_time(pid) == started:
                        os.killpg(pid, signal.SIGINT)
                        self._signalled.add(pid)
                        sent.append(pid)
            if sent:
                self.interrupted = True
        return sent
