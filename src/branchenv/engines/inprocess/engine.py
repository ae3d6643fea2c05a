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

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from branchenv.engines.base import (
    CHANGE_KINDS,
    DestroyResult,
    EngineSettings,
    OutputSink,
    PlanCheck,
    PlannedStep,
    PreviewResult,
    Program,
    ProgramInputs,
    RefreshResult,
    ResourceSummary,
    StackSummary,
    UpResult,
    metadata_or_none,
)
from branchenv.engines.inprocess.deploy import StackRun
from branchenv.engines.inprocess.state import ResourceEntry, StackState, StateStore
from branchenv.engines.pulumi_program import stack_config
from branchenv.errors import (
    BranchenvError,
    EngineError,
    SafetyRefusal,
    StackNotFound,
    TransientError,
)
from branchenv.text import plural

if TYPE_CHECKING:
    from branchenv.engines.inprocess.materializers import Materializer
    from branchenv.metadata import StackMetadata
    from branchenv.targets import Target


class InProcessEngine:
    """The Engine protocol on the SDK mock runtime plus the local cloud. Local target only."""

    name = "inprocess"
    resources_checked = True  # resources() checks each exists on the local cloud

    def __init__(
        self,
        *,
        state_dir: Path,
        lock_wait_s: float = 120.0,
        target: Target | None = None,
        region: str = "us-east-1",
    ) -> None:
        self.state_dir = Path(state_dir)
        self.store = StateStore(self.state_dir / "inprocess")
        self.lock_wait_s = lock_wait_s
        self.target = target
        """The local cloud, when known: list_stacks then counts what is missing from it."""
        self.region = region

    @classmethod
    def from_settings(cls, *, settings: EngineSettings, target: Target | None) -> InProcessEngine:
        """The engine for a project's settings (the registry builds it this way)."""
        return cls(state_dir=settings.state_path, target=target, region=settings.region)

    def _listing_target(self) -> Target | None:
        """The local cloud to count missing resources against: the one given, else the one
        running for this state dir (never started for a listing)."""
        if self.target is not None:
            return self.target
        from branchenv.localcloud import LocalCloud

        status = LocalCloud(self.state_dir).status()
        return status.target(self.region) if status.running else None

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
    def _program_config(target: Target, inputs: ProgramInputs) -> dict[str, str]:
        """The program's stack config: the mapping shared by both Pulumi-program engines, whose
        ``aws:defaultTags`` (the identity tags, ``inputs.tags``) the default provider puts on
        every taggable resource, so a program that knows nothing of branchenv gets them."""
        return stack_config(inputs, target)

    def _load(self, project: str, stack: str) -> StackState:
        state = self.store.load(project, stack)
        if state is None:
            raise StackNotFound(f"no stack named {stack!r} in project {project!r}")
        return state

    @staticmethod
    def _summaries(entries: list[ResourceEntry]) -> tuple[ResourceSummary, ...]:
        return tuple(_summary(e) for e in entries)

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
        """What ``up`` would change, per resource with the changed properties; nothing is
        touched (the state is read, not recovered: a preview never deletes)."""
        self._require_local(target)
        project = program.project
        state = self.store.load(project, stack)
        run = self._run(target, on_output)
        plan = run.plan(
            program_dir=program.path,
            project=project,
            stack=stack,
            config=self._program_config(target, inputs),
            state=state,
        )
        for note in plan.notes:
            (on_output or (lambda _line: None))(f"note: {note}")
        return PreviewResult(
            stack=stack,
            changes=plan.changes,
            resource_types=plan.resource_types,
            steps=tuple(plan.steps),
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
        """Create or update the stack so that it matches the program; idempotent. Under the
        stack's lock: run the preview pass against the state as it will be once settled, hand
        its steps (planned physical names included) to ``plan_check`` before anything changes,
        then settle interrupted operations, forget what the target lost, and apply."""
        self._require_local(target)
        say = on_output or (lambda _line: None)
        started = time.monotonic()
        project = program.project
        full = self._program_config(target, inputs)
        run = self._run(target, say)
        with self.store.lock(project, stack, wait_s=self.lock_wait_s, on_wait=say):
            state = self.store.load(project, stack)
            if state is not None and state.resources:
                # The existence check of settled_view waits on the local cloud: the program's
                # SDK imports (over a second of a first run) go on meanwhile.
                from branchenv.mockruntime import preload

                preload(e.type for e in state.resources)
            # The plan is made against the state as it will be once settled, but nothing is
            # settled (deleted, rewritten) before the plan check has seen the plan.
            view, gone = run.settled_view(state) if state is not None else (None, [])
            say(
                f"previewing {project}/{stack} (inprocess engine, local cloud {target.endpoint_url})"
            )
            plan = run.plan(
                program_dir=program.path, project=project, stack=stack, config=full, state=view
            )
            for note in plan.notes:
                say(f"note: {note}")
            if plan_check is not None:
                plan_check(plan.steps)
            if state is not None:
                if state.pending:
                    say(f"settling {plural(len(state.pending), 'interrupted operation')} first")
                    run.recover(state)
                if run.forget_missing(state, gone):
                    say(
                        f"{plural(len(gone), 'resource')} of the stack no longer "
                        f"{'exists' if len(gone) == 1 else 'exist'}: re-creating them"
                    )
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
            late: Any = None
            if plan_check is not None:
                check = plan_check

                def late(step: PlannedStep) -> None:
                    # A fixed name the preview could not know yet, checked before its create.
                    check([step])

            done = run.apply(
                program_dir=program.path,
                project=project,
                stack=stack,
                config=full,
                state=state,
                late_check=late,
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
        program: Program,
        target: Target,
        on_output: OutputSink | None = None,
        remove: bool = True,
    ) -> DestroyResult:
        """Delete every resource, dependents first, continuing past failures; raises
        EngineError naming each one left after trying them all."""
        self._require_local(target)
        say = on_output or (lambda _line: None)
        started = time.monotonic()
        project = program.project
        run = self._run(target, say)
        with self.store.lock(project, stack, wait_s=self.lock_wait_s):
            state = self._load(project, stack)
            recovered = run.recover(state) if state.pending else 0
            say(f"destroying {project}/{stack}: {plural(len(state.resources), 'resource')}")
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
                    failed=tuple(address for address, _why in outcome.failed),
                )
                # A transient failure is worth another try (the teardown retries exactly it).
                kind = TransientError if outcome.transient else EngineError
                error = kind(
                    f"destroy of stack {stack!r} left {plural(len(outcome.failed), 'resource')} after "
                    f"deleting {deleted}: "
                    + "; ".join(why for _address, why in outcome.failed)
                    + ". Fix the cause and re-run `branchenv down`"
                )
                error.result = result  # type: ignore[union-attr]
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
        program: Program,
        target: Target,
        on_output: OutputSink | None = None,
    ) -> RefreshResult:
        """Reconcile the state with the target: settle interrupted operations, forget what is
        gone, and record tags changed behind the engine's back (``changed``; the next ``up``
        puts the program's back). Other properties' drift is not read back."""
        self._require_local(target)
        started = time.monotonic()
        project = program.project
        run = self._run(target, on_output)
        with self.store.lock(project, stack, wait_s=self.lock_wait_s):
            state = self._load(project, stack)
            if state.pending:
                run.recover(state)
            gone = run.forget_missing(state)
            drifted = run.tag_drift(state)
        return RefreshResult(
            stack=stack,
            missing=tuple(e.urn for e in gone),
            changed=tuple(e.urn for e in drifted),
            duration_s=time.monotonic() - started,
        )

    def outputs(self, *, stack: str, program: Program) -> dict[str, Any]:
        return dict(self._load(program.project, stack).outputs)

    def list_stacks(self, *, program: Program, count_missing: bool = True) -> list[StackSummary]:
        """Every stack with a state file. One that cannot be read is listed with why
        (``attention``) and no metadata, so nothing acts on it. With the local cloud known and
        ``count_missing``, ``missing`` counts the resources gone from it (asked concurrently:
        one existence call per resource of every stack of the project). With
        ``count_missing``, ``resources`` is what :meth:`resources` answers, from that same
        answer (`ls` and `cost` price every stack without asking the cloud again)."""
        out = []
        readable: list[tuple[StackState, StackSummary]] = []
        for found in self.store.scan(program.project):
            if found.state is None:
                assert found.problem is not None
                out.append(
                    StackSummary(
                        stack=found.stack,
                        metadata=None,
                        resource_count=None,
                        attention=str(found.problem),
                    )
                )
                continue
            s = found.state
            summary = StackSummary(
                stack=s.stack,
                metadata=metadata_or_none(s.tags),
                resource_count=len(s.resources),
                last_update=s.updated_at,
                tags=dict(s.tags),
            )
            readable.append((s, summary))
        if not count_missing:
            return out + [summary for _, summary in readable]
        gone, answered = self._gone([s for s, _ in readable])
        for s, summary in readable:
            missing = sum(1 for e in s.resources if id(e) in gone) if answered else None
            resources = tuple(_summary(e) for e in s.resources if id(e) not in gone)
            out.append(dataclasses.replace(summary, missing=missing, resources=resources))
        return out

    def _running_target(self) -> Target | None:
        """The local cloud to check existence against, when it is known and running."""
        try:
            target = self._listing_target()
            if target is None:
                return None
            self._require_local(target)
        except BranchenvError:
            return None
        return target

    def _gone(self, states: list[StackState]) -> tuple[set[int], bool]:
        """The ids of the entries of ``states`` gone from the local cloud, and whether it
        answered (not when it is not known here or not running, or did not answer: unknown
        is not zero, and then nothing counts as gone, as :meth:`resources` has it)."""
        if not states:
            return set(), False
        target = self._running_target()
        if target is None:
            return set(), False
        entries = [e for s in states for e in s.resources]
        try:
            return {id(e) for e in self._run(target, None).missing(entries)}, True
        except Exception:
            return set(), False  # the cloud did not answer: say nothing rather than guess

    def metadata(self, *, stack: str, program: Program) -> StackMetadata | None:
        return metadata_or_none(self._load(program.project, stack).tags)

    def set_metadata(self, *, stack: str, program: Program, metadata: StackMetadata) -> None:
        with self.store.lock(program.project, stack, wait_s=self.lock_wait_s):
            state = self._load(program.project, stack)
            state.tags = metadata.to_tags()
            self.store.save(state)

    def resources(self, *, stack: str, program: Program) -> list[ResourceSummary]:
        """The stack's resources as the state records them (secrets masked before storing),
        less those known gone from the running local cloud (a wipe): what is gone costs
        nothing. Nothing is forgotten here (``refresh`` and ``up`` do that)."""
        entries = self._load(program.project, stack).resources
        target = self._running_target()
        if target is not None and entries:
            try:
                gone = {id(e) for e in self._run(target, None).missing(entries)}
            except Exception:
                gone = set()  # the cloud did not answer: report what the state records
            entries = [e for e in entries if id(e) not in gone]
        return [_summary(e) for e in entries]


def _summary(entry: ResourceEntry) -> ResourceSummary:
    return ResourceSummary(
        address=entry.urn,
        type=entry.type,
        name=entry.name,
        id=entry.id,
        region=entry.region or None,
        outputs=dict(entry.outputs),
    )


_PAST = {
    "create": "created",
    "update": "updated",
    "replace": "replaced",
    "delete": "deleted",
    "same": "unchanged",
}

__all__ = ["InProcessEngine"]
