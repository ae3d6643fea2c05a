"""Start, stop and report on the local cloud as a background process.

The process (:mod:`branchenv.localcloud.serve`) outlives the command that started it. Its files
live in ``<state_dir>/localcloud/``: ``server.pid``, ``server.json`` (ports and URLs, written by
the process once it listens), ``server.log``. Start and stop take a file lock, so two commands
racing to start share one server. A pidfile whose process is gone (or is not ours) is stale and
is cleared on the next start.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from branchenv.errors import LocalCloudError
from branchenv.targets import Target

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
        )


def _pid_alive(pid: int) -> bool:
    """True when ``pid`` runs (a zombie, exited but not yet reaped, counts as gone)."""
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


def _is_our_server(pid: int, state_dir: Path | None = None) -> bool:
    """True when ``pid`` is a local cloud process (of ``state_dir``, when given: a reused pid
    running another project's local cloud is not ours to stop)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return _pid_alive(pid)  # no /proc: trust the pid
    if _CMD_MARKER not in args:
        return False
    return state_dir is None or str(state_dir) in args


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

    def _read_pid(self) -> int | None:
        try:
            return int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None

    def _read_info(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.info_path.read_text()))
        except (OSError, ValueError):
            return {}

    def _clear(self) -> None:
        for p in (self.pid_path, self.info_path):
            p.unlink(missing_ok=True)

    def status(self) -> CloudStatus:
        """Report whether the local cloud runs and answers, with its ports and URLs."""
        pid = self._read_pid()
        info = self._read_info()
        running = (
            pid is not None
            and _is_our_server(pid, self.dir)
            and info.get("pid") == pid
            and _answers(f"{info.get('endpoint_url')}/moto-api/")
        )
        note = None
        if pid is not None and not running:
            note = f"stale pidfile (pid {pid} is not a running local cloud)"
        return CloudStatus(
            running=running,
            pid=pid if running else None,
            port=info.get("port") if running else None,
            functions_port=info.get("functions_port") if running else None,
            endpoint_url=info.get("endpoint_url") if running else None,
            functions_url=info.get("functions_url") if running else None,
            started_at=info.get("started_at") if running else None,
            state_dir=self.dir,
            log_path=self.log_path,
            note=note,
        )

    def start(self) -> CloudStatus:
        """Start the local cloud unless it already runs; wait until it answers."""
        with self._locked():
            current = self.status()
            if current.running:
                return dataclasses.replace(current, note="already running")
            stale_note = current.note
            old_pid = self._read_pid()
            if old_pid is not None and _pid_alive(old_pid) and _is_our_server(old_pid, self.dir):
                # Ours but not answering: a wedged server. Stop it before starting anew.
                self._terminate(old_pid)
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
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                break
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)

    def stop(self) -> CloudStatus:
        """Stop the local cloud; stopping a stopped cloud is fine."""
        with self._locked():
            pid = self._read_pid()
            note = "not running"
            if pid is not None and _pid_alive(pid) and _is_our_server(pid, self.dir):
                self._terminate(pid)
                note = f"stopped pid {pid}"
            elif pid is not None:
                note = f"cleared stale pidfile (pid {pid})"
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
