"""Publishing a run's result: the outcome of `test` / `ci` (:class:`RunOutcome`), its status
and exit code from pytest's exit code and the JUnit counts, the Markdown summary written to the
report dir, and the GitHub Actions step summary and outputs."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from branchenv.errors import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, BranchenvError
from branchenv.harness.latency import LatencyStats
from branchenv.harness.reports import EMPTY_COUNTS, RunSummary, TestCounts, Timings
from branchenv.harness.signals import Interrupted
from branchenv.harness.suite import (
    PYTEST_NO_TESTS,
    PYTEST_OK,
    PYTEST_TESTS_FAILED,
    PYTEST_USAGE_ERROR,
    ReportPaths,
    SuiteRun,
)
from branchenv.text import plural

if TYPE_CHECKING:
    from branchenv.cifold import Annotator
    from branchenv.cost.estimate import StackCost
    from branchenv.pool.outcome import Refill
    from branchenv.provision import StackContext


@dataclasses.dataclass(frozen=True)
class RunCost:
    """The stack's estimated cost as a run reports it. In ``--json`` each amount is a money
    object (``{"amount": "<6 decimals>", "currency": "USD"}``, :func:`branchenv.cli.output.money`);
    :meth:`line` is the one-line prose of the summary, the log and the stack file.
    ``lower_bound``: some resource types are unpriced (``unpriced_types``), so the figures are
    at least this much."""

    hourly: Decimal
    so_far: Decimal
    projected_to_expiry: Decimal
    unpriced_types: tuple[str, ...] = ()
    lower_bound: bool = False

    @classmethod
    def of(cls, estimate: StackCost) -> RunCost:
        return cls(
            hourly=estimate.hourly,
            so_far=estimate.so_far,
            projected_to_expiry=estimate.projected_to_expiry,
            unpriced_types=tuple(estimate.unpriced_types),
            lower_bound=not estimate.complete,
        )

    def line(self) -> str:
        """Burn rate and projection to expiry, for people (a lower bound when some resource
        types are unpriced)."""
        from branchenv.cost.budget import money

        text = (
            f"${money(self.hourly, 4)}/h, ${money(self.projected_to_expiry)} projected to "
            "expiry (estimate)"
        )
        if self.unpriced_types:
            text += f"; unpriced: {', '.join(self.unpriced_types)} (a lower bound)"
        return text


@dataclasses.dataclass(frozen=True)
class TeardownOutcome:
    """What happened to the stack at the end of `ci`.

    ``status``: ``destroyed`` | ``kept`` (``--keep`` after a failure; ``existed`` when the
    stack was there before the run and ``--destroy-existing`` was not given) | ``skipped`` (this run
    provisioned nothing, e.g. another run held the stack's lock) | ``failed`` (after
    ``attempts`` tries; then ``reap_pending`` tells whether the stack was marked for the reaper
    and ``remaining`` lists what is left) | ``leaked`` (destroyed, but the leak check found
    resources still carrying the stack's tag: ``leaked``). ``leak_check`` says why the leak
    check could not run (None when it ran). ``released``: a claimed warm-pool stack went back
    to its pool, wiped and verified empty (:mod:`branchenv.pool`); a claimed one that could not
    go back is ``destroyed`` and ``refill`` says what became of its replacement (the pool's
    background refill, :mod:`branchenv.pool.refill`).
    """

    status: str
    attempts: int = 0
    deleted: int = 0
    duration_s: float = 0.0
    reap_pending: bool = False
    remaining: tuple[str, ...] = ()
    error: str | None = None
    leaked: tuple[str, ...] = ()
    leak_check: str | None = None
    existed: bool = False
    refill: Refill | None = None

    def summary(self) -> str:
        """One cell for the run summary: what happened, and the leak count."""
        if self.status in ("kept", "skipped"):
            return self.status
        if self.status == "released":  # a warm-pool stack: nothing destroyed, nothing to leak
            return "released to its warm pool (wiped, verified empty)"
        count = "unknown" if self.leak_check is not None else str(len(self.remaining))
        text = (
            f"{self.status} ({self.deleted} deleted, {self.attempts} "
            f"attempt{'' if self.attempts == 1 else 's'}), leaked: {count}"
        )
        if self.leak_check is not None:
            text += f" ({self.leak_check})"
        if self.refill is not None:
            text += f"; {self.refill.describe()}"
        return text


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
    cost: RunCost | None = None
    notes: tuple[str, ...] = ()
    error_class: str | None = None
    """The class of the branchenv error that ended the run (``BudgetExceeded``), if one did."""


def teardown_error(stack: str, branch: str, outcome: TeardownOutcome) -> str:
    what = ", ".join(outcome.remaining[:10]) or "none found by tag"
    more = f" (+{len(outcome.remaining) - 10} more)" if len(outcome.remaining) > 10 else ""
    marked = (
        "marked reap-pending for `branchenv reap`"
        if outcome.reap_pending
        else "could not be marked reap-pending"
    )
    return (
        f"teardown of stack {stack} failed after {plural(outcome.attempts, 'attempt')}: "
        f"{outcome.error}; "
        f"it {marked}; remaining: {what}{more}. Run `branchenv down --branch {branch}` to retry"
    )


def suite_status(run: SuiteRun | None, counts: TestCounts) -> tuple[str, int, str | None]:
    """(status, exit code, error) from pytest's exit code and the JUnit counts."""
    if run is None or run.exit_code is None:
        return "error", EXIT_FAILED, "the test suite did not run"
    code = run.exit_code
    if counts.interrupted:
        # Not green whatever else passed: a test that did not finish proved nothing. (pytest's
        # exit 2 alone is no sign: collection errors exit 2 too.)
        return (
            "interrupted",
            EXIT_FAILED,
            f"pytest was interrupted (exit {code}) with "
            f"{plural(counts.interrupted, 'test')} unfinished: the suite did not complete",
        )
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


def read_counts(paths: ReportPaths) -> TestCounts:
    from branchenv.harness.reports import parse_junit

    if not paths.junit.exists():
        return EMPTY_COUNTS
    try:
        return parse_junit(paths.junit)
    except BranchenvError:
        return EMPTY_COUNTS


def finish(
    *,
    command: str,
    ctx: StackContext,
    outputs: Mapping[str, Any],
    suite: Path,
    paths: ReportPaths,
    run: SuiteRun | None,
    ready_s: float | None,
    durations: Mapping[str, float],
    interrupted_during: str | None,
    total_s: float,
    teardown_outcome: TeardownOutcome | None,
    error: BaseException | None,
    interrupted: Interrupted | None,
    env: Mapping[str, str],
    cost: RunCost | None,
    annotator: Annotator | None = None,
) -> RunOutcome:
    """The run's outcome, after writing its reports: the Markdown summary, GitHub's step
    summary and outputs, and what ``annotator`` gives the CI's log (the run's error and each
    failed test as an annotation, then a notice with the endpoints and the cost)."""
    from branchenv.harness.reports import publish_github, render_markdown

    counts = read_counts(paths)
    status, code, message = suite_status(run, counts)
    if isinstance(error, BranchenvError):
        status, code, message = "error", error.exit_code, str(error)
    notes: list[str] = list(ctx.notes)
    if interrupted is not None:
        status, code = "interrupted", interrupted.exit_code
        message = f"{interrupted}" + (f" during {interrupted_during}" if interrupted_during else "")
    if teardown_outcome is not None and teardown_outcome.status in ("failed", "leaked"):
        if teardown_outcome.status == "leaked":
            from branchenv.harness.teardown import leak_text

            text = leak_text(ctx.names.stack, teardown_outcome.leaked)
        else:
            text = teardown_error(ctx.names.stack, ctx.branch.name, teardown_outcome)
        message = f"{message}; {text}" if message else text
        if status == "passed":
            status = "error"
        code = code or EXIT_FAILED
    if teardown_outcome is not None and teardown_outcome.existed:
        notes.append(
            f"stack {ctx.names.stack} existed before this run, so ci kept it (its TTL still "
            "applies); `--destroy-existing` destroys it too, `branchenv down --branch "
            f"{ctx.branch.name}` removes it"
        )
    elif teardown_outcome is not None and teardown_outcome.status == "kept":
        notes.append(
            f"stack {ctx.names.stack} kept for debugging (--keep); its TTL still applies. "
            f"Remove it with `branchenv down --branch {ctx.branch.name}`"
        )
    times = durations
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
        cost=cost.line() if cost is not None else None,
        notes=tuple(notes + ([f"error: {message}"] if message else [])),
        teardown=teardown_outcome.summary() if teardown_outcome is not None else None,
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
            "interrupted": counts.interrupted,
            "status": status,
        },
        env,
    )
    if annotator is not None:
        annotate(
            annotator,
            command=command,
            status=status,
            exit_code=code,
            message=message,
            counts=counts,
            ctx=ctx,
            outputs=outputs,
            cost=cost.line() if cost is not None else None,
            env=env,
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
        error_class=type(error).__name__ if isinstance(error, BranchenvError) else None,
    )


def annotate(
    annotator: Annotator,
    *,
    command: str,
    status: str,
    exit_code: int,
    message: str | None,
    counts: TestCounts,
    ctx: StackContext,
    outputs: Mapping[str, Any],
    cost: str | None,
    env: Mapping[str, str],
) -> None:
    """A run's end in the CI's log: its error (when it failed, exit 1 to 3), one error per
    failed test (file and line from the JUnit report, relative to ``GITHUB_WORKSPACE``), then
    a notice with the stack's endpoints and its cost line."""
    from branchenv.cifold import endpoints, notice_text

    if message and exit_code in (EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED):
        annotator.error(message, title=f"branchenv {command} {status} (exit {exit_code})")
    annotator.failed_tests(
        counts.failures(), base=ctx.settings.project_dir, workspace=env.get("GITHUB_WORKSPACE")
    )
    annotator.notice(
        notice_text(ctx.names.stack, endpoints(outputs), cost),
        title=f"branchenv {command}: {status}",
    )
