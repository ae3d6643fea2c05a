"""Provisioning: one branch -> one stack. The core behind `up`, `outputs`, `ls` and `down`.

Every function here takes explicit values and returns a frozen result; the CLI only parses and
renders. Choosing the engine and the target happens in :func:`resolve`, once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from branchenv.errors import OperationFailed, SafetyRefusal, StackNotFound, UsageError
from branchenv.text import plural

if TYPE_CHECKING:
    from branchenv.config import Settings
    from branchenv.cost.estimate import StackCost
    from branchenv.cost.prices import PriceTable
    from branchenv.engines.base import (
        Engine,
        OutputSink,
        PlannedStep,
        Program,
        ProgramInputs,
        ResourceSummary,
        StackSummary,
    )
    from branchenv.gitinfo import BranchInfo
    from branchenv.harness.teardown import RetryPolicy
    from branchenv.metadata import StackMetadata
    from branchenv.naming import StackNames
    from branchenv.pool.outcome import Refill
    from branchenv.targets import Target

PROFILES = ("ephemeral", "prodlike")


@dataclasses.dataclass(frozen=True)
class StackContext:
    """Everything one command needs about the branch's stack, resolved once."""

    settings: Settings
    branch: BranchInfo
    names: StackNames
    target: Target
    engine: Engine
    engine_note: str | None
    program: Program
    notes: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class UpOutcome:
    stack: str
    branch: str
    target: str
    engine: str
    outputs: dict[str, Any]
    changes: dict[str, int]
    resource_count: int
    metadata: StackMetadata
    duration_s: float
    notes: tuple[str, ...]
    resources: tuple[ResourceSummary, ...] | None = None
    """The stack's resources as ``Engine.resources`` reported them at the end of this up (what
    is gone from the target left out), when it asked; None when it did not. The run's cost
    estimate prices these instead of asking the engine again."""
    in_place: bool = False
    """True when this up applied nothing to a warm-pool stack whose resources were all just
    found in place on the target (what the pool made, checked ready, and wiped since; only an
    engine whose ``resources`` asks the target can say so: ``Engine.resources_checked``):
    `ci`'s readiness then probes its endpoints only, which prove the whole chain answers."""


@dataclasses.dataclass(frozen=True)
class PreviewOutcome:
    """What `up` would do to the branch's stack: counts per change kind and, per resource,
    its change and the properties that change (``pulumi preview --diff``)."""

    stack: str
    branch: str
    target: str
    engine: str
    changes: dict[str, int]
    steps: tuple[PlannedStep, ...]
    notes: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class DownOutcome:
    stack: str
    branch: str
    target: str
    engine: str
    deleted: int
    removed: bool
    already_absent: bool
    duration_s: float
    notes: tuple[str, ...]
    leaked: tuple[str, ...] = ()
    """What still carries the stack's tag after teardown (empty: the leak check found none)."""
    leak_check: str | None = None
    """Why the leak check could not run (None when it ran)."""
    released: bool = False
    """The branch held a warm-pool stack: it was wiped and returned to its pool."""
    refill: Refill | None = None
    """The branch's pool stack was destroyed instead: its pool's background refill
    (:mod:`branchenv.pool.refill`)."""


@dataclasses.dataclass(frozen=True)
class StackRow:
    """One line of `ls`."""

    stack: str
    branch: str | None
    owner: str | None
    target: str | None
    engine: str
    managed: bool
    created_at: dt.datetime | None
    expires_at: dt.datetime | None
    age_s: float | None
    expires_in_s: float | None
    expired: bool
    resource_count: int | None
    reap_pending: bool
    cost_hourly: Decimal | None = None
    """Estimated burn rate in USD/h (None when the engine cannot list the stack's resources)."""
    cost_so_far: Decimal | None = None
    """Estimated USD spent since creation; a lower bound when ``cost_unpriced`` is non-empty."""
    cost_unpriced: tuple[str, ...] = ()
    missing: int | None = None
    """Resources the engine knows are gone from the target (None: not known)."""
    attention: str | None = None
    """Why the stack needs a person (its state cannot be read): listed, never acted on."""
    backend: str | None = None
    """Where the engine keeps the stack's state, when it says (``StackSummary.backend``)."""
    program: str = "default"
    """The configured program the stack belongs to."""
    region: str | None = None
    """The region the stack lives in (its metadata; None for stacks made before it was kept)."""
    account: str | None = None
    """The AWS account the stack lives in (None: unknown)."""


def choose_engine(
    requested: str | None, settings: Settings, target_name: str, program: Program | None = None
) -> tuple[str, str | None]:
    """The engine to use and, when it was picked automatically, why.

    Asked for (flag, the program's own setting, then ``engine``): that engine, if it runs the
    program's kind. Else the first registered engine for the kind that can run here and on
    this target; when that is not the first in line, the note says why."""
    from branchenv.engines import engine_spec, engines_for_kind

    kind = program.kind if program is not None else "pulumi"
    name = requested or (program.engine if program is not None else None) or settings.engine
    if name is not None:
        spec = engine_spec(name)
        if kind not in spec.program_kinds:
            runs = ", ".join(s.name for s in engines_for_kind(kind)) or "none registered"
            raise UsageError(
                f"the {name} engine does not run {kind} programs"
                + (f" ({program.path})" if program is not None else "")
                + f"; engines for them: {runs} (pass `--engine NAME` or set BRANCHENV_ENGINE)"
            )
        return name, None
    candidates = [
        spec for spec in engines_for_kind(kind) if not (spec.local_only and target_name != "local")
    ]
    if not candidates:
        raise UsageError(
            f"no engine runs {kind} programs on target {target_name!r}; pick another target "
            "with `--target NAME`"
        )
    first_reason = candidates[0].available()
    for spec in candidates:
        reason = first_reason if spec is candidates[0] else spec.available()
        if reason is None:
            if spec is candidates[0]:
                return spec.name, None
            where = " on the local cloud" if target_name == "local" else ""
            return spec.name, f"{first_reason}: using the {spec.name} engine{where}"
    # Nothing can run here: the first in line says why when it is built.
    return candidates[0].name, None


def resolve(
    settings: Settings,
    *,
    branch: str | None,
    target: str | None,
    engine: str | None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    start_local_cloud: bool = True,
    program: str | None = None,
) -> StackContext:
    """Resolve branch, names, program (``program``: a configured program's name), target and
    engine for one command."""
    from branchenv.config import ensure_state_dir
    from branchenv.engines import check_available, get_engine
    from branchenv.gitinfo import detect_branch
    from branchenv.naming import names_for
    from branchenv.programs import select_program
    from branchenv.safety import check_engine_target, resolve_target
    from branchenv.targets import check_target_name

    env = os.environ if env is None else env
    cwd = cwd or settings.project_dir
    target_name = check_target_name(target or settings.default_target)
    info = detect_branch(branch, env=env, cwd=cwd)
    names = names_for(info.name)
    chosen = select_program(settings, program)
    engine_name, engine_note = choose_engine(engine, settings, target_name, chosen)
    check_engine_target(engine_name, target_name)
    check_available(engine_name)  # before the local cloud starts: nothing half-created
    notes: list[str] = []
    if info.detached:
        notes.append(f"detached HEAD: using {info.name!r} as the branch name")
    if engine_note:
        notes.append(engine_note)
    if start_local_cloud:
        ensure_state_dir(settings)  # the first write of a command that acts
    resolved = resolve_target(
        settings, target_name, cloud="start" if start_local_cloud else "running"
    )
    if resolved.note:
        notes.append(resolved.note)
    tgt = resolved.target
    eng = get_engine(engine_name, settings=settings, target=tgt)
    return StackContext(
        settings=settings,
        branch=info,
        names=names,
        target=tgt,
        engine=eng,
        engine_note=engine_note,
        program=chosen,
        notes=tuple(notes),
    )


def check_profile(profile: str) -> str:
    """A valid profile name, else UsageError naming ``--profile`` and the choices."""
    if profile not in PROFILES:
        raise UsageError(
            f"--profile {profile!r} is not a profile. Valid profiles: {', '.join(PROFILES)}"
        )
    return profile


def check_allow_shared(names: Iterable[str]) -> frozenset[str]:
    """The ``--allow-shared`` names, else UsageError for an empty or blank one (it could
    never match a physical name, so it would only look like an exemption)."""
    checked = frozenset(names)
    for name in checked:
        if not name.strip() or name != name.strip():
            raise UsageError(
                f"--allow-shared {name!r} is not a physical name: pass the exact fixed name "
                "of the shared resource, e.g. `--allow-shared team-uploads`"
            )
    return checked


def program_inputs(
    ctx: StackContext,
    *,
    profile: str,
    metadata: StackMetadata,
    allow_shared: frozenset[str] = frozenset(),
) -> ProgramInputs:
    """The neutral inputs every engine gets for the branch's stack: prefix, profile, the tags
    its resources carry (the identity tags only: they never change between updates, so a
    re-`up` retags nothing; what changes lives with the stack), region, the local function
    runner, the target's template and the names deliberately shared."""
    from branchenv.engines.base import ProgramInputs
    from branchenv.programs import read_template

    return ProgramInputs(
        prefix=ctx.names.prefix,
        profile=check_profile(profile),
        tags=metadata.identity_tags(),
        metadata=metadata.to_tags(),
        region=ctx.target.region,
        functions_url=ctx.target.functions_url,
        template=read_template(ctx.program, ctx.target),
        allow_shared=allow_shared,
    )


def build_metadata(
    ctx: StackContext,
    *,
    ttl: str | None,
    env: Mapping[str, str] | None = None,
    now: dt.datetime | None = None,
    existing: StackMetadata | None = None,
) -> StackMetadata:
    """The metadata `up` gives the stack; ``existing`` is what the stack already carries."""
    from branchenv.config import stack_ttl
    from branchenv.gitinfo import current_commit, detect_owner
    from branchenv.metadata import StackMetadata

    env = os.environ if env is None else env
    cwd = ctx.settings.project_dir
    fresh = StackMetadata.create(
        stack=ctx.names.stack,
        branch=ctx.branch.name,
        owner=detect_owner(env=env, cwd=cwd),
        commit=current_commit(cwd),
        ttl=stack_ttl(ctx.settings, ttl),  # capped by max_ttl and max_age
        now=now or dt.datetime.now(dt.UTC),
        target=ctx.target.name,  # type: ignore[arg-type]
        engine=ctx.engine.name,
        project=ctx.program.project,
        region=ctx.target.region,
        account=_account_of(ctx.target),
    )
    # An update keeps the stack's birth date (age, max-age and cost so far count from it); the
    # TTL runs from now, and a successful `up` clears an earlier reap-pending mark.
    if existing is not None and existing.created_at < fresh.created_at:
        return dataclasses.replace(fresh, created_at=existing.created_at)
    return fresh


def _account_of(target: Target) -> str | None:
    """The account a stack made on ``target`` lives in, for its metadata (the org-wide reaper
    reaches it there). STS is asked only on AWS with the caller's own credentials; an
    unanswered call leaves it unknown (the stack is then reaped only by a single-account run)
    rather than failing the `up`."""
    known = target.known_account()
    if known is not None:
        return known
    try:
        return target.account_id()
    except Exception:
        return None


def check_may_manage(ctx: StackContext) -> StackMetadata | None:
    """Refuse (exit 3) to create, update or destroy a stack branchenv must not touch: one whose
    stack or branch name matches a protected pattern, one that exists without the managed
    marker, or (on AWS, when an allowlist is configured) one in an account not allowed.
    Returns the stack's current metadata (None when the stack does not exist yet)."""
    from branchenv.safety import check_account, check_managed, check_protected

    stack, branch = ctx.names.stack, ctx.branch.name
    check_protected(stack, branch, ctx.settings.protected_patterns)
    try:
        metadata = ctx.engine.metadata(stack=stack, program=ctx.program)
    except StackNotFound:
        metadata = None
    else:
        check_managed(stack, metadata, exists=True)
    if ctx.target.name == "aws" and ctx.settings.allowed_account_ids:
        check_account(ctx.target.client("sts"), ctx.settings.allowed_account_ids, action="act")
    return metadata


def up(
    ctx: StackContext,
    *,
    ttl: str | None = None,
    profile: str = "ephemeral",
    on_output: OutputSink | None = None,
    existing: StackMetadata | None = None,
    checked: bool = False,
    allow_shared: Iterable[str] = (),
    metadata: StackMetadata | None = None,
) -> UpOutcome:
    """Create or update the branch's stack; idempotent.

    ``checked``: the caller ran :func:`check_may_manage` on this context moments ago and
    passes what it returned as ``existing`` (so a run reads the stack's metadata once). The
    engine runs the branch-isolation check on its plan before changing anything
    (``allow_shared``: fixed names deliberately shared, ``--allow-shared``). ``metadata``: what
    the stack is to carry, when the caller decided it (a warm-pool stack: its identity stays
    the pool's, the claim is in :mod:`branchenv.pool`'s keys)."""
    from branchenv.safety import check_isolation

    check_profile(profile)
    shared = check_allow_shared(allow_shared)
    if not checked:
        existing = check_may_manage(ctx)
    if metadata is None:
        metadata = build_metadata(ctx, ttl=ttl, existing=existing)
    inputs = program_inputs(ctx, profile=profile, metadata=metadata, allow_shared=shared)
    result = ctx.engine.up(
        stack=ctx.names.stack,
        program=ctx.program,
        target=ctx.target,
        metadata=metadata,
        inputs=inputs,
        on_output=on_output,
        plan_check=lambda steps: check_isolation(steps, inputs),
    )
    return UpOutcome(
        stack=result.stack,
        branch=ctx.branch.name,
        target=ctx.target.name,
        engine=ctx.engine.name,
        outputs=result.outputs,
        changes=result.changes,
        resource_count=len(result.resources),
        metadata=metadata,
        duration_s=result.duration_s,
        notes=ctx.notes,
    )


def preview(
    ctx: StackContext,
    *,
    ttl: str | None = None,
    profile: str = "ephemeral",
    on_output: OutputSink | None = None,
    allow_shared: Iterable[str] = (),
) -> PreviewOutcome:
    """What `up` would change on the branch's stack, changing nothing (same rails first).

    A plan `up` would refuse is refused here too (the branch-isolation check on the planned
    steps, ``allow_shared`` as for `up`): a preview never shows as applicable what `up` will
    not apply."""
    from branchenv.safety import check_isolation

    check_profile(profile)
    shared = check_allow_shared(allow_shared)
    existing = check_may_manage(ctx)
    metadata = build_metadata(ctx, ttl=ttl, existing=existing)
    inputs = program_inputs(ctx, profile=profile, metadata=metadata, allow_shared=shared)
    result = ctx.engine.preview(
        stack=ctx.names.stack,
        program=ctx.program,
        target=ctx.target,
        metadata=metadata,
        inputs=inputs,
        on_output=on_output,
    )
    try:
        check_isolation(result.steps, inputs)
    except SafetyRefusal as refused:
        raise SafetyRefusal(f"`up` would refuse this plan: {refused}") from None
    return PreviewOutcome(
        stack=result.stack,
        branch=ctx.branch.name,
        target=ctx.target.name,
        engine=ctx.engine.name,
        changes=dict(result.changes),
        steps=tuple(result.steps),
        notes=ctx.notes,
    )


def outputs(ctx: StackContext) -> dict[str, Any]:
    """The branch stack's outputs."""
    return ctx.engine.outputs(stack=ctx.names.stack, program=ctx.program)


def down(
    ctx: StackContext,
    *,
    on_output: OutputSink | None = None,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DownOutcome:
    """Destroy the branch's stack and remove it; a stack that is already gone is success.

    Through the one teardown path: the stack is marked reap-pending first, so one whose
    destroy fails stays due for `branchenv reap` (OperationFailed, exit 1, says so); then the
    leak check: anything still carrying the stack's tag is OperationFailed too, naming it."""
    from branchenv.harness.teardown import INTERACTIVE, destroy_stack

    existing = check_may_manage(ctx)
    done = destroy_stack(
        ctx.engine,
        stack=ctx.names.stack,
        program=ctx.program,
        target=ctx.target,
        metadata=existing,
        retry=retry or INTERACTIVE,
        sleep=sleep,
        on_output=on_output,
    )
    if done.status == "failed":
        marked = (
            "it is marked reap-pending for `branchenv reap --yes`"
            if done.reap_pending
            else "it could not be marked reap-pending"
        )
        left = f" (left: {', '.join(done.failed)})" if done.failed else ""
        tagged = f"; still tagged: {', '.join(done.leaked[:10])}" if done.leaked else ""
        raise OperationFailed(
            f"down of stack {ctx.names.stack} failed after {plural(done.attempts, 'attempt')}: "
            f"{done.error}{left}{tagged}; {marked}. Fix the cause and run `branchenv down "
            f"--branch {ctx.branch.name}` again"
        ) from done.exception
    if done.status == "leaked":
        from branchenv.harness.teardown import leak_text

        raise OperationFailed(
            f"down of stack {ctx.names.stack}: {leak_text(ctx.names.stack, done.leaked)}"
        )
    return DownOutcome(
        stack=ctx.names.stack,
        branch=ctx.branch.name,
        target=ctx.target.name,
        engine=ctx.engine.name,
        deleted=done.deleted,
        removed=done.status == "destroyed",
        already_absent=done.status == "already-gone",
        duration_s=done.duration_s,
        notes=(*ctx.notes, f"no stack {ctx.names.stack!r}: nothing to destroy")
        if done.status == "already-gone"
        else ctx.notes,
        leaked=done.leaked,
        leak_check=done.leak_check,
    )


def stack_cost(
    ctx: StackContext,
    *,
    metadata: StackMetadata | None,
    now: dt.datetime | None = None,
    prices: PriceTable | None = None,
    resources: Sequence[ResourceSummary] | None = None,
) -> StackCost:
    """The estimated cost of the branch's stack (``metadata``, ``resources``: what the run
    already knows; ``resources`` None: asked of the engine)."""
    from branchenv.cost import estimate

    return estimate.stack_cost(
        ctx.engine,
        stack=ctx.names.stack,
        program=ctx.program,
        metadata=metadata,
        region=ctx.target.region,
        now=now,
        prices=prices,
        resources=resources,
    )


def list_stacks(
    settings: Settings, *, engines: list[Engine], now: dt.datetime | None = None
) -> list[StackRow]:
    """Every stack the given engines know for every configured program, newest first."""
    from branchenv.cost.estimate import estimate_stack, inventory_from_engine
    from branchenv.cost.prices import load_prices
    from branchenv.programs import listing_pairs

    now = now or dt.datetime.now(dt.UTC)
    prices = load_prices()
    rows: list[StackRow] = []
    for program, engine in listing_pairs(settings, engines):
        for summary in engine.list_stacks(program=program):
            md = summary.metadata
            if summary.attention:
                rows.append(_attention_row(summary, engine.name, program.name))
                continue
            cost = estimate_stack(
                inventory_from_engine(
                    engine,
                    stack=summary.stack,
                    program=program,
                    metadata=md,
                    default_region=settings.region,
                    resources=summary.resources,
                ),
                prices,
                now=now,
            )
            priced = cost.inventory_available
            rows.append(
                StackRow(
                    stack=summary.stack,
                    # a claimed warm-pool stack is listed under the branch holding it
                    branch=(md.claimed_by or md.branch) if md else None,
                    owner=(md.claimed_owner or md.owner) if md else None,
                    target=md.target if md else None,
                    engine=engine.name,
                    managed=md is not None,
                    created_at=md.created_at if md else None,
                    expires_at=md.expires_at if md else None,
                    age_s=md.age(now).total_seconds() if md else None,
                    expires_in_s=md.expires_in(now).total_seconds() if md else None,
                    expired=md.expired(now) if md else False,
                    resource_count=summary.resource_count,
                    reap_pending=md.reap_pending if md else False,
                    cost_hourly=cost.hourly if priced else None,
                    cost_so_far=cost.so_far if priced else None,
                    cost_unpriced=cost.unpriced_types,
                    missing=summary.missing,
                    backend=summary.backend,
                    program=program.name,
                    region=md.region if md else None,
                    account=md.account if md else None,
                )
            )
    rows.sort(key=lambda r: r.created_at or dt.datetime.min.replace(tzinfo=dt.UTC), reverse=True)
    return rows


def _attention_row(summary: StackSummary, engine: str, program: str) -> StackRow:
    """A stack whose state cannot be read: its name and why, nothing else is known."""
    return StackRow(
        stack=summary.stack,
        branch=None,
        owner=None,
        target=None,
        engine=engine,
        managed=False,
        created_at=None,
        expires_at=None,
        age_s=None,
        expires_in_s=None,
        expired=False,
        resource_count=None,
        reap_pending=False,
        attention=summary.attention,
        backend=summary.backend,
        program=program,
    )


def engines_for_listing(
    settings: Settings, requested: str | None, *, target_name: str | None = None
) -> list[Engine]:
    """The engines `ls`, `reap` and `cost` ask: the requested one, else every registered engine
    for the program's kind that can run here (for a given non-local ``target_name``, not the
    local-only ones: they hold no stacks there)."""
    from branchenv.engines import ENGINES, engine_spec, get_engine
    from branchenv.programs import configured_programs

    if requested:
        return [get_engine(engine_spec(requested).name, settings=settings)]
    kinds = {program.kind for program in configured_programs(settings)}
    return [
        get_engine(spec.name, settings=settings)
        for spec in ENGINES.values()
        if spec.program_kinds & kinds
        and spec.available() is None
        and not (spec.local_only and target_name not in (None, "local"))
    ]
