"""Detached helper processes: `ci`'s watchdog and the pool's background refill.

Both are ``python -m <module>`` started in a session of their own, told what to do by one line
on stdin (a pickled spec; it comes from our own process, over a pipe), then fork again so the
process that keeps running is nobody's child in the starting command's tree (a runner that kills
that tree does not reach it). The detached process says ``<word> <pid>`` on stdout once it is
on its own; the starter waits for that line (bounded) and for the first fork to exit.
"""

from __future__ import annotations

import base64
import os
import pickle
import select
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, TypeVar

T = TypeVar("T")


def encode(spec: object) -> str:
    """One line carrying ``spec``."""
    return base64.b64encode(pickle.dumps(spec)).decode("ascii")


def decode(line: str, kind: type[T]) -> T:
    """The spec :func:`encode` made, checked to be a ``kind``."""
    spec = pickle.loads(base64.b64decode(line.strip()))  # from our own parent, over a pipe
    if not isinstance(spec, kind):
        raise TypeError(f"not a {kind.__name__}: {type(spec).__name__}")
    return spec


def start(
    module: str,
    line: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    log: IO[str],
    timeout_s: float,
    keep_stdin: bool = False,
    pass_fds: tuple[int, ...] = (),
) -> tuple[IO[str], str]:
    """Start ``python -m module`` detached, hand it ``line`` and return its stdin pipe with the
    first line it printed ("" when none came in ``timeout_s``). ``keep_stdin``: the pipe stays
    open (the watchdog's dead-man's switch: it closes when the starter dies); else it is closed
    at once.
    Raises OSError or SubprocessError when it cannot start; the caller says so."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module],
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        start_new_session=True,
        pass_fds=pass_fds,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(line + "\n")
        proc.stdin.flush()
        if not keep_stdin:
            proc.stdin.close()
        ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
        said = proc.stdout.readline().strip() if ready else ""
        proc.stdout.close()
        proc.wait(timeout=timeout_s)  # the first fork exits at once
    except BaseException:
        if not proc.stdin.closed:
            proc.stdin.close()
        raise
    return proc.stdin, said


def detach(word: str, *, before_saying: Callable[[], None] | None = None) -> None:
    """In the started process: fork again (the parent exits at once), ignore the terminal's
    signals (a Ctrl-C or hang-up is for the command that started it), run ``before_saying``
    and say ``word <pid>``."""
    if os.fork() > 0:
        os._exit(0)
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_IGN)
    if before_saying is not None:
        before_saying()
    print(f"{word} {os.getpid()}", flush=True)
