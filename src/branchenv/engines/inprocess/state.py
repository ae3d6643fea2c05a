"""The inprocess engine's state: one JSON file per stack, one lock file per stack, and a journal
of pending operations inside the state (Pulumi's ``pending_operations``).

The state lists resources in creation order with their ids, inputs, outputs, effective tags and
dependencies, plus the stack's outputs and metadata tags. Before each create or delete the
engine journals an intent (the physical name is chosen *before* the call) and settles it after,
so after a crash at any point the next operation knows every resource that may exist.

Every write is atomic and safe under concurrent writers, threads and processes alike: a unique
temp file in the same directory, flushed and fsynced, then renamed over the state (a reader sees
the old file or the new one, never part of one). The previous state is kept as ``<stack>.json.bak``
(a hard link, no copy), so a damaged file has a last good copy one step behind it.

Readers are forward compatible: keys this version does not know are kept, at every level, and
written back unchanged. A file that cannot be read (truncated, not JSON, from a newer format
version) raises :class:`StateUnreadable`: the stack needs attention, and nothing acts on it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from branchenv.errors import EngineError, StackLocked

STATE_VERSION = 2
"""1: resources with outputs only. 2: + inputs, tags, pending operations, replaced-old entries."""


class StateUnreadable(EngineError):
    """A stack's state file exists but cannot be read; the stack needs attention."""

    def __init__(self, message: str, *, path: Path, reason: str) -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason


def _split(data: dict[str, Any], known: set[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    return (
        {k: v for k, v in data.items() if k in known},
        {k: v for k, v in data.items() if k not in known},
    )


@dataclasses.dataclass
class ResourceEntry:
    """One resource as the state knows it. ``inputs`` is None for entries written by format 1
    (their outputs stand in for them); ``delete`` marks the old half of a create-before-delete
    replacement, still to be deleted."""

    urn: str
    type: str
    name: str
    id: str
    outputs: dict[str, Any]
    dependencies: list[str]
    provider: str = ""
    region: str = ""
    inputs: dict[str, Any] | None = None
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    autonamed: bool = False
    delete: bool = False
    protect: bool = False
    retain_on_delete: bool = False
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"
        }
        return {**self.extra, **data}

    @classmethod
    def from_json(cls, data: Any) -> ResourceEntry:
        if not isinstance(data, dict):
            raise ValueError(f"a resource entry is {type(data).__name__}, not an object")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        mine, extra = _split(data, known)
        for key in ("urn", "type", "id"):
            if not isinstance(mine.get(key), str):
                raise ValueError(f"a resource entry has no {key!r}")
        mine.setdefault("name", mine["urn"].rsplit("::", 1)[-1])
        mine.setdefault("outputs", {})
        mine.setdefault("dependencies", [])
        if "tags" not in mine:  # format 1 kept the effective tags in the outputs only
            mine["tags"] = dict((mine["outputs"] or {}).get("tagsAll") or {})
        return cls(**mine, extra=extra)


@dataclasses.dataclass
class PendingOp:
    """An operation started but not settled: ``creating`` (``inputs`` name the physical
    resource, chosen before the call) or ``deleting`` (``id`` says which)."""

    op: str
    urn: str
    type: str
    name: str
    inputs: dict[str, Any]
    region: str
    id: str = ""
    started_at: str = ""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"
        }
        return {**self.extra, **data}

    @classmethod
    def from_json(cls, data: Any) -> PendingOp:
        if not isinstance(data, dict):
            raise ValueError("a pending operation is not an object")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        mine, extra = _split(data, known)
        for key in ("op", "urn", "type"):
            if not isinstance(mine.get(key), str):
                raise ValueError(f"a pending operation has no {key!r}")
        mine.setdefault("name", mine["urn"].rsplit("::", 1)[-1])
        mine.setdefault("inputs", {})
        mine.setdefault("region", "")
        return cls(**mine, extra=extra)


@dataclasses.dataclass
class StackState:
    project: str
    stack: str
    target: dict[str, Any]
    tags: dict[str, str]
    resources: list[ResourceEntry]
    outputs: dict[str, Any]
    updated_at: str = ""
    status: str = "ok"  # "ok" | "updating" | "destroying" | "failed"
    pending: list[PendingOp] = dataclasses.field(default_factory=list)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "version": STATE_VERSION,
            "project": self.project,
            "stack": self.stack,
            "target": self.target,
            "tags": self.tags,
            "resources": [r.to_json() for r in self.resources],
            "outputs": self.outputs,
            "updated_at": self.updated_at,
            "status": self.status,
            "pending": [p.to_json() for p in self.pending],
        }
        return {**self.extra, **data}

    @classmethod
    def from_json(cls, data: Any) -> StackState:
        if not isinstance(data, dict):
            raise ValueError(f"the file holds a JSON {type(data).__name__}, not an object")
        version = data.get("version", 1)
        if not isinstance(version, int) or isinstance(version, bool):
            raise ValueError(f"its format version is {version!r}, not a number")
        if version > STATE_VERSION:
            raise ValueError(
                f"it was written in format {version} by a newer branchenv (this one reads up to "
                f"{STATE_VERSION}); upgrade branchenv"
            )
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"} | {"version"}
        mine, extra = _split(data, known)
        for key in ("project", "stack"):
            if not isinstance(mine.get(key), str):
                raise ValueError(f"it has no {key!r}")
        tags = mine.get("tags") or {}
        if not isinstance(tags, dict):
            raise ValueError("its tags are not an object")
        return cls(
            project=mine["project"],
            stack=mine["stack"],
            target=mine.get("target") or {},
            tags={str(k): str(v) for k, v in tags.items()},
            resources=[ResourceEntry.from_json(r) for r in mine.get("resources") or []],
            outputs=mine.get("outputs") or {},
            updated_at=str(mine.get("updated_at") or ""),
            status=str(mine.get("status") or "ok"),
            pending=[PendingOp.from_json(p) for p in mine.get("pending") or []],
            extra=extra,
        )


@dataclasses.dataclass(frozen=True)
class Scanned:
    """One stack found in the store: its state, or why it cannot be read."""

    stack: str
    state: StackState | None
    problem: StateUnreadable | None


class StateStore:
    """State files under ``<root>/<project>/<stack>.json``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, project: str, stack: str) -> Path:
        return self.root / project / f"{stack}.json"

    def load(self, project: str, stack: str) -> StackState | None:
        """The stack's state; None when there is none; :class:`StateUnreadable` when the file
        exists but cannot be read."""
        path = self.path(project, stack)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._unreadable(stack, path, f"it cannot be opened: {exc.strerror}") from exc
        try:
            return StackState.from_json(json.loads(raw))
        except json.JSONDecodeError as exc:
            reason = f"not valid JSON at byte {exc.pos} of {len(raw)} (truncated?)"
            raise self._unreadable(stack, path, reason) from exc
        except UnicodeDecodeError as exc:
            raise self._unreadable(stack, path, "not UTF-8 text") from exc
        except (ValueError, TypeError) as exc:
            raise self._unreadable(stack, path, str(exc)) from exc

    @staticmethod
    def _unreadable(stack: str, path: Path, reason: str) -> StateUnreadable:
        backup = path.with_name(path.name + ".bak")
        restore = (
            f"restore the last good copy (`cp {backup} {path}`) or fix the file"
            if backup.is_file()
            else "restore it from a backup or fix the file"
        )
        return StateUnreadable(
            f"the state of stack {stack!r} ({path}) cannot be read: {reason}; {restore}, then "
            "re-run. branchenv does not act on a stack it cannot read (its resources keep their "
            "tags and stay until then)",
            path=path,
            reason=reason,
        )

    def save(self, state: StackState) -> None:
        """Write the state atomically (see the module docstring)."""
        path = self.path(state.project, state.stack)
        path.parent.mkdir(parents=True, exist_ok=True)
        state.updated_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        text = json.dumps(state.to_json(), indent=1, default=_jsonable)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
                fh.flush()
                # Rename alone survives a killed process; fsync makes the new file's content
                # reach the disk before it replaces the old one (a crash of the machine).
                os.fsync(fh.fileno())
            self._keep_backup(path)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @staticmethod
    def _keep_backup(path: Path) -> None:
        """Hard-link the current state as ``.bak`` (atomically: link to a temp name, rename)."""
        backup = path.with_name(path.name + ".bak")
        link = path.with_name(f".{path.name}.{secrets.token_hex(6)}.bak.tmp")
        try:
            os.link(path, link)
        except FileNotFoundError:
            return  # the first write: nothing to keep
        except OSError:
            return  # no hard links here: go without the backup rather than fail the write
        try:
            with contextlib.suppress(OSError):
                os.replace(link, backup)
        finally:
            # rename() of two links to one file does nothing and leaves the source (POSIX):
            # the backup already was this state, so the temp link just goes.
            with contextlib.suppress(OSError):
                os.unlink(link)

    def remove(self, project: str, stack: str) -> bool:
        path = self.path(project, stack)
        existed = path.exists()
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".bak").unlink(missing_ok=True)
        return existed

    def stacks(self, project: str) -> list[str]:
        """Names of the stacks with a state file (readable or not)."""
        folder = self.root / project
        if not folder.is_dir():
            return []
        return sorted(
            p.name[: -len(".json")] for p in folder.glob("*.json") if not p.name.startswith(".")
        )

    def scan(self, project: str) -> list[Scanned]:
        """Every stack of the project: its state, or why it cannot be read (never skipped)."""
        out = []
        for stack in self.stacks(project):
            try:
                state = self.load(project, stack)
            except StateUnreadable as exc:
                out.append(Scanned(stack=stack, state=None, problem=exc))
                continue
            if state is not None:
                out.append(Scanned(stack=stack, state=state, problem=None))
        return out

    def list(self, project: str) -> list[StackState]:
        """The readable states of the project's stacks (see :meth:`scan` for all of them)."""
        return [s.state for s in self.scan(project) if s.state is not None]

    def secret_digest(self, value: Any) -> str:
        """A keyed digest of a secret input, so a change is seen without the value ever being
        stored. The key lives beside the states (``.secret-key``, mode 0600), never in one."""
        key = self._secret_key()
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()

    def _secret_key(self) -> bytes:
        path = self.root / ".secret-key"
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes()
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
        return path.read_bytes()

    @contextlib.contextmanager
    def lock(
        self,
        project: str,
        stack: str,
        *,
        wait_s: float,
        on_wait: Callable[[str], None] | None = None,
    ) -> Iterator[None]:
        """Hold the stack's lock; wait up to ``wait_s`` for another holder, then StackLocked.
        ``on_wait`` hears once that the lock is busy and who holds it."""
        path = self.root / project / f"{stack}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+") as fh:
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    fh.seek(0)
                    holder = fh.read().strip() or "another process"
                    if on_wait is not None:
                        on_wait(
                            f"stack {stack!r} is locked by {holder}; waiting up to "
                            f"{wait_s:.0f} s for it"
                        )
                        on_wait = None
                    if time.monotonic() >= deadline:
                        raise StackLocked(
                            f"stack {stack!r} is locked by {holder} (an `up` or `down` in "
                            f"progress); waited {wait_s:.0f} s. Retry when it finishes"
                        ) from exc
                    time.sleep(0.1)
            try:
                fh.seek(0)
                fh.truncate()
                fh.write(f"pid {os.getpid()} since {time.strftime('%H:%M:%S')}")
                fh.flush()
                yield
            finally:
                fh.seek(0)
                fh.truncate()
                fh.flush()
                fcntl.flock(fh, fcntl.LOCK_UN)


def _jsonable(value: Any) -> Any:
    # Archives and other SDK objects in outputs are not state: drop them to their repr.
    return repr(value)
