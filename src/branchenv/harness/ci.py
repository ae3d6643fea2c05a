"""The cores of `branchenv test` and `branchenv ci`.

``run_test``: an existing branch stack -> ready -> the suite (pytest in a subprocess) -> reports.

``run_ci``: up -> ready -> test -> down in one call, teardown guaranteed: it runs when the tests
fail, when a step raises, and on SIGINT/SIGTERM (turned into :class:`Interrupted` in the main
thread and forwarded to the pytest child; a signal during `up` takes effect once `up` has
recorded every resource it created). ``keep=True`` keeps the stack when the run failed (its
TTL still applies). A teardown that fails is retried (tenacity); if it still fails, the stack
is marked reap-pending for `branchenv reap` and the outcome names what remains.

Both return a :class:`RunOutcome` whose ``exit_code`` is the command's: 0 green, 1 tests or an
operation failed, 2 bad input, 128 + signal number when stopped by a signal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from branchenv.errors import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    BranchenvError,
    OperationFailed,
    StackLocked,
    StackNotFound,
    UsageError,
)
from branchenv.harness.latency import LatencyStats
from branchenv.harness.reports import EMPTY_COUNTS, RunSummary, TestCounts, Timings
from branchenv.harness.signals import Interrupted, SignalGuard
from branchenv.harness.suite import (
    PYTEST_NO_TESTS,
    PYTEST_OK,
    PYTEST_TESTS_FAILED,
    PYTEST_USAGE_ERROR,
    ReportPaths,
    SuiteRun,
)

if TYPE_CHECKING:
    from branchenv.config import Settings
    from branchenv.cost.estimate import StackCost
    from branchenv.harness.readiness import ReadinessReport
    from branchenv.harness.teardown import RetryPolicy
    from branchenv.metadata import StackMetadata
    from branchenv.provision import StackContext, UpOutcome

Say = Callable[[str], None]

DEFAULT_READY_TIMEOUT_S = 60.0


@dataclasses.dataclass(frozen=True)
class TeardownOutcome:
    """What happened to the stack at the end of `ci`.

    ``status``: ``destroyed`` | ``kept`` (``--keep`` after a failure) | ``skipped`` (this run
    provisioned nothing, e.g. another run held the stack's lock) | ``failed`` (after
    ``attempts`` tries; then ``reap_pending`` tells whether the stack was marked for the reaper
    and ``remaining`` lists what is left).
    """

    status: str
    attempts: int = 0
    deleted: int = 0
    duration_s: float = 0.0
    reap_pending: bool = False
    remaining: tuple[str, ...] = ()
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """The result of `branchenv test` or `branchenv ci`."""

    command: str
    status: str  # passed | failed | error | interrupted
    exit_code: int
    stack: str
    branch: str
    target: str
    engine: str
    endpoint: str | None
    suite: str
    counts: TestCounts
    timings: Timings
    time_to_ready_s: float | None
    latency: tuple[LatencyStats, ...]
    teardown: TeardownOutcome | None
    error: str | None
    signal: str | None
    junit: str | None
    summary: str | None
    stack_file: str | None
    cost: str | None = None
    notes: tuple[str, ...] = ()


# --- pieces ----------------------------------------------------------------------------------


def resolve_suite(settings: Settings, suite: str | os.PathLike[str] | None) -> Path:
    """The suite to run: ``suite`` (relative to the current directory) or ``<program>/tests``."""
    if suite is None:
        path = settings.program_path / "tests"
        if not path.exists():
            raise UsageError(
                f"no test suite at {path} (the default, <program>/tests): "
                "pass `--suite PATH` to name yours"
            )
        return path
    path = Path(suite).expanduser().resolve()
    if not path.exists():
        raise UsageError(f"--suite {suite}: no such file or directory")
    return path


def resolve_report_dir(settings: Settings, report_dir: str | os.PathLike[str] | None) -> Path:
    path = Path(report_dir) if report_dir is not None else Path("reports")
    if not path.is_absolute():
        path = Path.cwd() / path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--report-dir {path}: cannot create it ({exc.strerror})") from None
    return path


def wait_stack_ready(
    ctx: StackContext,
    outputs: Mapping[str, Any],
    *,
    timeout_s: float,
    say: Say,
    sleep: Callable[[float], None] = time.sleep,
) -> ReadinessReport:
    """Wait until the stack's endpoint and resources answer (raises NotReady on timeout)."""
    from branchenv.harness.readiness import checks_for_stack, wait_ready

    checks = checks_for_stack(outputs, ctx.target)
    say(f"waiting for {len(checks)} readiness check(s), up to {timeout_s:.0f} s")
    report = wait_ready(checks, deadline_s=timeout_s, sleep=sleep, on_progress=say)
    say(f"stack ready in {report.seconds:.2f} s")
    return report


def write_stack_file_for(
    ctx: StackContext,
    outputs: Mapping[str, Any],
    path: Path,
    *,
    ready_s: float | None,
    cost: str | None = None,
) -> Path:
    from branchenv.harness.stackfile import (
        StackInfo,
        TargetInfo,
        metadata_to_json,
        write_stack_file,
    )

    try:
        metadata = ctx.engine.metadata(stack=ctx.names.stack, program=ctx.program)
    except StackNotFound:
        metadata = None
    t = ctx.target
    info = StackInfo(
        stack=ctx.names.stack,
        branch=ctx.branch.name,
        target=TargetInfo(t.name, t.region, t.endpoint_url, t.functions_url),
        outputs=dict(outputs),
        metadata=metadata_to_json(metadata),
        latency_p95_ms=ctx.settings.latency_p95_ms,
        ready_s=ready_s,
        cost=cost,
    )
    return write_stack_file(info, path)


class Phases:
    """Times each phase of a run and remembers which one is under way."""

    def __init__(self, say: Say) -> None:
        self.say = say
        self.durations: dict[str, float] = {}
        self.current: str | None = None

    @contextlib.contextmanager
    def run(self, name: str, banner: str) -> Iterator[None]:
        self.current = name
        self.say(f"== {banner}")
        started = time.monotonic()
        try:
            yield
        finally:
            self.durations[name] = time.monotonic() - started


def remaining_resources(ctx: StackContext) -> tuple[str, ...]:
    """ARNs of resources still tagged with the stack's name (best effort, never raises)."""
    try:
        from branchenv.inventory import find_tagged
        from branchenv.metadata import KEY_STACK

        found = find_tagged(ctx.target, key=KEY_STACK, values={ctx.names.stack})
        return tuple(sorted(r.arn for r in found))
    except Exception as exc:  # the listing is a courtesy; the reaper will look again
        return (f"(could not list: {type(exc).__name__}: {exc})",)


def teardown(
    ctx: StackContext,
    *,
    say: Say,
    metadata: StackMetadata | None = None,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> TeardownOutcome:
    """Tear the stack down through the one teardown path (marked reap-pending first, then
    destroyed, transient failures retried); on failure, name what remains in the target.
    ``metadata`` is what the stack carries (read here when the run does not know it)."""
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
        )
    return TeardownOutcome(
        status="failed",
        attempts=done.attempts,
        deleted=done.deleted,
        duration_s=done.duration_s,
        reap_pending=done.reap_pending,
        remaining=remaining_resources(ctx),
        error=done.error,
    )


def teardown_error(stack: str, branch: str, outcome: TeardownOutcome) -> str:
    what = ", ".join(outcome.remaining[:10]) or "none found by tag"
    more = f" (+{len(outcome.remaining) - 10} more)" if len(outcome.remaining) > 10 else ""
    marked = (
        "marked reap-pending for `branchenv reap`"
        if outcome.reap_pending
        else "could not be marked reap-pending"
    )
    return (
        f"teardown of stack {stack} failed after {outcome.attempts} attempt(s): {outcome.error}; "
        f"it {marked}; remaining: {what}{more}. Run `branchenv down --branch {branch}` to retry"
    )


def _suite_status(run: SuiteRun | None, counts: TestCounts) -> tuple[str, int, str | None]:
    """(status, exit code, error) from pytest's exit code and the JUnit counts."""
    if run is None or run.exit_code is None:
        return "error", EXIT_FAILED, "the test suite did not run"
    code = run.exit_code
    if code == PYTEST_OK and counts.ok:
        return "passed", EXIT_OK, None
    if code == PYTEST_OK and counts.failed == 0 and counts.errors == 0:
        # Everything skipped (or nothing reported): a gate that tested nothing is not green.
        return (
            "failed",
            EXIT_FAILED,
            f"no test passed ({counts.skipped} skipped): the suite tested nothing against the "
            "stack; check why its tests skip",
        )
    if code == PYTEST_TESTS_FAILED or counts.failed or counts.errors:
        return "failed", EXIT_FAILED, None
    if code == PYTEST_NO_TESTS:
        return "failed", EXIT_FAILED, "pytest collected no tests in the suite: check --suite"
    if code == PYTEST_USAGE_ERROR:
        return "error", EXIT_USAGE, "pytest rejected its arguments (see its output above)"
    return "error", EXIT_FAILED, f"pytest exited {code} (see its output above)"


def _read_counts(paths: ReportPaths) -> TestCounts:
    from branchenv.harness.reports import parse_junit

    if not paths.junit.exists():
        return EMPTY_COUNTS
    try:
        return parse_junit(paths.junit)
    except BranchenvError:
        return EMPTY_COUNTS


def _run_suite_phase(
    ctx: StackContext,
    outputs: Mapping[str, Any],
    *,
    suite: Path,
    paths: ReportPaths,
    ready_timeout_s: float,
    pytest_args: Sequence[str],
    env: Mapping[str, str],
    say: Say,
    guard: SignalGuard,
    cost: str | None,
    phases: Phases,
) -> tuple[SuiteRun, float]:
    """ready -> stack file -> pytest child."""
    from branchenv.harness.suite import run_suite

    with phases.run("ready", "ready"):
        report = wait_stack_ready(ctx, outputs, timeout_s=ready_timeout_s, say=say)
    write_stack_file_for(ctx, outputs, paths.stack_file, ready_s=report.seconds, cost=cost)
    with phases.run("test", f"test: {suite}"):
        run = run_suite(
            suite,
            paths,
            cwd=ctx.settings.project_dir,
            env=env,
            extra_args=pytest_args,
            on_output=say,
            guard=guard,
        )
    return run, report.seconds


def _finish(
    *,
    command: str,
    ctx: StackContext,
    outputs: Mapping[str, Any],
    suite: Path,
    paths: ReportPaths,
    run: SuiteRun | None,
    ready_s: float | None,
    phases: Phases,
    interrupted_during: str | None,
    total_s: float,
    teardown_outcome: TeardownOutcome | None,
    error: BaseException | None,
    interrupted: Interrupted | None,
    env: Mapping[str, str],
    cost: str | None,
) -> RunOutcome:
    from branchenv.harness.reports import publish_github, render_markdown

    counts = _read_counts(paths)
    status, code, message = _suite_status(run, counts)
    if isinstance(error, BranchenvError):
        status, code, message = "error", error.exit_code, str(error)
    notes: list[str] = list(ctx.notes)
    if interrupted is not None:
        status, code = "interrupted", interrupted.exit_code
        message = f"{interrupted}" + (f" during {interrupted_during}" if interrupted_during else "")
    if teardown_outcome is not None and teardown_outcome.status == "failed":
        text = teardown_error(ctx.names.stack, ctx.branch.name, teardown_outcome)
        message = f"{message}; {text}" if message else text
        if status == "passed":
            status = "error"
        code = code or EXIT_FAILED
    if teardown_outcome is not None and teardown_outcome.status == "kept":
        notes.append(
            f"stack {ctx.names.stack} kept for debugging (--keep); its TTL still applies. "
            f"Remove it with `branchenv down --branch {ctx.branch.name}`"
        )
    times = phases.durations
    timings = Timings(
        provision_s=times.get("provision"),
        ready_s=times.get("ready"),
        test_s=times.get("test"),
        teardown_s=times.get("teardown"),
        total_s=total_s,
    )
    endpoint = outputs.get("endpoint") if isinstance(outputs.get("endpoint"), str) else None
    latency = run.latency if run else ()
    summary = RunSummary(
        command=f"branchenv {command}",
        status=status,
        stack=ctx.names.stack,
        branch=ctx.branch.name,
        target=ctx.target.name,
        endpoint=endpoint,
        counts=counts,
        latency=latency,
        latency_p95_goal_ms=ctx.settings.latency_p95_ms,
        time_to_ready_s=ready_s,
        timings=timings,
        cost=cost,
        notes=tuple(notes + ([f"error: {message}"] if message else [])),
    )
    markdown = render_markdown(summary)
    paths.summary.write_text(markdown, encoding="utf-8")
    publish_github(
        markdown,
        {
            "stack": ctx.names.stack,
            "endpoint": endpoint or "",
            "passed": counts.passed,
            "failed": counts.failed + counts.errors,
            "status": status,
        },
        env,
    )
    return RunOutcome(
        command=command,
        status=status,
        exit_code=code,
        stack=ctx.names.stack,
        branch=ctx.branch.name,
        target=ctx.target.name,
        engine=ctx.engine.name,
        endpoint=endpoint,
        suite=str(suite),
        counts=counts,
        timings=timings,
        time_to_ready_s=ready_s,
        latency=latency,
        teardown=teardown_outcome,
        error=message,
        signal=interrupted.signame if interrupted else None,
        junit=str(paths.junit) if paths.junit.exists() else None,
        summary=str(paths.summary),
        stack_file=str(paths.stack_file) if paths.stack_file.exists() else None,
        cost=cost,
        notes=tuple(notes),
    )


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --- the two commands ------------------------------------------------------------------------


def run_test(
    settings: Settings,
    *,
    branch: str | None,
    suite: str | os.PathLike[str] | None = None,
    report_dir: str | os.PathLike[str] | None = None,
    ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S,
    pytest_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    on_output: Say | None = None,
    cost: str | None = None,
) -> RunOutcome:
    """`branchenv test`: run the suite against the branch's existing stack."""
    from branchenv import provision

    env = dict(os.environ if env is None else env)
    say = on_output or _stderr
    suite_path = resolve_suite(settings, suite)
    paths = ReportPaths.under(resolve_report_dir(settings, report_dir))
    paths.clear()
    started = time.monotonic()
    ctx = provision.resolve(settings, branch=branch, target=None, engine=None, env=env)
    for note in ctx.notes:
        say(f"note: {note}")
    try:
        outputs = provision.outputs(ctx)
    except StackNotFound:
        raise StackNotFound(
            f"no stack {ctx.names.stack} for branch {ctx.branch.name}: create it with "
            f"`branchenv up --branch {ctx.branch.name}` (or use `branchenv ci`)"
        ) from None
    if cost is None:
        from branchenv.cost.estimate import stack_cost_for_context

        estimate = stack_cost_for_context(ctx)
        if estimate.inventory_available:
            cost = cost_line(estimate)
    phases = Phases(say)
    run: SuiteRun | None = None
    ready_s: float | None = None
    error: BaseException | None = None
    interrupted: Interrupted | None = None
    during: str | None = None
    with SignalGuard(on_signal=say) as guard:
        try:
            run, ready_s = _run_suite_phase(
                ctx,
                outputs,
                suite=suite_path,
                paths=paths,
                ready_timeout_s=ready_timeout_s,
                pytest_args=pytest_args,
                env=env,
                say=say,
                guard=guard,
                cost=cost,
                phases=phases,
            )
        except Interrupted as exc:
            interrupted, during = exc, phases.current
        except BranchenvError as exc:
            error = exc
    return _finish(
        command="test",
        ctx=ctx,
        outputs=outputs,
        suite=suite_path,
        paths=paths,
        run=run,
        ready_s=ready_s,
        phases=phases,
        interrupted_during=during,
        total_s=time.monotonic() - started,
        teardown_outcome=None,
        error=error,
        interrupted=interrupted,
        env=env,
        cost=cost,
    )


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
    cost: str | None = None,
    teardown_sleep: Callable[[float], None] = time.sleep,
) -> RunOutcome:
    """`branchenv ci`: up -> ready -> test -> down, with teardown guaranteed."""
    from branchenv import provision
    from branchenv.metadata import parse_ttl

    env = dict(os.environ if env is None else env)
    say = on_output or _stderr
    if ttl is not None:
        parse_ttl(ttl)
    suite_path = resolve_suite(settings, suite)
    paths = ReportPaths.under(resolve_report_dir(settings, report_dir))
    paths.clear()
    started = time.monotonic()
    phases = Phases(say)
    run: SuiteRun | None = None
    ready_s: float | None = None
    outputs: dict[str, Any] = {}
    error: BaseException | None = None
    interrupted: Interrupted | None = None
    during: str | None = None
    outcome_td: TeardownOutcome | None = None
    with SignalGuard(on_signal=say) as guard:
        with guard.deferred():
            ctx = provision.resolve(settings, branch=branch, target=None, engine=None, env=env)
        for note in ctx.notes:
            say(f"note: {note}")
        # A protected, unmanaged or disallowed stack is refused before anything starts, so the
        # teardown below can never touch it either.
        provision.check_may_manage(ctx)
        up_started = False
        up: UpOutcome | None = None
        try:
            banner = f"provision: {ctx.names.stack} ({ctx.engine.name} engine, {ctx.target.name})"
            with phases.run("provision", banner), guard.deferred():
                up_started = True
                up = provision.up(ctx, ttl=ttl, profile=profile, on_output=say)
            outputs = dict(up.outputs)
            estimate = _estimate_cost(ctx, up, say)
            if estimate is not None:
                cost = cost or cost_line(estimate)
                say(f"cost: {cost}")
                from branchenv.cost.budget import check_budget

                check_budget(
                    estimate,
                    max_hourly=ctx.settings.max_hourly,
                    max_total=ctx.settings.max_total,
                )
            run, ready_s = _run_suite_phase(
                ctx,
                outputs,
                suite=suite_path,
                paths=paths,
                ready_timeout_s=ready_timeout_s,
                pytest_args=pytest_args,
                env=env,
                say=say,
                guard=guard,
                cost=cost,
                phases=phases,
            )
        except Interrupted as exc:
            interrupted, during = exc, phases.current
        except BranchenvError as exc:
            error = exc
        finally:
            guard.shield()
            if guard.received is not None and interrupted is None:
                during = during or phases.current
            failed = error is not None or _suite_status(run, _read_counts(paths))[0] != "passed"
            if not up_started or isinstance(error, StackLocked):
                # Another run holds the stack (or nothing was provisioned): it is not ours to
                # destroy.
                outcome_td = TeardownOutcome(status="skipped")
                say(f"== teardown skipped: this run did not provision {ctx.names.stack}")
            elif keep and failed and guard.received is None:
                outcome_td = TeardownOutcome(status="kept")
                say(f"== teardown skipped (--keep): stack {ctx.names.stack} stays until its TTL")
            else:
                with phases.run("teardown", f"teardown: {ctx.names.stack}"):
                    outcome_td = teardown(
                        ctx,
                        say=say,
                        metadata=up.metadata if up is not None else None,
                        sleep=teardown_sleep,
                    )
    return _finish(
        command="ci",
        ctx=ctx,
        outputs=outputs,
        suite=suite_path,
        paths=paths,
        run=run,
        ready_s=ready_s,
        phases=phases,
        interrupted_during=during,
        total_s=time.monotonic() - started,
        teardown_outcome=outcome_td,
        error=error,
        interrupted=interrupted if interrupted is not None else _late_signal(guard),
        env=env,
        cost=cost,
    )


def _estimate_cost(ctx: StackContext, up: UpOutcome, say: Say) -> StackCost | None:
    """The stack's estimated cost right after provisioning (None when not estimable).

    Best effort when no budget is set (a failure is a note, never a failed run); with a budget
    set, a cost that cannot be estimated is an error, since the gate could not be applied."""
    from branchenv.cost.estimate import stack_cost_for_context

    budget = ctx.settings.max_hourly is not None or ctx.settings.max_total is not None
    try:
        estimate = stack_cost_for_context(ctx, metadata=up.metadata)
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


def cost_line(estimate: StackCost) -> str:
    """One line for the summary: burn rate and projection to expiry (a lower bound when some
    resource types are unpriced)."""
    from branchenv.cost.budget import money

    text = (
        f"${money(estimate.hourly, 4)}/h, ${money(estimate.projected_to_expiry)} projected to "
        "expiry (estimate)"
    )
    if estimate.unpriced_types:
        text += f"; unpriced: {', '.join(estimate.unpriced_types)} (a lower bound)"
    return text


def _late_signal(guard: SignalGuard) -> Interrupted | None:
    """A signal that arrived during teardown still makes the run count as interrupted."""
    return Interrupted(guard.received) if guard.received is not None else None
