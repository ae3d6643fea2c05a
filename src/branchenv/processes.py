"""The external programs branchenv starts for an engine (terraform, tofu): each in a process
group of its own, announced while it runs to whoever listens.

`ci`'s watchdog listens: when `ci` is killed (SIGKILL reaches no handler), the engine's child
would run on, orphaned, still applying the stack the watchdog is about to destroy (and holding
its state lock). Told of each group (its leader's pid and start time), the watchdog stops it
first, only when the group provably is that one. A group of its own also means a signal sent
to `ci`'s group reaches the child only through `ci`, which stops it itself
(:func:`stop_group`). The signal guard listens too, during a step that runs to its end
(:meth:`branchenv.harness.signals.SignalGuard.finish`): a second Ctrl-C there is forwarded to
the groups it was told of.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import IO, Any, Protocol


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


def stop_group(proc: subprocess.Popen[Any], *, grace_s: float) -> None:
    """Stop a child leading its own group that its caller gave up on (an interrupt or an error
    while waiting for it): SIGINT, the signal terraform stops gracefully on (releasing its
    state lock), then SIGKILL after ``grace_s``, or at once when the wait for it is itself
    interrupted (a second Ctrl-C: the child must not be left running, holding the lock). Reaps
    it."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=grace_s)
    except BaseException as exc:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if not isinstance(exc, subprocess.TimeoutExpired):
            raise


class Tailed:
    """An engine child whose stdout and stderr are files, not pipes, read as they grow.

    A pipe dies with its reader: when `ci` is SIGKILLed, the next line terraform (or pulumi,
    both Go programs) writes to a pipe nobody reads raises SIGPIPE, and a Go program writing to
    a broken pipe on fd 1 or 2 exits at once - in the middle of an apply, without writing what
    it created to the state (the watchdog's destroy then found nothing to destroy and every
    resource created so far leaked). Writing to an (unlinked) file never fails that way: the
    child outlives its reader, and the watchdog stops it gracefully (SIGINT) instead.

    The child leads a process group of its own (``process_group=0``); each complete line goes
    to its stream's callback (with its newline; a last unterminated one without), decoded as
    UTF-8 with errors replaced, within :data:`TAIL_POLL_S` of being written.
    """

    def __init__(
        self,
        argv: list[str],
        *,
        cwd: str | os.PathLike[str] | None,
        env: dict[str, str],
        on_stdout: Callable[[str], None],
        on_stderr: Callable[[str], None],
    ) -> None:
        self._done = threading.Event()
        self._errors: list[BaseException] = []
        files = [_output_file(), _output_file()]
        try:
            self.proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=files[0][0],
                stderr=files[1][0],
                process_group=0,
            )
        except BaseException:
            for writer, reader in files:
                writer.close()
                reader.close()
            raise
        finally:
            for writer, _ in files:
                writer.close()  # the child holds its own copies
        self._tails = [
            threading.Thread(target=self._tail, args=(reader, sink), daemon=True)
            for (_, reader), sink in zip(files, (on_stdout, on_stderr), strict=True)
        ]
        for tail in self._tails:
            tail.start()

    def wait(self, *, grace_s: float) -> int:
        """The child's exit code, once it ended and all its output was passed on. While it
        runs it is announced to the listeners (:func:`started`, :func:`ended`); a wait given up
        on (an interrupt, raised here) stops its group first (:func:`stop_group`). Then the
        first error a callback raised, if any, is raised (every line was still read)."""
        try:
            try:
                started(self.proc.pid)
                code = self.proc.wait()
            except BaseException:
                stop_group(self.proc, grace_s=grace_s)
                raise
            finally:
                ended(self.proc.pid)
        finally:
            self.finish()
        if self._errors:
            raise self._errors[0]
        return code

    def finish(self) -> None:
        """After the child was reaped: read what is left of both files, stop the tails."""
        self._done.set()
        for tail in self._tails:
            tail.join()

    def _tail(self, reader: IO[bytes], sink: Callable[[str], None]) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""
        try:
            while True:
                finished = self._done.is_set()  # looked at before the read: nothing is missed
                chunk = reader.read()
                if chunk:
                    pending += decoder.decode(chunk)
                    *lines, pending = pending.split("\n")
                    for line in lines:
                        self._pass(sink, line + "\n")
                elif finished:
                    pending += decoder.decode(b"", final=True)
                    if pending:
                        self._pass(sink, pending)
                    return
                else:
                    self._done.wait(TAIL_POLL_S)
        finally:
            reader.close()

    def _pass(self, sink: Callable[[str], None], line: str) -> None:
        """One line to its callback; an error there is kept for :meth:`finish` and reading
        goes on (a stopped tail would cut the output the caller maps errors from)."""
        try:
            sink(line)
        except BaseException as exc:
            self._errors.append(exc)


TAIL_POLL_S = 0.05
"""How often a child's output file is looked at for new lines."""


def _output_file() -> tuple[IO[bytes], IO[bytes]]:
    """A writer for a child's output and a reader of it (own offset), the file unlinked: it
    lives as long as one of them is open."""
    fd, path = tempfile.mkstemp(prefix="branchenv-child-", suffix=".out")
    try:
        writer = os.fdopen(fd, "wb")
        reader = open(path, "rb")  # noqa: SIM115 - closed by the tail
    finally:
        os.unlink(path)
    return writer, reader
