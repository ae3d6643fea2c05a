"""The stack file: how `branchenv test` / `branchenv ci` hand a stack to the pytest process.

A small JSON document (``version`` 1) that the pytest plugin reads when given
``--branchenv-stack-file PATH`` or ``BRANCHENV_STACK_FILE``::

    {
      "version": 1,
      "stack": "feature-x-3f2a1c",
      "branch": "feature/x",
      "target": {"name": "local", "region": "us-east-1",
                 "endpoint_url": "http://127.0.0.1:4566", "functions_url": "http://..."},
      "outputs": {"endpoint": "http://...", "table_name": "...", ...},
      "metadata": {"branch": "feature/x", "owner": "...", ...},
      "settings": {"latency_p95_ms": 500},
      "ready_s": 0.42,
      "cost": null
    }

Standard library only: the plugin imports this in every pytest run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

STACK_FILE_VERSION = 1
STACK_FILE_ENV = "BRANCHENV_STACK_FILE"


class StackFileError(Exception):
    """A stack file that cannot be read; the message says which file and what to do."""


@dataclasses.dataclass(frozen=True)
class TargetInfo:
    """Where the stack lives (the fields of :class:`branchenv.targets.Target`)."""

    name: str
    region: str
    endpoint_url: str | None = None
    functions_url: str | None = None


@dataclasses.dataclass(frozen=True)
class StackInfo:
    """One branch stack as the tests see it."""

    stack: str
    branch: str
    target: TargetInfo
    outputs: dict[str, Any]
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    latency_p95_ms: int = 500
    ready_s: float | None = None
    cost: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STACK_FILE_VERSION,
            "stack": self.stack,
            "branch": self.branch,
            "target": dataclasses.asdict(self.target),
            "outputs": self.outputs,
            "metadata": self.metadata,
            "settings": {"latency_p95_ms": self.latency_p95_ms},
            "ready_s": self.ready_s,
            "cost": self.cost,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, source: str = "stack file") -> StackInfo:
        """Parse a stack file's document; raises :class:`StackFileError` naming what is wrong."""
        if not isinstance(data, Mapping):
            raise StackFileError(f"{source}: expected a JSON object")
        version = data.get("version")
        if version != STACK_FILE_VERSION:
            raise StackFileError(
                f"{source}: version {version!r} is not {STACK_FILE_VERSION}; rewrite it with "
                "this branchenv (`branchenv test` writes it)"
            )
        missing = [k for k in ("stack", "target", "outputs") if k not in data]
        if missing:
            raise StackFileError(
                f"{source}: missing {'key' if len(missing) == 1 else 'keys'} {', '.join(missing)}"
            )
        target = data["target"]
        if not isinstance(target, Mapping) or not target.get("name") or not target.get("region"):
            raise StackFileError(f"{source}: 'target' needs at least 'name' and 'region'")
        outputs = data["outputs"]
        if not isinstance(outputs, Mapping):
            raise StackFileError(f"{source}: 'outputs' must be an object")
        settings = data.get("settings") or {}
        try:
            p95 = int(settings.get("latency_p95_ms", 500))
        except (TypeError, ValueError):
            raise StackFileError(f"{source}: settings.latency_p95_ms must be an integer") from None
        ready = data.get("ready_s")
        return cls(
            stack=str(data["stack"]),
            branch=str(data.get("branch") or data["stack"]),
            target=TargetInfo(
                name=str(target["name"]),
                region=str(target["region"]),
                endpoint_url=target.get("endpoint_url"),
                functions_url=target.get("functions_url"),
            ),
            outputs=dict(outputs),
            metadata=dict(data.get("metadata") or {}),
            latency_p95_ms=p95,
            ready_s=float(ready) if ready is not None else None,
            cost=data.get("cost"),
        )


def write_stack_file(info: StackInfo, path: Path) -> Path:
    """Write ``info`` to ``path`` atomically (readers never see half a file); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".stack-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(info.to_json(), fh, indent=2, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_stack_file(path: Path) -> StackInfo:
    """Read a stack file; raises :class:`StackFileError` with a one-line reason."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise StackFileError(
            f"stack file {path} does not exist; run the suite with `branchenv test` (it writes "
            f"one) or fix --branchenv-stack-file / {STACK_FILE_ENV}"
        ) from None
    except OSError as exc:
        raise StackFileError(f"stack file {path} cannot be read: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise StackFileError(f"stack file {path} is not valid JSON ({exc})") from None
    return StackInfo.from_json(data, source=f"stack file {path}")


def metadata_to_json(metadata: Any) -> dict[str, Any]:
    """A stack's metadata (a :class:`branchenv.metadata.StackMetadata`) as plain JSON values."""
    if metadata is None:
        return {}
    out: dict[str, Any] = {}
    for field in dataclasses.fields(metadata):
        value = getattr(metadata, field.name)
        out[field.name] = value.isoformat() if hasattr(value, "isoformat") else value
    return out
