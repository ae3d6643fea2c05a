"""One operation of the inprocess engine on one stack, with Pulumi's semantics.

``up`` runs the program twice on the SDK's mock runtime. The *preview* pass records every
registration and decides its step against the state (see :mod:`.plan`); resources the state
knows hand their recorded outputs back, so what depends on an unchanged resource is known in
the preview too. Nothing is touched before the plan check (branch isolation) has seen the plan.
The *apply* pass then decides each step again with the real inputs and carries it out: create,
update in place, replace (create-before-delete, or delete-before-replace for a fixed name) or
nothing; what the program no longer declares, and the old halves of replacements, are deleted
last, dependents first.

Crash safety: before every create or delete an intent is journaled in the state (the physical
name is chosen before the call) and settled after it, each with an atomic write. The first
thing every later operation does under the stack's lock is :meth:`StackRun.recover`: an
interrupted create's leftovers are found (by name, client token or the stack's identity tags)
and removed, an interrupted delete is finished. So whatever moment a SIGKILL lands, the next
``up``, ``down``, ``refresh`` or reap knows every resource that may exist.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from branchenv.engines.base import CHANGE_KINDS, SECRET_MASK
from branchenv.engines.base import PlannedStep as Planned
from branchenv.engines.inprocess.plan import (
    UNKNOWN,
    Step,
    autoname,
    contains_unknown,
    decide,
    normalize,
    reverse_dependency_order,
    unhonoured,
)
from branchenv.engines.inprocess.state import PendingOp, ResourceEntry, StackState, StateStore
from branchenv.errors import (
    BranchenvError,
    EngineError,
    TransientError,
    UnsupportedResource,
    one_line,
)
from branchenv.text import plural

if TYPE_CHECKING:
    from branchenv.engines.inprocess.materializers import Materializer
    from branchenv.engines.inprocess.materializers.base import Context
    from branchenv.mockruntime import Registration
    from branchenv.targets import Target

PROVIDER_TYPE = "pulumi:providers:aws"
SECRET_KEY = "__secret"

Say = Callable[[str], None]


@dataclasses.dataclass
class UpDone:
    """What ``up`` did."""

    outputs: dict[str, Any]
    changes: dict[str, int]
    entries: list[ResourceEntry]
    notes: list[str]


@dataclasses.dataclass
class PlanResult:
    steps: list[Planned]
    changes: dict[str, int]
    resource_types: tuple[str, ...]
    notes: list[str]


@dataclasses.dataclass
class DestroyOutcome:
    deleted: int
    already_gone: int
    failed: list[tuple[str, str]]  # (address, why)
    transient: bool = False
    """Some failure was transient (throttling, a dropped connection): worth a retry."""


def _contains_secret(value: Any) -> bool:
    from branchenv.engines.base import is_secret_envelope

    if isinstance(value, dict):
        if is_secret_envelope(value):
            return True
        return any(_contains_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_secret(v) for v in value)
    return False


def _unsecret(value: Any) -> Any:
    from branchenv.engines.base import is_secret_envelope

    if isinstance(value, dict):
        if is_secret_envelope(value):
            return _unsecret(value.get("value"))
        return {k: _unsecret(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unsecret(v) for v in value]
    return value


def _maybe_json(value: Any) -> Any:
    import json

    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _archive_digest(value: Any) -> str:
    """A digest of an archive's or asset's content (a code change must be a change)."""
    import pulumi

    from branchenv.engines.inprocess.materializers.compute import archive_bytes

    if isinstance(value, pulumi.Archive):
        data = archive_bytes(value)
    elif isinstance(value, pulumi.FileAsset):
        data = Path(value.path).read_bytes()
    elif isinstance(value, pulumi.StringAsset):
        data = value.text.encode()
    else:
        data = repr(value).encode()
    return "sha256:" + hashlib.sha256(data).hexdigest()


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


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class StackRun:
    """The engine's work on one stack, under the stack's lock (the caller holds it)."""

    def __init__(
        self,
        *,
        store: StateStore,
        registry: Mapping[str, Materializer],
        target: Target,
        say: Say,
    ) -> None:
        self.store = store
        self.registry = registry
        self.target = target
        self.say = say
        self._contexts: dict[str, Context] = {}
        self._ctx_lock = threading.Lock()
        self._save_lock = threading.RLock()
        self._rebuilt: set[str] = set()

    # -- plumbing ------------------------------------------------------------------------------

    def ctx(self, region: str) -> Context:
        from branchenv.engines.inprocess.materializers import Context

        region = region or self.target.region
        with self._ctx_lock:
            if region not in self._contexts:
                self._contexts[region] = Context(self.target, region)
            return self._contexts[region]

    def save(self, state: StackState) -> None:
        with self._save_lock:
            self.store.save(state)

    def materializer(self, type_token: str) -> Materializer:
        try:
            return self.registry[type_token]
        except KeyError:
            raise UnsupportedResource([type_token], engine="inprocess") from None

    # -- recovery and drift --------------------------------------------------------------------

    def recover(self, state: StackState) -> int:
        """Settle what an interrupted operation left (see the module docstring). Returns how
        many physical resources it removed."""
        removed = 0
        for op in list(state.pending):
            materializer = self.materializer(op.type)
            ctx = self.ctx(op.region)
            if op.op == "creating":
                known = frozenset(e.id for e in state.resources if e.type == op.type)
                leftovers = materializer.leftovers(
                    ctx, inputs=op.inputs, stack_tags=state.tags, known_ids=known
                )
                for rid in leftovers:
                    if materializer.delete(ctx, id=rid, outputs=op.inputs):
                        removed += 1
                    self.say(f"  removed   {op.type}  {op.name}  ({rid}): an interrupted create")
            elif op.op == "deleting":
                entry = next(
                    (e for e in state.resources if e.urn == op.urn and e.id == op.id), None
                )
                outputs = entry.outputs if entry else op.inputs
                if materializer.delete(ctx, id=op.id, outputs=outputs):
                    removed += 1
                self.say(f"  deleted   {op.type}  {op.name}  ({op.id}): an interrupted delete")
                state.resources = [e for e in state.resources if e is not entry]
            state.pending.remove(op)
            self.save(state)
        return removed

    def missing(self, entries: Sequence[ResourceEntry]) -> list[ResourceEntry]:
        """The entries whose resource is gone from the target (asked concurrently; only a
        "not found" counts as gone)."""
        if not entries:
            return []

        def gone(entry: ResourceEntry) -> bool:
            materializer = self.registry.get(entry.type)
            if materializer is None:
                return False
            return not materializer.exists(
                self.ctx(entry.region), id=entry.id, outputs=entry.outputs
            )

        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            flags = list(pool.map(gone, entries))
        return [e for e, flag in zip(entries, flags, strict=True) if flag]

    def settled_view(self, state: StackState) -> tuple[StackState, list[ResourceEntry]]:
        """The state as it will be once its interrupted operations are settled and what the
        target lost is forgotten, changing nothing (neither the state nor the target): what
        ``up`` plans against, so that the plan check sees the plan before any side effect.
        Returns that view and the entries found gone (for :meth:`forget_missing`)."""
        gone = self.missing(state.resources)
        drop = {id(e) for e in gone}
        deleting = {(op.urn, op.id) for op in state.pending if op.op == "deleting"}
        resources = [
            e for e in state.resources if id(e) not in drop and (e.urn, e.id) not in deleting
        ]
        return dataclasses.replace(state, resources=resources, pending=[]), gone

    def forget_missing(
        self, state: StackState, gone: Sequence[ResourceEntry] | None = None
    ) -> list[ResourceEntry]:
        """Drop from the state what no longer exists in the target (refresh); ``gone``: the
        entries already found missing (by :meth:`settled_view`), else they are asked for."""
        gone = self.missing(state.resources) if gone is None else list(gone)
        if gone:
            ids = {id(e) for e in gone}
            state.resources = [e for e in state.resources if id(e) not in ids]
            self.save(state)
            for e in gone:
                self.say(f"  gone      {e.type}  {e.name}  ({e.id})")
        return gone

    def tag_drift(self, state: StackState) -> list[ResourceEntry]:
        """Read back the tags of the state's taggable resources (one tagging-API call per 100
        ARNs) and record what changed behind the engine's back, so the next ``up`` sees the
        difference and puts the program's tags back. Types the tagging API does not list are
        left as they are (only their existence is checked)."""
        from branchenv.aws_errors import translate

        by_arn = {
            str(e.outputs["arn"]): e
            for e in state.resources
            if not e.delete
            and isinstance(e.outputs.get("arn"), str)
            and getattr(self.registry.get(e.type), "taggable", False)
        }
        if not by_arn:
            return []
        client = self.ctx(self.target.region).client("resourcegroupstaggingapi")
        actual: dict[str, dict[str, str]] = {}
        arns = sorted(by_arn)
        try:
            for i in range(0, len(arns), 100):
                got = client.get_resources(ResourceARNList=arns[i : i + 100])
                for item in got.get("ResourceTagMappingList", []):
                    actual[item["ResourceARN"]] = {
                        t["Key"]: t["Value"] for t in item.get("Tags", [])
                    }
        except Exception as exc:
            raise translate(exc, "reading the stack's tags back") from exc
        changed = []
        for arn, tags in actual.items():
            entry = by_arn.get(arn)
            if entry is not None and tags != entry.tags:
                self._swap(state, entry, dataclasses.replace(entry, tags=tags))
                changed.append(entry)
                self.say(f"  drifted   {entry.type}  {entry.name}  ({entry.id}): tags")
        return changed

    # -- one registration ----------------------------------------------------------------------

    def _resolve(
        self,
        reg: Registration,
        providers: Mapping[str, dict[str, Any]],
        config: Mapping[str, str],
    ) -> tuple[Materializer, dict[str, Any], dict[str, str], dict[str, str], str, set[str]]:
        """The materializer, raw inputs, own tags, effective tags, region and secret input
        names of one registration."""
        materializer = self.materializer(reg.type)
        secret_keys = {k for k, v in reg.inputs.items() if _contains_secret(v)}
        secret_keys |= set(materializer.secret_properties)
        inputs = _unsecret(reg.inputs)
        provider = providers.get(reg.provider, {})
        source = provider.get("defaultTags") if provider else config.get("aws:defaultTags")
        parsed = _maybe_json(source)
        default_tags = _tag_map(parsed.get("tags") if isinstance(parsed, Mapping) else None)
        own = _tag_map(inputs.get(materializer.tag_property))
        tags = {**default_tags, **own}
        if not materializer.taggable:
            tags = {}
        region = str(
            inputs.get("region")
            or provider.get("region")
            or config.get("aws:region")
            or self.target.region
        )
        return materializer, inputs, own, tags, region, secret_keys

    def _stored(self, value: Mapping[str, Any], secret_keys: set[str]) -> dict[str, Any]:
        """Inputs as the state keeps them: normalized, secrets as a keyed digest."""
        out = normalize(dict(value), archive_digest=_archive_digest)
        for key in secret_keys:
            if key in value and value[key] is not None:
                out[key] = {SECRET_KEY: self.store.secret_digest(normalize(value[key]))}
        assert isinstance(out, dict)
        return out

    @staticmethod
    def _masked(outputs: Mapping[str, Any], secret_keys: set[str]) -> dict[str, Any]:
        stored = _storable({k: SECRET_MASK if k in secret_keys else v for k, v in outputs.items()})
        assert isinstance(stored, dict)
        return stored

    # -- plan ----------------------------------------------------------------------------------

    def plan(
        self,
        *,
        program_dir: Path,
        project: str,
        stack: str,
        config: Mapping[str, str],
        state: StackState | None,
    ) -> PlanResult:
        """The preview pass: what ``up`` would do, changing nothing."""
        from branchenv.mockruntime import run_program

        live = {e.urn: e for e in (state.resources if state else []) if not e.delete}
        providers: dict[str, dict[str, Any]] = {}
        steps: list[Planned] = []
        notes: list[str] = []
        types: set[str] = set()
        unsupported: list[str] = []
        lock = threading.Lock()

        def record(reg: Registration) -> tuple[str, dict[str, Any]]:
            with lock:
                types.add(reg.type)
            if reg.type == PROVIDER_TYPE:
                return self._provider(reg, providers)
            if not reg.custom:
                return "", {}
            if reg.type not in self.registry:
                with lock:
                    unsupported.append(reg.type)
                return "", dict(reg.inputs)
            materializer, inputs, _own, tags, _region, secret_keys = self._resolve(
                reg, providers, config
            )
            old = live.get(reg.urn)
            if old is not None and old.type != reg.type:
                old = None
            prop = materializer.name_property
            step, autonamed, _stored = self._decide(
                reg, materializer, old, inputs, tags, secret_keys
            )
            name = inputs.get(prop) if prop else None
            physical = (
                name
                if materializer.unique_name
                and not autonamed
                and isinstance(name, str)
                and not contains_unknown(name)
                else None
            )
            with lock:
                steps.append(
                    Planned(
                        address=reg.urn,
                        type=reg.type,
                        name=reg.name,
                        op=step.op,
                        diff=step.diff,
                        physical_name=physical,
                        name_property=prop,
                    )
                )
                for key in unhonoured(materializer, inputs):
                    notes.append(
                        f"{reg.type} {reg.name}: `{key}` is not applied by the inprocess "
                        "engine (docs/inprocess-coverage.md lists what each type honours)"
                    )
            if old is not None and step.op in ("same", "update"):
                return old.id, {**old.outputs, **_known(inputs)}
            return "", inputs

        run_program(
            program_dir=program_dir,
            project=project,
            stack=stack,
            config=dict(config),
            new_resource=record,
            preview=True,
        )
        if unsupported:
            raise UnsupportedResource(unsupported, engine="inprocess")
        declared = {s.address for s in steps}
        gone = [e for e in (state.resources if state else []) if e.delete or e.urn not in declared]
        for e in reverse_dependency_order(gone):
            steps.append(Planned(address=e.urn, type=e.type, name=e.name, op="delete"))
        changes = dict.fromkeys(CHANGE_KINDS, 0)
        for s in steps:
            changes[s.op] += 1
        return PlanResult(
            steps=steps,
            changes=changes,
            resource_types=tuple(sorted(types)),
            notes=sorted(set(notes)),
        )

    @staticmethod
    def _provider(
        reg: Registration, providers: dict[str, dict[str, Any]]
    ) -> tuple[str, dict[str, Any]]:
        pid = hashlib.sha256(reg.urn.encode()).hexdigest()[:16]
        providers[f"{reg.urn}::{pid}"] = _unsecret(reg.inputs)
        return pid, dict(reg.inputs)

    # -- apply ---------------------------------------------------------------------------------

    def apply(
        self,
        *,
        program_dir: Path,
        project: str,
        stack: str,
        config: Mapping[str, str],
        state: StackState,
        late_check: Callable[[Planned], None] | None = None,
    ) -> UpDone:
        """The apply pass (the caller ran :meth:`plan` and its checks first)."""
        from branchenv.mockruntime import run_program

        live = {e.urn: e for e in state.resources if not e.delete}
        seen: set[str] = set()
        providers: dict[str, dict[str, Any]] = {}
        lock = threading.Lock()
        changes = dict.fromkeys(CHANGE_KINDS, 0)
        failure: list[BaseException] = []

        def new_resource(reg: Registration) -> tuple[str, dict[str, Any]]:
            if failure:
                raise EngineError("an earlier resource failed; not creating more")
            if reg.type == PROVIDER_TYPE:
                with lock:
                    return self._provider(reg, providers)
            if not reg.custom:
                return "", {}
            try:
                return self._apply_one(
                    reg, state, live, seen, providers, config, changes, lock, late_check
                )
            except BaseException as exc:
                with lock:
                    failure.append(exc)
                raise

        state.status = "updating"
        self.save(state)
        try:
            run = run_program(
                program_dir=program_dir,
                project=project,
                stack=stack,
                config=dict(config),
                new_resource=new_resource,
                preview=False,
            )
        except BaseException as exc:
            state.status = "failed"
            self.save(state)
            cause = failure[0] if failure else exc
            if isinstance(cause, BranchenvError):
                raise cause from exc
            raise EngineError(
                f"up failed for stack {stack!r}: {one_line(cause)}; what was created so far is "
                "recorded: fix and re-run `up`, or run `branchenv down` to remove it"
            ) from cause
        doomed = [e for e in state.resources if e.delete or e.urn not in seen]
        outcome = self.delete_entries(state, doomed)
        # The old half of a replacement is part of that replace, as in Pulumi's summary.
        failed = {urn for urn, _why in outcome.failed}
        changes["delete"] += sum(1 for e in doomed if not e.delete and e.urn not in failed)
        if outcome.failed:
            state.status = "failed"
            self.save(state)
            raise EngineError(
                f"up of stack {stack!r} could not delete {plural(len(outcome.failed), 'resource')} the "
                "program no longer declares: "
                + "; ".join(f"{a}: {why}" for a, why in outcome.failed)
                + ". They stay in the state: fix the cause and re-run `up` (or `down`)"
            )
        state.outputs = self._masked(run.outputs, set(run.secret_outputs))
        state.status = "ok"
        self.save(state)
        return UpDone(
            outputs=dict(state.outputs),
            changes=changes,
            entries=list(state.resources),
            notes=[],
        )

    def _decide(
        self,
        reg: Registration,
        materializer: Materializer,
        old: ResourceEntry | None,
        inputs: dict[str, Any],
        tags: dict[str, str],
        secret_keys: set[str],
    ) -> tuple[Step, bool, dict[str, Any]]:
        """The step for a registration, whether its name is the engine's, and its stored
        inputs (the auto-name it keeps filled in)."""
        prop = materializer.name_property
        autonamed = prop is not None and not inputs.get(prop)
        if autonamed and old is not None and prop:
            inputs[prop] = old.outputs.get(prop) or (old.inputs or {}).get(prop)
        stored = self._stored(inputs, secret_keys)
        step = decide(
            materializer,
            old,
            stored,
            tags,
            autonamed=autonamed,
            ignore_changes=reg.ignore_changes,
            replace_on_changes=reg.replace_on_changes,
            delete_before_replace=reg.delete_before_replace,
        )
        return step, autonamed, stored

    def _apply_one(
        self,
        reg: Registration,
        state: StackState,
        live: dict[str, ResourceEntry],
        seen: set[str],
        providers: Mapping[str, dict[str, Any]],
        config: Mapping[str, str],
        changes: dict[str, int],
        lock: threading.Lock,
        late_check: Callable[[Planned], None] | None,
    ) -> tuple[str, dict[str, Any]]:
        materializer, inputs, own, tags, region, secret_keys = self._resolve(reg, providers, config)
        with lock:
            seen.add(reg.urn)
        old = live.get(reg.urn)
        if old is not None and old.type != reg.type:
            old = None
        step, autonamed, stored = self._decide(reg, materializer, old, inputs, tags, secret_keys)
        ctx = self.ctx(region)
        prop = materializer.name_property

        if old is not None and step.op == "same":
            entry = dataclasses.replace(
                old,
                dependencies=list(reg.dependencies),
                provider=reg.provider,
                region=region,
                inputs=stored,
                tags=dict(tags),
                autonamed=autonamed,
                protect=reg.protect,
                retain_on_delete=reg.retain_on_delete,
            )
            with lock:
                self._swap(state, old, entry)
                changes["same"] += 1
            return old.id, {**old.outputs, **inputs, "tags": own, "tagsAll": tags}

        if old is not None and step.op == "update":
            from branchenv.engines.inprocess.materializers import Prior

            prior = Prior(
                id=old.id,
                inputs=dict(old.inputs or old.outputs),
                outputs=old.outputs,
                tags=dict(old.tags),
            )
            applied = materializer.update(
                ctx, prior=prior, inputs=inputs, tags=tags, changed=frozenset(step.diff)
            )
            entry = self._entry(reg, applied, stored, own, tags, region, secret_keys, autonamed)
            with lock:
                self._swap(state, old, entry)
                changes["update"] += 1
            self.say(f"  updated   {reg.type}  {reg.name}  ({applied.id}): {', '.join(step.diff)}")
            return applied.id, {**applied.outputs, "tags": own, "tagsAll": tags}

        # A create, or a replacement: the new resource's name is chosen (and journaled) first.
        if old is not None and old.protect:
            raise EngineError(
                f"{reg.type} {reg.name} is protected (`protect=True`) and a change of "
                f"{', '.join(step.diff)} would replace it; remove the protection first"
            )
        if old is not None and step.delete_before_replace:
            with lock:
                # What depends on it goes first (Pulumi does the same): it cannot outlive it,
                # and its own registration, still to come, creates it again.
                for dependent in self._dependents(state, old):
                    self._delete_one(state, dependent)
                    live.pop(dependent.urn, None)
                    self._rebuilt.add(dependent.urn)
                    self.say(
                        f"  deleted   {dependent.type}  {dependent.name}  ({dependent.id}): "
                        f"it depends on {old.name}, replaced first"
                    )
                self._delete_one(state, old)
            self.say(f"  deleted   {old.type}  {old.name}  ({old.id}): to replace it")
        if autonamed and prop and (old is None or step.op == "replace"):
            inputs[prop] = autoname(reg.name, materializer, inputs)
        if late_check is not None and prop and not autonamed and materializer.unique_name:
            name = inputs.get(prop)
            if isinstance(name, str):
                late_check(Planned(reg.urn, reg.type, reg.name, step.op, step.diff, name, prop))
        inputs = materializer.prepare(inputs)
        stored = self._stored(inputs, secret_keys)
        materializer.ensure_free(ctx, inputs)  # before the intent: recovery removes by name
        op = PendingOp(
            op="creating",
            urn=reg.urn,
            type=reg.type,
            name=reg.name,
            inputs=stored,
            region=region,
            started_at=_now(),
        )
        with lock:
            state.pending.append(op)
            self.save(state)
        try:
            applied = materializer.create(ctx, inputs=inputs, tags=tags)
        except BaseException:
            with lock:
                state.pending.remove(op)
                self.save(state)
            raise
        entry = self._entry(reg, applied, stored, own, tags, region, secret_keys, autonamed)
        with lock:
            state.pending.remove(op)
            if old is not None and not step.delete_before_replace:
                # The old half stays recorded until it is deleted, after everything else.
                state.resources.append(dataclasses.replace(old, delete=True))
            if old is not None and old in state.resources:
                self._swap(state, old, entry)
            else:
                state.resources.append(entry)
                self.save(state)
            rebuilt = old is not None or reg.urn in self._rebuilt
            changes["replace" if rebuilt else "create"] += 1
        verb = "replaced" if rebuilt else "created"
        detail = f": {', '.join(step.diff)}" if step.diff else ""
        self.say(f"  {verb:9} {reg.type}  {reg.name}  ({applied.id}){detail}")
        return applied.id, {**applied.outputs, "tags": own, "tagsAll": tags}

    @staticmethod
    def _dependents(state: StackState, entry: ResourceEntry) -> list[ResourceEntry]:
        """Live entries that depend on ``entry``, directly or not, dependents first."""
        live = [e for e in state.resources if not e.delete and e is not entry]
        found: dict[str, ResourceEntry] = {}
        frontier = {entry.urn}
        while frontier:
            nxt = set()
            for e in live:
                if e.urn not in found and frontier & set(e.dependencies):
                    found[e.urn] = e
                    nxt.add(e.urn)
            frontier = nxt
        return reverse_dependency_order(list(found.values()))

    def _swap(self, state: StackState, old: ResourceEntry, new: ResourceEntry) -> None:
        """Put ``new`` where ``old`` is in the state (the caller holds the lock) and save."""
        for i, e in enumerate(state.resources):
            if e is old:
                state.resources[i] = new
                break
        else:
            state.resources.append(new)
        self.save(state)

    def _entry(
        self,
        reg: Registration,
        applied: Any,
        stored: dict[str, Any],
        own: dict[str, str],
        tags: dict[str, str],
        region: str,
        secret_keys: set[str],
        autonamed: bool,
    ) -> ResourceEntry:
        outputs = {**applied.outputs, "tags": own, "tagsAll": tags}
        return ResourceEntry(
            urn=reg.urn,
            type=reg.type,
            name=reg.name,
            id=applied.id,
            outputs=self._masked(outputs, secret_keys),
            dependencies=list(reg.dependencies),
            provider=reg.provider,
            region=region,
            inputs=stored,
            tags=dict(tags),
            autonamed=autonamed,
            protect=reg.protect,
            retain_on_delete=reg.retain_on_delete,
        )

    # -- deletes -------------------------------------------------------------------------------

    def _delete_one(self, state: StackState, entry: ResourceEntry) -> bool:
        """Delete one resource with its intent journaled; True when it really deleted. A
        protected resource is refused; one with ``retainOnDelete`` only leaves the state."""
        if entry.protect:
            raise EngineError(
                f"{entry.type} {entry.name} is protected (`protect=True`); remove the "
                "protection from the program and `up` first"
            )
        if entry.retain_on_delete:
            state.resources = [e for e in state.resources if e is not entry]
            self.save(state)
            return False
        op = PendingOp(
            op="deleting",
            urn=entry.urn,
            type=entry.type,
            name=entry.name,
            inputs={},
            region=entry.region,
            id=entry.id,
            started_at=_now(),
        )
        state.pending.append(op)
        self.save(state)
        try:
            done = self.materializer(entry.type).delete(
                self.ctx(entry.region), id=entry.id, outputs=entry.outputs
            )
        except BaseException:
            state.pending.remove(op)
            self.save(state)
            raise
        state.pending.remove(op)
        state.resources = [e for e in state.resources if e is not entry]
        self.save(state)
        return done

    def delete_entries(self, state: StackState, entries: Sequence[ResourceEntry]) -> DestroyOutcome:
        """Delete ``entries`` dependents first, continuing past failures; a resource whose
        dependent could not be deleted is left too (deleting it would break that one)."""
        outcome = DestroyOutcome(deleted=0, already_gone=0, failed=[])
        blocked: dict[str, str] = {}
        for entry in reverse_dependency_order(list(entries)):
            if entry.urn in blocked:
                outcome.failed.append(
                    (entry.urn, f"kept: {blocked[entry.urn]} still depends on it")
                )
                self.say(
                    f"  kept      {entry.type}  {entry.name}  ({entry.id}): a dependent is left"
                )
                self._block(entry, blocked, state)
                continue
            try:
                done = self._delete_one(state, entry)
            except Exception as exc:
                from branchenv.aws_errors import is_transient

                why = one_line(exc, limit=300)
                outcome.transient |= isinstance(exc, TransientError) or is_transient(exc)
                outcome.failed.append((entry.urn, f"{entry.type} {entry.name} ({entry.id}): {why}"))
                self.say(f"  FAILED    {entry.type}  {entry.name}  ({entry.id}): {why}")
                self._block(entry, blocked, state)
                continue
            if done:
                outcome.deleted += 1
                self.say(f"  deleted   {entry.type}  {entry.name}  ({entry.id})")
            else:
                outcome.already_gone += 1
                self.say(f"  gone      {entry.type}  {entry.name}  ({entry.id}): already deleted")
        return outcome

    @staticmethod
    def _block(entry: ResourceEntry, blocked: dict[str, str], state: StackState) -> None:
        for dep in entry.dependencies:
            blocked.setdefault(dep, f"{entry.type} {entry.name}")


def _tag_map(value: Any) -> dict[str, str]:
    """Tags as strings; anything else (absent, or unknown in a preview) as none."""
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items() if not contains_unknown(v)}


def _known(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs whose values a preview knows (unknown ones stay unknown downstream)."""
    return {k: v for k, v in inputs.items() if not contains_unknown(v) and v != UNKNOWN}


__all__ = ["DestroyOutcome", "PlanResult", "StackRun", "Step", "UpDone"]
