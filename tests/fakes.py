"""One in-memory engine for the tests: the Engine protocol over plain JSON files, no cloud.

It proves the contract is engine-neutral (tests/integration/test_engine_contract.py runs it
like every real engine) and lets tests drive the core (ls, reap, cost, the rails) through the
public registry only (:func:`register`). Its program kind, ``fake``, is a directory holding
``fake-program.json``::

    {"project": "fakeproj",
     "resources": [{"name": "jobs", "type": "aws:sqs/queue:Queue",
                    "physical_name": "{prefix}-jobs"}],
     "outputs": {"queue_name": "{prefix}-jobs", "token": {"secret": "s3cr3t-{prefix}"}}}

``{prefix}`` is the stack's prefix from the program inputs; a resource without
``physical_name`` is auto-named (``<name>-<7 hex>``). The "target" is a JSON world file in
the state dir: resources live there, physical names are unique in it (a create of a name that
exists and is not this stack's fails, as a real provider would), and a test may delete from
it behind the engine's back (drift). State writes are atomic (write a temp file, rename).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from branchenv.engines import (
    EngineSpec,
    ProgramKind,
    register_engine,
    register_program_kind,
    unregister_engine,
    unregister_program_kind,
)
from branchenv.engines.base import (
    SECRET_MASK,
    DestroyResult,
    EngineSettings,
    OutputSink,
    PlanCheck,
    PlannedStep,
    PreviewResult,
    Program,
    ProgramInputs,
    ProgramLayout,
    RefreshResult,
    ResourceSummary,
    StackSummary,
    UpResult,
    metadata_or_none,
)
from branchenv.errors import EngineError, StackLocked, StackNotFound
from branchenv.metadata import StackMetadata
from branchenv.targets import Target

ENGINE = "fake"
KIND = "fake"
PROGRAM_FILE = "fake-program.json"

_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _atomic_write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
    os.replace(tmp, path)


def _read(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default


def is_fake_program(path: Path) -> bool:
    return (path / PROGRAM_FILE).is_file()


def locate_fake_program(path: Path) -> ProgramLayout:
    spec = json.loads((path / PROGRAM_FILE).read_text(encoding="utf-8"))
    return ProgramLayout(path=path.resolve(), project=str(spec["project"]), project_dir=path)


def write_program(
    folder: Path,
    *,
    project: str,
    resources: list[dict[str, Any]],
    outputs: Mapping[str, Any] | None = None,
) -> Path:
    """A fake program in ``folder`` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PROGRAM_FILE).write_text(
        json.dumps({"project": project, "resources": resources, "outputs": dict(outputs or {})}),
        encoding="utf-8",
    )
    return folder


class FakeEngine:
    """The Engine protocol over JSON files: state per stack, one world per state dir."""

    resources_checked = False  # resources() reads the state only, never the world
    name = ENGINE

    def __init__(self, *, state_dir: Path, lock_wait_s: float = 5.0) -> None:
        self.root = Path(state_dir) / "fake-engine"
        self.lock_wait_s = lock_wait_s
        self.calls: list[str] = []

    @classmethod
    def from_settings(cls, *, settings: EngineSettings, target: Target | None) -> FakeEngine:
        return cls(state_dir=settings.state_path)

    # -- files -------------------------------------------------------------------------------

    @property
    def world_file(self) -> Path:
        return self.root / "world.json"

    def _state_file(self, program: Program, stack: str) -> Path:
        return self.root / program.project / f"{stack}.json"

    def _load(self, program: Program, stack: str) -> dict[str, Any]:
        state: dict[str, Any] | None = _read(self._state_file(program, stack), None)
        if state is None:
            raise StackNotFound(f"no stack {stack!r} in project {program.project!r} (fake)")
        return state

    def world(self) -> dict[str, dict[str, Any]]:
        """Physical name -> {"stack", "type", "tags"}: what exists in the fake target."""
        return dict(_read(self.world_file, {}))

    def delete_behind_its_back(self, physical_name: str) -> None:
        """Drift: the resource disappears from the target, the state still lists it."""
        world = self.world()
        world.pop(physical_name, None)
        _atomic_write(self.world_file, world)

    @contextlib.contextmanager
    def lock(self, program: Program, stack: str) -> Iterator[None]:
        key = str(self._state_file(program, stack))
        with _LOCKS_GUARD:
            lock = _LOCKS.setdefault(key, threading.Lock())
        if not lock.acquire(timeout=self.lock_wait_s):
            raise StackLocked(f"stack {stack!r} is locked by another update (fake engine)")
        try:
            yield
        finally:
            lock.release()

    # -- planning ----------------------------------------------------------------------------

    @staticmethod
    def _spec(program: Program) -> dict[str, Any]:
        spec: dict[str, Any] = json.loads((program.path / PROGRAM_FILE).read_text("utf-8"))
        return spec

    @staticmethod
    def _fill(value: Any, prefix: str) -> Any:
        if isinstance(value, str):
            return value.replace("{prefix}", prefix)
        if isinstance(value, dict):
            return {k: FakeEngine._fill(v, prefix) for k, v in value.items()}
        return value

    def _plan(
        self, program: Program, stack: str, inputs: ProgramInputs
    ) -> tuple[list[PlannedStep], dict[str, Any], dict[str, Any]]:
        spec = self._spec(program)
        try:
            old = self._load(program, stack)["resources"]
        except StackNotFound:
            old = {}
        steps: list[PlannedStep] = []
        wanted: dict[str, Any] = {}
        for res in spec["resources"]:
            address = f"{program.project}::{stack}::{res['type']}::{res['name']}"
            fixed = self._fill(res.get("physical_name"), inputs.prefix)
            before = old.get(address)
            physical = fixed or (before or {}).get("physical_name")
            physical = physical or f"{res['name']}-{secrets.token_hex(4)[:7]}"
            tags = dict(inputs.tags)
            if before is None:
                op: str = "create"
            elif before["physical_name"] != physical:
                op = "replace"
            elif before.get("tags") != tags:
                op = "update"
            else:
                op = "same"
            wanted[address] = {
                "type": res["type"],
                "name": res["name"],
                "physical_name": physical,
                "tags": tags,
                "region": inputs.region,
            }
            steps.append(
                PlannedStep(
                    address=address,
                    type=res["type"],
                    name=res["name"],
                    op=op,
                    diff=("tags",) if op == "update" else (),
                    physical_name=fixed,
                    name_property="name" if fixed else None,
                )
            )
        for address, before in old.items():
            if address not in wanted:
                steps.append(
                    PlannedStep(
                        address=address, type=before["type"], name=before["name"], op="delete"
                    )
                )
        return steps, wanted, spec.get("outputs", {})

    @staticmethod
    def _count(steps: list[PlannedStep]) -> dict[str, int]:
        changes = dict.fromkeys(("create", "update", "replace", "delete", "same"), 0)
        for step in steps:
            changes[step.op] += 1
        return changes

    # -- the protocol --------------------------------------------------------------------------

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
        """Plan, let ``plan_check`` refuse, then apply in the world, then write the state."""
        self.calls.append("up")
        started = time.monotonic()
        say = on_output or (lambda _line: None)
        with self.lock(program, stack):
            steps, wanted, outputs_spec = self._plan(program, stack, inputs)
            if plan_check is not None:
                plan_check(steps)
            world = self.world()
            for res in wanted.values():
                holder = world.get(res["physical_name"])
                if holder is not None and (holder["stack"], holder["project"]) != (
                    stack,
                    program.project,
                ):
                    raise EngineError(
                        f"creating {res['type']} {res['name']}: {res['physical_name']!r} already "
                        "exists and is not this stack's (fake engine)"
                    )
            old = self._resources_or_empty(program, stack)
            for step in steps:
                if step.op in ("delete", "replace"):
                    world.pop(old[step.address]["physical_name"], None)
            for res in wanted.values():
                world[res["physical_name"]] = {
                    "stack": stack,
                    "project": program.project,
                    "type": res["type"],
                    "tags": res["tags"],
                }
            _atomic_write(self.world_file, world)
            outputs = self._fill(outputs_spec, inputs.prefix)
            state = {
                "tags": metadata.to_tags(),
                "resources": wanted,
                "outputs": outputs,
                "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            _atomic_write(self._state_file(program, stack), state)
            for step in steps:
                say(f"  {step.op:9} {step.type}  {step.name}")
        return UpResult(
            stack=stack,
            outputs=_mask(outputs),
            changes=self._count(steps),
            resources=tuple(_summaries(wanted)),
            duration_s=time.monotonic() - started,
        )

    def _resources_or_empty(self, program: Program, stack: str) -> dict[str, Any]:
        try:
            return dict(self._load(program, stack)["resources"])
        except StackNotFound:
            return {}

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
        """The plan, changing nothing."""
        self.calls.append("preview")
        steps, _, _ = self._plan(program, stack, inputs)
        return PreviewResult(
            stack=stack,
            changes=self._count(steps),
            resource_types=tuple(sorted({s.type for s in steps})),
            steps=tuple(steps),
        )

    def destroy(
        self,
        *,
        stack: str,
        program: Program,
        target: Target,
        on_output: OutputSink | None = None,
        remove: bool = True,
    ) -> DestroyResult:
        """Delete every resource from the world, then (``remove``) the state."""
        self.calls.append("destroy")
        started = time.monotonic()
        with self.lock(program, stack):
            state = self._load(program, stack)
            world = self.world()
            for res in state["resources"].values():
                world.pop(res["physical_name"], None)
            _atomic_write(self.world_file, world)
            deleted = len(state["resources"])
            state["resources"] = {}
            if remove:
                self._state_file(program, stack).unlink()
            else:
                _atomic_write(self._state_file(program, stack), state)
        return DestroyResult(
            stack=stack, deleted=deleted, removed=remove, duration_s=time.monotonic() - started
        )

    def refresh(
        self,
        *,
        stack: str,
        program: Program,
        target: Target,
        on_output: OutputSink | None = None,
    ) -> RefreshResult:
        """Drop from the state what the world no longer holds."""
        self.calls.append("refresh")
        started = time.monotonic()
        with self.lock(program, stack):
            state = self._load(program, stack)
            world = self.world()
            missing = [a for a, r in state["resources"].items() if r["physical_name"] not in world]
            for address in missing:
                del state["resources"][address]
            _atomic_write(self._state_file(program, stack), state)
        return RefreshResult(
            stack=stack, missing=tuple(missing), changed=(), duration_s=time.monotonic() - started
        )

    def outputs(self, *, stack: str, program: Program) -> dict[str, Any]:
        return _mask(self._load(program, stack)["outputs"])

    def resources(self, *, stack: str, program: Program) -> list[ResourceSummary]:
        self.calls.append("resources")
        return _summaries(self._load(program, stack)["resources"])

    def list_stacks(self, *, program: Program, count_missing: bool = True) -> list[StackSummary]:
        folder = self.root / program.project
        world = self.world()
        summaries = []
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            state = _read(path, None)
            if state is None:
                continue
            resources = state["resources"].values()
            summaries.append(
                StackSummary(
                    stack=path.stem,
                    metadata=metadata_or_none(state["tags"]),
                    resource_count=len(state["resources"]),
                    last_update=state.get("updated_at"),
                    tags=dict(state["tags"]),
                    missing=sum(1 for r in resources if r["physical_name"] not in world),
                )
            )
        return summaries

    def metadata(self, *, stack: str, program: Program) -> StackMetadata | None:
        return metadata_or_none(self._load(program, stack)["tags"])

    def set_metadata(self, *, stack: str, program: Program, metadata: StackMetadata) -> None:
        self.calls.append("set_metadata")
        with self.lock(program, stack):
            state = self._load(program, stack)
            state["tags"] = metadata.to_tags()
            _atomic_write(self._state_file(program, stack), state)


def _mask(outputs: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: SECRET_MASK if isinstance(v, dict) and "secret" in v else v for k, v in outputs.items()
    }


def _summaries(resources: Mapping[str, Any]) -> list[ResourceSummary]:
    return [
        ResourceSummary(
            address=address,
            type=res["type"],
            name=res["name"],
            id=res["physical_name"],
            region=res.get("region"),
            outputs={"name": res["physical_name"]},
        )
        for address, res in resources.items()
    ]


SPEC = EngineSpec(
    name=ENGINE,
    load=lambda: FakeEngine,
    available=lambda: None,
    local_only=False,
    shared_state=False,
    program_kinds=frozenset({KIND}),
    summary="the tests' in-memory engine (JSON files, no cloud)",
)
KIND_SPEC = ProgramKind(
    name=KIND,
    detect=is_fake_program,
    summary="a test program: fake-program.json",
    locate=locate_fake_program,
)


def register() -> None:
    """Register the fake engine and its program kind through the public registry (also the
    entry point tests install as a `branchenv.plugins` plugin)."""
    register_program_kind(KIND_SPEC, replace=True)
    register_engine(SPEC, replace=True)


def unregister() -> None:
    unregister_engine(ENGINE)
    unregister_program_kind(KIND)
