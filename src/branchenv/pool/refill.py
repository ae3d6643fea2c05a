"""The background refill: a pool stack destroyed on release is replaced by a detached process.

A release that cannot return its stack (the claimant's program changed the resource graph, a
type has no wiper, the wipe failed) destroys it; with ``pool_refill = "background"`` (the
default) the release then starts one detached refill, which runs :func:`branchenv.pool.fill`
for that pool (program, target, engine) until the pool holds ``pool_size`` stacks again.
`down`, `ci` and the reaper do not wait for it; they say it started (pid, log).

At most one refill per pool runs at a time, on one machine (one state dir):

- the lock is an ``flock`` on ``<state_dir>/pool/refill-<pool>-<target>-<engine>.lock``. The
  release takes it, and the refill process inherits it: the kernel drops it when that process
  ends however it ends (SIGKILL included), so a lock is never stale. The file also holds the
  holder's pid and start time, so ``pool status`` says which process refills (and a reused pid
  is told apart) without taking the lock;
- before taking the lock, a release leaves a *wanted* mark beside it. The refill removes the
  mark before each fill pass and fills again while one is there; once it lets the lock go it
  looks a last time and takes the lock again for a mark left meanwhile. So a release that
  finds the lock held starts nothing, and the running refill still fills to size;
- across machines sharing a target, :func:`branchenv.pool.fill` itself decides: member names
  are fixed (``<pool>-<n>``) and each is made under a service claim in the shared claim store,
  so two fillers never make one stack twice, and none makes more than ``pool_size``.

Its output (what ``pool fill`` prints, one timestamped line each) goes to
``refill-<pool>-<target>-<engine>.log`` beside the lock, appended to; errors are quoted on one
line, never with a traceback. The settings travel over a pipe, never in argv or the log.

A refill killed mid-create (a CI runner killing orphans at job end) leaves a half-made stack
under its ``(pool fill)`` service claim; the next fill of the pool finds that claim's maker gone
and finishes the stack (see :func:`branchenv.pool.fill` and docs/pool.md).

Run as ``python -m branchenv.pool.refill_worker`` (the spec as the first line on stdin).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from branchenv import detached
from branchenv.errors import OperationFailed
from branchenv.pool.outcome import Refill

if TYPE_CHECKING:
    from branchenv.config import Settings
    from branchenv.provision import StackContext

Say = Callable[[str], None]

START_TIMEOUT_S = 30.0
"""How long a release waits for the refill process to say it started."""
MAX_PASSES = 5
"""Fill passes one refill makes at most (a pass per wanted mark found; a mark left again and
again by releases would otherwise keep one process alive for ever)."""
DRAIN_WAIT_S = 900.0
"""How long ``pool drain --yes`` waits for a running refill to finish."""


@dataclasses.dataclass(frozen=True)
class RefillState:
    """Whether a refill of the pool runs now (``pid``), and where its log is."""

    running: bool
    pid: int | None
    log: str


@dataclasses.dataclass(frozen=True)
class RefillSpec:
    """What the refill process needs. Sent over a pipe (settings may name a backend URL)."""

    settings: Settings
    pool: str
    target: str
    engine: str
    program: str | None
    """The configured program's name (None: the default program)."""
    lock_fd: int
    """The locked file's descriptor, inherited (the lock is the process's from then on)."""

    def encode(self) -> str:
        return detached.encode(self)

    @classmethod
    def decode(cls, line: str) -> RefillSpec:
        return detached.decode(line, cls)


@dataclasses.dataclass(frozen=True)
class RefillPaths:
    lock: Path
    log: Path
    wanted: Path


def paths(settings: Settings, *, pool: str, target: str, engine: str) -> RefillPaths:
    """The lock, log and wanted mark of one pool's refill, under the state dir."""
    base = re.sub(r"[^A-Za-z0-9._-]", "-", f"refill-{pool}-{target}-{engine}")
    where = settings.state_path / "pool"
    return RefillPaths(
        lock=where / f"{base}.lock", log=where / f"{base}.log", wanted=where / f"{base}.wanted"
    )


def _program_name(ctx: StackContext) -> str | None:
    from branchenv.programs import DEFAULT_PROGRAM

    return None if ctx.program.name == DEFAULT_PROGRAM else ctx.program.name


def start_for(ctx: StackContext, *, pool: str, env: Mapping[str, str] | None = None) -> Refill:
    """:func:`start` for the pool of ``ctx`` (its settings, program, target and engine)."""
    return start(
        ctx.settings,
        pool=pool,
        target=ctx.target.name,
        engine=ctx.engine.name,
        program=_program_name(ctx),
        env=env,
    )


def start(
    settings: Settings,
    *,
    pool: str,
    target: str,
    engine: str,
    program: str | None,
    env: Mapping[str, str] | None = None,
) -> Refill:
    """Start the pool's background refill unless one runs (then it fills to size anyway), the
    setting is ``off``, or the pool has no size on the target. Never raises for a refill that
    cannot start: the release is done; the outcome says so."""
    if settings.pool_refill == "off":
        return Refill("off", pool, reason='pool_refill = "off": `branchenv pool fill` replaces it')
    if settings.pool_size_for(target) == 0:
        return Refill(
            "skipped",
            pool,
            reason=f"pool_size is 0 for target {target}: set pool_size so a refill knows the "
            "pool's size, or run `branchenv pool fill --size N`",
        )
    where = paths(settings, pool=pool, target=target, engine=engine)
    try:
        where.lock.parent.mkdir(parents=True, exist_ok=True)
        where.wanted.write_text(_stamp() + "\n")  # before the lock: see the module doc
        fd = os.open(where.lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        return Refill("failed", pool, log=str(where.log), reason=f"{where.lock}: {exc.strerror}")
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return Refill("running", pool, pid=_holder(where.lock), log=str(where.log))
        spec = RefillSpec(
            settings=settings, pool=pool, target=target, engine=engine, program=program, lock_fd=fd
        )
        return _spawn(spec, where, env=os.environ if env is None else env)
    finally:
        os.close(fd)  # the lock stays with the refill process's copy, if it started


def _spawn(spec: RefillSpec, where: RefillPaths, *, env: Mapping[str, str]) -> Refill:
    try:
        encoded = spec.encode()
        log = where.log.open("a", encoding="utf-8")
    except Exception as exc:  # settings that cannot travel, a log that cannot open: said
        return Refill("failed", spec.pool, log=str(where.log), reason=f"{type(exc).__name__}")
    try:
        _, line = detached.start(
            "branchenv.pool.refill_worker",
            encoded,
            cwd=spec.settings.project_dir,
            env=env,
            log=log,
            timeout_s=START_TIMEOUT_S,
            pass_fds=(spec.lock_fd,),
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return Refill("failed", spec.pool, log=str(where.log), reason=str(exc))
    finally:
        log.close()
    if not line.startswith("started "):
        return Refill(
            "failed", spec.pool, log=str(where.log), reason=f"it did not start; see {where.log}"
        )
    return Refill("started", spec.pool, pid=int(line.split()[1]), log=str(where.log))


def _holder(lock: Path) -> int | None:
    """The pid the lock file names, when that process runs and is the one that wrote it."""
    from branchenv.harness.watchdog import alive

    try:
        fields = lock.read_text().split()
        pid, started = int(fields[0]), int(fields[1]) if fields[1] != "-" else None
    except (OSError, ValueError, IndexError):
        return None
    return pid if alive(pid, started) else None


def state(settings: Settings, *, pool: str, target: str, engine: str) -> RefillState:
    """Whether the pool's refill runs, read from its lock file (pid and start time; the lock is
    not taken, so a release at this instant is never turned away)."""
    where = paths(settings, pool=pool, target=target, engine=engine)
    pid = _holder(where.lock)
    return RefillState(running=pid is not None, pid=pid, log=str(where.log))


@contextlib.contextmanager
def held(
    settings: Settings,
    *,
    pool: str,
    target: str,
    engine: str,
    say: Say,
    wait_s: float = DRAIN_WAIT_S,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[None]:
    """Hold the pool's refill lock for the block (``pool drain``: no refill makes a stack while
    the pool is drained), first waiting for a running refill to finish (at most ``wait_s``)."""
    from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

    where = paths(settings, pool=pool, target=target, engine=engine)
    where.lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(where.lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder(where.lock)
            say(
                f"a background refill of pool {pool} is running (pid {pid or 'unknown'}, log "
                f"{where.log}): waiting for it to finish"
            )
            try:
                for attempt in Retrying(
                    stop=stop_after_delay(wait_s),
                    wait=wait_fixed(1.0),
                    retry=retry_if_exception_type(BlockingIOError),
                    sleep=sleep,
                    reraise=True,
                ):
                    with attempt:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise OperationFailed(
                    f"the background refill of pool {pool} (pid {pid or 'unknown'}) still runs "
                    f"after {wait_s:.0f} s; see {where.log}, then run the command again"
                ) from None
        _record(fd)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # before the lock goes: the record names no holder
    finally:
        os.close(fd)


# --- the refill process ----------------------------------------------------------------------


def _stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _log(line: str) -> None:
    print(f"{_stamp()} refill {os.getpid()}: {line}", file=sys.stderr, flush=True)


def _record(fd: int) -> None:
    """Write the lock holder's pid and start time into the lock file."""
    from branchenv.harness.watchdog import start_time

    me = os.getpid()
    started = start_time(me)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{me} {started if started is not None else '-'}\n".encode(), 0)


def run(spec: RefillSpec, wanted: Path, *, fill: Callable[[], int]) -> int:
    """Fill while a wanted mark is there, then let the lock go; a mark left meanwhile (by a
    release that found the lock held) is taken up again under the lock."""
    passes = 0
    code = 0
    while True:
        while wanted.exists() and passes < MAX_PASSES:
            wanted.unlink(missing_ok=True)
            passes += 1
            code = fill()
        os.ftruncate(spec.lock_fd, 0)  # before the lock goes: the record names no holder
        fcntl.flock(spec.lock_fd, fcntl.LOCK_UN)
        if passes >= MAX_PASSES or not wanted.exists():
            return code
        try:
            fcntl.flock(spec.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return code  # another refill took the lock: the mark is its
        _record(spec.lock_fd)
