"""The inprocess engine's state: one JSON file per stack, and one lock file per stack.

The state lists resources in creation order with their ids, outputs and dependencies, plus the
stack's outputs and metadata tags. It is rewritten atomically after every resource, so a crash
mid-``up`` leaves a state that ``destroy`` can still clean up from.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from branchenv.errors import StackLocked

STATE_VERSION = 1


@dataclasses.dataclass
class ResourceEntry:
    urn: str
    type: str
    name: str
    id: str
    outputs: dict[str, Any]
    dependencies: list[str]
    provider: str = ""
    region: str = ""


@dataclasses.dataclass
class StackState:
    project: str
    stack: str
    target: dict[str, Any]
    tags: dict[str, str]
    resources: list[ResourceEntry]
    outputs: dict[str, Any]
    updated_at: str = ""
    status: str = "ok"  # "ok" | "failed" (last operation failed midway)

    def to_json(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StackState:
        resources = [ResourceEntry(**r) for r in data.get("resources", [])]
        return cls(
            project=data["project"],
            stack=data["stack"],
            target=data.get("target", {}),
            tags=data.get("tags", {}),
            resources=resources,
            outputs=data.get("outputs", {}),
            updated_at=data.get("updated_at", ""),
            status=data.get("status", "ok"),
        )


class StateStore:
    """State files under ``<root>/<project>/<stack>.json``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, project: str, stack: str) -> Path:
        return self.root / project / f"{stack}.json"

    def load(self, project: str, stack: str) -> StackState | None:
        try:
            data = json.loads(self.path(project, stack).read_text())
        except FileNotFoundError:
            return None
        return StackState.from_json(data)

    def save(self, state: StackState) -> None:
        path = self.path(state.project, state.stack)
        path.parent.mkdir(parents=True, exist_ok=True)
        state.updated_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        tmp = path.with_suffix(f".json.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(state.to_json(), indent=1, default=_jsonable))
        tmp.replace(path)

    def remove(self, project: str, stack: str) -> bool:
        path = self.path(project, stack)
        existed = path.exists()
        path.unlink(missing_ok=True)
        return existed

    def list(self, project: str) -> list[StackState]:
        folder = self.root / project
        if not folder.is_dir():
            return []
        states = []
        for p in sorted(folder.glob("*.json")):
            with contextlib.suppress(ValueError, KeyError, OSError):
                states.append(StackState.from_json(json.loads(p.read_text())))
        return states

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
