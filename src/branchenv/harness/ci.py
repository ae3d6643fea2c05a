"""The core of `branchenv ci`: up -> ready -> test -> down in one call, teardown guaranteed.

Teardown runs when the tests fail, when a step raises, and on SIGINT/SIGTERM in any phase (see
:mod:`branchenv.harness.signals`: readiness stops at once, the pytest child gets the signal and
its grace, a signal during `up` takes effect once `up` has recorded every resource it created,
and teardown itself is shielded). ``keep=True`` keeps the stack when the run failed (its TTL
still applies). Teardown goes through the one teardown path (:mod:`branchenv.harness.teardown`:
marked reap-pending, destroyed, transient failures retried, then the leak check); if it still
fails, the outcome names what remains. Against what no handler sees (SIGKILL, the OOM killer, a
runner's kill after its cancel grace) a watchdog process is armed before provisioning
(:mod:`branchenv.harness.watchdog`): if this process dies without disarming it, the watchdog
kills the suite's process group and tears the stack down.

Returns a :class:`~branchenv.harness.publish.RunOutcome` whose ``exit_code`` is the command's:
0 green, 1 tests or an operation failed, 2 bad input, 128 + signal number when stopped by a
signal.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from branchenv import processes
from branchenv.errors import (
    BranchenvError,
    OperationFailed,
    SafetyRefusal,
    StackLocked,
    StackNotFound,
    UsageError,
)
from branchenv.harness.flow import (
    DEFAULT_READY_TIMEOUT_S,
    Phases,
    Say,
    check_ready_timeout,
    late_signal,
    resolve_report_dir,
    resolve_suite,
    run_suite_phase,
    stderr_line,
)
from branchenv.harness.publish import (
    RunCost,
    RunOutcome,
    TeardownOutcome,
    finish,
    read_counts,
    suite_status,
)
from branchenv.harness.signals import Interrupted, SignalGuard
from branchenv.harness.suite import ReportPaths, SuiteRun, check_pytest_args

if TYPE_CHECKING:
    from branchenv.cifold import Annotator
    from branchenv.config import Settings
    from branchenv.cost.estimate import StackCost
    from branchenv.harness.teardown import RetryPolicy
    from branchenv.harness.watchdog import Watchdog
    from branchenv.metadata import StackMetadata
    from branchenv.provision import StackContext, UpOutcome


def teardown(
    ctx: StackContext,
    *,
    say: Say,
    metadata: StackMetadata | None = None,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> TeardownOutcome:
    """Tear the stack down through the one teardown path (marked reap-pending first, then
    destroyed, transient failures retried, then the leak check: what still carries the
    stack's tag in the target is named). ``metadata`` is what the stack carries (read here
    when the run does not know it)."""
    from branchenv.harness.teardown import INTERACTIVE, destroy_stack

    if metadata is None:
        try:
            metadata = ctx.engine.metadata(stack=ctx.names.stack, program=ctx.program)
        except StackNotFound:
            metadata = None
    done = destroy_stack(
        ctx.engine,
        stack=ctx.names.stack,
        program=ctx.program,
        target=ctx.target,
        metadata=metadata,
        retry=retry or INTERACTIVE,
        sleep=sleep,
        on_output=say,
    )
    if done.ok:
        return TeardownOutcome(
            status="destroyed",
            attempts=done.attempts,
            deleted=done.deleted,
            duration_s=done.duration_s,
            leak_check=done.leak_check,
        )
    return TeardownOutcome(
        status="leaked" if done.status == "leaked" else "failed",
        attempts=done.attempts,
        deleted=done.deleted,
        duration_s=done.duration_s,
        reap_pending=done.reap_pending,
        remaining=done.leaked,
        error=done.error,
        leaked=done.leaked,
        leak_check=done.leak_check,
    )


def release_claim(
    ctx: StackContext,
    metadata: StackMetadata,
    *,
    say: Say,
    env: Mapping[str, str] | None = None,
) -> TeardownOutcome:
    """The end of a pooled run: the claimed stack is wiped, verified empty and returned to its
    pool (``released``), or destroyed when it cannot be (``destroyed``, with the pool's
    background refill started: ``refill``; ``failed`` if the destroy failed too)."""
    from branchenv.pool import release

    done = release(ctx, metadata, say=say, env=env)
    if done.status == "failed":
        return TeardownOutcome(
            status="failed",
            attempts=1,
            deleted=done.deleted,
            duration_s=done.duration_s,
            error=done.reason,
        )
    return TeardownOutcome(
        status="released" if done.status == "returned" else "destroyed",
        attempts=1,
        deleted=done.deleted,
        duration_s=done.duration_s,
        refill=done.refill,
        leak_check=done.leak_check,
    )


def arm_watchdog(
    ctx: StackContext,
    paths: ReportPaths,
    *,
    keep: bool,
    program: str | None,
    env: Mapping[str, str],
    say: Say,
) -> Watchdog | None:
    """Start this run's dead-man's switch (None, said, when it cannot start: the run goes on
    without that guarantee). A pool claim is told to it once made (``claimed``): a claimed
    stack is left to its pool."""
    from branchenv.harness.watchdog import Watchdog, WatchdogSpec, start_time

    me = os.getpid()
    spec = WatchdogSpec(
        ci_pid=me,
        ci_start=start_time(me),
        settings=ctx.settings,
        branch=ctx.branch.name,
        stack=ctx.names.stack,
        target=ctx.target.name,
        engine=ctx.engine.name,
        program=program,
        report_dir=str(paths.report_dir),
        keep=keep,
    )
    return Watchdog.arm(spec, env=env, say=say)


def warm_up(ctx: StackContext, *, pooled: bool) -> threading.Thread:
    """Start making, on a daemon thread, what the run's first AWS calls need: the target's
    boto3 session (boto3's import: every later client is made from it) and, with the pool,
    the claim store's S3 client and bucket (:func:`branchenv.pool.prepare`). `ci` starts it
    just before it arms its watchdog, whose start this process only waits for; whoever needs
    the same objects meanwhile waits for them (the session's and the store's locks) instead of
    making its own. A failure here is ignored: the step that needs the same thing meets it
    and reports it."""

    def work() -> None:
        from branchenv import pool

        with contextlib.suppress(Exception):
            if pooled:
                pool.prepare(ctx)
            else:
                ctx.target.session()

    thread = threading.Thread(target=work, name="branchenv-warm-up", daemon=True)
    thread.start()
    return thread


def run_ci(
    settings: Settings,
    *,
    branch: str | None,
    suite: str | os.PathLike[str] | None = None,
    report_dir: str | os.PathLike[str] | None = None,
    keep: bool = False,
    ttl: str | None = None,
    profile: str = "ephemeral",
    ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S,
    pytest_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    on_output: Say | None = None,
    cost: RunCost | None = None,
    teardown_sleep: Callable[[float], None] = time.sleep,
    program: str | None = None,
    allow_shared: Sequence[str] = (),
    use_pool: bool | None = None,
    destroy_existing: bool = False,
    annotator: Annotator | None = None,
) -> RunOutcome:
    """`branchenv ci`: up -> ready -> test -> down, with teardown guaranteed.

    A stack that existed before the run (brought up by hand for debugging, say) is updated,
    tested and kept, never destroyed, unless ``destroy_existing`` (``--destroy-existing``).

    Every input is checked before anything happens (issue 15 item 4: a bad ``--profile`` or
    ``--ttl`` used to fail only inside `up`, after which teardown destroyed the branch's
    existing stack); a bad input found later by `up` still never destroys a stack that
    existed before this run. With the warm pool (``use_pool`` / the ``pool`` setting) the
    stack is claimed, and released at the end (wiped and verified empty) instead of
    destroyed. ``annotator``: what the CI's log gets (folds per phase, failed tests and the
    run's error as annotations, a notice with the endpoints and cost; see
    :mod:`branchenv.cifold`); none by default."""
    from branchenv import pool, provision
    from branchenv.config import stack_ttl

    env = dict(os.environ if env is None else env)
    say = on_output or stderr_line
    provision.check_profile(profile)
    provision.check_allow_shared(allow_shared)
    stack_ttl(settings, ttl)
    check_ready_timeout(ready_timeout_s)
    suite_path = resolve_suite(settings, suite, program)
    check_pytest_args(suite_path, pytest_args, cwd=settings.project_dir, env=env)
    paths = ReportPaths.under(resolve_report_dir(settings, report_dir))
    paths.clear()
    started = time.monotonic()
    phases = Phases(say, annotator)
    run: SuiteRun | None = None
    ready_s: float | None = None
    outputs: dict[str, Any] = {}
    error: BaseException | None = None
    interrupted: Interrupted | None = None
    during: str | None = None
    outcome_td: TeardownOutcome | None = None
    # Installed before the first step and kept to the end: every delivery is recorded and acted
    # on by the main thread (see harness.signals); none can be lost in any phase.
    with SignalGuard(on_signal=say) as guard:
        ctx = guard.finish(
            lambda: provision.resolve(
                settings, branch=branch, target=None, engine=None, env=env, program=program
            ),
            what="the local cloud has started",
        )
        guard.checkpoint()  # escapes as Interrupted: nothing was created
        for note in ctx.notes:
            say(f"note: {note}")
        # A protected, unmanaged or disallowed stack is refused before anything starts, so the
        # teardown below can never touch it either.
        existing = provision.check_may_manage(ctx)
        guard.checkpoint()
        claimed: StackMetadata | None = None
        pooled = pool.use_pool(ctx, use_pool)
        # Not this run's to destroy: someone brought it up before (a debugging session).
        keep_existing = existing is not None and not destroy_existing and not pooled
        up_started = False
        up: UpOutcome | None = None
        warm_up(ctx, pooled=pooled)
        # The dead-man's switch, from here to the end of teardown: a SIGKILL in between leaves
        # the stack (and the suite) to it. Disarmed below, once teardown is done or skipped.
        watchdog = arm_watchdog(
            ctx, paths, keep=keep or keep_existing, program=program, env=env, say=say
        )
        announcing = contextlib.ExitStack()
        if watchdog is not None:
            guard.on_child = watchdog.suite
            announcing.enter_context(processes.announced_to(watchdog))
        try:
            banner = f"provision: {ctx.names.stack} ({ctx.engine.name} engine, {ctx.target.name})"
            if pooled:
                banner = (
                    f"provision from the warm pool ({ctx.engine.name} engine, {ctx.target.name})"
                )
            with phases.run("provision", banner):
                if pooled:
                    # The claim counts in the time to ready: it is part of getting a stack.
                    got = guard.finish(
                        lambda: pool.acquire(ctx, ttl=ttl, say=say, existing=existing),
                        what="the pool claim is recorded",
                    )
                    if got.note:
                        say(f"note: {got.note}")
                    if got.metadata is not None:
                        ctx, claimed = got.ctx, got.metadata
                        if watchdog is not None:  # a claimed stack goes back to its pool
                            watchdog.tell("claimed", stack=ctx.names.stack)
                        existing = provision.check_may_manage(ctx)
                    guard.checkpoint()
                up_started = True
                if watchdog is not None:
                    watchdog.tell("provision")
                up = guard.finish(
                    lambda: (
                        provision.up(
                            ctx,
                            ttl=ttl,
                            profile=profile,
                            on_output=say,
                            existing=existing,
                            checked=True,
                            allow_shared=allow_shared,
                        )
                        if claimed is None
                        else pool.apply(
                            ctx,
                            claimed,
                            profile=profile,
                            on_output=say,
                            say=say,
                            existing=existing,
                            allow_shared=allow_shared,
                        )
                    ),
                    what="provisioning has recorded every resource it created",
                )
            guard.checkpoint()
            outputs = dict(up.outputs)
            estimate = estimate_cost(ctx, up, say)
            if estimate is not None:
                cost = cost or RunCost.of(estimate)
                say(f"cost: {cost.line()}")
                from branchenv.cost.budget import check_budget

                check_budget(
                    estimate,
                    max_hourly=ctx.settings.max_hourly,
                    max_total=ctx.settings.max_total,
                )
            run, ready_s = run_suite_phase(
                ctx,
                outputs,
                metadata=up.metadata,
                suite=suite_path,
                paths=paths,
                ready_timeout_s=ready_timeout_s,
                pytest_args=pytest_args,
                env=env,
                say=say,
                guard=guard,
                cost=cost,
                phases=phases,
                in_place=up.in_place,
            )
        except Interrupted as exc:
            interrupted, during = exc, phases.current
        except BranchenvError as exc:
            error = exc
        finally:
            if guard.received is not None and interrupted is None:
                during = during or phases.current
            failed = error is not None or suite_status(run, read_counts(paths))[0] != "passed"
            refused_input = up is None and isinstance(error, UsageError | SafetyRefusal)
            if claimed is not None and not (keep and failed and guard.received is None):
                # A claimed pool stack goes back (wiped) whatever happened, even when `up`
                # never ran or refused: the claim is this run's.
                with phases.run("teardown", f"release: {ctx.names.stack} to its pool"):
                    outcome_td = guard.shielded(
                        lambda: release_claim(ctx, claimed, say=say, env=env)
                    )
            elif (
                not up_started
                or isinstance(error, StackLocked)
                or (refused_input and existing is not None)
            ):
                # Another run holds the stack, nothing was provisioned, or `up` refused its
                # input or plan before changing anything: the stack is not this run's to destroy.
                outcome_td = TeardownOutcome(status="skipped")
                say(f"== teardown skipped: this run did not provision {ctx.names.stack}")
            elif keep_existing:
                outcome_td = TeardownOutcome(status="kept", existed=True)
                say(
                    f"== teardown skipped: stack {ctx.names.stack} existed before this run, so "
                    "it is kept (--destroy-existing destroys it)"
                )
            elif keep and failed and guard.received is None:
                outcome_td = TeardownOutcome(status="kept")
                say(f"== teardown skipped (--keep): stack {ctx.names.stack} stays until its TTL")
            else:
                with phases.run("teardown", f"teardown: {ctx.names.stack}"):
                    md = up.metadata if up is not None else None
                    if watchdog is not None:
                        watchdog.tell("teardown")
                    outcome_td = guard.shielded(
                        lambda: teardown(ctx, say=say, metadata=md, sleep=teardown_sleep)
                    )
            announcing.close()
            if watchdog is not None:
                watchdog.disarm(outcome_td.status if outcome_td is not None else "ended")
    return finish(
        command="ci",
        ctx=ctx,
        outputs=outputs,
        suite=suite_path,
        paths=paths,
        run=run,
        ready_s=ready_s,
        durations=phases.durations,
        interrupted_during=during,
        total_s=time.monotonic() - started,
        teardown_outcome=outcome_td,
        error=error,
        interrupted=interrupted if interrupted is not None else late_signal(guard),
        env=env,
        cost=cost,
        annotator=phases.annotator,
    )


def estimate_cost(ctx: StackContext, up: UpOutcome, say: Say) -> StackCost | None:
    """The stack's estimated cost right after provisioning (None when not estimable).

    Best effort when no budget is set (a failure is a note, never a failed run); with a budget
    set, a cost that cannot be estimated is an error, since the gate could not be applied."""
    from branchenv import provision

    budget = ctx.settings.max_hourly is not None or ctx.settings.max_total is not None
    try:
        estimate = provision.stack_cost(ctx, metadata=up.metadata, resources=up.resources)
    except Exception as exc:
        if budget:
            raise OperationFailed(
                f"the budget gate needs the stack's cost but it could not be estimated: {exc}"
            ) from exc
        say(f"note: cost not estimated ({type(exc).__name__}: {exc})")
        return None
    if not estimate.inventory_available:
        if budget:
            raise OperationFailed(
                f"the budget gate needs the stack's cost but its inventory is unavailable: "
                f"{estimate.note}"
            )
        return None
    if budget and estimate.unpriced_types:
        say(
            "warning: the budget gate checks a lower bound: unpriced types "
            + ", ".join(estimate.unpriced_types)
        )
    return estimate
