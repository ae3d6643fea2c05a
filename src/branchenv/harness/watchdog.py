"""The dead-man's switch of `branchenv ci` (testcontainers' Ryuk idea, for stacks).

`ci` starts a small detached watchdog process before it provisions anything and holds a pipe
to it. It tells the watchdog what is under way (provisioning, the suite's process group) as
JSON lines, and disarms it when it finishes, whatever the outcome (a run that keeps its stack
with `--keep` disarms it too). If `ci` dies without disarming it (SIGKILL, the OOM killer, a
runner that kills the job after its cancel grace), the pipe closes and the watchdog acts:

1. it stops the process group of each engine child `ci` reported running (terraform, each in
   a group of its own: :mod:`branchenv.processes`; SIGINT, so it writes its state and releases
   its lock), then the suite's, if one runs (each proven first to be that group: its leader
   has the start time `ci` reported, or the leader is gone and members remain);
2. it tears the stack down through the one teardown path (marked reap-pending, destroyed,
   transient failures retried, then the leak check), once `ci` reported provisioning had
   started; the rails are checked again first (never a stack branchenv does not manage);
3. it writes what it did to the run's report dir (:data:`REPORT_JSON`, and ``summary.md``
   when `ci` died before writing one), and exits.

`ci` runs with ``--keep`` arm it for the suite only: a crash kills the suite's group and
leaves the stack to its TTL, as `--keep` asks. The watchdog detaches twice (a session of its
own, then a second fork whose parent exits), so a runner that kills `ci`'s process tree or
group does not reach it; its log is ``watchdog.log`` in the report dir. It imports nothing of
branchenv's but this module until it must act.

Run as ``python -m branchenv.harness.watchdog`` (the spec comes as the first line on stdin);
:class:`Watchdog` is `ci`'s side.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from branchenv import detached

if TYPE_CHECKING:
    from branchenv.config import Settings

REPORT_JSON = "watchdog.json"
LOG = "watchdog.log"
SUITE_GRACE_S = 5.0
"""How long the suite's group gets after SIGTERM before SIGKILL."""
ENGINE_GRACE_S = 60.0
"""How long an engine child's group (terraform) gets after SIGINT before SIGKILL: stopping
gracefully, it writes its state and releases the state lock the teardown then takes."""
ARM_TIMEOUT_S = 30.0
"""How long `ci` waits for the watchdog to say it is armed."""
NO_GUARANTEE = "a crash of this run would leave the stack to its TTL (or `branchenv reap`)"


@dataclasses.dataclass(frozen=True)
class WatchdogSpec:
    """What the watchdog needs to act for one `ci` run. Sent over the pipe (never in argv:
    settings may name a backend URL)."""

    ci_pid: int
    ci_start: int | None
    settings: Settings
    branch: str
    stack: str
    target: str
    engine: str
    report_dir: str
    program: str | None = None
    """The configured program's name `ci` was given (None: the settings' default)."""
    keep: bool = False
    """`--keep`: a crash kills the suite's group, never tears the stack down."""
    pooled: bool = False
    """The run claimed a pool stack: a crash kills the suite's group and leaves the stack to
    its pool (`branchenv reap` releases it once its claim expires; the watchdog cannot, that
    needs the pool's claim)."""

    def encode(self) -> str:
        return detached.encode(self)

    @classmethod
    def decode(cls, line: str) -> WatchdogSpec:
        return detached.decode(line, cls)


# --- processes, proven by /proc ---------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` from the state on (field 3 onward)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    return text.rsplit(")", 1)[-1].split()


def start_time(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot): tells a reused pid apart."""
    fields = _stat(pid) if pid > 0 else None
    return int(fields[19]) if fields and len(fields) > 19 else None


def alive(pid: int, started: int | None) -> bool:
    """Whether ``pid`` runs (a zombie does not) and is the process that started at
    ``started`` (None: not checked)."""
    fields = _stat(pid) if pid > 0 else None
    if not fields or fields[0] in ("Z", "X"):
        return False
    return started is None or start_time(pid) == started


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields and len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def kill_suite_group(
    pgid: int,
    leader_start: int | None,
    *,
    grace_s: float = SUITE_GRACE_S,
    first: signal.Signals = signal.SIGTERM,
) -> str:
    """Stop the suite's (or an engine child's) process group, only when it provably is that
    group: its leader runs with the start time `ci` reported, or the leader is gone and members
    remain (Linux never hands out a pid that is still some group's id). ``first`` (SIGTERM),
    then SIGKILL after ``grace_s``. What happened, in a word: refused | gone | not-ours |
    terminated | killed."""
    if pgid <= 1 or pgid == os.getpgrp():
        return "refused"
    members = group_members(pgid)
    if not members:
        return "gone"
    if pgid in members and (leader_start is None or start_time(pgid) != leader_start):
        return "not-ours"
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, first)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not group_members(pgid):
            return "terminated"
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    for _ in range(50):
        if not group_members(pgid):
            break
        time.sleep(0.1)
    return "killed"


# --- ci's side -------------------------------------------------------------------------------


class Watchdog:
    """`ci`'s handle on its watchdog: :meth:`arm` starts it, :meth:`tell` reports progress,
    :meth:`disarm` stands it down. Never raises once armed: a watchdog that is gone costs the
    guarantee (said once), never the run."""

    def __init__(self, pid: int, pipe: IO[str], say: Callable[[str], None]) -> None:
        self.pid = pid
        self._pipe: IO[str] | None = pipe
        self._say = say

    @classmethod
    def arm(
        cls,
        spec: WatchdogSpec,
        *,
        env: Mapping[str, str],
        say: Callable[[str], None],
    ) -> Watchdog | None:
        """Start the watchdog for ``spec``; None (said) when it cannot start: the run goes on
        without the guarantee."""
        try:
            encoded = spec.encode()
        except Exception as exc:  # settings that cannot travel: the run goes on, said
            say(f"warning: no watchdog (its spec: {type(exc).__name__}: {exc}); {NO_GUARANTEE}")
            return None
        # An earlier run's report must never pass for this run's.
        with contextlib.suppress(OSError):
            (Path(spec.report_dir) / REPORT_JSON).unlink(missing_ok=True)
        try:
            log = (Path(spec.report_dir) / LOG).open("w", encoding="utf-8")
        except OSError as exc:
            say(f"warning: no watchdog ({LOG}: {exc.strerror}); {NO_GUARANTEE}")
            return None
        try:
            stdin, line = detached.start(
                "branchenv.harness.watchdog",
                encoded,
                cwd=spec.settings.project_dir,
                env=env,
                log=log,
                timeout_s=ARM_TIMEOUT_S,
                keep_stdin=True,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            say(f"warning: no watchdog ({exc}); {NO_GUARANTEE}")
            return None
        finally:
            log.close()
        if not line.startswith("armed "):
            say(f"warning: the watchdog did not start (see {LOG}); {NO_GUARANTEE}")
            with contextlib.suppress(OSError):
                stdin.close()
            return None
        pid = int(line.split()[1])
        say(f"watchdog {pid} armed: if this run dies, it tears {spec.stack} down")
        return cls(pid, stdin, say)

    def suite(self, pid: int | None) -> None:
        """The suite's pytest process started (its pid, which leads its process group) or is
        done (None)."""
        if pid is None:
            self.tell("suite-done")
        else:
            self.tell("suite", pgid=pid, start=start_time(pid))

    def child_started(self, pid: int) -> None:
        """An engine child started, leading its own group (a :class:`ChildListener`)."""
        self.tell("engine", pgid=pid, start=start_time(pid))

    def child_ended(self, pid: int) -> None:
        """That engine child ended."""
        self.tell("engine-done", pgid=pid)

    def tell(self, event: str, **fields: Any) -> None:
        """Report progress: ``provision``; ``suite`` with ``pgid`` and ``start``;
        ``suite-done``; ``engine`` with ``pgid`` and ``start``, ``engine-done`` with ``pgid``;
        ``teardown``."""
        self._send({"event": event, **fields})

    def disarm(self, reason: str) -> None:
        """The run finished (or keeps its stack): the watchdog exits without acting."""
        self._send({"event": "disarm", "reason": reason})
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()

    def _send(self, message: dict[str, Any]) -> None:
        if self._pipe is None:
            return
        try:
            self._pipe.write(json.dumps(message) + "\n")
            self._pipe.flush()
        except (OSError, ValueError):
            self._pipe = None
            self._say(f"warning: the watchdog {self.pid} is gone; {NO_GUARANTEE}")


# --- the watchdog process --------------------------------------------------------------------


def _log(line: str) -> None:
    stamp = dt.datetime.now(dt.UTC).strftime("%H:%M:%S")
    print(f"{stamp} watchdog {os.getpid()}: {line}", file=sys.stderr, flush=True)


@dataclasses.dataclass
class Seen:
    """What `ci` said before it went silent."""

    phase: str = "armed"
    provisioning: bool = False
    suite_pgid: int | None = None
    suite_start: int | None = None
    claimed: bool = False
    """The run claimed a pool stack (left to its pool, like ``WatchdogSpec.pooled``)."""
    engine_groups: dict[int, int | None] = dataclasses.field(default_factory=dict)
    """The engine children running (each leads its group): pgid -> its leader's start time."""


POLL_S = 1.0
"""How often the watchdog looks whether `ci` still runs while its pipe stays open (a child
that `ci` forked without exec holds the pipe too, so `ci`'s death alone may close nothing)."""


def read_line(fd: int) -> str:
    """One line from ``fd``, read a byte at a time so nothing after it is taken from the pipe
    (the rest is read by :func:`messages`)."""
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", errors="replace")


def messages(fd: int, still_there: Callable[[], bool]) -> Iterator[str]:
    """The lines `ci` writes to ``fd``, until the pipe closes or ``still_there()`` says `ci` is
    gone (looked at every :data:`POLL_S` while nothing comes)."""
    pending = b""
    while True:
        ready, _, _ = select.select([fd], [], [], POLL_S)
        if not ready:
            if not still_there():
                return
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.decode("utf-8", errors="replace")


def listen(lines: Iterable[str]) -> tuple[Seen, str | None]:
    """Read `ci`'s messages until it disarms (its reason) or they end (None). A line that is
    not a message is skipped: only a disarm stands the watchdog down."""
    seen = Seen()
    for raw in lines:
        try:
            message = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(message, dict):
            continue
        event = message.get("event")
        if event == "disarm":
            return seen, str(message.get("reason") or "disarmed")
        if event == "provision":
            seen.provisioning = True
        elif event == "claimed":
            seen.claimed = True
        elif event == "suite":
            with contextlib.suppress(TypeError, ValueError):
                seen.suite_pgid = int(message["pgid"])
                start = message.get("start")
                seen.suite_start = int(start) if start is not None else None
        elif event == "suite-done":
            seen.suite_pgid = None
        elif event == "engine":
            with contextlib.suppress(KeyError, TypeError, ValueError):
                start = message.get("start")
                seen.engine_groups[int(message["pgid"])] = int(start) if start else None
            continue  # an engine child is no phase of the run
        elif event == "engine-done":
            with contextlib.suppress(KeyError, TypeError, ValueError):
                seen.engine_groups.pop(int(message["pgid"]), None)
            continue
        if isinstance(event, str):
            seen.phase = event
    return seen, None


def _teardown(spec: WatchdogSpec) -> dict[str, Any]:
    """The stack's teardown through the one teardown path (as `ci`'s own); a dict for the
    report."""
    from branchenv import provision
    from branchenv.errors import BranchenvError
    from branchenv.harness.teardown import INTERACTIVE, destroy_stack

    try:
        ctx = provision.resolve(
            spec.settings,
            branch=spec.branch,
            target=spec.target,
            engine=spec.engine,
            start_local_cloud=False,
            program=spec.program,
        )
        if ctx.names.stack != spec.stack:
            return {
                "status": "refused",
                "error": f"branch {spec.branch!r} now resolves to {ctx.names.stack}, not "
                f"{spec.stack}: left alone",
            }
        metadata = provision.check_may_manage(ctx)  # the rails again: never an unmanaged stack
        done = destroy_stack(
            ctx.engine,
            stack=ctx.names.stack,
            program=ctx.program,
            target=ctx.target,
            metadata=metadata,
            retry=INTERACTIVE,
            on_output=_log,
        )
    except BranchenvError as exc:
        return {"status": "failed", "error": str(exc)}
    except Exception as exc:  # said in the report: the watchdog's one job must not traceback
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    return {
        "status": done.status,
        "attempts": done.attempts,
        "deleted": done.deleted,
        "duration_s": round(done.duration_s, 3),
        "reap_pending": done.reap_pending,
        "failed": list(done.failed),
        "leaked": list(done.leaked),
        "leak_check": done.leak_check,
        "error": done.error,
    }


def _summary(spec: WatchdogSpec, report: Mapping[str, Any]) -> str:
    td = report.get("teardown") or {}
    leaked = td.get("leaked") or []
    teardown = td.get("status", "not needed (nothing was provisioned)")
    if spec.keep and report.get("provisioning"):
        teardown = "kept (--keep): the stack stays until its TTL"
    elif report.get("pooled") and report.get("provisioning"):
        teardown = (
            "left to its pool: `branchenv reap` releases a claimed stack once its claim expires"
        )
    lines = [
        "## ❌ branchenv ci: killed",
        "",
        f"`ci` (pid {spec.ci_pid}) died during {report['phase']} without finishing; its "
        f"watchdog (pid {os.getpid()}) took over.",
        "",
        "| | |",
        "| --- | --- |",
        f"| stack | `{spec.stack}` (branch `{spec.branch}`, target {spec.target}) |",
        f"| suite | {report.get('suite') or 'not running'} |",
        f"| teardown | {teardown}" + (f": {td['error']}" if td.get("error") else "") + " |",
    ]
    if td:
        lines.append(f"| leaked | {len(leaked)} |")
        lines += [f"| | `{arn}` |" for arn in leaked[:20]]
    return "\n".join(lines) + "\n"


def act(spec: WatchdogSpec, seen: Seen) -> dict[str, Any]:
    """`ci` died: stop its suite, tear its stack down, write the report; the report. SIGTERM
    no longer stops the watchdog from here on: its teardown is shielded, as `ci`'s is."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _log(f"ci (pid {spec.ci_pid}) died during {seen.phase} without disarming me")
    report: dict[str, Any] = {
        "ci_pid": spec.ci_pid,
        "stack": spec.stack,
        "phase": seen.phase,
        "provisioning": seen.provisioning,
        "started_at": dt.datetime.now(dt.UTC).isoformat(),
        "suite": None,
        "engine": [],
        "teardown": None,
    }
    # First the engine's children (a terraform apply ci left running would go on creating
    # what the teardown deletes, holding the state lock it needs).
    for pgid, start in sorted(seen.engine_groups.items()):
        what = kill_suite_group(pgid, start, grace_s=ENGINE_GRACE_S, first=signal.SIGINT)
        report["engine"].append(f"process group {pgid}: {what}")
        _log(f"engine child: process group {pgid}: {what}")
    if seen.suite_pgid is not None:
        what = kill_suite_group(seen.suite_pgid, seen.suite_start)
        report["suite"] = f"process group {seen.suite_pgid}: {what}"
        _log(report["suite"])
    pooled = spec.pooled or seen.claimed
    report["pooled"] = pooled
    if seen.provisioning and not (spec.keep or pooled):
        report["teardown"] = _teardown(spec)
        _log(f"teardown of {spec.stack}: {report['teardown'].get('status')}")
    report["finished_at"] = dt.datetime.now(dt.UTC).isoformat()
    out = Path(spec.report_dir)
    with contextlib.suppress(OSError):
        summary = out / "summary.md"
        if not summary.exists():
            summary.write_text(_summary(spec, report), encoding="utf-8")
        # Last, and whole or not at all: its presence says the watchdog is done.
        partial = out / f".{REPORT_JSON}.{os.getpid()}"
        partial.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
        partial.replace(out / REPORT_JSON)
    return report


def watch(spec: WatchdogSpec, fd: int) -> dict[str, Any] | None:
    """Wait for `ci`; when it dies without disarming, act and return the report (None when
    it disarmed)."""
    seen, disarmed = listen(messages(fd, lambda: alive(spec.ci_pid, spec.ci_start)))
    if disarmed is not None:
        _log(f"disarmed ({disarmed})")
        return None
    while alive(spec.ci_pid, spec.ci_start):  # the pipe closed first: let ci end
        time.sleep(0.2)
    return act(spec, seen)


def main() -> int:
    """The watchdog process: read the spec, detach, say ``armed <pid>``, watch stdin."""
    spec = WatchdogSpec.decode(read_line(0))
    # Nobody's child in `ci`'s process tree (a runner that kills that tree does not reach it).
    detached.detach("armed")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    watch(spec, 0)
    return 0


if __name__ == "__main__":
    # Run as the importable module, not as ``__main__``: the spec's class must be the one
    # `ci` pickled.
    from branchenv.harness.watchdog import main as _main

    sys.exit(_main())
