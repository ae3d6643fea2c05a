"""One reaper run, end to end: list stacks -> decide -> (safety rails) -> destroy -> sweep.

The CLI (`branchenv reap`) only parses flags and renders; everything it does is here, and
:func:`plan` and :func:`execute` enforce the rails themselves (a library caller cannot skip
them). In the order they apply (every refusal is exit 3, nothing done):

1. a local-only engine is refused on any other target, before the target is contacted;
2. an orphan sweep on AWS needs a listing that sees every machine's stacks;
3. on target ``aws`` the caller's account must be in ``allowed_account_ids`` (checked by
   :func:`plan`, and again by :func:`execute`, which refuses if the account changed);
4. stacks without the managed marker, matching a protected pattern or needing attention are
   never candidates;
5. more candidates than ``max_reap`` (orphans than ``max_orphans``) -> refuse to act;
6. orphans need the managed-by tag and a stack matching no protected pattern.

With a :class:`~branchenv.reaper.org.Scope` (``--accounts``/``--regions``/``--assume-role``)
the run covers every (account, region) pair: rail 3 becomes the allowlist checked for every
named account before any is contacted, then each pair's credentials checked to act in its
account; ``--max`` counts candidates across all pairs; failures are isolated per pair (see
:mod:`branchenv.reaper.org`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from branchenv.errors import SafetyRefusal, one_line
from branchenv.reaper.orphans import OrphanPlan, SweepOutcome, clients_for, find_orphans, sweep
from branchenv.reaper.policy import Decision, ReapPolicy, decide

if TYPE_CHECKING:
    from branchenv.config import Settings
    from branchenv.engines.base import Engine, OutputSink, Program
    from branchenv.harness.teardown import RetryPolicy
    from branchenv.metadata import StackMetadata
    from branchenv.pool.outcome import Refill
    from branchenv.reaper.executor import Outcome, ReapJob
    from branchenv.reaper.org import PairPlan, Scope
    from branchenv.targets import Target


@dataclasses.dataclass(frozen=True)
class ReapPlan:
    """What a run would do: a decision per stack, and (with ``--orphans``) the orphan plan."""

    now: dt.datetime
    target: str
    engines: tuple[str, ...]
    remote: str | None
    decisions: tuple[Decision, ...]
    orphans: OrphanPlan | None
    max_reap: int
    max_orphans: int = 200
    account: str | None = None
    """The AWS account the plan was made in (checked against the allowlist); None off AWS."""
    metadata: dict[tuple[str, str, str], StackMetadata | None] = dataclasses.field(
        default_factory=dict, repr=False, compare=False
    )
    """Each listed stack's metadata by (engine, program, stack) (:attr:`Decision.key`)."""
    hourly_cost: dict[tuple[str, str, str], Decimal | None] = dataclasses.field(
        default_factory=dict, repr=False, compare=False
    )
    """Estimated burn rate (USD/h) of each candidate, taken before anything is destroyed;
    None where the engine cannot list the stack's resources."""
    programs: dict[str, Program] = dataclasses.field(
        default_factory=dict, repr=False, compare=False
    )
    """The programs the plan listed, by name (what execute destroys with)."""
    scope: Scope | None = None
    """The organisation-wide scope; None for the one-account, one-region run."""
    pairs: tuple[PairPlan, ...] = ()
    """Every (account, region) pair of an organisation-wide run, with its orphans or its
    failure; empty for the one-pair run (whose orphans are ``orphans``)."""

    @property
    def candidates(self) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if d.reap)

    @property
    def kept(self) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if not d.reap)

    def refusal(self) -> str | None:
        """Why acting on this plan is refused (too many candidates or orphans), or None."""
        count = len(self.candidates)
        if count > self.max_reap:
            return (
                f"{count} stacks are due for reaping"
                + (f" across {len(self.pairs)} account/region pairs" if self.pairs else "")
                + f" but at most {self.max_reap} may be destroyed per run; check the plan, then raise the limit with `--max {count}` (or "
                "BRANCHENV_MAX_REAP)"
            )
        orphans = len(self.orphans.orphans) if self.orphans is not None else 0
        orphans += sum(len(p.orphans.orphans) for p in self.pairs if p.orphans is not None)
        if orphans > self.max_orphans:
            return (
                f"{orphans} orphaned resources are due for deletion but at most "
                f"{self.max_orphans} may be deleted per run; check the plan, then raise the "
                f"limit with `--max-orphans {orphans}`"
            )
        return None


@dataclasses.dataclass(frozen=True)
class ReapResult:
    """What a run did: the plan, each destroyed stack's outcome, each orphan's."""

    plan: ReapPlan
    acted: bool
    outcomes: tuple[Outcome, ...] = ()
    swept: tuple[SweepOutcome, ...] = ()

    failed_pairs: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)
    """(account, region) -> why the pair failed when acting (its role denied since the plan,
    say); pairs that failed while planning are in ``plan.pairs``."""
    refills: tuple[Refill, ...] = ()
    """The background refills started for pools whose claimed stacks were destroyed instead
    of released (one per pool: :mod:`branchenv.pool.refill`)."""

    def pair_errors(self) -> dict[tuple[str, str], str]:
        """Every failed pair, with its reason (planning first, then acting)."""
        errors = {(p.pair.account, p.pair.region): p.error or "" for p in self.plan.pairs}
        errors = {k: v for k, v in errors.items() if v}
        for key, error in self.failed_pairs.items():
            errors.setdefault(key, error)
        return errors

    @property
    def failed(self) -> int:
        """Failed stack destroys + failed orphan deletes + failed pairs."""
        return (
            sum(1 for o in self.outcomes if not o.ok)
            + sum(1 for s in self.swept if s.status == "failed")
            + len(self.pair_errors())
        )


def plan(
    settings: Settings,
    *,
    engines: Sequence[Engine],
    target_name: str,
    now: dt.datetime | None = None,
    remote_branches: set[str] | None = None,
    remote: str | None = None,
    orphan_target: Target | None = None,
    max_reap: int | None = None,
    max_orphans: int = 200,
    orphan_grace: dt.timedelta = dt.timedelta(hours=1),
    target: Target | None = None,
    scope: Scope | None = None,
    orphans: bool = False,
) -> ReapPlan:
    """Decide for every stack the engines know; with ``orphan_target``, find orphans there.

    The rails come first (see the module doc): a refusal raises SafetyRefusal before any
    stack is listed. On AWS the account is checked through ``target`` (default: the orphan
    target, else the settings' region).

    With ``scope``, the organisation-wide run: every (account, region) pair of the scope,
    reached from ``target`` (the base credentials and, on the local cloud, its endpoint);
    ``orphans`` asks for the sweep in every pair (``orphan_target`` is not used then)."""
    from branchenv.safety import check_account, check_engine_target, orphan_sweep_refusal

    for engine in engines:
        check_engine_target(engine.name, target_name)
    if orphan_target is not None or (scope is not None and orphans):
        refused = orphan_sweep_refusal(settings, engines, target_name)
        if refused:
            raise SafetyRefusal(refused)
    if scope is not None:
        if target is None:
            raise ValueError("an organisation-wide plan needs the base target")
        return _plan_org(
            settings,
            engines=engines,
            target_name=target_name,
            base=target,
            scope=scope,
            now=now or dt.datetime.now(dt.UTC),
            remote_branches=remote_branches,
            remote=remote,
            orphans=orphans,
            max_reap=max_reap,
            max_orphans=max_orphans,
            orphan_grace=orphan_grace,
        )
    account = None
    if target_name == "aws":
        from branchenv.safety import resolve_target

        sts_target = target or orphan_target or resolve_target(settings, "aws").target
        account = check_account(sts_target.client("sts"), settings.allowed_account_ids)
    now = now or dt.datetime.now(dt.UTC)
    listed = _list_and_decide(
        settings,
        engines,
        target_name=target_name,
        now=now,
        remote_branches=remote_branches,
        where=lambda md: (md.account, md.region) if md else (None, None),
    )
    decisions = listed.decisions
    # One account's credentials: a stack recorded in another account is not this run's to
    # destroy (its engine would act with the wrong credentials); the org-wide run reaches it.
    reached = target or orphan_target
    here = account or (reached.known_account() if reached is not None else None)
    if here is not None:
        decisions = [_elsewhere(d, here) for d in decisions]
    orphan_plan = None
    if orphan_target is not None:
        orphan_plan = find_orphans(
            orphan_target,
            known_stacks=listed.known,
            protected_patterns=settings.protected_patterns,
            # Only the projects this run listed: a configured program no listing engine reads
            # has stacks nobody here can see, so its resources can never be judged orphans.
            project=frozenset(p.project for p, _engine in listed.listings),
            now=now,
            grace=orphan_grace,
        )
    return _reap_plan(
        settings,
        listed,
        decisions,
        now=now,
        target_name=target_name,
        engines=engines,
        remote=remote,
        max_reap=max_reap,
        max_orphans=max_orphans,
        orphans=orphan_plan,
        account=account,
    )


def _elsewhere(d: Decision, here: str) -> Decision:
    """``d``, kept when its stack lives in another account than ``here``."""
    from branchenv.reaper.policy import Action, Because, KeepReason

    if not d.reap or d.account is None or d.account == here:
        return d
    why = (
        f"lives in account {d.account}, this run acts in {here}: reap it with "
        f"`--accounts {d.account} --assume-role ...`"
    )
    return dataclasses.replace(
        d, action=Action.KEEP, reasons=(Because(KeepReason.OUT_OF_SCOPE, why),)
    )


def _plan_org(
    settings: Settings,
    *,
    engines: Sequence[Engine],
    target_name: str,
    base: Target,
    scope: Scope,
    now: dt.datetime,
    remote_branches: set[str] | None,
    remote: str | None,
    orphans: bool,
    max_reap: int | None,
    max_orphans: int,
    orphan_grace: dt.timedelta,
) -> ReapPlan:
    """The organisation-wide plan (see :mod:`branchenv.reaper.org`)."""
    from concurrent.futures import ThreadPoolExecutor

    from branchenv.reaper.org import (
        Pair,
        PairPlan,
        account_targets,
        check_allowlist,
        stack_pair,
        verify_account,
    )
    from branchenv.reaper.orphans import Arn, OrphanPlan
    from branchenv.reaper.policy import Action, Because, KeepReason
    from branchenv.safety import check_account
    from branchenv.targets import RoleNotAssumed

    # Before any account is contacted: an account outside the allowlist refuses the run.
    check_allowlist(scope, settings.allowed_account_ids)
    if scope.accounts:
        base_account = scope.accounts[0]
    else:
        known = base.known_account()
        base_account = known or check_account(base.client("sts"), settings.allowed_account_ids)
    accounts = account_targets(
        scope, base, default_region=settings.region, base_account=base_account
    )
    pair_plans: list[PairPlan] = []
    for acct in accounts:
        if acct.error is not None:
            pair_plans.append(
                PairPlan(
                    Pair(acct.account, "all"),
                    acct.target,
                    error=f"listing its regions failed: {acct.error}",
                )
            )
            continue
        for region in acct.regions:
            pair_plans.append(
                PairPlan(
                    Pair(acct.account, region), dataclasses.replace(acct.target, region=region)
                )
            )

    def check(pp: PairPlan) -> PairPlan:
        try:
            verify_account(
                pp.target,
                pp.pair.account,
                settings.allowed_account_ids,
                assumed=pp.target.role is not None,
            )
        except RoleNotAssumed as exc:
            return dataclasses.replace(pp, error=str(exc))
        return pp

    workers = max(1, min(16, len(pair_plans)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pair") as pool:
        # A SafetyRefusal (credentials acting in another account) propagates: nothing is done.
        pair_plans = [p for p in pool.map(lambda pp: pp if not pp.ok else check(pp), pair_plans)]
    in_scope = {p.pair for p in pair_plans}

    default_account = None if scope.accounts else base_account

    def where(md: StackMetadata | None) -> tuple[str | None, str | None]:
        pair = stack_pair(md, default_region=settings.region, default_account=default_account)
        if pair is not None:
            return pair.account, pair.region
        return (md.account, md.region) if md else (None, None)

    listed = _list_and_decide(
        settings,
        engines,
        target_name=target_name,
        now=now,
        remote_branches=remote_branches,
        where=where,
    )
    known_stacks = listed.known
    programs = listed.programs
    decisions: list[Decision] = []
    for decision in listed.decisions:
        md = listed.metadata.get(decision.key)
        pair = stack_pair(md, default_region=settings.region, default_account=default_account)
        if decision.reap and (pair is None or pair not in in_scope):
            why = (
                "its account is unknown (made before stacks recorded it); reap it with "
                "`branchenv reap` and that account's credentials"
                if pair is None
                else f"lives in account {pair.account}, region {pair.region}: not in this "
                "run's --accounts/--regions"
            )
            decision = dataclasses.replace(
                decision,
                action=Action.KEEP,
                reasons=(Because(KeepReason.OUT_OF_SCOPE, why),),
            )
        decisions.append(decision)

    if orphans:

        def find(pp: PairPlan) -> PairPlan:
            if not pp.ok:
                return pp
            try:
                found = find_orphans(
                    pp.target,
                    known_stacks=known_stacks,
                    protected_patterns=settings.protected_patterns,
                    project=frozenset(p.project for p in programs.values()),
                    now=now,
                    grace=orphan_grace,
                )
            except Exception as exc:
                return dataclasses.replace(pp, error=f"finding orphans failed: {one_line(exc)}")
            return dataclasses.replace(pp, orphans=found)

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pair") as pool:
            pair_plans = list(pool.map(find, pair_plans))
        # A resource whose ARN has no region (IAM roles, S3 buckets) is seen from every region
        # of its account: it belongs to the first pair that saw it, once.
        seen: set[tuple[str, str]] = set()
        deduped: list[PairPlan] = []
        for pp in pair_plans:
            if pp.orphans is None:
                deduped.append(pp)
                continue

            def first(arn: str, account: str = pp.pair.account) -> bool:
                key = (account, arn)
                if key in seen:
                    return False
                seen.add(key)
                return True

            def regional(arn: str) -> bool:
                try:
                    return bool(Arn.parse(arn).region)
                except ValueError:
                    return True

            kept_orphans = tuple(o for o in pp.orphans.orphans if regional(o.arn) or first(o.arn))
            kept_skipped = tuple(k for k in pp.orphans.skipped if regional(k.arn) or first(k.arn))
            deduped.append(
                dataclasses.replace(
                    pp, orphans=OrphanPlan(kept_orphans, kept_skipped, pp.orphans.owned)
                )
            )
        pair_plans = deduped

    return _reap_plan(
        settings,
        listed,
        decisions,
        now=now,
        target_name=target_name,
        engines=engines,
        remote=remote,
        max_reap=max_reap,
        max_orphans=max_orphans,
        scope=scope,
        pairs=tuple(pair_plans),
    )


@dataclasses.dataclass(frozen=True)
class _Listed:
    """What every listing engine knows: its stacks' decisions (with engine, program, account
    and region filled in), their metadata, and every stack name seen."""

    listings: list[tuple[Program, Engine]]
    programs: dict[str, Program]
    decisions: list[Decision]
    metadata: dict[tuple[str, str, str], StackMetadata | None]
    known: set[str]


def _list_and_decide(
    settings: Settings,
    engines: Sequence[Engine],
    *,
    target_name: str,
    now: dt.datetime,
    remote_branches: set[str] | None,
    where: Callable[[StackMetadata | None], tuple[str | None, str | None]],
) -> _Listed:
    """List every (program, engine) pair's stacks and decide each; ``where`` places a stack
    in its (account, region) from its metadata."""
    from branchenv.programs import configured_programs, listing_pairs

    policy = ReapPolicy.from_settings(settings, target=target_name)
    listings = listing_pairs(settings, engines)
    decisions: list[Decision] = []
    metadata: dict[tuple[str, str, str], StackMetadata | None] = {}
    known: set[str] = set()
    for program, engine in listings:
        summaries = engine.list_stacks(program=program)
        for summary in summaries:
            known.add(summary.stack)
            metadata[(engine.name, program.name, summary.stack)] = summary.metadata
        for decision in decide(summaries, now=now, remote_branches=remote_branches, config=policy):
            account, region = where(metadata.get((engine.name, program.name, decision.stack)))
            decisions.append(
                dataclasses.replace(
                    decision,
                    engine=engine.name,
                    program=program.name,
                    account=account,
                    region=region,
                )
            )
    programs = {program.name: program for program in configured_programs(settings)}
    return _Listed(listings, programs, decisions, metadata, known)


def _reap_plan(
    settings: Settings,
    listed: _Listed,
    decisions: list[Decision],
    *,
    now: dt.datetime,
    target_name: str,
    engines: Sequence[Engine],
    remote: str | None,
    max_reap: int | None,
    max_orphans: int,
    orphans: OrphanPlan | None = None,
    account: str | None = None,
    scope: Scope | None = None,
    pairs: tuple[PairPlan, ...] = (),
) -> ReapPlan:
    """The plan for ``decisions`` (the listed ones, after this run's account rails), with the
    hourly cost of each candidate."""
    return ReapPlan(
        now=now,
        target=target_name,
        engines=tuple(e.name for e in engines),
        remote=remote,
        decisions=tuple(decisions),
        orphans=orphans,
        max_reap=settings.max_reap if max_reap is None else max_reap,
        max_orphans=max_orphans,
        account=account,
        metadata=listed.metadata,
        hourly_cost=_candidate_costs(settings, listed.listings, decisions, listed.metadata, now),
        programs=listed.programs,
        scope=scope,
        pairs=pairs,
    )


def _candidate_costs(
    settings: Settings,
    pairs: Sequence[tuple[Program, Engine]],
    decisions: list[Decision],
    metadata: dict[tuple[str, str, str], StackMetadata | None],
    now: dt.datetime,
) -> dict[tuple[str, str, str], Decimal | None]:
    """The burn rate each candidate would stop: the cost the reap reclaims per hour."""
    from branchenv.cost.estimate import estimate_stack, inventory_from_engine
    from branchenv.cost.prices import load_prices

    by_key = {(e.name, p.name): (p, e) for p, e in pairs}
    prices = load_prices()
    costs: dict[tuple[str, str, str], Decimal | None] = {}
    for d in decisions:
        found = by_key.get((d.engine, d.program))
        if not d.reap or found is None:
            continue
        program, engine = found
        inventory = inventory_from_engine(
            engine,
            stack=d.stack,
            program=program,
            metadata=metadata.get(d.key),
            default_region=settings.region,
        )
        estimate = estimate_stack(inventory, prices, now=now)
        costs[d.key] = estimate.hourly if estimate.inventory_available else None
    return costs


def execute(
    reap_plan: ReapPlan,
    *,
    settings: Settings,
    engines: Sequence[Engine],
    target: Target,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_output: OutputSink | None = None,
    sweep_concurrency: int = 8,
) -> ReapResult:
    """Destroy the plan's candidates and sweep its orphans. Refuses (exit 3, nothing done)
    when the plan has more candidates than its ``max_reap``."""
    from branchenv.programs import configured_programs
    from branchenv.reaper.executor import ReapJob, destroy_all
    from branchenv.safety import check_account, check_engine_target

    refusal = reap_plan.refusal()
    if refusal is not None:
        raise SafetyRefusal(refusal)
    for engine in engines:
        check_engine_target(engine.name, target.name)
    if target.name != reap_plan.target:
        raise SafetyRefusal(
            f"the plan was made for target {reap_plan.target!r}, not {target.name!r}: plan "
            "again for the target you mean to reap"
        )
    if reap_plan.scope is not None:
        return _execute_org(
            reap_plan,
            settings=settings,
            engines=engines,
            retry=retry,
            sleep=sleep,
            on_output=on_output,
        )
    if target.name == "aws":
        account = check_account(target.client("sts"), settings.allowed_account_ids)
        if account != reap_plan.account:
            raise SafetyRefusal(
                f"the plan was made in AWS account {reap_plan.account}, these credentials "
                f"are for {account}: plan again with the credentials you mean to reap with"
            )
    by_name = {e.name: e for e in engines}
    programs = reap_plan.programs or {p.name: p for p in configured_programs(settings)}
    # A stack brought up in another region (`up --region`) is destroyed there, not in the
    # settings' region: its engine's clients must reach where its resources are.
    jobs = [
        ReapJob(
            stack=d.stack,
            engine=by_name[d.engine],
            metadata=reap_plan.metadata.get(d.key),
            program=programs[d.program],
            target=dataclasses.replace(target, region=d.region)
            if d.region and d.region != target.region
            else None,
        )
        for d in reap_plan.candidates
    ]
    outcomes = destroy_all(
        jobs,
        target=target,
        concurrency=settings.reap_concurrency,
        retry=retry,
        sleep=sleep,
        on_output=on_output,
    )
    refills = _refill_pools(jobs, outcomes, settings=settings, target=target, on_output=on_output)
    swept: list[SweepOutcome] = []
    if reap_plan.orphans is not None and reap_plan.orphans.orphans:
        swept = sweep(
            reap_plan.orphans.orphans,
            clients=clients_for(target),
            concurrency=sweep_concurrency,
            sleep=sleep,
            on_output=on_output,
        )
    return ReapResult(
        plan=reap_plan,
        acted=True,
        outcomes=tuple(outcomes),
        swept=tuple(swept),
        refills=refills,
    )


def _refill_pools(
    jobs: Sequence[ReapJob],
    outcomes: Sequence[Outcome],
    *,
    settings: Settings,
    target: Target,
    on_output: OutputSink | None,
) -> tuple[Refill, ...]:
    """Start one background refill per pool that lost a claimed stack: the release found it
    could not go back and destroyed it (a free pool stack reaped at its TTL is not refilled:
    that pool is one nobody uses)."""
    from branchenv.pool import refill
    from branchenv.programs import DEFAULT_PROGRAM
    from branchenv.reaper.executor import Status

    pools: dict[tuple[str, str, str], str | None] = {}
    for job, outcome in zip(jobs, outcomes, strict=True):
        md = job.metadata
        if (
            md is None
            or md.pool is None
            or md.claimed_by is None
            or md.reap_pending
            or job.target is not None  # another region's: its pool is filled there
            or outcome.status != Status.DESTROYED
        ):
            continue
        name = None if job.program.name == DEFAULT_PROGRAM else job.program.name
        pools[(md.pool, job.engine.name, job.program.name)] = name
    started = []
    for (pool, engine, _), program in sorted(pools.items()):
        done = refill.start(settings, pool=pool, target=target.name, engine=engine, program=program)
        if on_output is not None:
            on_output(done.describe())
        started.append(done)
    return tuple(started)


def _execute_org(
    reap_plan: ReapPlan,
    *,
    settings: Settings,
    engines: Sequence[Engine],
    retry: RetryPolicy | None,
    sleep: Callable[[float], None],
    on_output: OutputSink | None,
) -> ReapResult:
    """Act on an organisation-wide plan: every pair's credentials are checked again first
    (a refusal stops the run before anything is destroyed; a role denied since the plan fails
    its pair), then every candidate is destroyed in its own pair and every pair swept, in
    parallel, at most ``account_concurrency`` calls in flight per account."""
    from concurrent.futures import ThreadPoolExecutor

    from branchenv.programs import configured_programs
    from branchenv.reaper.executor import Outcome, ReapJob, Status, destroy_all
    from branchenv.reaper.org import AccountGates, verify_account
    from branchenv.targets import RoleNotAssumed

    scope = reap_plan.scope
    assert scope is not None
    failed: dict[tuple[str, str], str] = {}
    ready = [p for p in reap_plan.pairs if p.ok]

    def check(pp: PairPlan) -> None:
        try:
            verify_account(
                pp.target,
                pp.pair.account,
                settings.allowed_account_ids,
                assumed=pp.target.role is not None,
            )
        except RoleNotAssumed as exc:
            failed[(pp.pair.account, pp.pair.region)] = str(exc)

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(ready)))) as pool:
        list(pool.map(check, ready))  # a SafetyRefusal propagates before anything is destroyed
    errors = {(p.pair.account, p.pair.region): p.error for p in reap_plan.pairs if p.error} | failed
    targets = {(p.pair.account, p.pair.region): p.target for p in reap_plan.pairs}
    by_name = {e.name: e for e in engines}
    programs = reap_plan.programs or {p.name: p for p in configured_programs(settings)}
    gates = AccountGates(scope.account_concurrency)
    jobs: list[ReapJob] = []
    refused: list[Outcome] = []
    for d in reap_plan.candidates:
        key = (d.account or "", d.region or "")
        if key in errors:
            refused.append(
                Outcome(
                    stack=d.stack,
                    engine=d.engine,
                    status=Status.FAILED,
                    attempts=0,
                    deleted=0,
                    duration_s=0.0,
                    program=d.program,
                    error=f"not destroyed: pair {key[0]}/{key[1]} failed: {errors[key]}",
                )
            )
            continue
        jobs.append(
            ReapJob(
                stack=d.stack,
                engine=by_name[d.engine],
                metadata=reap_plan.metadata.get(d.key),
                program=programs[d.program],
                target=targets[key],
                account=d.account,
            )
        )
    accounts = {p.pair.account for p in reap_plan.pairs}
    workers = max(1, min(32, scope.account_concurrency * max(1, len(accounts))))
    sweeps = [
        p
        for p in ready
        if p.orphans is not None
        and p.orphans.orphans
        and (p.pair.account, p.pair.region) not in failed
    ]

    def sweep_pair(pp: PairPlan) -> list[SweepOutcome]:
        assert pp.orphans is not None
        return sweep(
            pp.orphans.orphans,
            clients=clients_for(pp.target),
            concurrency=scope.account_concurrency,
            sleep=sleep,
            on_output=on_output,
            gate=lambda: gates.hold(pp.pair.account),
        )

    with ThreadPoolExecutor(max_workers=max(1, len(sweeps) + 1)) as pool:
        destroyed = (
            pool.submit(
                destroy_all,
                jobs,
                target=ready[0].target if ready else reap_plan.pairs[0].target,
                concurrency=workers,
                retry=retry,
                sleep=sleep,
                on_output=on_output,
                gates=gates,
            )
            if jobs
            else None
        )
        swept_futures = [pool.submit(sweep_pair, p) for p in sweeps]
        outcomes = (destroyed.result() if destroyed is not None else []) + refused
        swept = [s for f in swept_futures for s in f.result()]
    return ReapResult(
        plan=reap_plan,
        acted=True,
        outcomes=tuple(outcomes),
        swept=tuple(swept),
        failed_pairs=failed,
    )
