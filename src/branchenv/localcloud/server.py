"""Start, stop and report on the local cloud as a background process.

The process (:mod:`branchenv.localcloud.serve`) outlives the command that started it. Its files
live in ``<state_dir>/localcloud/``: ``server.pid``, ``server.json`` (ports and URLs, written by
the process once it listens), ``server.log``, and ``server.alive``, a file the server holds an
exclusive lock on for its whole life (so a running server is seen even when the other files are
lost or garbled). Start and stop take a file lock, so two commands racing to start share one
server. A pidfile whose process is gone (or is not ours) is stale and is cleared on the next
start.

Every pid read from a file is input: only a number in 2..pid_max is taken, and a signal is only
ever sent to a pid that is provably our server (its ``/proc/<pid>/cmdline`` runs this module for
this state dir), re-checked right before each signal. Where that cannot be proven (no /proc),
the process is not ours.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from branchenv import extras
from branchenv.errors import LocalCloudError
from branchenv.localcloud import fidelity
from branchenv.targets import Target, is_loopback_host

_CMD_MARKER = "branchenv.localcloud.serve"


@dataclasses.dataclass(frozen=True)
class CloudStatus:
    """The local cloud's state as seen from outside the process."""

    running: bool
    pid: int | None
    port: int | None
    functions_port: int | None
    endpoint_url: str | None
    functions_url: str | None
    started_at: str | None
    state_dir: Path
    log_path: Path
    note: str | None = None
    atomic_conditional_writes: bool = False
    """The server checks and applies S3 conditional writes as one step (a server started by
    an older branchenv may not: see :mod:`branchenv.localcloud.fidelity`)."""

    def target(self, region: str = "us-east-1") -> Target:
        """The ``local`` target for this running cloud."""
        if not self.running or self.endpoint_url is None:
            raise LocalCloudError(
                "the local cloud is not running; start it with `branchenv cloud start`"
            )
        return Target(
            name="local",
            region=region,
            endpoint_url=self.endpoint_url,
            functions_url=self.functions_url,
            atomic_conditional_writes=self.atomic_conditional_writes,
        )


_PID_TEXT = re.compile(r"[0-9]{1,10}")
_DEFAULT_PID_MAX = 4_194_304  # the kernel's ceiling (PID_MAX_LIMIT on 64-bit)


def _pid_max() -> int:
    try:
        return int(Path("/proc/sys/kernel/pid_max").read_text().strip())
    except (OSError, ValueError):
        return _DEFAULT_PID_MAX


def parse_pid(value: object) -> int | None:
    """A pid read from a file, or None unless it is a plain number in 2..pid_max.

    0, -1 and negative numbers address process groups or every process, and 1 is init: none of
    them is ever a local cloud."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        pid = value
    elif isinstance(value, str) and _PID_TEXT.fullmatch(value.strip()):
        pid = int(value.strip())
    else:
        return None
    if pid <= 1 or pid > _pid_max():
        return None
    return pid


def _pid_alive(pid: int) -> bool:
    """True when ``pid`` runs (a zombie, exited but not yet reaped, counts as gone)."""
    if parse_pid(pid) is None:
        return False
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap our own exited child, if it is one
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _cmdline(pid: int) -> list[str] | None:
    """The process's argv, or None when it cannot be read (gone, no /proc, not permitted)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.decode("utf-8", "replace").split("\0")


def _is_our_server(pid: int, state_dir: Path) -> bool:
    """True only when ``pid`` provably is the local cloud process of ``state_dir``: its argv
    runs this module with this state dir (a reused pid running another project's local cloud
    is not ours). An argv that cannot be read proves nothing: not ours."""
    if parse_pid(pid) is None or pid == os.getpid():
        return False
    args = _cmdline(pid)
    if args is None or _CMD_MARKER not in args:
        return False
    return str(state_dir) in args and _pid_alive(pid)


def _signal_server(pid: int, sig: int, state_dir: Path) -> bool:
    """Send ``sig`` to ``pid`` if, right now, it provably is our server; the only place this
    module signals a process. False when it was not sent."""
    if not _is_our_server(pid, state_dir):
        return False
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _flock_holder(path: Path) -> int | None:
    """The pid holding a flock on ``path``, from /proc/locks (None when not found)."""
    try:
        st = path.stat()
        key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == key:
            return parse_pid(fields[4])
    return None


def loopback_url(value: object) -> str | None:
    """``value`` when it is an ``http://`` URL on a loopback address with a port, else None."""
    if not isinstance(value, str):
        return None
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme != "http" or port is None or not is_loopback_host(parts.hostname or ""):
        return None
    return value


def _answers(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bool(200 <= resp.status < 500)
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (OSError, ValueError):
        return False


class LocalCloud:
    """The local cloud under ``state_dir`` (the project's ``.branchenv``)."""

    def __init__(
        self,
        state_dir: Path,
        *,
        start_timeout_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.dir = Path(state_dir) / "localcloud"
        self.start_timeout_s = start_timeout_s
        self._sleep = sleep

    @property
    def pid_path(self) -> Path:
        return self.dir / "server.pid"

    @property
    def info_path(self) -> Path:
        return self.dir / "server.json"

    @property
    def log_path(self) -> Path:
        return self.dir / "server.log"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / "server.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @property
    def alive_path(self) -> Path:
        return self.dir / "server.alive"

    def _read_pid(self) -> int | None:
        try:
            return parse_pid(self.pid_path.read_text(errors="replace"))
        except OSError:
            return None

    def _read_info(self) -> dict[str, Any]:
        try:
            data = json.loads(self.info_path.read_bytes())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _dir_held(self) -> bool:
        """True while a server process holds this state dir's liveness lock."""
        try:
            fd = os.open(self.alive_path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)  # closing drops the probe's own shared lock
        return False

    def _released_soon(self, timeout_s: float = 5.0) -> bool:
        """Wait for the liveness lock to be let go: a server that was just killed holds it
        until its last thread has exited, a moment after its pid shows as gone."""
        from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

        retrying = Retrying(
            stop=stop_after_delay(timeout_s),
            wait=wait_fixed(0.05),
            retry=retry_if_result(bool),
            sleep=self._sleep,
        )
        try:
            retrying(self._dir_held)
        except RetryError:
            return False
        return True

    def _server_pid(self) -> int | None:
        """The pid of this state dir's server, from whichever record proves it: the pidfile,
        server.json, the liveness file, or the liveness lock's holder."""
        candidates: list[int | None] = [self._read_pid(), parse_pid(self._read_info().get("pid"))]
        with contextlib.suppress(OSError):
            candidates.append(parse_pid(self.alive_path.read_text(errors="replace")))
        if self.alive_path.exists():
            candidates.append(_flock_holder(self.alive_path))
        for pid in candidates:
            if pid is not None and _is_our_server(pid, self.dir):
                return pid
        return None

    def _clear(self) -> None:
        for p in (self.pid_path, self.info_path):
            p.unlink(missing_ok=True)

    def status(self) -> CloudStatus:
        """Report whether the local cloud runs and answers, with its ports and URLs."""
        pid = self._server_pid()
        info = self._read_info()
        endpoint = loopback_url(info.get("endpoint_url"))
        running = (
            pid is not None
            and parse_pid(info.get("pid")) == pid
            and endpoint is not None
            and loopback_url(info.get("functions_url")) is not None
            and _answers(f"{endpoint}/moto-api/")
        )
        note = None
        recorded = self._read_pid()
        if not running and (recorded is not None or self.pid_path.exists()):
            shown = recorded if recorded is not None else "unreadable"
            note = f"stale pidfile (pid {shown} is not a running local cloud)"
        return CloudStatus(
            running=running,
            pid=pid if running else None,
            port=info.get("port") if running else None,
            functions_port=info.get("functions_port") if running else None,
            endpoint_url=endpoint if running else None,
            functions_url=info.get("functions_url") if running else None,
            started_at=info.get("started_at") if running else None,
            state_dir=self.dir,
            log_path=self.log_path,
            note=note,
            atomic_conditional_writes=running
            and info.get(fidelity.ATOMIC_CONDITIONAL_WRITES) is True,
        )

    def start(self) -> CloudStatus:
        """Start the local cloud unless it already runs; wait until it answers."""
        # Before anything is written: a core-only install has no moto to serve with.
        extras.require("local", "the local cloud")
        with self._locked():
            current = self.status()
            if current.running:
                if self._read_pid() != current.pid:
                    self.pid_path.write_text(str(current.pid))  # repair a lost/garbled pidfile
                return dataclasses.replace(current, note="already running")
            stale_note = current.note
            old_pid = self._server_pid()
            if old_pid is not None:
                if parse_pid(self._read_info().get("pid")) != old_pid:
                    raise LocalCloudError(
                        f"a local cloud (pid {old_pid}) already holds {self.dir} but its "
                        "server.json is missing or unreadable; run `branchenv cloud stop`, then "
                        "start again"
                    )
                # Ours but not answering: a wedged server. Stop it before starting anew.
                self._terminate(old_pid)
            elif self._dir_held() and not self._released_soon():
                raise LocalCloudError(
                    f"a local cloud process already holds {self.dir} but its pid cannot be "
                    f"verified (pidfile and server.json unreadable); stop the process holding "
                    f"{self.alive_path} by hand, then start again"
                )
            self._clear()
            log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-m", _CMD_MARKER, "--state-dir", str(self.dir)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # outlives this command and its signals
                    cwd=self.dir,
                    env=_child_env(),
                )
            finally:
                log.close()
            self.pid_path.write_text(str(proc.pid))
            try:
                status = self._wait_ready(proc)
            except LocalCloudError:
                self._terminate(proc.pid)
                self._clear()
                raise
            return dataclasses.replace(
                status, note=f"started; cleared {stale_note}" if stale_note else "started"
            )

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> CloudStatus:
        from tenacity import (
            RetryError,
            Retrying,
            retry_if_result,
            stop_after_attempt,
            stop_after_delay,
            wait_exponential,
        )

        def probe() -> CloudStatus | None:
            if proc.poll() is not None:
                raise LocalCloudError(
                    f"the local cloud exited with code {proc.returncode} while starting; "
                    f"see {self.log_path}"
                )
            status = self.status()
            return status if status.running else None

        retrying = Retrying(
            stop=stop_after_delay(self.start_timeout_s) | stop_after_attempt(400),
            wait=wait_exponential(multiplier=0.02, max=0.5),
            retry=retry_if_result(lambda s: s is None),
            sleep=self._sleep,
        )
        try:
            retrying(probe)
        except RetryError as exc:
            raise LocalCloudError(
                f"the local cloud did not answer within {self.start_timeout_s:.0f} s; "
                f"see {self.log_path}"
            ) from exc
        status = self.status()
        if not status.running:
            raise LocalCloudError(
                f"the local cloud did not answer within {self.start_timeout_s:.0f} s; "
                f"see {self.log_path}"
            )
        return status

    def _terminate(self, pid: int, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``: each only if ``pid`` is still provably
        our server at that moment (a pid reused in between is left alone)."""
        if not _signal_server(pid, signal.SIGTERM, self.dir):
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                break
            time.sleep(0.05)
        else:
            _signal_server(pid, signal.SIGKILL, self.dir)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)

    def stop(self) -> CloudStatus:
        """Stop the local cloud; stopping a stopped cloud is fine."""
        with self._locked():
            pid = self._server_pid()
            note = "not running"
            if pid is not None:
                self._terminate(pid)
                note = f"stopped pid {pid}"
            elif self.pid_path.exists():
                recorded = self._read_pid()
                shown = recorded if recorded is not None else "unreadable"
                note = f"cleared stale pidfile (pid {shown})"
            self._clear()
            return dataclasses.replace(self.status(), note=note)

    def ensure(self, region: str = "us-east-1") -> Target:
        """Start the local cloud if needed and return its target."""
        return self.start().target(region)


def _child_env() -> dict[str, str]:
    # The local cloud never needs real credentials: drop them so nothing can leak to a real
    # account through it.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PULUMI_"))}
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
