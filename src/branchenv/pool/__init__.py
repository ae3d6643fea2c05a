"""The warm pool: N ready stacks of a program per target, claimed by branches in an instant.

``branchenv pool fill`` makes the pool's stacks (``<project>-pool-<n>``, named for the pool,
never for a branch) with the managed marker plus ``branchenv:pool``. ``up --pool`` / ``ci
--pool`` (or ``pool = true``) claim a free one atomically (:mod:`branchenv.pool.claims`: a
conditional write every claimer shares), record the claiming branch, owner and expiry in the
stack's metadata, and apply the branch's program on top (an update: typically only function
code changes). Later commands for that branch (``outputs``, ``test``, ``down``) find the claim.

Release (``down``, the end of ``ci``, the reaper once a claim expires): the stack's data is
wiped per resource type and verified empty (:mod:`branchenv.pool.wipe`), then the stack goes
back to the pool. When the claimant's program changed the resource graph (its addresses differ
from the pool's baseline), or a resource type may hold data no wiper knows, the stack is
destroyed through the one teardown path instead, and a detached refill replaces it
(:mod:`branchenv.pool.refill`; ``pool_refill = "off"``: the next ``pool fill`` does).

Nothing here names an engine: stacks are read and written through the Engine protocol.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from branchenv.errors import OperationFailed, StackNotFound, UsageError
from branchenv.pool.claims import Claim, ClaimStore, new_token
from branchenv.text import plural

if TYPE_CHECKING:
    from branchenv.engines.base import Engine, Program
    from branchenv.harness.teardown import RetryPolicy
    from branchenv.metadata import StackMetadata
    from branchenv.pool.outcome import Refill
    from branchenv.pool.refill import RefillState
    from branchenv.pool.wipe import Wiped
    from branchenv.provision import DownOutcome, StackContext, UpOutcome
    from branchenv.targets import Target

Say = Callable[[str], None]

POOL_BRANCH_PREFIX = "pool/"
"""The branch an unclaimed pool stack carries (``pool/<pool name>``)."""

FALLBACKS = ("fail", "cold")

DEFAULT_POOL_TTL = "7d"
"""A free pool stack's lifetime when the settings are not at hand (the reaper's release)."""

MAX_POOL_SIZE = 20

FILL_CLAIM = "(pool fill)"
"""The branch of the service claim ``pool fill`` holds on a stack it makes."""

FILL_READY_TIMEOUT_S = 60.0
"""How long ``pool fill`` waits for a stack it made to answer (as `ci`'s ``--ready-timeout``
default)."""


class PoolEmpty(OperationFailed):
    """No free stack in the pool and ``pool_fallback = "fail"`` (exit 1)."""


@dataclasses.dataclass(frozen=True)
class PoolStack:
    """One stack of a pool as ``pool status`` shows it."""

    stack: str
    state: str
    """``free`` | ``claimed`` | ``pending`` (marked reap-pending) | ``attention`` | ``making``
    (a ``pool fill`` is making it) | ``unfinished`` (the fill making it died: the next fill
    finishes it)."""
    claimed_by: str | None
    claimed_owner: str | None
    expires_at: dt.datetime | None
    resource_count: int | None
    hourly: Decimal | None = None


@dataclasses.dataclass(frozen=True)
class PoolStatus:
    """A pool: its name, target, engine, wanted size and stacks; ``idle_hourly`` is the burn
    rate of its free stacks (USD/h, estimated; None when no stack could be priced)."""

    pool: str
    target: str
    engine: str
    size: int
    stacks: tuple[PoolStack, ...]
    idle_hourly: Decimal | None
    unpriced: tuple[str, ...] = ()
    refill: RefillState | None = None
    """The pool's background refill: whether one runs now (its pid) and its log."""

    @property
    def free(self) -> int:
        return sum(1 for s in self.stacks if s.state == "free")


@dataclasses.dataclass(frozen=True)
class FillOutcome:
    pool: str
    target: str
    engine: str
    size: int
    created: tuple[str, ...]
    present: tuple[str, ...]
    duration_s: float


@dataclasses.dataclass(frozen=True)
class DrainOutcome:
    pool: str
    dry_run: bool
    destroy: tuple[str, ...]
    """Free stacks that go (went, with ``--yes``)."""
    kept: tuple[str, ...]
    """Claimed stacks: a branch holds them; they go back to the pool or away on release."""
    failed: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ReleaseOutcome:
    """What a release did: ``returned`` to the pool (wiped and verified empty) or
    ``destroyed`` (``reason`` says why), or ``failed`` (``reason``)."""

    stack: str
    status: str
    wiped: tuple[Wiped, ...] = ()
    reason: str | None = None
    duration_s: float = 0.0
    refill: Refill | None = None
    """A destroyed stack's replacement: the background refill this release started (or found
    running, or did not start: ``pool_refill = "off"``); None when nothing was destroyed."""
    deleted: int = 0
    """Resources the destroy deleted (0 when the stack was returned)."""
    leak_check: str | None = None
    """Why the destroy's leak check could not run (None when it ran or nothing was destroyed)."""


@dataclasses.dataclass(frozen=True)
class Acquired:
    """The context `up`/`ci` go on with, the metadata to apply and how it was got:
    ``claimed`` (a free pool stack, just now), ``held`` (the branch's claim from before),
    ``own`` (the branch's own stack exists: no claim), ``cold`` (pool empty, fallback)."""

    ctx: StackContext
    metadata: StackMetadata | None
    how: str
    note: str | None = None


# --- names and settings ---------------------------------------------------------------------


def pool_name(ctx: StackContext) -> str:
    """The pool of the context's program: ``<project>-pool`` (``<project>-<program>-pool`` for
    a named program of several)."""
    program = ctx.program
    label = program.project if program.name == "default" else f"{program.project}-{program.name}"
    return f"{label}-pool"


def member_names(pool: str, n: int) -> str:
    """The stack name of the pool's ``n``-th member (a valid prefix for every target)."""
    from branchenv.naming import names_for

    return names_for(f"{pool}-{n}").stack


def check_size(size: int) -> int:
    """A usable ``--size``, else UsageError naming the flag (before anything is created)."""
    if not 0 <= size <= MAX_POOL_SIZE:
        raise UsageError(f"--size {size}: give a whole number from 0 to {MAX_POOL_SIZE}")
    return size


def pool_size(ctx: StackContext, size: int | None = None) -> int:
    """The wanted size: ``size`` (``--size``) or the ``pool_size`` setting for the target."""
    if size is not None:
        return check_size(size)
    return ctx.settings.pool_size_for(ctx.target.name)


def store_for(ctx: StackContext) -> ClaimStore:
    return ClaimStore(ctx.target, engine=ctx.engine.name, project=ctx.program.project)


def prepare(ctx: StackContext) -> None:
    """Make what a claim needs first, ahead of it: the claim store's S3 client (boto3's import
    and its first client, most of a warm claim's own time) and its bucket. `ci` runs it on
    another thread while it waits for its watchdog to start; a claim arriving meanwhile waits
    for it instead of making its own. A failure is left to the claim, which meets the same
    and reports it."""
    store_for(ctx).bucket  # noqa: B018 - made and kept for this process's claims


def _for_stack(ctx: StackContext, stack: str) -> StackContext:
    """``ctx`` pointed at a pool stack (its name and prefix), for the same branch."""
    from branchenv.naming import StackNames

    return dataclasses.replace(
        ctx, names=StackNames(branch=ctx.branch.name, stack=stack, prefix=stack, hashed=False)
    )


Member = tuple[str, "StackMetadata | None", "int | None", "str | None"]
"""(stack, metadata, resource count, attention) of one pool stack."""


def _members(ctx: StackContext) -> list[Member]:
    """Every stack of the context's pool. Names and metadata only: the engine is not asked
    which resources are missing from the target (one call per resource of every stack of
    the project, branches' included: most of a claim's time on the inprocess engine)."""
    pool = pool_name(ctx)
    found = []
    for summary in ctx.engine.list_stacks(program=ctx.program, count_missing=False):
        md = summary.metadata
        if md is not None and md.pool == pool and md.target == ctx.target.name:
            found.append((summary.stack, md, summary.resource_count, summary.attention))
    return sorted(found, key=lambda m: m[0])


def _prefixed(say: Say, stack: str) -> Say:
    return lambda line: say(f"  [{stack}] {line}")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


# --- fill / status / drain ------------------------------------------------------------------


def fill(
    ctx: StackContext,
    *,
    size: int | None = None,
    profile: str = "ephemeral",
    say: Say,
    env: Mapping[str, str] | None = None,
    ready_timeout_s: float = FILL_READY_TIMEOUT_S,
    sleep: Callable[[float], None] = time.sleep,
) -> FillOutcome:
    """Create pool stacks until the pool holds ``size`` (claimed ones count: they come back).

    Each stack made is offered only once it is ready: its endpoints and resources answer the
    same readiness checks `ci` runs (:mod:`branchenv.harness.readiness`), which also starts
    its functions' runtimes, so a claim's own readiness wait finds them running. One that does
    not become ready within ``ready_timeout_s`` fails the fill (NotReady) and stays held by
    it: no branch claims it, and the next fill finishes it."""
    from branchenv import provision
    from branchenv.gitinfo import current_commit, detect_owner
    from branchenv.harness.readiness import checks_for_stack, wait_ready
    from branchenv.metadata import StackMetadata, parse_ttl

    wanted = pool_size(ctx, size)
    provision.check_profile(profile)
    started = time.monotonic()
    pool = pool_name(ctx)
    store = store_for(ctx)
    members = _members(ctx)
    # A member a filler was making when it died (its service claim's maker is gone) is made
    # again: its up converges what it left, and it counts toward the size like any member.
    stale = _unfinished(store, members)
    present = {stack for stack, md, _, _ in members if md is not None and stack not in stale}
    listed = {stack for stack, _, _, _ in members}
    missing: list[str] = sorted(stale)
    n = 1
    while len(present) + len(missing) < wanted:
        name = member_names(pool, n)
        if name not in present and name not in stale:
            missing.append(name)
        n += 1
    owner = detect_owner(env=os.environ if env is None else env, cwd=ctx.settings.project_dir)
    commit = current_commit(ctx.settings.project_dir)

    def make(stack: str) -> str:
        member = _for_stack(ctx, stack)
        member = dataclasses.replace(
            member,
            branch=dataclasses.replace(ctx.branch, name=f"{POOL_BRANCH_PREFIX}{pool}"),
        )
        existing = provision.check_may_manage(member)
        if existing is not None and existing.pool != pool:
            raise OperationFailed(
                f"stack {stack} exists and is not a member of pool {pool}; remove it with "
                f"`branchenv down` or pick another project name"
            )
        md = StackMetadata.create(
            stack=stack,
            branch=f"{POOL_BRANCH_PREFIX}{pool}",
            owner=owner,
            commit=commit,
            ttl=parse_ttl(ctx.settings.pool_ttl),
            now=dt.datetime.now(dt.UTC),
            target=ctx.target.name,  # type: ignore[arg-type]
            engine=ctx.engine.name,
            project=ctx.program.project,
        )
        md = dataclasses.replace(md, pool=pool)
        # Held by the filler until it is ready: nobody claims a stack that is half made.
        if stack in stale:
            store.release_if(stale[stack])  # its dead maker's claim, unless taken over since
        mine = _service_claim(stack, FILL_CLAIM)
        if not store.try_claim(mine):
            # Another fill that listed it missing too may hold it: never take that over. A
            # record a destroyed stack of that name left (no stack, no live fill) is dropped.
            held = store.read_claim(stack)
            leftover = (
                held is not None
                and stack not in listed
                and (held.branch != FILL_CLAIM or maker_gone(held))
            )
            if leftover and held is not None:
                store.release_if(held)
            if not (leftover and store.try_claim(mine)):
                raise OperationFailed(
                    f"stack {stack} is being made by another `branchenv pool fill`; let it finish"
                )
        if stack not in stale:
            store.forget(stack, claim=False)  # what a stack of that name left, under the claim
        say(f"pool {pool}: {'finishing' if stack in stale else 'creating'} {stack}")
        made = provision.up(
            member,
            profile=profile,
            metadata=md,
            existing=existing,
            checked=True,
            on_output=_prefixed(say, stack),
        )
        checks = checks_for_stack(made.outputs, member.target)
        if checks:
            report = wait_ready(
                checks, deadline_s=ready_timeout_s, sleep=sleep, on_progress=_prefixed(say, stack)
            )
            say(f"pool {pool}: {stack} ready in {report.seconds:.2f} s")
        addresses = [r.address for r in ctx.engine.resources(stack=stack, program=ctx.program)]
        store.write_baseline(stack, addresses)
        store.write_applied(stack, fingerprint(member, md, profile=profile))
        store.release(stack)
        return stack

    created: list[str] = []
    if missing:
        store.bucket  # noqa: B018 - create the shared bucket once, before the threads race for it
        with ThreadPoolExecutor(max_workers=min(2, len(missing))) as pool_exec:
            for stack in pool_exec.map(make, missing):
                created.append(stack)
    return FillOutcome(
        pool=pool,
        target=ctx.target.name,
        engine=ctx.engine.name,
        size=wanted,
        created=tuple(created),
        present=tuple(sorted(present)),
        duration_s=time.monotonic() - started,
    )


def status(ctx: StackContext, *, now: dt.datetime | None = None) -> PoolStatus:
    """The pool's stacks, who holds each, and the burn rate of the idle ones."""
    from branchenv.cost.estimate import estimate_stack, inventory_from_engine
    from branchenv.cost.prices import load_prices

    now = now or dt.datetime.now(dt.UTC)
    prices = load_prices()
    stacks: list[PoolStack] = []
    idle = Decimal(0)
    priced = False
    unpriced: set[str] = set()
    members = _members(ctx)
    store = store_for(ctx)
    held_by_fill = (
        {s: c for s, c in store.claims().items() if c is not None and c.branch == FILL_CLAIM}
        if any(md is not None and md.claimed_by is None for _, md, _, _ in members)
        else {}
    )
    for stack, md, count, attention in members:
        hourly: Decimal | None = None
        if md is not None and attention is None:
            cost = estimate_stack(
                inventory_from_engine(
                    ctx.engine,
                    stack=stack,
                    program=ctx.program,
                    metadata=md,
                    default_region=ctx.target.region,
                ),
                prices,
                now=now,
            )
            if cost.inventory_available:
                hourly = cost.hourly
                unpriced.update(cost.unpriced_types)
        state = (
            "attention"
            if attention or md is None
            else "pending"
            if md.reap_pending
            else "claimed"
            if md.claimed_by is not None
            else ("unfinished" if maker_gone(held_by_fill[stack], now=now) else "making")
            if stack in held_by_fill
            else "free"
        )
        if state == "free" and hourly is not None:
            idle += hourly
            priced = True
        stacks.append(
            PoolStack(
                stack=stack,
                state=state,
                claimed_by=md.claimed_by if md else None,
                claimed_owner=md.claimed_owner if md else None,
                expires_at=md.expires_at if md else None,
                resource_count=count,
                hourly=hourly,
            )
        )
    from branchenv.pool import refill

    pool = pool_name(ctx)
    return PoolStatus(
        pool=pool,
        target=ctx.target.name,
        engine=ctx.engine.name,
        size=pool_size(ctx),
        stacks=tuple(stacks),
        idle_hourly=idle if priced else None,
        unpriced=tuple(sorted(unpriced)),
        refill=refill.state(
            ctx.settings, pool=pool, target=ctx.target.name, engine=ctx.engine.name
        ),
    )


def drain(ctx: StackContext, *, yes: bool, say: Say) -> DrainOutcome:
    """Destroy the pool's free stacks (dry run unless ``yes``); claimed ones stay. With
    ``yes``, a running background refill is waited for first, and none starts meanwhile."""
    pool = pool_name(ctx)
    if not yes:
        return _drain(ctx, yes=False, say=say)
    from branchenv.pool import refill

    with refill.held(
        ctx.settings, pool=pool, target=ctx.target.name, engine=ctx.engine.name, say=say
    ):
        return _drain(ctx, yes=True, say=say)


def _drain(ctx: StackContext, *, yes: bool, say: Say) -> DrainOutcome:
    from branchenv.harness.teardown import INTERACTIVE, destroy_stack

    pool = pool_name(ctx)
    members = _members(ctx)
    free = [(s, md) for s, md, _, att in members if md is not None and md.claimed_by is None]
    kept = tuple(s for s, md, _, _ in members if md is not None and md.claimed_by is not None)
    if not yes:
        return DrainOutcome(pool=pool, dry_run=True, destroy=tuple(s for s, _ in free), kept=kept)
    store = store_for(ctx)
    destroyed: list[str] = []
    failed: list[str] = []
    for stack, md in free:
        if not store.try_claim(_service_claim(stack, "(pool drain)")):
            say(f"{stack}: claimed by a branch meanwhile; kept")
            continue
        done = destroy_stack(
            ctx.engine,
            stack=stack,
            program=ctx.program,
            target=ctx.target,
            metadata=md,
            retry=INTERACTIVE,
            on_output=_prefixed(say, stack),
        )
        if done.ok:
            store.forget(stack)
            destroyed.append(stack)
        else:
            failed.append(f"{stack}: {done.error or done.status}")
    return DrainOutcome(
        pool=pool, dry_run=False, destroy=tuple(destroyed), kept=kept, failed=tuple(failed)
    )


SERVICE_CLAIM_LIFETIME = dt.timedelta(hours=1)
"""How long a service claim holds a stack for its maker (after that it is the maker's no more:
a fill takes the stack over)."""


def _service_claim(stack: str, what: str) -> Claim:
    """A claim branchenv itself holds while it makes or destroys a pool stack; its ``maker``
    names this process (host, pid, start time)."""
    import socket

    from branchenv.harness.watchdog import start_time
    from branchenv.metadata import format_timestamp

    now = _now()
    me = os.getpid()
    return Claim(
        stack=stack,
        branch=what,
        owner="branchenv",
        claimed_at=format_timestamp(now),
        expires_at=format_timestamp(now + SERVICE_CLAIM_LIFETIME),
        token=new_token(),
        maker=f"{socket.gethostname()} {me} {start_time(me) or '-'}",
    )


def maker_gone(claim: Claim, *, now: dt.datetime | None = None) -> bool:
    """Whether the process that took a service claim is gone: the claim expired, or its maker
    ran on this host and that process (pid and start time) no longer runs. A maker on another
    host is trusted until the claim expires."""
    import socket

    from branchenv.harness.watchdog import alive
    from branchenv.metadata import parse_timestamp

    try:
        if parse_timestamp(claim.expires_at) <= (now or _now()):
            return True
    except ValueError:
        return True
    host, _, rest = claim.maker.partition(" ")
    pid, _, started = rest.partition(" ")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return not alive(int(pid), int(started) if started.isdigit() else None)


def _unfinished(store: ClaimStore, members: list[Member]) -> dict[str, Claim]:
    """Members a ``pool fill`` was making when it died: free in their metadata, held by a
    fill's service claim whose maker is gone (stack -> that claim)."""
    found: dict[str, Claim] = {}
    candidates = [s for s, md, _, _ in members if md is not None and md.claimed_by is None]
    if not candidates:
        return found
    claims = store.claims()
    for stack in candidates:
        record = claims.get(stack)
        if record is not None and record.branch == FILL_CLAIM and maker_gone(record):
            found[stack] = record
    return found


# --- claim / release ------------------------------------------------------------------------


def use_pool(ctx: StackContext, flag: bool | None) -> bool:
    """Whether `up`/`ci` claim from the pool: ``--pool``/``--no-pool``, else the setting."""
    return ctx.settings.pool if flag is None else flag


def held(
    ctx: StackContext, members: list[Member] | None = None
) -> tuple[StackContext, StackMetadata] | None:
    """The pool stack the context's branch holds (pointed at it), None when it holds none
    (``members``: the pool as just listed, else listed here)."""
    for stack, md, _, _ in _members(ctx) if members is None else members:
        if md is not None and md.claimed_by == ctx.branch.name:
            return _for_stack(ctx, stack), md
    return None


def claim(
    ctx: StackContext,
    *,
    ttl: str | None,
    say: Say,
    env: Mapping[str, str] | None = None,
    members: list[Member] | None = None,
) -> tuple[StackContext, StackMetadata] | None:
    """Claim a free stack of the pool for the context's branch; None when none is free
    (``members``: the pool as just listed, else listed here; a stale entry costs nothing,
    since the conditional write decides and the stack's metadata is read again under it).

    The conditional write decides between concurrent claimers (:mod:`branchenv.pool.claims`);
    the winner records the claim (branch, owner, expiry) in the stack's metadata."""
    from branchenv.gitinfo import current_commit, detect_owner
    from branchenv.metadata import format_timestamp, parse_ttl

    lifetime = parse_ttl(ttl or ctx.settings.default_ttl)
    owner = detect_owner(env=os.environ if env is None else env, cwd=ctx.settings.project_dir)
    store = store_for(ctx)
    for stack, md, _, attention in _members(ctx) if members is None else members:
        if md is None or attention or md.claimed_by is not None or md.reap_pending:
            continue
        now = _now()
        record = Claim(
            stack=stack,
            branch=ctx.branch.name,
            owner=owner,
            claimed_at=format_timestamp(now),
            expires_at=format_timestamp(now + lifetime),
            token=new_token(),
        )
        if not store.try_claim(record):
            continue
        # Read again under the claim: a release or drain may have finished meanwhile.
        try:
            current = ctx.engine.metadata(stack=stack, program=ctx.program)
        except StackNotFound:
            current = None
        if current is None or current.claimed_by is not None or current.pool != md.pool:
            if current is None:
                store.forget(stack)
            else:
                store.release(stack)
            continue
        claimed = dataclasses.replace(
            current,
            claimed_by=ctx.branch.name,
            claimed_owner=owner,
            expires_at=now + lifetime,
            commit=current_commit(ctx.settings.project_dir),
            reap_pending=False,
        )
        ctx.engine.set_metadata(stack=stack, program=ctx.program, metadata=claimed)
        say(f"claimed {stack} from pool {md.pool} for branch {ctx.branch.name}")
        return _for_stack(ctx, stack), claimed
    return None


def acquire(
    ctx: StackContext,
    *,
    ttl: str | None,
    say: Say,
    existing: StackMetadata | None,
    env: Mapping[str, str] | None = None,
) -> Acquired:
    """The stack `up --pool` / `ci --pool` go on with (``existing``: the branch's own stack's
    metadata, None when it has none)."""
    from branchenv.metadata import parse_ttl

    if existing is not None:
        return Acquired(ctx, None, "own", f"branch {ctx.branch.name} has its own stack: no claim")
    members = _members(ctx)
    mine = held(ctx, members)
    if mine is not None:
        pool_ctx, md = mine
        lifetime = parse_ttl(ttl or ctx.settings.default_ttl)
        renewed = dataclasses.replace(md, expires_at=_now() + lifetime, reap_pending=False)
        return Acquired(pool_ctx, renewed, "held", f"updating {pool_ctx.names.stack}, held")
    got = claim(ctx, ttl=ttl, say=say, env=env, members=members)
    if got is not None:
        return Acquired(got[0], got[1], "claimed")
    pool = pool_name(ctx)
    if ctx.settings.pool_fallback == "cold":
        return Acquired(ctx, None, "cold", f"pool {pool} is empty: creating {ctx.names.stack} cold")
    raise PoolEmpty(
        f"pool {pool} is empty (no free stack on target {ctx.target.name}): run `branchenv pool "
        'fill`, retry later, or set pool_fallback = "cold" to create the stack cold'
    )


def release(
    ctx: StackContext,
    metadata: StackMetadata,
    *,
    say: Say,
    sleep: Callable[[float], None] = time.sleep,
    env: Mapping[str, str] | None = None,
) -> ReleaseOutcome:
    """Wipe the claimed stack ``ctx`` points at, verify it empty, and return it to the pool;
    destroy it instead when its resource graph changed or a type cannot be wiped, and then
    start the pool's background refill (:mod:`branchenv.pool.refill`; not waited for)."""
    from branchenv.pool import refill

    done = release_stack(
        ctx.engine,
        program=ctx.program,
        target=ctx.target,
        stack=ctx.names.stack,
        metadata=metadata,
        pool_ttl=ctx.settings.pool_ttl,
        say=say,
        sleep=sleep,
    )
    if done.status != "destroyed":
        return done
    started = refill.start_for(ctx, pool=metadata.pool or pool_name(ctx), env=env)
    say(started.describe())
    return dataclasses.replace(done, refill=started)


def release_stack(
    engine: Engine,
    *,
    program: Program,
    target: Target,
    stack: str,
    metadata: StackMetadata,
    pool_ttl: str = DEFAULT_POOL_TTL,
    say: Say,
    sleep: Callable[[float], None] = time.sleep,
) -> ReleaseOutcome:
    """:func:`release` for a stack known by engine, program and target (the reaper's view)."""
    from branchenv.pool.wipe import plan_wipe, wipe_all

    started = time.monotonic()
    store = ClaimStore(target, engine=engine.name, project=program.project)
    resources = engine.resources(stack=stack, program=program)
    baseline = store.baseline(stack)
    addresses = frozenset(r.address for r in resources)
    reason: str | None = None
    wiped: list[Wiped] = []
    if baseline is None:
        reason = "no baseline of its resources is recorded"
    elif addresses != baseline:
        added, removed = len(addresses - baseline), len(baseline - addresses)
        reason = f"the program changed its resource graph (+{added}/-{removed} resources)"
    else:
        plan = plan_wipe(resources)
        if plan.unknown:
            reason = f"no wiper for {', '.join(plan.unknown)}, which may hold the claimant's data"
        else:
            try:
                wiped = wipe_all(target, plan.wipe, sleep=sleep)
            except Exception as exc:  # any failure to wipe: not returned, destroyed
                from branchenv.errors import one_line

                reason = f"the wipe failed ({one_line(exc, limit=160)})"
            else:
                left = [w for w in wiped if not w.empty]
                if left:
                    reason = "not empty after the wipe: " + ", ".join(
                        f"{w.physical} ({w.left} left)" for w in left
                    )
    if reason is None:
        from branchenv.metadata import parse_ttl

        free = dataclasses.replace(
            metadata,
            claimed_by=None,
            claimed_owner=None,
            expires_at=_now() + parse_ttl(pool_ttl),
            reap_pending=False,
        )
        engine.set_metadata(stack=stack, program=program, metadata=free)
        store.release(stack)  # last: only now can another branch claim it
        items = sum(w.deleted for w in wiped)
        say(
            f"released {stack} to pool {metadata.pool}: {plural(len(wiped), 'resource')} wiped "
            f"({plural(items, 'item')} deleted), verified empty"
        )
        return ReleaseOutcome(
            stack, "returned", tuple(wiped), duration_s=time.monotonic() - started
        )
    say(f"{stack} is not returned to pool {metadata.pool}: {reason}; destroying it")
    from branchenv.harness.teardown import INTERACTIVE, destroy_stack

    done = destroy_stack(
        engine,
        stack=stack,
        program=program,
        target=target,
        metadata=metadata,
        retry=INTERACTIVE,
        sleep=sleep,
        on_output=say,
    )
    if not done.ok:
        return ReleaseOutcome(
            stack,
            "failed",
            tuple(wiped),
            f"{reason}; then its destroy failed: {done.error or done.status}",
            time.monotonic() - started,
            deleted=done.deleted,
            leak_check=done.leak_check,
        )
    store.forget(stack)
    say(f"{stack} destroyed")
    return ReleaseOutcome(
        stack,
        "destroyed",
        tuple(wiped),
        reason,
        time.monotonic() - started,
        deleted=done.deleted,
        leak_check=done.leak_check,
    )


# --- the hooks `up`, `ci`, `down`, `outputs` and `test` call --------------------------------


def up(
    ctx: StackContext,
    *,
    flag: bool | None,
    ttl: str | None,
    profile: str,
    on_output: Say | None,
    say: Say,
    allow_shared: Iterable[str] = (),
) -> UpOutcome:
    """`up`: the branch's own stack as ever, or (``--pool`` / ``pool = true``) a claimed pool
    stack with the branch's program applied on top."""
    from branchenv import provision

    provision.check_profile(profile)
    existing = provision.check_may_manage(ctx)
    if not use_pool(ctx, flag) and (existing is not None or held(ctx) is None):
        return provision.up(
            ctx,
            ttl=ttl,
            profile=profile,
            on_output=on_output,
            allow_shared=allow_shared,
            existing=existing,
            checked=True,
        )
    # With the pool, or without it for a branch that holds a pool stack (and has none of its
    # own): that stack is the branch's.
    got = acquire(ctx, ttl=ttl, say=say, existing=existing)
    if got.note:
        say(f"note: {got.note}")
    if got.metadata is None:  # own stack, or cold
        return provision.up(
            got.ctx, ttl=ttl, profile=profile, on_output=on_output, allow_shared=allow_shared
        )
    return apply(
        got.ctx,
        got.metadata,
        profile=profile,
        on_output=on_output,
        say=say,
        existing=provision.check_may_manage(got.ctx),
        allow_shared=allow_shared,
    )


def fingerprint(
    ctx: StackContext,
    metadata: StackMetadata,
    *,
    profile: str,
    allow_shared: Iterable[str] = (),
) -> str:
    """What an update of the pool stack would apply, as one hash: every file of the program
    (and its project file) plus the neutral inputs, the stack's mutable metadata left out
    (claims change it, and it is written with ``set_metadata`` anyway)."""
    import hashlib
    import json

    from branchenv import provision

    inputs = provision.program_inputs(
        ctx, profile=profile, metadata=metadata, allow_shared=frozenset(allow_shared)
    )
    digest = hashlib.sha256()
    digest.update(
        json.dumps(
            {
                "engine": ctx.engine.name,
                "prefix": inputs.prefix,
                "profile": inputs.profile,
                "tags": dict(inputs.tags),
                "region": inputs.region,
                "functions_url": inputs.functions_url,
                "template": dict(inputs.template),
                "allow_shared": sorted(inputs.allow_shared),
            },
            sort_keys=True,
        ).encode()
    )
    roots = [ctx.program.path]
    if ctx.program.project_dir != ctx.program.path:
        roots.append(ctx.program.project_dir)
    for root in roots:
        deep = root == ctx.program.path
        for path in _program_files(root) if deep else sorted(root.glob("*")):
            if not path.is_file():
                continue
            rel = path.relative_to(root)
            digest.update(f"{root.name}/{rel}\0".encode())
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()


def _program_files(root: Path) -> list[Path]:
    """Every file of a program, linked directories followed (a Terraform module may link its
    function code), caches and dot-directories (``.terraform``, state) left out."""
    found: list[Path] = []
    for here, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        found.extend(Path(here) / f for f in sorted(files) if not f.startswith("."))
    return found


def apply(
    ctx: StackContext,
    metadata: StackMetadata,
    *,
    profile: str,
    on_output: Say | None,
    say: Say,
    existing: StackMetadata | None,
    allow_shared: Iterable[str] = (),
) -> UpOutcome:
    """Apply the branch's program to the pool stack it claimed: an update, or nothing when the
    program and inputs are exactly what the stack last had applied and every resource the pool
    made is still in place (the claim's metadata is already written); either way the outcome
    holds the stack's outputs and resources. A resource gone meanwhile makes it an update,
    which creates it again."""
    from branchenv import provision

    started = time.monotonic()
    store = store_for(ctx)
    wanted = fingerprint(ctx, metadata, profile=profile, allow_shared=allow_shared)
    resources = (
        ctx.engine.resources(stack=ctx.names.stack, program=ctx.program)
        if store.applied(ctx.names.stack) == wanted
        else None
    )
    baseline = store.baseline(ctx.names.stack) if resources is not None else None
    if resources is not None and frozenset(r.address for r in resources) == baseline:
        ctx.engine.set_metadata(stack=ctx.names.stack, program=ctx.program, metadata=metadata)
        say(f"{ctx.names.stack}: the program and inputs are what it runs already: nothing to apply")
        return provision.UpOutcome(
            stack=ctx.names.stack,
            branch=ctx.branch.name,
            target=ctx.target.name,
            engine=ctx.engine.name,
            outputs=ctx.engine.outputs(stack=ctx.names.stack, program=ctx.program),
            changes={"create": 0, "update": 0, "replace": 0, "delete": 0, "same": len(resources)},
            resource_count=len(resources),
            metadata=metadata,
            duration_s=time.monotonic() - started,
            notes=ctx.notes,
            resources=tuple(resources),  # the cost estimate's: one existence check per claim
            in_place=ctx.engine.resources_checked,
        )
    if resources is not None:
        say(f"{ctx.names.stack}: not every resource the pool made is in place: updating it")
    # Until the update succeeds the stack runs neither version for sure: a later claim must
    # apply its program whatever it is.
    store.write_applied(ctx.names.stack, "(updating)")
    outcome = provision.up(
        ctx,
        profile=profile,
        on_output=on_output,
        existing=existing,
        checked=True,
        metadata=metadata,
        allow_shared=allow_shared,
    )
    store.write_applied(ctx.names.stack, wanted)
    return outcome


def redirect(ctx: StackContext) -> StackContext:
    """``ctx`` pointed at the pool stack its branch holds, when the branch has no stack of
    its own but holds a claim; else ``ctx`` unchanged."""
    try:
        if ctx.engine.metadata(stack=ctx.names.stack, program=ctx.program) is not None:
            return ctx
    except StackNotFound:
        pass
    mine = held(ctx)
    return mine[0] if mine is not None else ctx


def release_held(
    ctx: StackContext, *, say: Say, env: Mapping[str, str] | None = None
) -> ReleaseOutcome | None:
    """Release the pool stack the branch holds (None when it holds none)."""
    mine = held(ctx)
    if mine is None:
        return None
    return release(mine[0], mine[1], say=say, env=env)


def outputs(ctx: StackContext) -> dict[str, Any]:
    """`outputs`: the branch's stack's, or those of the pool stack it holds."""
    from branchenv import provision

    return provision.outputs(redirect(ctx))


def down(
    ctx: StackContext,
    *,
    on_output: Say | None = None,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DownOutcome:
    """`down`: a branch holding a warm-pool stack (and no stack of its own) releases it;
    otherwise its own stack is destroyed as ever (:func:`branchenv.provision.down`)."""
    from branchenv import provision

    if provision.check_may_manage(ctx) is not None:
        return provision.down(ctx, on_output=on_output, retry=retry, sleep=sleep)
    outcome = release_held(ctx, say=on_output or (lambda _line: None))
    if outcome is None:
        return provision.down(ctx, on_output=on_output, retry=retry, sleep=sleep)
    if outcome.status == "failed":
        raise OperationFailed(
            f"down: releasing pool stack {outcome.stack} failed: {outcome.reason}; it stays "
            f"claimed by {ctx.branch.name} until `branchenv reap` handles it"
        )
    note = (
        f"pool stack {outcome.stack} wiped, verified empty and returned to its pool"
        if outcome.status == "returned"
        else f"pool stack {outcome.stack} destroyed: {outcome.reason}"
    )
    return provision.DownOutcome(
        stack=outcome.stack,
        branch=ctx.branch.name,
        target=ctx.target.name,
        engine=ctx.engine.name,
        deleted=outcome.deleted,
        removed=outcome.status == "destroyed",
        already_absent=False,
        duration_s=outcome.duration_s,
        notes=(*ctx.notes, note),
        leak_check=outcome.leak_check,
        released=outcome.status == "returned",
        refill=outcome.refill,
    )
