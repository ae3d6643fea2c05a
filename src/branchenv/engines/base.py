"""The Engine seam: one protocol and the values that cross it (see /work/tools/CONTRACT.md).

An engine runs one :class:`Program` for named stacks against a target. The core hands every
engine the same neutral :class:`ProgramInputs`; each engine maps them to its own form. Results
are frozen dataclasses. Which engines exist, and how each is built, is the registry's business
(:mod:`branchenv.engines`); this module names no engine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from branchenv.metadata import StackMetadata
    from branchenv.targets import Target


class EngineSettings(Protocol):
    """What the registry and the engines read of the project's settings
    (:class:`branchenv.config.Settings` satisfies it). Engines never import ``branchenv.config``
    (config validation reads the registry, so that import would close a cycle): an engine that
    needs another setting adds it here."""

    @property
    def project_dir(self) -> Path: ...

    @property
    def state_path(self) -> Path: ...

    @property
    def effective_backend_url(self) -> str: ...

    @property
    def region(self) -> str: ...

    @property
    def default_target(self) -> str: ...

    # The terraform engine's settings (config.py documents each).
    @property
    def terraform_binary(self) -> str: ...

    @property
    def terraform_plugin_mirror(self) -> str | None: ...

    @property
    def terraform_backend(self) -> str: ...

    @property
    def terraform_state_bucket(self) -> str | None: ...

    @property
    def terraform_state_prefix(self) -> str: ...

    @property
    def terraform_lock_table(self) -> str | None: ...


OutputSink = Callable[[str], None]
"""Receives the engine's progress output one line at a time (never secrets)."""

CHANGE_KINDS = ("create", "update", "replace", "delete", "same")
"""The keys of ``UpResult.changes`` / ``PreviewResult.changes``."""

STEP_OPS = frozenset({"create", "update", "replace", "delete", "same", "read"})
"""What a :class:`PlannedStep` may do."""


@dataclasses.dataclass(frozen=True)
class Program:
    """What describes a stack: one program directory of a known kind.

    ``path`` is the directory the engine runs (a Pulumi program's dir holding ``__main__.py``,
    after ``main:`` is honoured; a Terraform root module's dir); ``project_dir`` holds the
    project file (``Pulumi.yaml``) and equals ``path`` for kinds without one. ``kind`` is a
    registered program kind. ``engine`` is the engine the settings ask for (None: choose).
    ``templates`` maps a target name to its stack config template file.
    """

    name: str
    path: Path
    kind: str
    project: str
    project_dir: Path
    engine: str | None = None
    templates: Mapping[str, Path] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ProgramLayout:
    """Where a program of some kind lives, as its kind's ``locate`` finds it: the directory the
    engine runs, the project name and the directory holding the project file."""

    path: Path
    project: str
    project_dir: Path


@dataclasses.dataclass(frozen=True)
class ProgramInputs:
    """The neutral inputs the core hands every engine for one stack.

    Each engine maps them to its own form: Pulumi programs get ``branchenv:prefix``,
    ``branchenv:profile``, ``branchenv:localFunctionsUrl``, ``branchenv:tags``, ``aws:defaultTags``
    and the target template's keys as stack config (``engines/pulumi_program.py``); a Terraform
    module gets the variables it declares with those names.

    ``tags`` go on every resource the stack creates: the identity tags, which never change
    between updates. ``metadata`` is the stack's full tag set (identity plus expiry, commit,
    reap-pending), for a program that records it on the stack's own object (the Kubernetes
    program's namespace annotations), never on resources; empty: the same as ``tags``.
    ``allow_shared`` lists physical names deliberately shared between stacks (``--allow-shared``).
    """

    prefix: str
    profile: str
    tags: Mapping[str, str]
    region: str
    functions_url: str | None = None
    template: Mapping[str, str] = dataclasses.field(default_factory=dict)
    allow_shared: frozenset[str] = frozenset()
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class PlannedStep:
    """One resource in a plan or preview.

    ``address`` is a URN (Pulumi programs) or a resource address (Terraform). ``physical_name``
    is the fixed physical name the program sets (None when the engine auto-names it or it is
    unknown until apply); ``name_property`` says which input holds it (``bucket``, ``name``...).
    """

    address: str
    type: str
    name: str
    op: str
    diff: tuple[str, ...] = ()
    physical_name: str | None = None
    name_property: str | None = None


PlanCheck = Callable[[Sequence[PlannedStep]], None]
"""Called by an engine inside ``up`` once it knows the plan and BEFORE it changes anything;
raises (:class:`~branchenv.errors.SafetyRefusal`) to stop. The branch-isolation check is one."""


@dataclasses.dataclass(frozen=True)
class ResourceSummary:
    """One resource of a stack as the engine knows it; ``outputs`` never hold secrets (they are
    dropped or masked). What cost estimates and leak checks read."""

    address: str
    type: str
    name: str
    id: str | None = None
    region: str | None = None
    outputs: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class UpResult:
    """What ``up`` did: the stack, its outputs, counts of changes (keys of
    :data:`CHANGE_KINDS`) and the resources it holds."""

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
    steps: tuple[PlannedStep, ...] = ()


@dataclasses.dataclass(frozen=True)
class DestroyResult:
    """What ``destroy`` removed; ``removed`` is true when the stack itself is gone too;
    ``failed`` names the addresses left because their delete failed."""

    stack: str
    deleted: int
    removed: bool
    duration_s: float
    failed: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class RefreshResult:
    """What ``refresh`` found: resources gone from the target (dropped from the state) and
    resources whose properties changed there."""

    stack: str
    missing: tuple[str, ...]
    changed: tuple[str, ...]
    duration_s: float


@dataclasses.dataclass(frozen=True)
class StackSummary:
    """A stack as listed by ``list_stacks``.

    ``metadata`` is None for unmanaged stacks. ``missing`` counts resources known to be gone
    from the target. ``attention`` says why the stack needs a person (unreadable or newer
    state, unreadable metadata): such a stack is listed, never hidden, never reaped, and its
    resources are never swept as orphans. ``backend`` names where the engine keeps the stack's
    state when that matters to a reader (``ls`` shows it: a one-person file backend says so).
    ``resources``, when an engine gives it, is what ``Engine.resources`` answers for the stack
    at the listing (the engine asked the target once for both), so a caller pricing every
    stack need not ask again; None: ask ``Engine.resources``.
    """

    stack: str
    metadata: StackMetadata | None
    resource_count: int | None
    last_update: str | None = None
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    missing: int | None = None
    attention: str | None = None
    backend: str | None = None
    resources: tuple[ResourceSummary, ...] | None = None


class Engine(Protocol):
    """Runs one program for named stacks against a target. Every method is keyword-only."""

    name: str
    resources_checked: bool
    """Whether :meth:`resources` asks the target and leaves out what is gone from it, not only
    what the state records: a warm claim with nothing to apply that finds every resource the
    pool made then has them proven in place, and `ci` probes the stack's endpoints only."""

    def up(
        self,
        *,
        stack: str,
        program: Program,
        target: Target,
        metadata: StackMetadata,
        inputs: ProgramInputs,
        on_output: OutputSink | None = None,
        plan_check: PlanCheck | None = None,
    ) -> UpResult:
        """Create or update the stack so that it matches the program; idempotent. Calls
        ``plan_check`` with the planned steps before changing anything; what it raises stops
        the update with nothing changed."""
        ...

    def preview(
        self,
        *,
        stack: str,
        program: Program,
        target: Target,
        metadata: StackMetadata,
        inputs: ProgramInputs,
        on_output: OutputSink | None = None,
    ) -> PreviewResult:
        """Report what ``up`` would change without changing any resource."""
        ...

    def destroy(
        self,
        *,
        stack: str,
        program: Program,
        target: Target,
        on_output: OutputSink | None = None,
        remove: bool = True,
    ) -> DestroyResult:
        """Delete every resource of the stack, then (``remove``) the stack itself.

        Continues past a failing resource (in dependency order); when anything is left it
        raises :class:`~branchenv.errors.EngineError` after trying everything. A stack that does
        not exist raises :class:`~branchenv.errors.StackNotFound`; callers that want "down twice
        succeeds" treat that as done.
        """
        ...

    def refresh(
        self,
        *,
        stack: str,
        program: Program,
        target: Target,
        on_output: OutputSink | None = None,
    ) -> RefreshResult:
        """Reconcile the engine's state with what actually exists in the target."""
        ...

    def outputs(self, *, stack: str, program: Program) -> dict[str, Any]:
        """The stack's outputs (secret outputs are masked as ``"[secret]"``)."""
        ...

    def resources(self, *, stack: str, program: Program) -> list[ResourceSummary]:
        """The stack's resources as the engine's state records them (secrets dropped)."""
        ...

    def list_stacks(self, *, program: Program, count_missing: bool = True) -> list[StackSummary]:
        """Every stack of the program's project in the engine's backend, with its metadata.

        ``count_missing=False``: the caller reads only names and metadata (a pool claim), so an
        engine that fills ``missing`` by asking the target about every resource skips that."""
        ...

    def metadata(self, *, stack: str, program: Program) -> StackMetadata | None:
        """The stack's metadata, or None when it lacks the managed marker."""
        ...

    def set_metadata(self, *, stack: str, program: Program, metadata: StackMetadata) -> None:
        """Replace the stack's metadata (e.g. to mark it reap-pending) without an update of its
        resources."""
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
