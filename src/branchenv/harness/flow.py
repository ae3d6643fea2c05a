"""The run flow shared by `branchenv test` and `branchenv ci`, and `test` itself.

``run_test``: an existing branch stack -> ready -> the suite (pytest in a subprocess) -> reports.
The pieces (the suite and report dir, readiness, the stack file, the timed phases, the suite
phase, the cost line) are what :mod:`branchenv.harness.ci` composes with `up` and teardown.
The stack's metadata is read once per run and passed forward.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from branchenv.cifold import Annotator
from branchenv.errors import BranchenvError, StackNotFound, UsageError
from branchenv.harness.publish import RunCost, RunOutcome, finish
from branchenv.harness.signals import Interrupted, SignalGuard
from branchenv.harness.suite import ReportPaths, SuiteRun
from branchenv.text import plural

if TYPE_CHECKING:
    from branchenv.config import Settings
    from branchenv.harness.readiness import ReadinessReport
    from branchenv.metadata import StackMetadata
    from branchenv.provision import StackContext

Say = Callable[[str], None]

DEFAULT_READY_TIMEOUT_S = 60.0


def resolve_suite(
    settings: Settings, suite: str | os.PathLike[str] | None, program: str | None = None
) -> Path:
    """The suite to run: ``suite`` (relative to the current directory), else the ``suite``
    setting (relative to the project), else ``<program>/tests`` of the program the run acts on
    (``program``: a configured program's name)."""
    if suite is None and settings.suite is not None:
        path = (settings.project_dir / settings.suite).resolve()
        if not path.exists():
            raise UsageError(
                f"no test suite at {path} (the `suite` setting, from "
                f"{settings.sources.get('suite', 'settings')}): fix `suite` or pass `--suite PATH`"
            )
        return path
    if suite is None:
        from branchenv.programs import select_program

        path = select_program(settings, program).path / "tests"
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
    in_place: bool = False,
) -> ReadinessReport:
    """Wait until the stack's endpoint and resources answer (raises NotReady on timeout);
    ``in_place``: its resources were just found in place, unchanged since they last answered
    (``UpOutcome.in_place``), so only its endpoints are probed."""
    from branchenv.harness.readiness import checks_for_stack, wait_ready

    checks = checks_for_stack(outputs, ctx.target, endpoints_only=in_place)
    say(
        f"waiting for {plural(len(checks), 'readiness check')}, up to {timeout_s:.0f} s"
        + (
            " (endpoints only: its resources were just found in place, unchanged)"
            if in_place
            else ""
        )
    )
    report = wait_ready(checks, deadline_s=timeout_s, sleep=sleep, on_progress=say)
    say(f"stack ready in {report.seconds:.2f} s")
    return report


def write_stack_file_for(
    ctx: StackContext,
    outputs: Mapping[str, Any],
    path: Path,
    *,
    metadata: StackMetadata | None,
    ready_s: float | None,
    cost: RunCost | None = None,
) -> Path:
    """Write the stack file the suite's fixtures read (``metadata``: what the run knows)."""
    from branchenv.harness.stackfile import (
        StackInfo,
        TargetInfo,
        metadata_to_json,
        write_stack_file,
    )

    t = ctx.target
    info = StackInfo(
        stack=ctx.names.stack,
        branch=ctx.branch.name,
        target=TargetInfo(t.name, t.region, t.endpoint_url, t.functions_url),
        outputs=dict(outputs),
        metadata=metadata_to_json(metadata),
        latency_p95_ms=ctx.settings.latency_p95_ms,
        ready_s=ready_s,
        cost=cost.line() if cost is not None else None,
    )
    return write_stack_file(info, path)


class Phases:
    """Times each phase of a run, remembers which one is under way, and folds each in the CI's
    log (``annotator``: a ``::group::`` on GitHub Actions, a section on GitLab CI)."""

    def __init__(self, say: Say, annotator: Annotator | None = None) -> None:
        self.say = say
        self.annotator = annotator or Annotator.off()
        self.durations: dict[str, float] = {}
        self.current: str | None = None

    @contextlib.contextmanager
    def run(self, name: str, banner: str) -> Iterator[None]:
        self.current = name
        with self.annotator.phase(name, banner):
            self.say(f"== {banner}")
            started = time.monotonic()
            try:
                yield
            finally:
                self.durations[name] = time.monotonic() - started


def run_suite_phase(
    ctx: StackContext,
    outputs: Mapping[str, Any],
    *,
    metadata: StackMetadata | None,
    suite: Path,
    paths: ReportPaths,
    ready_timeout_s: float,
    pytest_args: Sequence[str],
    env: Mapping[str, str],
    say: Say,
    guard: SignalGuard,
    cost: RunCost | None,
    phases: Phases,
    in_place: bool = False,
) -> tuple[SuiteRun, float]:
    """ready -> stack file -> pytest child (``in_place``: see :func:`wait_stack_ready`). A
    signal during readiness raises
    :class:`Interrupted` at once; one during the tests is forwarded to the child, and the run
    it cut short is returned (``guard.received`` says it was signalled).

    The child starts before readiness is waited for, held at the plugin's gate: its
    interpreter, pytest, the plugins and conftests (0.5 s here, most of pytest's start) start
    while the probes wait on the stack; its session, the stack file's reading and every test
    begin only once the stack is ready. When readiness fails or is interrupted, the held child
    is told there is no 'go' and ends before any test (:meth:`HeldSuite.abandon`)."""
    from branchenv.harness.suite import HeldSuite, run_suite, start_held

    held: HeldSuite | None = start_held(
        suite, paths, cwd=ctx.settings.project_dir, env=env, extra_args=pytest_args, guard=guard
    )
    try:
        with phases.run("ready", "ready"):
            report = guard.cancel(
                lambda: wait_stack_ready(
                    ctx,
                    outputs,
                    timeout_s=ready_timeout_s,
                    say=say,
                    sleep=guard.sleep,
                    in_place=in_place,
                )
            )
        write_stack_file_for(
            ctx, outputs, paths.stack_file, metadata=metadata, ready_s=report.seconds, cost=cost
        )

        def tests() -> SuiteRun:
            nonlocal held
            going, held = held, None  # from here on run_suite owns the child
            return run_suite(
                suite,
                paths,
                cwd=ctx.settings.project_dir,
                env=env,
                extra_args=pytest_args,
                on_output=say,
                guard=guard,
                held=going,
            )

        with phases.run("test", f"test: {suite}"):
            run = guard.run_child(tests)  # a signal just before: `tests` never runs
    finally:
        if held is not None:
            held.abandon(guard)
    return run, report.seconds


MAX_READY_TIMEOUT_S = 24 * 3600.0


def check_ready_timeout(seconds: float) -> float:
    """A usable ``--ready-timeout``: finite, at least 1 s and at most a day."""
    if not math.isfinite(seconds) or not 1.0 <= seconds <= MAX_READY_TIMEOUT_S:
        raise UsageError(
            f"--ready-timeout {seconds}: give a number of seconds from 1 to "
            f"{MAX_READY_TIMEOUT_S:.0f} (a day), e.g. `--ready-timeout 120`"
        )
    return seconds


def stderr_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


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
    cost: RunCost | None = None,
    program: str | None = None,
    annotator: Annotator | None = None,
) -> RunOutcome:
    """`branchenv test`: run the suite against the branch's existing stack (of ``program``,
    a configured program's name; default: the default one). ``annotator``: what the CI's log
    gets (folds per phase, failed tests as annotations, a notice; see :mod:`branchenv.cifold`);
    none by default."""
    from branchenv import provision

    env = dict(os.environ if env is None else env)
    say = on_output or stderr_line
    check_ready_timeout(ready_timeout_s)
    suite_path = resolve_suite(settings, suite, program)
    paths = ReportPaths.under(resolve_report_dir(settings, report_dir))
    paths.clear()
    started = time.monotonic()
    phases = Phases(say, annotator)
    run: SuiteRun | None = None
    ready_s: float | None = None
    error: BaseException | None = None
    interrupted: Interrupted | None = None
    during: str | None = None
    # Installed before the first step: a signal at any point is recorded, and acted on (an
    # Interrupted before the suite started escapes: nothing was run yet).
    with SignalGuard(on_signal=say) as guard:
        ctx = guard.finish(
            lambda: provision.resolve(
                settings, branch=branch, target=None, engine=None, env=env, program=program
            ),
            what="the local cloud has started",
        )
        guard.checkpoint()
        for note in ctx.notes:
            say(f"note: {note}")
        from branchenv.pool import redirect

        ctx = redirect(ctx)  # the warm-pool stack the branch holds, if it holds one
        try:
            outputs = provision.outputs(ctx)
        except StackNotFound:
            raise StackNotFound(
                f"no stack {ctx.names.stack} for branch {ctx.branch.name}: create it with "
                f"`branchenv up --branch {ctx.branch.name}` (or use `branchenv ci`)"
            ) from None
        metadata = ctx.engine.metadata(stack=ctx.names.stack, program=ctx.program)
        if cost is None:
            estimate = provision.stack_cost(ctx, metadata=metadata)
            if estimate.inventory_available:
                cost = RunCost.of(estimate)
        try:
            run, ready_s = run_suite_phase(
                ctx,
                outputs,
                metadata=metadata,
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
        if interrupted is None and guard.received is not None:
            interrupted, during = Interrupted(guard.received), phases.current
    return finish(
        command="test",
        ctx=ctx,
        outputs=outputs,
        suite=suite_path,
        paths=paths,
        run=run,
        ready_s=ready_s,
        durations=phases.durations,
        interrupted_during=during,
        total_s=time.monotonic() - started,
        teardown_outcome=None,
        error=error,
        interrupted=interrupted,
        env=env,
        cost=cost,
        annotator=phases.annotator,
    )


def late_signal(guard: SignalGuard) -> Interrupted | None:
    """A signal that arrived during teardown still makes the run count as interrupted."""
    return Interrupted(guard.received) if guard.received is not None else None
