"""The ``inprocess`` engine: a Pulumi program on the SDK's mock runtime, each resource
materialized on the local cloud through boto3, with Pulumi's semantics (see :mod:`.deploy`):
honest change kinds, replacements, deletion of what left the program, never adopting what the
stack did not create, journaled operations so that a crash at any point leaks nothing.
Local target only.

This module adapts the Engine protocol to :class:`~.deploy.StackRun`: it resolves the project,
takes the stack's lock, recovers what an interrupted operation left, and turns the results into
the protocol's values.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from branchenv.engines.base import (
    DestroyResult,
    OutputSink,
    PreviewResult,
    ResourceSummary,
    StackSummary,
    UpResult,
    metadata_or_none,
)
from branchenv.engines.inprocess.deploy import CHANGE_KINDS, Planned, StackRun
from branchenv.engines.inprocess.state import ResourceEntry, StackState, StateStore
from branchenv.engines.project import project_name
from branchenv.errors import EngineError, SafetyRefusal, StackNotFound

if TYPE_CHECKING:
    from branchenv.engines.inprocess.materializers import Materializer
    from branchenv.metadata import StackMetadata
    from branchenv.targets import Target

_MUTABLE_KEYS = ("branchenv:expires-at", "branchenv:commit", "branchenv:reap-pending")


def identity_tags(metadata: StackMetadata) -> dict[str, str]:
    """What goes on every resource: the stack's tags minus what changes between updates."""
    return {k: v for k, v in metadata.to_tags().items() if k not in _MUTABLE_KEYS}


class InProcessEngine:
    """The Engine protocol on the SDK mock runtime plus the local cloud. Local target only."""

    name = "inprocess"

    def __init__(
        self, *, state_dir: Path, lock_wait_s: float = 120.0, target: Target | None = None
    ) -> None:
        self.store = StateStore(Path(state_dir) / "inprocess")
        self.lock_wait_s = lock_wait_s
        self.target = target

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

    def _run(self, target: Target, say: OutputSink | None) -> StackRun:
        return StackRun(
            store=self.store,
            registry=self._registry(),
            target=target,
            say=say or (lambda _line: None),
        )

    @staticmethod
    def _program_config(
        target: Target, metadata: StackMetadata, config: Mapping[str, str]
    ) -> dict[str, str]:
        """The program's stack config: the target's provider wiring, the identity tags as
        ``aws:defaultTags`` (what the default provider puts on every taggable resource, so a
        program that knows nothing of branchenv gets them), the whole stack metadata as
        ``branchenv:tags`` (for programs that label things themselves), and the core's keys."""
        full = dict(target.pulumi_config())
        full["aws:defaultTags"] = json.dumps({"tags": identity_tags(metadata)}, sort_keys=True)
        full["branchenv:tags"] = json.dumps(metadata.to_tags(), sort_keys=True)
        full.update(config)
        return full

    def _load(self, project: str, stack: str) -> StackState:
        state = self.store.load(project, stack)
        if state is None:
            raise StackNotFound(f"no stack named {stack!r} in project {project!r}")
        return state

    @staticmethod
    def _summaries(entries: list[ResourceEntry]) -> tuple[ResourceSummary, ...]:
        return tuple(ResourceSummary(urn=e.urn, type=e.type, name=e.name, id=e.id) for e in entries)

    # -- the protocol ------------------------------------------------------------------------

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
        """What ``up`` would change, per resource with the changed properties; nothing is
        touched (the state is read, not recovered: a preview never deletes)."""
        self._require_local(target)
        project = project_name(program)
        state = self.store.load(project, stack)
        run = self._run(target, on_output)
        plan = run.plan(
            program_dir=program,
            project=project,
            stack=stack,
            config=self._program_config(target, metadata, config),
            state=state,
        )
        return PreviewResult(stack=stack, changes=plan.changes, resource_types=plan.resource_types)

    def up(
        self,
        *,
        stack: str,
        program: Path,
        target: Target,
        metadata: StackMetadata,
        config: Mapping[str, str],
        on_output: OutputSink | None = None,
        plan_check: Any = None,
    ) -> UpResult:
        """Create or update the stack so that it matches the program; idempotent."""
        self._require_local(target)
        say = on_output or (lambda _line: None)
        started = time.monotonic()
        project = project_name(program)
        full = self._program_config(target, metadata, config)
        run = self._run(target, say)
        with self.store.lock(project, stack, wait_s=self.lock_wait_s, on_wait=say):
            state = self.store.load(project, stack)
            if state is not None:
                if state.pending:
                    say(f"settling {len(state.pending)} interrupted operation(s) first")
                    run.recover(state)
                gone = run.forget_missing(state)
                if gone:
                    say(f"{len(gone)} resource(s) of the stack no longer exist: re-creating them")
            say(
                f"previewing {project}/{stack} (inprocess engine, local cloud {target.endpoint_url})"
            )
            plan = run.plan(
                program_dir=program, project=project, stack=stack, config=full, state=state
            )
            for note in plan.notes:
                say(f"note: {note}")
            if plan_check is not None:
                plan_check(plan.steps)
            if state is None:
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
                    outputs={},
                )
            state.tags = metadata.to_tags()
            say(f"updating {project}/{stack}")
            done = run.apply(
                program_dir=program,
                project=project,
                stack=stack,
                config=full,
                state=state,
                late_check=(lambda step: plan_check([step])) if plan_check else None,
            )
        counts = ", ".join(f"{done.changes[k]} {_PAST[k]}" for k in CHANGE_KINDS)
        say(f"done: {counts}")
        return UpResult(
            stack=stack,
            outputs=done.outputs,
            changes=done.changes,
            resources=self._summaries([e for e in done.entries if not e.delete]),
            duration_s=time.monotonic() - started,
        )

    def destroy(
        self,
        *,
        stack: str,
        program: Path,
        target: Target,
        on_output: OutputSink | None = None,
        remove: bool = True,
    ) -> DestroyResult:
        """Delete every resource, dependents first, continuing past failures; raises
        EngineError naming each one left after trying them all."""
        self._require_local(target)
        say = on_output or (lambda _line: None)
        started = time.monotonic()
        project = project_name(program)
        run = self._run(target, say)
        with self.store.lock(project, stack, wait_s=self.lock_wait_s):
            state = self._load(project, stack)
            recovered = run.recover(state) if state.pending else 0
            say(f"destroying {project}/{stack}: {len(state.resources)} resource(s)")
            state.status = "destroying"
            outcome = run.delete_entries(state, list(state.resources))
            deleted = outcome.deleted + recovered
            if outcome.failed:
                state.status = "failed"
                run.save(state)
                result = DestroyResult(
                    stack=stack,
                    deleted=deleted,
                    removed=False,
                    duration_s=time.monotonic() - started,
                )
                error = EngineError(
                    f"destroy of stack {stack!r} left {len(outcome.failed)} resource(s) after "
                    f"deleting {deleted}: "
                    + "; ".join(why for _address, why in outcome.failed)
                    + ". Fix the cause and re-run `branchenv down`"
                )
                error.result = result  # type: ignore[attr-defined]
                raise error
            removed = self.store.remove(project, stack) if remove else False
            if not remove:
                state.status = "ok"
                run.save(state)
        gone = f", {outcome.already_gone} already gone" if outcome.already_gone else ""
        say(f"done: {deleted} deleted{gone}" + (", stack removed" if removed else ""))
        return DestroyResult(
            stack=stack, deleted=deleted, removed=removed, duration_s=time.monotonic() - started
        )

    def refresh(
        self,
        *,
        stack: str,
        program: Path,
        target: Target,
        on_output: OutputSink | None = None,
    ) -> None:
        """Reconcile the state with the target: settle interrupted operations, forget what is
        gone. (Property drift is not read back: only existence.)"""
        self._require_local(target)
        project = project_name(program)
        run = self._run(target, on_output)
        with self.store.lock(project, stack, wait_s=self.lock_wait_s):
            state = self._load(project, stack)
            if state.pending:
                run.recover(state)
            run.forget_missing(state)

    def outputs(self, *, stack: str, program: Path) -> dict[str, Any]:
        return dict(self._load(project_name(program), stack).outputs)

    def list_stacks(self, *, program: Path) -> list[StackSummary]:
        """Every stack with a state file, readable or not (an unreadable one is listed with
        the reason and no metadata, so nothing acts on it)."""
        project = project_name(program)
        out = []
        for found in self.store.scan(project):
            if found.state is None:
                out.append(
                    StackSummary(stack=found.stack, metadata=None, resource_count=None, tags={})
                )
                continue
            s = found.state
            out.append(
                StackSummary(
                    stack=s.stack,
                    metadata=metadata_or_none(s.tags),
                    resource_count=len(s.resources),
                    last_update=s.updated_at,
                    tags=dict(s.tags),
                )
            )
        return out

    def metadata(self, *, stack: str, program: Path) -> StackMetadata | None:
        return metadata_or_none(self._load(project_name(program), stack).tags)

    def set_metadata(self, *, stack: str, program: Path, metadata: StackMetadata) -> None:
        project = project_name(program)
        with self.store.lock(project, stack, wait_s=self.lock_wait_s):
            state = self._load(project, stack)
            state.tags = metadata.to_tags()
            self.store.save(state)

    def resources(self, *, stack: str, program: Path) -> list[ResourceEntry]:
        """The stack's resources as the state records them (for inventories and cost)."""
        return list(self._load(project_name(program), stack).resources)


_PAST = {
    "create": "created",
    "update": "updated",
    "replace": "replaced",
    "delete": "deleted",
    "same": "unchanged",
}

__all__ = ["InProcessEngine", "Planned", "identity_tags"]
