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
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from branchenv.errors import SafetyRefusal
from branchenv.reaper.orphans import OrphanPlan, SweepOutcome, clients_for, find_orphans, sweep
from branchenv.reaper.policy import Decision, ReapPolicy, decide

if TYPE_CHECKING:
    from branchenv.config import Settings
    from branchenv.engines.base import Engine, OutputSink, Program
    from branchenv.harness.teardown import RetryPolicy
    from branchenv.metadata import StackMetadata
    from branchenv.reaper.executor import Outcome
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
                f"{count} stacks are due for reaping but at most {self.max_reap} may be destroyed "
                f"per run; check the plan, then raise the limit with `--max {count}` (or "
                "BRANCHENV_MAX_REAP)"
            )
        orphans = len(self.orphans.orphans) if self.orphans is not None else 0
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

    @property
    def failed(self) -> int:
        return sum(1 for o in self.outcomes if not o.ok) + sum(
            1 for s in self.swept if s.status == "failed"
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
) -> ReapPlan:
    """Decide for every stack the engines know; with ``orphan_target``, find orphans there.

    The rails come first (see the module doc): a refusal raises SafetyRefusal before any
    stack is listed. On AWS the account is checked through ``target`` (default: the orphan
    target, else the settings' region)."""
    from branchenv.programs import configured_programs, listing_pairs
    from branchenv.safety import check_account, check_engine_target, orphan_sweep_refusal

    for engine in engines:
        check_engine_target(engine.name, target_name)
    if orphan_target is not None:
        refused = orphan_sweep_refusal(settings, engines, target_name)
        if refused:
            raise SafetyRefusal(refused)
    account = None
    if target_name == "aws":
        from branchenv.safety import resolve_target

        sts_target = target or orphan_target or resolve_target(settings, "aws").target
        account = check_account(sts_target.client("sts"), settings.allowed_account_ids)
    now = now or dt.datetime.now(dt.UTC)
    policy = ReapPolicy.from_settings(settings, target=target_name)
    pairs = listing_pairs(settings, engines)
    programs = {program.name: program for program in configured_programs(settings)}
    decisions: list[Decision] = []
    metadata: dict[tuple[str, str, str], StackMetadata | None] = {}
    known: set[str] = set()
    for program, engine in pairs:
        summaries = engine.list_stacks(program=program)
        for summary in summaries:
            known.add(summary.stack)
            metadata[(engine.name, program.name, summary.stack)] = summary.metadata
        for decision in decide(summaries, now=now, remote_branches=remote_branches, config=policy):
            decisions.append(
                dataclasses.replace(decision, engine=engine.name, program=program.name)
            )
    hourly_cost = _candidate_costs(settings, pairs, decisions, metadata, now)
    orphan_plan = None
    if orphan_target is not None:
        orphan_plan = find_orphans(
            orphan_target,
            known_stacks=known,
            protected_patterns=settings.protected_patterns,
            project=frozenset(p.project for p in programs.values()),
            now=now,
            grace=orphan_grace,
        )
    return ReapPlan(
        now=now,
        target=target_name,
        engines=tuple(e.name for e in engines),
        remote=remote,
        decisions=tuple(decisions),
        orphans=orphan_plan,
        max_reap=settings.max_reap if max_reap is None else max_reap,
        max_orphans=max_orphans,
        account=account,
        metadata=metadata,
        hourly_cost=hourly_cost,
        programs=programs,
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
    if target.name == "aws":
        account = check_account(target.client("sts"), settings.allowed_account_ids)
        if account != reap_plan.account:
            raise SafetyRefusal(
                f"the plan was made in AWS account {reap_plan.account}, these credentials "
                f"are for {account}: plan again with the credentials you mean to reap with"
            )
    by_name = {e.name: e for e in engines}
    programs = reap_plan.programs or {p.name: p for p in configured_programs(settings)}
    jobs = [
        ReapJob(
            stack=d.stack,
            engine=by_name[d.engine],
            metadata=reap_plan.metadata.get(d.key),
            program=programs[d.program],
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
    swept: list[SweepOutcome] = []
    if reap_plan.orphans is not None and reap_plan.orphans.orphans:
        swept = sweep(
            reap_plan.orphans.orphans,
            clients=clients_for(target),
            concurrency=sweep_concurrency,
            sleep=sleep,
            on_output=on_output,
        )
    return ReapResult(plan=reap_plan, acted=True, outcomes=tuple(outcomes), swept=tuple(swept))
