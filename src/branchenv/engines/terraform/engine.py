"""The terraform engine: a Terraform/OpenTofu root module for named stacks, through the real CLI.

Each stack has its own state in the backend (:mod:`.backend`) and its own work dir built from
the module (:mod:`.workdir`, :mod:`.override`); its metadata, and the variable values it was
created with (so ``destroy`` and ``refresh`` work from any fresh checkout), live in a JSON
sidecar beside the state. Everything that reads a stack without changing it (outputs,
resources, listing, metadata) reads the backend's objects directly: no terraform process, no
provider start.

Provider starts are the cost (each loads the aws provider's schema), so:
- ``up`` with a plan check: one ``plan -out -json``, then ``apply`` of that saved plan (no
  second refresh). The check reads the planned physical names: from the planned actions and the
  state when those say them exactly (an update that keeps every name, as a pool claim with new
  function code), else from the plan's ``show -json`` (:mod:`.plan`). A plan that changes nothing
  is not applied at all. Without a check: ``apply`` alone. The plan reads the
  resources back (refresh) only when the state holds some that this engine did not write
  within :data:`FRESH_STATE_S`: a new stack has none, a just-written one is trusted.
- ``destroy``: ``destroy`` alone (it plans for itself), without a refresh when this engine
  wrote the state within :data:`FRESH_STATE_S` (``ci``'s teardown); a stack with no resources
  left runs no terraform at all.
- Runs of one stack on one machine take turns in its work dir (an ``flock`` held from the work
  dir's preparation to the end of the operation, waited for up to ``work_dir_wait_s``); runs on
  other machines meet at the state lock (``-lock-timeout``).
- A held lock is :class:`StackLocked`; a lock older than :data:`STALE_LOCK_AFTER_S` (the pulumi
  engine's rule) is force-unlocked once, then the command is tried again.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    metadata_or_none,
)
from branchenv.engines.terraform import cmd, workspace
from branchenv.engines.terraform.backend import (
    LOCAL_STATE_BUCKET,
    BackendSpec,
    StateStore,
    state_store,
)
from branchenv.engines.terraform.cliconfig import resolve_mirror
from branchenv.engines.terraform.options import resolve_binary
from branchenv.engines.terraform.override import LocalWiring
from branchenv.engines.terraform.plan import (
    change_counts,
    messages_change_nothing,
    steps_from_messages,
    steps_from_plan,
)
from branchenv.engines.terraform.workdir import DEFAULT_WORK_DIR_WAIT_S, hold_work_dir
from branchenv.errors import EngineError, StackLocked, StackNotFound, UsageError
from branchenv.text import plural

if TYPE_CHECKING:
    from branchenv.metadata import StackMetadata
    from branchenv.targets import Target

STALE_LOCK_AFTER_S = 7200.0
"""A state lock older than this (two hours, the pulumi engine's ``lock_stale_after_s``) was left
by a run that died; it is force-unlocked once. A younger one is a run in progress."""

FRESH_STATE_S = 3600.0
"""A state this engine wrote less than this ago is "just written": destroy and the plan of an
update trust it and skip the refresh (reading every resource first costs about as much as
deleting them). `branchenv refresh` and `preview` always read them."""

SUPPORTED_STATE_VERSION = 4
_APPLY_SUMMARY = re.compile(r"Resources: (\d+) added, (\d+) changed, (\d+) destroyed")
_LOCK_CREATED = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$")


def offered_variables(inputs: ProgramInputs) -> dict[str, Any]:
    """branchenv's inputs under the variable names a module may declare (docs/terraform.md)."""
    return {
        **dict(inputs.template),
        "prefix": inputs.prefix,
        "profile": inputs.profile,
        "tags": dict(inputs.tags),
        "region": inputs.region,
        "local_functions_url": inputs.functions_url,
    }


def _instances(state: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Managed resource instances of a state document by address, with their type and name."""
    found: dict[str, dict[str, Any]] = {}
    for res in (state or {}).get("resources") or []:
        if res.get("mode") != "managed":
            continue
        prefix = f"{res['module']}." if res.get("module") else ""
        base = f"{prefix}{res.get('type')}.{res.get('name')}"
        for inst in res.get("instances") or []:
            key = inst.get("index_key")
            if key is None:
                address = base
            elif isinstance(key, str):
                address = f'{base}["{key}"]'
            else:
                address = f"{base}[{key}]"
            found[address] = {"type": res.get("type", ""), "name": res.get("name", ""), **inst}
    return found


def _public_attributes(instance: Mapping[str, Any]) -> dict[str, Any]:
    attributes = dict(instance.get("attributes") or {})
    for path in instance.get("sensitive_attributes") or []:
        # Each path is a list of steps; the first names the top-level attribute.
        if isinstance(path, list) and path and isinstance(path[0], dict):
            attributes.pop(str(path[0].get("value")), None)
    return attributes


def parse_lock_created(text: str) -> dt.datetime | None:
    """The ``Created`` time of a terraform lock (RFC 3339, nanoseconds allowed)."""
    match = _LOCK_CREATED.match(text.strip())
    if match is None:
        return None
    zone = match.group(3) or "Z"
    moment = dt.datetime.fromisoformat(match.group(1) + ("+00:00" if zone == "Z" else zone))
    return moment.astimezone(dt.UTC)


class TerraformEngine:
    """The ``terraform`` engine (see the module docstring)."""

    name = "terraform"
    resources_checked = False  # resources() reads the state

    def __init__(
        self,
        *,
        state_dir: Path,
        binary: str = "terraform",
        mirror: Path | None = None,
        backend_kind: str = "s3",
        state_bucket: str | None = None,
        state_prefix: str = "branchenv",
        lock_table: str | None = None,
        region: str = "us-east-1",
        default_target: str = "local",
        target: Target | None = None,
        lock_timeout_s: int = 30,
        lock_stale_after_s: float = STALE_LOCK_AFTER_S,
        work_dir_wait_s: float = DEFAULT_WORK_DIR_WAIT_S,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.state_dir = state_dir
        self.binary = binary
        self.mirror = mirror
        self.backend_kind = backend_kind
        self.state_bucket = state_bucket
        self.state_prefix = state_prefix
        self.lock_table = lock_table
        self.region = region
        self.default_target = default_target
        self.target = target
        self.lock_timeout_s = lock_timeout_s
        self.lock_stale_after_s = lock_stale_after_s
        self.work_dir_wait_s = work_dir_wait_s
        self._now = now
        self._sleep = sleep

    @classmethod
    def from_settings(cls, *, settings: EngineSettings, target: Target | None) -> TerraformEngine:
        """The engine for a project's settings (the registry builds it this way); bad terraform
        settings are reported here, before anything runs."""
        engine = cls(
            state_dir=settings.state_path,
            binary=resolve_binary(settings.terraform_binary),
            mirror=resolve_mirror(settings.terraform_plugin_mirror, base=settings.project_dir),
            backend_kind=settings.terraform_backend,
            state_bucket=settings.terraform_state_bucket,
            state_prefix=settings.terraform_state_prefix,
            lock_table=settings.terraform_lock_table,
            region=settings.region,
            default_target=settings.default_target,
            target=target,
        )
        if target is not None:
            engine._backend(target)  # a missing state bucket for `aws` is exit 2 now
        return engine

    # -- where stacks live ---------------------------------------------------------------------

    def _listing_target(self) -> Target | None:
        """The target to read the backend on when a call names none: the one the engine was
        built for, else the default target (the local cloud only when it runs: a stopped local
        cloud holds no stacks)."""
        if self.target is not None:
            return self.target
        from branchenv.targets import Target

        if self.default_target != "local":
            return Target(name=self.default_target, region=self.region)
        from branchenv.localcloud import LocalCloud

        status = LocalCloud(self.state_dir).status()
        return status.target(self.region) if status.running else None

    def _backend(self, target: Target | None) -> BackendSpec:
        from branchenv.targets import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY

        if self.backend_kind == "local":
            return BackendSpec(
                kind="local",
                region=self.region,
                key_prefix=self.state_prefix,
                local_root=self.state_dir / "terraform-state",
            )
        if target is not None and target.is_local:
            return BackendSpec(
                kind="s3",
                region=target.region,
                bucket=LOCAL_STATE_BUCKET,
                key_prefix=self.state_prefix,
                endpoint_url=target.local_endpoint(),
                access_key=LOCAL_ACCESS_KEY,
                secret_key=LOCAL_SECRET_KEY,
            )
        return BackendSpec(
            kind="s3",
            region=self.region,
            bucket=self.state_bucket,
            key_prefix=self.state_prefix,
            lock_table=self.lock_table,
        )

    def _store(self, target: Target | None) -> StateStore | None:
        if target is None and self.backend_kind != "local":
            return None
        spec = self._backend(target)
        client = None if target is None else target.client
        return state_store(spec, client, local_target=target is not None and target.is_local)

    def _require_store(self, target: Target | None, stack: str, program: Program) -> StateStore:
        store = self._store(target)
        if store is None:
            raise StackNotFound(
                f"no terraform stack {stack!r} of {program.project!r}: the local cloud holding its "
                "state is not running (start it with `branchenv cloud start`)"
            )
        return store

    def _workspace(
        self,
        *,
        stack: str,
        program: Program,
        target: Target,
        tags: Mapping[str, str],
        variables: Mapping[str, Any],
    ) -> workspace.Workspace:
        from branchenv.targets import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY

        local = None
        if target.is_local:
            local = LocalWiring(
                endpoint_url=target.local_endpoint(),
                access_key=LOCAL_ACCESS_KEY,
                secret_key=LOCAL_SECRET_KEY,
            )
        return workspace.prepare(
            binary=self.binary,
            module_dir=program.path,
            state_dir=self.state_dir,
            project=program.project,
            stack=stack,
            backend=self._backend(target),
            region=target.region,
            tags=tags,
            offered_vars=variables,
            local=local,
            mirror=self.mirror,
            lock_timeout_s=self.lock_timeout_s,
        )

    def _saved(
        self, store: StateStore, program: Program, stack: str
    ) -> tuple[dict[str, str], dict[str, Any]]:
        """The sidecar's tags and the variables the stack was last applied with."""
        sidecar = store.read_sidecar(program.project, stack) or {}
        tags = sidecar.get("tags") if isinstance(sidecar.get("tags"), dict) else {}
        variables = sidecar.get("vars") if isinstance(sidecar.get("vars"), dict) else {}
        return dict(tags or {}), dict(variables or {})

    def _written_recently(self, sidecar: Mapping[str, Any] | None) -> bool:
        written = (sidecar or {}).get("written_at")
        try:
            moment = dt.datetime.fromisoformat(str(written))
        except ValueError:
            return False
        if moment.tzinfo is None:
            return False
        return (self._now() - moment).total_seconds() < FRESH_STATE_S

    # -- locks -----------------------------------------------------------------------------------

    def _work_dir_held(
        self, program: Program, stack: str, on_output: OutputSink | None
    ) -> AbstractContextManager[None]:
        """The stack's work dir held for one operation (see :func:`.workdir.hold_work_dir`):
        runs of one stack on this machine take turns; the state lock (``-lock-timeout``)
        guards against runs elsewhere."""
        return hold_work_dir(
            workspace.work_dir_for(self.state_dir, program.project, stack),
            stack=stack,
            wait_s=self.work_dir_wait_s,
            on_wait=on_output,
            sleep=self._sleep,
        )

    def _remove_work_dir(self, program: Program, stack: str) -> None:
        shutil.rmtree(
            workspace.work_dir_for(self.state_dir, program.project, stack), ignore_errors=True
        )

    @staticmethod
    def _exists(store: StateStore, program: Program, stack: str) -> bool:
        return (
            store.read_state(program.project, stack) is not None
            or store.read_sidecar(program.project, stack) is not None
        )

    @contextmanager
    def _stale_lock_cleared(
        self, ws: workspace.Workspace, store: StateStore
    ) -> Iterator[list[bool]]:
        """Run the body; on StackLocked whose lock is stale, force-unlock it once and signal a
        retry (the caller loops on the yielded flag)."""
        retry = [False]
        try:
            yield retry
        except StackLocked as exc:
            info = store.read_lock(ws.project, ws.stack)
            created = parse_lock_created(str(info.get("Created", ""))) if info else None
            age = None if created is None else (self._now() - created).total_seconds()
            if info is None or age is None or age < self.lock_stale_after_s or not info.get("ID"):
                raise
            cmd.run(ws.options, ["force-unlock", "-force", str(info["ID"])])
            raise _RetryAfterUnlock(str(exc)) from None

    def _locked_run(
        self, ws: workspace.Workspace, store: StateStore, body: Callable[[], Any]
    ) -> Any:
        for attempt in (1, 2):
            try:
                with self._stale_lock_cleared(ws, store):
                    return body()
            except _RetryAfterUnlock:
                if attempt == 2:
                    raise StackLocked(
                        f"stack {ws.stack!r} was locked again right after its stale lock was "
                        "cleared; another run is active: wait for it and retry"
                    ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    # -- the Engine protocol -----------------------------------------------------------------

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
        """Plan, check, apply (see the module docstring)."""
        started = time.monotonic()
        check_program(program)
        with self._work_dir_held(program, stack, on_output):
            ws = self._workspace(
                stack=stack,
                program=program,
                target=target,
                tags=metadata.identity_tags(),
                variables=offered_variables(inputs),
            )
            store = self._require_store(target, stack, program)
            store.ensure()
            state = store.read_state(program.project, stack)
            sidecar = store.read_sidecar(program.project, stack)
            existed = state is not None or sidecar is not None
            # Nothing to read back (a new stack), or a state this engine wrote within the hour (an
            # update right after `up`, a pool claim): plan without reading every resource first.
            refresh = bool(_instances(state)) and not self._written_recently(sidecar)

            def run() -> dict[str, int]:
                workspace.init(ws, on_output=on_output)
                if plan_check is None:
                    store.write_sidecar(
                        program.project, stack, metadata.to_tags(), dict(ws.options.vars)
                    )
                    result = workspace.apply(ws, on_output=on_output, refresh=refresh)
                    return _counts_from_summary(result.stdout)
                messages = workspace.save_plan(ws, on_output=on_output, refresh=refresh)
                plan: dict[str, Any] | None = None
                steps = steps_from_messages(messages, _instances(state))
                if steps is None:  # the planned actions do not say enough: read the whole plan
                    plan = workspace.show_plan(ws)
                    steps = steps_from_plan(plan)
                try:
                    plan_check(steps)
                except BaseException:
                    workspace.discard_plan(ws)
                    if not existed:
                        # Refused before anything existed: leave no trace (the plan's lock file
                        # versions, the work dir) of a stack that never was.
                        store.remove(program.project, stack)
                        shutil.rmtree(ws.work_dir, ignore_errors=True)
                    raise
                store.write_sidecar(
                    program.project, stack, metadata.to_tags(), dict(ws.options.vars)
                )
                if (
                    _changes_nothing(plan)
                    if plan is not None
                    else messages_change_nothing(messages)
                ):
                    workspace.discard_plan(ws)
                else:
                    workspace.apply_saved_plan(ws, on_output=on_output)
                return change_counts(steps)

            changes = self._locked_run(ws, store, run)
            state = store.read_state(program.project, stack)
        return UpResult(
            stack=stack,
            outputs=_outputs(state),
            changes=changes,
            resources=tuple(_summaries(state)),
            duration_s=time.monotonic() - started,
        )

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
        """``plan`` only: per resource, its change kind and changed properties."""
        check_program(program)
        with self._work_dir_held(program, stack, on_output):
            ws = self._workspace(
                stack=stack,
                program=program,
                target=target,
                tags=metadata.identity_tags(),
                variables=offered_variables(inputs),
            )
            store = self._require_store(target, stack, program)
            store.ensure()

            def run() -> dict[str, Any]:
                workspace.init(ws, on_output=on_output)
                try:
                    return workspace.plan_to_file(ws, on_output=on_output)
                finally:
                    workspace.discard_plan(ws)

            plan = self._locked_run(ws, store, run)
        steps = steps_from_plan(plan)
        return PreviewResult(
            stack=stack,
            changes=change_counts(steps),
            resource_types=tuple(sorted({s.type for s in steps})),
            steps=steps,
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
        """``destroy`` (it plans for itself), then, with ``remove``, every object of the stack
        in the backend (every version of the state, the sidecar, the lock) and its work dir."""
        started = time.monotonic()
        store = self._require_store(target, stack, program)
        not_found = StackNotFound(
            f"no terraform stack {stack!r} of {program.project!r} in {store.spec.describe()}"
        )
        if not self._exists(store, program, stack):
            raise not_found  # nothing to wait for: no work dir made for it
        with self._work_dir_held(program, stack, on_output):
            # Read under the lock: a run that held it may have changed or removed the stack.
            state = store.read_state(program.project, stack)
            sidecar = store.read_sidecar(program.project, stack)
            if state is None and sidecar is None:
                self._remove_work_dir(program, stack)  # made again only to hold its lock
                raise not_found
            before = _instances(state)
            failure: EngineError | None = None
            if before:
                tags, variables = self._saved(store, program, stack)
                ws = self._workspace(
                    stack=stack,
                    program=program,
                    target=target,
                    tags=_identity(tags),
                    variables=variables,
                )

                fresh = self._written_recently(sidecar)

                def run() -> None:
                    workspace.init(ws, on_output=on_output)
                    workspace.destroy(ws, on_output=on_output, refresh=not fresh)

                try:
                    self._locked_run(ws, store, run)
                except StackLocked:
                    raise
                except EngineError as exc:
                    failure = exc
            left = _instances(store.read_state(program.project, stack))
            deleted = len(set(before) - set(left))
            if left:
                result = DestroyResult(
                    stack=stack,
                    deleted=deleted,
                    removed=False,
                    duration_s=time.monotonic() - started,
                    failed=tuple(sorted(left)),
                )
                error = EngineError(
                    f"terraform destroy of {stack!r} left {plural(len(left), 'resource')}: "
                    f"{', '.join(sorted(left)[:5])}" + (f" ({failure})" if failure else "")
                )
                error.result = result  # type: ignore[attr-defined]
                raise error
            if remove:
                store.remove(program.project, stack)
                self._remove_work_dir(program, stack)
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
        """``apply -refresh-only``: resources gone from the target leave the state."""
        started = time.monotonic()
        store = self._require_store(target, stack, program)
        not_found = StackNotFound(f"no terraform stack {stack!r} of {program.project!r}")
        if store.read_state(program.project, stack) is None:
            raise not_found
        with self._work_dir_held(program, stack, on_output):
            state = store.read_state(program.project, stack)
            if state is None:
                self._remove_work_dir(program, stack)  # made again only to hold its lock
                raise not_found
            before = _instances(state)
            if before:
                tags, variables = self._saved(store, program, stack)
                ws = self._workspace(
                    stack=stack,
                    program=program,
                    target=target,
                    tags=_identity(tags),
                    variables=variables,
                )

                def run() -> None:
                    workspace.init(ws, on_output=on_output)
                    workspace.refresh_only(ws, on_output=on_output)

                self._locked_run(ws, store, run)
            after = _instances(store.read_state(program.project, stack))
        missing = tuple(sorted(set(before) - set(after)))
        changed = tuple(
            sorted(
                a
                for a in set(before) & set(after)
                if before[a].get("attributes") != after[a].get("attributes")
            )
        )
        return RefreshResult(
            stack=stack, missing=missing, changed=changed, duration_s=time.monotonic() - started
        )

    def outputs(self, *, stack: str, program: Program) -> dict[str, Any]:
        """From the state document (no terraform run); sensitive outputs masked."""
        store = self._require_store(self._listing_target(), stack, program)
        state = store.read_state(program.project, stack)
        if state is None:
            raise StackNotFound(f"no terraform stack {stack!r} of {program.project!r}")
        return _outputs(state)

    def resources(self, *, stack: str, program: Program) -> list[ResourceSummary]:
        """From the state document (the ``state pull`` content, read without a provider)."""
        store = self._store(self._listing_target())
        if store is None:
            return []
        return _summaries(store.read_state(program.project, stack))

    def list_stacks(self, *, program: Program, count_missing: bool = True) -> list[StackSummary]:
        """Every stack of the project in the backend (keys + sidecars): any checkout sees them."""
        store = self._store(self._listing_target())
        if store is None:
            return []
        summaries = []
        for stack in store.stacks(program.project):
            sidecar = store.read_sidecar(program.project, stack)
            state = store.read_state(program.project, stack)
            tags = sidecar.get("tags") if sidecar and isinstance(sidecar.get("tags"), dict) else {}
            metadata = metadata_or_none(tags or {})
            attention = None
            if sidecar is None:
                attention = (
                    "no branchenv sidecar beside its state (made outside branchenv, or the "
                    f"sidecar was lost): look at {store.spec.describe()} by hand"
                )
            elif metadata is None and tags:
                attention = "its sidecar's metadata cannot be read: look at it by hand"
            elif state is not None and int(state.get("version", 0)) > SUPPORTED_STATE_VERSION:
                attention = f"its state format (version {state.get('version')}) is newer than branchenv reads"
            summaries.append(
                StackSummary(
                    stack=stack,
                    metadata=metadata,
                    resource_count=len(_instances(state)),
                    last_update=sidecar.get("written_at") if sidecar else None,
                    tags={str(k): str(v) for k, v in (tags or {}).items()},
                    attention=attention,
                    backend=store.spec.describe(),
                )
            )
        return summaries

    def metadata(self, *, stack: str, program: Program) -> StackMetadata | None:
        """From the sidecar; None when the stack exists without one (or without the managed
        marker); StackNotFound when the backend has nothing of it."""
        store = self._require_store(self._listing_target(), stack, program)
        sidecar = store.read_sidecar(program.project, stack)
        if sidecar is None and store.read_state(program.project, stack) is None:
            raise StackNotFound(f"no terraform stack {stack!r} of {program.project!r}")
        tags, _ = self._saved(store, program, stack)
        return metadata_or_none(tags)

    def set_metadata(self, *, stack: str, program: Program, metadata: StackMetadata) -> None:
        """Rewrite the sidecar (the variables it records are kept); no terraform run."""
        store = self._require_store(self._listing_target(), stack, program)
        if (
            store.read_sidecar(program.project, stack) is None
            and store.read_state(program.project, stack) is None
        ):
            raise StackNotFound(f"no terraform stack {stack!r} of {program.project!r}")
        _, variables = self._saved(store, program, stack)
        store.write_sidecar(program.project, stack, metadata.to_tags(), variables)


class _RetryAfterUnlock(Exception):
    pass


def _identity(tags: Mapping[str, str]) -> dict[str, str]:
    metadata = metadata_or_none(tags)
    return metadata.identity_tags() if metadata is not None else {}


def _outputs(state: Mapping[str, Any] | None) -> dict[str, Any]:
    outputs = (state or {}).get("outputs") or {}
    return {
        name: SECRET_MASK if spec.get("sensitive") else spec.get("value")
        for name, spec in outputs.items()
        if isinstance(spec, dict)
    }


def _summaries(state: Mapping[str, Any] | None) -> list[ResourceSummary]:
    return [
        ResourceSummary(
            address=address,
            type=inst["type"],
            name=inst["name"],
            id=(inst.get("attributes") or {}).get("id"),
            region=(inst.get("attributes") or {}).get("region"),
            outputs=_public_attributes(inst),
        )
        for address, inst in _instances(state).items()
    ]


def _changes_nothing(plan: Mapping[str, Any]) -> bool:
    resources = plan.get("resource_changes") or []
    outputs = (plan.get("output_changes") or {}).values()
    return all(
        tuple((rc.get("change") or {}).get("actions") or ()) in (("no-op",), ("read",))
        for rc in resources
    ) and all(tuple(o.get("actions") or ()) == ("no-op",) for o in outputs)


def _counts_from_summary(output: str) -> dict[str, int]:
    counts = {"create": 0, "update": 0, "replace": 0, "delete": 0, "same": 0}
    match = _APPLY_SUMMARY.search(output)
    if match:
        counts["create"], counts["update"], counts["delete"] = (int(g) for g in match.groups())
    return counts


def check_program(program: Program) -> None:
    """A terraform engine runs only terraform modules."""
    if program.kind != "terraform":
        raise UsageError(
            f"the terraform engine runs Terraform root modules, not {program.kind} programs "
            f"({program.path}); choose another engine with `--engine`"
        )
