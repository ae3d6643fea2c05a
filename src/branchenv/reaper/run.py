"""One reaper run, end to end: list stacks -> decide -> (safety rails) -> destroy -> sweep.

The CLI (`branchenv reap`) only parses flags and renders; everything it does is here. A run is
a dry run unless ``act`` is true. Safety rails, in the order they apply:

1. on target ``aws`` the caller's account must be in ``allowed_account_ids`` (else nothing at
   all happens, exit 3);
2. stacks without the managed marker, or matching a protected pattern, are never candidates;
3. more candidates than ``max_reap`` -> refuse to act (exit 3), naming the counts;
4. orphans need the managed-by tag and a stack matching no protected pattern.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from branchenv.errors import SafetyRefusal
from branchenv.reaper.orphans import OrphanPlan, SweepOutcome, clients_for, find_orphans, sweep
from branchenv.reaper.policy import Decision, ReapPolicy, decide

if TYPE_CHECKING:
    from branchenv.config import Settings
    from branchenv.engines.base import Engine, OutputSink
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
    metadata: dict[tuple[str, str], StackMetadata | None] = dataclasses.field(
        default_factory=dict, repr=False, compare=False
    )
    hourly_cost: dict[tuple[str, str], Decimal | None] = dataclasses.field(
        default_factory=dict, repr=False, compare=False
    )
    """Estimated burn rate (USD/h) of each candidate, taken before anything is destroyed;
    None where the engine cannot list the stack's resources."""

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


def orphan_sweep_refusal(
    settings: Settings, engines: Sequence[Engine], target_name: str
) -> str | None:
    """Why an orphan sweep must not run here, or None.

    A resource is an orphan when no listed stack claims it, so the listing must see every
    stack that could own resources in the target. On the local cloud, this machine's state is
    all there is. On AWS, only an engine whose listing is shared (the registry's
    ``shared_state``: a shared backend such as s3:// or Pulumi Cloud) sees everyone's stacks:
    with state on this machine, every other machine's live stacks would look orphaned."""
    from branchenv.engines import ENGINES, engine_spec

    if target_name != "aws":
        return None
    if any(engine_spec(e.name).shares_state(settings) for e in engines):
        return None
    shared = [s.name for s in ENGINES.values() if not s.local_only and s.shared_state is not False]
    return (
        "refusing to sweep orphans on AWS: stacks are listed "
        f"({', '.join(e.name for e in engines) or 'no engine'}) from state on this machine only, "
        "so other machines' live stacks would look orphaned; set `backend_url` "
        "(BRANCHENV_BACKEND_URL) to the team's shared backend (s3://... or Pulumi Cloud)"
        + (f" and use {' or '.join(f'`--engine {n}`' for n in shared)}" if shared else "")
    )


def check_account(sts_client: Any, allowed: Sequence[str]) -> str:
    """The caller's account id when it is in ``allowed``; else SafetyRefusal (exit 3)."""
    account = str(sts_client.get_caller_identity()["Account"])
    if not allowed:
        raise SafetyRefusal(
            f"refusing to reap in AWS account {account}: no allowed_account_ids are configured; "
            f'add `allowed_account_ids = ["{account}"]` to branchenv.toml (or set '
            "BRANCHENV_ALLOWED_ACCOUNT_IDS) if this account is meant for branch stacks"
        )
    if account not in allowed:
        raise SafetyRefusal(
            f"refusing to reap in AWS account {account}: it is not in allowed_account_ids "
            f"({', '.join(allowed)}); use credentials for an allowed account or add it to "
            "allowed_account_ids (BRANCHENV_ALLOWED_ACCOUNT_IDS)"
        )
    return account


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
) -> ReapPlan:
    """Decide for every stack the engines know; with ``orphan_target``, find orphans there."""
    from branchenv.programs import default_program

    now = now or dt.datetime.now(dt.UTC)
    policy = ReapPolicy.from_settings(settings, target=target_name)
    program = default_program(settings)
    decisions: list[Decision] = []
    metadata: dict[tuple[str, str], StackMetadata | None] = {}
    known: set[str] = set()
    for engine in engines:
        summaries = engine.list_stacks(program=program)
        for summary in summaries:
            known.add(summary.stack)
            metadata[(engine.name, summary.stack)] = summary.metadata
        for decision in decide(summaries, now=now, remote_branches=remote_branches, config=policy):
            decisions.append(dataclasses.replace(decision, engine=engine.name))
    hourly_cost = _candidate_costs(settings, engines, decisions, metadata, now)
    orphan_plan = None
    if orphan_target is not None:
        orphan_plan = find_orphans(
            orphan_target,
            known_stacks=known,
            protected_patterns=settings.protected_patterns,
            project=program.project,
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
        metadata=metadata,
        hourly_cost=hourly_cost,
    )


def _candidate_costs(
    settings: Settings,
    engines: Sequence[Engine],
    decisions: list[Decision],
    metadata: dict[tuple[str, str], StackMetadata | None],
    now: dt.datetime,
) -> dict[tuple[str, str], Decimal | None]:
    """The burn rate each candidate would stop: the cost the reap reclaims per hour."""
    from branchenv.cost.estimate import estimate_stack, inventory_from_engine
    from branchenv.cost.prices import load_prices
    from branchenv.programs import default_program

    by_name = {e.name: e for e in engines}
    prices = load_prices()
    program = default_program(settings)
    costs: dict[tuple[str, str], Decimal | None] = {}
    for d in decisions:
        engine = by_name.get(d.engine)
        if not d.reap or engine is None:
            continue
        inventory = inventory_from_engine(
            engine,
            stack=d.stack,
            program=program,
            metadata=metadata.get((d.engine, d.stack)),
            default_region=settings.region,
        )
        estimate = estimate_stack(inventory, prices, now=now)
        costs[(d.engine, d.stack)] = estimate.hourly if estimate.inventory_available else None
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
    from branchenv.programs import default_program
    from branchenv.reaper.executor import ReapJob, destroy_all

    refusal = reap_plan.refusal()
    if refusal is not None:
        raise SafetyRefusal(refusal)
    by_name = {e.name: e for e in engines}
    jobs = [
        ReapJob(
            stack=d.stack,
            engine=by_name[d.engine],
            metadata=reap_plan.metadata.get((d.engine, d.stack)),
        )
        for d in reap_plan.candidates
    ]
    outcomes = destroy_all(
        jobs,
        program=default_program(settings),
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
