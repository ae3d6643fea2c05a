"""The ``inprocess`` engine: runs a Pulumi program on the SDK's mock runtime and materializes
each resource on the local cloud through boto3.

Each ``up`` runs the program twice: first a preview pass that only records what the program
declares (so a program using any type without a materializer fails before anything exists),
then the real pass, where every resource registration creates or updates the resource and
feeds its real outputs (ARNs, URLs, ids) back into the program. Resources that were in the
state but are no longer declared are deleted afterwards, in reverse dependency order.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from branchenv.aws_errors import is_transient
from branchenv.engines.base import (
    SECRET_MASK,
    DestroyResult,
    EngineSettings,
    OutputSink,
    PlanCheck,
    PreviewResult,
    Program,
    ProgramInputs,
    RefreshResult,
    ResourceSummary,
    StackSummary,
    UpResult,
    is_secret_envelope,
    metadata_or_none,
)
from branchenv.engines.inprocess.state import ResourceEntry, StackState, StateStore
from branchenv.engines.pulumi_program import stack_config
from branchenv.errors import (
    BranchenvError,
    EngineError,
    SafetyRefusal,
    StackNotFound,
    TransientError,
    UnsupportedResource,
    one_line,
)

if TYPE_CHECKING:
    from branchenv.engines.inprocess.materializers import Materializer
    from branchenv.engines.inprocess.runtime import Registration
    from branchenv.metadata import StackMetadata
    from branchenv.targets import Target

PROVIDER_TYPE = "pulumi:providers:aws"


def _unsecret(value: Any) -> Any:
    """Unwrap the SDK's secret envelopes (``{sig: secret, value: ...}``) recursively."""
    if isinstance(value, dict):
        if is_secret_envelope(value):
            return _unsecret(value.get("value"))
        return {k: _unsecret(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unsecret(v) for v in value]
    return value


def _contains_secret(value: Any) -> bool:
    if isinstance(value, dict):
        if is_secret_envelope(value):
            return True
        return any(_contains_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_secret(v) for v in value)
    return False


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _reverse_dependency_order(entries: list[ResourceEntry]) -> list[ResourceEntry]:
    """Dependents before their dependencies (reverse creation order already is one such order;
    the explicit sort keeps it true for states written by hand or by older versions)."""
    by_urn = {e.urn: e for e in entries}
    order: list[ResourceEntry] = []
    seen: set[str] = set()

    def visit(e: ResourceEntry) -> None:
        if e.urn in seen:
            return
        seen.add(e.urn)
        for dep in e.dependencies:
            if dep in by_urn:
                visit(by_urn[dep])
        order.append(e)

    for e in entries:
        visit(e)
    return list(reversed(order))


class InProcessEngine:
    """The Engine protocol on the SDK mock runtime plus the local cloud. Local target only."""

    name = "inprocess"

    def __init__(self, *, state_dir: Path, lock_wait_s: float = 120.0) -> None:
        self.store = StateStore(Path(state_dir) / "inprocess")
        self.lock_wait_s = lock_wait_s

    @classmethod
    def from_settings(cls, *, settings: EngineSettings, target: Target | None) -> InProcessEngine:
        """The engine for a project's settings (the registry builds it this way)."""
        return cls(state_dir=settings.state_path)

    # -- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _require_local(target: Target) -> None:
        if not target.is_local:
            raise SafetyRefusal(
                f"the inprocess engine only runs on the local target, not {target.name!r}: it "
                "creates resources on the local cloud. Use `--engine pulumi` for `--target aws`"
            )
        target.local_endpoint()  # a running local cloud, on loopback, or a clear refusal

    @staticmethod
    def _registry() -> dict[str, Materializer]:
        from branchenv.engines.inprocess.materializers import REGISTRY

        return REGISTRY

    def _declared(
        self, program: Path, project: str, stack: str, config: dict[str, str]
    ) -> list[Registration]:
        from branchenv.engines.inprocess.runtime import run_program

        def record(reg: Registration) -> tuple[str, dict[str, Any]]:
            return f"preview-{reg.name}", dict(reg.inputs)

        run = run_program(
            program_dir=program,
            project=project,
            stack=stack,
            config=config,
            new_resource=record,
            preview=True,
        )
        return list(run.registrations)

    def _check_supported(self, regs: list[Registration]) -> None:
        registry = self._registry()
        missing = [
            r.type for r in regs if r.custom and r.type != PROVIDER_TYPE and r.type not in registry
        ]
        if missing:
            raise UnsupportedResource(missing, engine="inprocess")

    # -- the protocol ------------------------------------------------------------------------

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
        self._require_local(target)
        project = program.project
        regs = self._declared(program.path, project, stack, stack_config(inputs, target))
        self._check_supported(regs)
        old = self.store.load(project, stack)
        old_urns = {e.urn for e in old.resources} if old else set()
        new_urns = {r.urn for r in regs if r.custom and r.type != PROVIDER_TYPE}
        changes = {
            "create": len(new_urns - old_urns),
            "update": len(new_urns & old_urns),
            "delete": len(old_urns - new_urns),
        }
        return PreviewResult(
            stack=stack, changes=changes, resource_types=tuple(sorted({r.type for r in regs}))
        )

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
        """Preview pass, then the real pass under the stack's lock. ``plan_check`` is not
        called yet: feeding it the preview pass's planned names is issue 13 item 3 for this
        engine."""
        self._require_local(target)
        say = on_output or (lambda _line: None)
        started = time.monotonic()
        project = program.project
        full_config = stack_config(inputs, target)
        say(f"previewing {project}/{stack} (inprocess engine, local cloud {target.endpoint_url})")
        self._check_supported(self._declared(program.path, project, stack, full_config))
        with self.store.lock(project, stack, wait_s=self.lock_wait_s, on_wait=say):
            return self._up_locked(
                project, stack, program.path, target, metadata, full_config, say, started
            )

    def _up_locked(
        self,
        project: str,
        stack: str,
        program: Path,
        target: Target,
        metadata: StackMetadata,
        config: dict[str, str],
        say: OutputSink,
        started: float,
    ) -> UpResult:
        from branchenv.engines.inprocess.materializers import Applied, Context
        from branchenv.engines.inprocess.runtime import run_program

        registry = self._registry()
        old = self.store.load(project, stack)
        old_by_urn = {e.urn: e for e in old.resources} if old else {}
        state = StackState(
            project=project,
            stack=stack,
            target={
                "name": target.name,
                "region": target.region,
                "endpoint_url": target.endpoint_url,
            },
            tags=metadata.to_tags(),
            resources=[],
            outputs=old.outputs if old else {},
        )
        # Keep what the old state knows until it is re-applied or deleted, so a failure midway
        # never loses track of a resource.
        pending_old = dict(old_by_urn)
        providers: dict[str, dict[str, Any]] = {}
        contexts: dict[str, Context] = {}
        lock = threading.Lock()
        changes = {"create": 0, "update": 0, "same": 0, "delete": 0}
        failure: list[BaseException] = []

        def save() -> None:
            snapshot = dataclasses.replace(
                state, resources=[*state.resources, *pending_old.values()]
            )
            self.store.save(snapshot)

        def new_resource(reg: Registration) -> tuple[str, dict[str, Any]]:
            if failure:
                raise EngineError("an earlier resource failed; not creating more")
            inputs = _unsecret(reg.inputs)
            if reg.type == PROVIDER_TYPE:
                pid = hashlib.sha256(reg.urn.encode()).hexdigest()[:16]
                with lock:
                    providers[f"{reg.urn}::{pid}"] = inputs
                return pid, inputs
            if not reg.custom:
                return "", {}
            materializer = registry[reg.type]
            provider = providers.get(reg.provider, {})
            region = str(provider.get("region") or config.get("aws:region") or target.region)
            with lock:
                ctx = contexts.setdefault(region, Context(target, region))
            default_tags = (_maybe_json(provider.get("defaultTags")) or {}).get("tags") or {}
            if not provider:
                default_tags = (_maybe_json(config.get("aws:defaultTags")) or {}).get("tags", {})
            own_tags = {str(k): str(v) for k, v in (inputs.get("tags") or {}).items()}
            tags = {**default_tags, **own_tags} if materializer.taggable else {}
            previous = old_by_urn.get(reg.urn)
            if previous is not None and previous.type != reg.type:
                previous = None
            prop = materializer.name_property
            if prop and not inputs.get(prop):
                # Pulumi auto-naming: logical name + random suffix, stable across updates.
                inputs[prop] = (
                    previous.outputs.get(prop)
                    if previous and previous.outputs.get(prop)
                    else f"{reg.name}-{secrets.token_hex(4)[:7]}"[: materializer.name_max_len]
                )
            existing = Applied(previous.id, previous.outputs) if previous else None
            try:
                applied = materializer.apply(ctx, inputs=inputs, tags=tags, existing=existing)
            except Exception as exc:
                with lock:
                    failure.append(exc)
                raise
            outputs = {**applied.outputs, "tags": own_tags, "tagsAll": tags}
            # Inputs the program marked secret stay out of the state file.
            secret_inputs = {k for k, v in reg.inputs.items() if _contains_secret(v)}
            entry = ResourceEntry(
                urn=reg.urn,
                type=reg.type,
                name=reg.name,
                id=applied.id,
                outputs=_storable(
                    {k: SECRET_MASK if k in secret_inputs else v for k, v in outputs.items()}
                ),
                dependencies=list(reg.dependencies),
                provider=reg.provider,
                region=region,
            )
            with lock:
                if previous is None:
                    changes["create"] += 1
                    verb = "created"
                elif previous.outputs == entry.outputs and previous.id == entry.id:
                    changes["same"] += 1
                    verb = "unchanged"
                else:
                    changes["update"] += 1
                    verb = "updated"
                pending_old.pop(reg.urn, None)
                state.resources.append(entry)
                save()
            say(f"  {verb:9} {reg.type}  {reg.name}  ({applied.id})")
            return applied.id, outputs

        say(f"updating {project}/{stack}")
        try:
            run = run_program(
                program_dir=program,
                project=project,
                stack=stack,
                config=config,
                new_resource=new_resource,
                preview=False,
            )
        except BaseException as exc:
            state.status = "failed"
            save()
            cause = failure[0] if failure else exc
            if isinstance(cause, BranchenvError):
                raise cause from exc
            raise EngineError(
                f"up failed for stack {stack!r}: {one_line(cause)}; the resources created so far "
                "are recorded, run `branchenv down` to remove them or fix and re-run `up`"
            ) from cause
        # Whatever the old state held that the program no longer declares goes away.
        for entry in _reverse_dependency_order(list(pending_old.values())):
            ctx = contexts.get(entry.region) or Context(target, entry.region or target.region)
            registry[entry.type].delete(ctx, id=entry.id, outputs=entry.outputs)
            say(f"  deleted   {entry.type}  {entry.name}  ({entry.id})")
            changes["delete"] += 1
            pending_old.pop(entry.urn, None)
            save()
        # Secret outputs are masked as the pulumi engine masks them: never stored or shown.
        state.outputs = _storable(
            {k: SECRET_MASK if k in run.secret_outputs else v for k, v in run.outputs.items()}
        )
        state.status = "ok"
        save()
        say(
            f"done: {changes['create']} created, {changes['update']} updated, "
            f"{changes['same']} unchanged, {changes['delete']} deleted"
        )
        return UpResult(
            stack=stack,
            outputs=dict(state.outputs),
            changes=changes,
            resources=tuple(_summary(e) for e in state.resources),
            duration_s=time.monotonic() - started,
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
        from branchenv.engines.inprocess.materializers import Context

        self._require_local(target)
        say = on_output or (lambda _line: None)
        started = time.monotonic()
        project = program.project
        registry = self._registry()
        with self.store.lock(project, stack, wait_s=self.lock_wait_s):
            state = self.store.load(project, stack)
            if state is None:
                raise StackNotFound(f"no stack named {stack!r} in project {project!r}")
            say(f"destroying {project}/{stack}: {len(state.resources)} resource(s)")
            deleted = 0
            contexts: dict[str, Context] = {}
            for entry in _reverse_dependency_order(list(state.resources)):
                region = entry.region or target.region
                ctx = contexts.setdefault(region, Context(target, region))
                try:
                    registry[entry.type].delete(ctx, id=entry.id, outputs=entry.outputs)
                except Exception as exc:
                    state.status = "failed"
                    self.store.save(state)
                    error_type = TransientError if is_transient(exc) else EngineError
                    raise error_type(
                        f"could not delete {entry.type} {entry.name} ({entry.id}): "
                        f"{one_line(exc)}; {len(state.resources)} resource(s) remain in the "
                        "state, re-run `branchenv down`"
                    ) from exc
                state.resources = [e for e in state.resources if e.urn != entry.urn]
                self.store.save(state)
                deleted += 1
                say(f"  deleted   {entry.type}  {entry.name}  ({entry.id})")
            removed = False
            if remove:
                removed = self.store.remove(project, stack)
            say(f"done: {deleted} deleted" + (", stack removed" if removed else ""))
        return DestroyResult(
            stack=stack, deleted=deleted, removed=removed, duration_s=time.monotonic() - started
        )

    def refresh(
        self,
        *,
        stack: str,
        program: Program,
        target: Target,
        on_output: OutputSink | None = None,
    ) -> RefreshResult:
        from branchenv.engines.inprocess.materializers import Context

        self._require_local(target)
        started = time.monotonic()
        project = program.project
        registry = self._registry()
        with self.store.lock(project, stack, wait_s=self.lock_wait_s):
            state = self.store.load(project, stack)
            if state is None:
                raise StackNotFound(f"no stack named {stack!r} in project {project!r}")
            kept = []
            missing: list[str] = []
            for entry in state.resources:
                ctx = Context(target, entry.region or target.region)
                if registry[entry.type].exists(ctx, id=entry.id, outputs=entry.outputs):
                    kept.append(entry)
                else:
                    missing.append(entry.urn)
                    if on_output:
                        on_output(f"  gone      {entry.type}  {entry.name}  ({entry.id})")
            state.resources = kept
            self.store.save(state)
        return RefreshResult(
            stack=stack,
            missing=tuple(missing),
            changed=(),
            duration_s=time.monotonic() - started,
        )

    def outputs(self, *, stack: str, program: Program) -> dict[str, Any]:
        project = program.project
        state = self.store.load(project, stack)
        if state is None:
            raise StackNotFound(f"no stack named {stack!r} in project {project!r}")
        return dict(state.outputs)

    def list_stacks(self, *, program: Program) -> list[StackSummary]:
        project = program.project
        return [
            StackSummary(
                stack=s.stack,
                metadata=metadata_or_none(s.tags),
                resource_count=len(s.resources),
                last_update=s.updated_at,
                tags=dict(s.tags),
            )
            for s in self.store.list(project)
        ]

    def metadata(self, *, stack: str, program: Program) -> StackMetadata | None:
        project = program.project
        state = self.store.load(project, stack)
        if state is None:
            raise StackNotFound(f"no stack named {stack!r} in project {project!r}")
        return metadata_or_none(state.tags)

    def set_metadata(self, *, stack: str, program: Program, metadata: StackMetadata) -> None:
        project = program.project
        with self.store.lock(project, stack, wait_s=self.lock_wait_s):
            state = self.store.load(project, stack)
            if state is None:
                raise StackNotFound(f"no stack named {stack!r} in project {project!r}")
            state.tags = metadata.to_tags()
            self.store.save(state)

    def resources(self, *, stack: str, program: Program) -> list[ResourceSummary]:
        """The stack's resources as the state records them (for inventories and cost)."""
        project = program.project
        state = self.store.load(project, stack)
        if state is None:
            raise StackNotFound(f"no stack named {stack!r} in project {project!r}")
        return [_summary(e) for e in state.resources]


def _summary(entry: ResourceEntry) -> ResourceSummary:
    """A state entry as the protocol's resource summary (outputs hold no secrets: inputs the
    program marked secret were masked before they were stored)."""
    return ResourceSummary(
        address=entry.urn,
        type=entry.type,
        name=entry.name,
        id=entry.id,
        region=entry.region or None,
        outputs=dict(entry.outputs),
    )


def _storable(value: Any) -> Any:
    """Outputs as JSON-ready data (archives and SDK objects dropped)."""
    if isinstance(value, dict):
        return {str(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return None
