"""The Engine seam: one protocol, its result types, and the factory that picks an engine.

Two engines implement it: ``pulumi`` (the real Pulumi engine through ``pulumi.automation``) and
``inprocess`` (the program on the SDK's mock runtime, materialized on the local cloud). One
contract suite (tests/integration/test_engine_contract.py) runs against each that can run here.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from branchenv.errors import UsageError

if TYPE_CHECKING:
    from branchenv.metadata import StackMetadata
    from branchenv.targets import Target

OutputSink = Callable[[str], None]
"""Receives the engine's progress output one line at a time (never secrets)."""

ENGINE_NAMES = ("pulumi", "inprocess")


@dataclasses.dataclass(frozen=True)
class ResourceSummary:
    """One resource of a stack as the engine knows it."""

    urn: str
    type: str
    name: str
    id: str | None = None


@dataclasses.dataclass(frozen=True)
class UpResult:
    """What ``up`` did: the stack, its outputs, counts of changes and the resources it holds."""

    stack: str
    outputs: dict[str, Any]
    changes: dict[str, int]
    resources: tuple[ResourceSummary, ...]
    duration_s: float


@dataclasses.dataclass(frozen=True)
class PreviewResult:
    """What ``up`` would do, without doing it."""

    stack: str
    changes: dict[str, int]
    resource_types: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class DestroyResult:
    """What ``destroy`` removed; ``removed`` is true when the stack itself is gone too."""

    stack: str
    deleted: int
    removed: bool
    duration_s: float


@dataclasses.dataclass(frozen=True)
class StackSummary:
    """A stack as listed by ``list_stacks``; ``metadata`` is None for unmanaged stacks."""

    stack: str
    metadata: StackMetadata | None
    resource_count: int | None
    last_update: str | None = None
    tags: dict[str, str] = dataclasses.field(default_factory=dict)


@runtime_checkable
class Engine(Protocol):
    """Runs one Pulumi program for named stacks against a target.

    Every method is keyword-only. ``program`` is the directory holding the program's
    ``Pulumi.yaml`` (or the project directory whose ``Pulumi.yaml`` points at it).
    """

    name: str

    def up(
        self,
        *,
        stack: str,
        program: Path,
        target: Target,
        metadata: StackMetadata,
        config: Mapping[str, str],
        on_output: OutputSink | None = None,
    ) -> UpResult:
        """Create or update the stack so that it matches the program; idempotent."""
        ...

    def preview(
        self,
        *,
        stack: str,
        program: Path,
        target: Target,
        metadata: StackMetadata,
        config: Mapping[str, str],
        on_output: OutputSink | None = None,
    ) -> PreviewResult:
        """Report what ``up`` would change without changing anything."""
        ...

    def destroy(
        self,
        *,
        stack: str,
        program: Path,
        target: Target,
        on_output: OutputSink | None = None,
        remove: bool = True,
    ) -> DestroyResult:
        """Delete every resource of the stack, then (``remove``) the stack itself.

        Destroying a stack that does not exist raises :class:`~branchenv.errors.StackNotFound`;
        callers that want "down twice succeeds" treat that as done.
        """
        ...

    def refresh(
        self,
        *,
        stack: str,
        program: Path,
        target: Target,
        on_output: OutputSink | None = None,
    ) -> None:
        """Reconcile the engine's state with what actually exists in the target."""
        ...

    def outputs(self, *, stack: str, program: Path) -> dict[str, Any]:
        """The stack's outputs (secret outputs are masked as ``"[secret]"``)."""
        ...

    def list_stacks(self, *, program: Path) -> list[StackSummary]:
        """Every stack of the program's project in the backend, with its metadata."""
        ...

    def metadata(self, *, stack: str, program: Path) -> StackMetadata | None:
        """The stack's metadata, or None when it lacks the managed marker."""
        ...

    def set_metadata(self, *, stack: str, program: Path, metadata: StackMetadata) -> None:
        """Replace the stack's metadata tags (e.g. to mark it reap-pending) without an update
        of its resources."""
        ...


SECRET_MASK = "[secret]"
"""How every engine shows a secret output."""

_SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


def is_secret_envelope(value: Any) -> bool:
    """True for Pulumi's serialized secret wrapper (``{sig-key: secret-sig, ...}``), as found in
    mock-runtime inputs and in ``pulumi stack export``."""
    return isinstance(value, dict) and value.get(_SECRET_SIG_KEY) == _SECRET_SIG


def metadata_or_none(tags: Mapping[str, str]) -> StackMetadata | None:
    """A stack's metadata from its tags. Tags that carry the managed marker but cannot be read
    count as unmanaged, so nothing (ls, the reaper, down) acts on a stack it cannot read; the
    raw tags stay in StackSummary.tags for a person to look at."""
    from branchenv.metadata import MetadataFormatError, StackMetadata

    try:
        return StackMetadata.from_tags(tags)
    except MetadataFormatError:
        return None


def pulumi_cli_available() -> bool:
    """True when a ``pulumi`` executable is on PATH."""
    return shutil.which("pulumi") is not None


def get_engine(name: str, *, state_dir: Path, **options: Any) -> Engine:
    """Build the engine called ``name``; a wrong name lists the valid ones (exit 2)."""
    if name == "pulumi":
        from branchenv.engines.pulumi_engine import PulumiEngine

        return PulumiEngine(state_dir=state_dir, **options)
    if name == "inprocess":
        from branchenv.engines.inprocess.engine import InProcessEngine

        return InProcessEngine(state_dir=state_dir, **options)
    raise UsageError(
        f"unknown engine {name!r}. Valid engines: {', '.join(ENGINE_NAMES)} "
        "(pass `--engine NAME` or set BRANCHENV_ENGINE)"
    )
