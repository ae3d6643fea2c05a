"""`branchenv test` and `branchenv ci`: the integration suite against a branch stack."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from branchenv.cli import render
from branchenv.engines import engine_choices

if TYPE_CHECKING:
    from branchenv.config import Settings
    from branchenv.harness.publish import RunOutcome

app = typer.Typer()

_EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}

BranchOpt = typer.Option(
    None, "--branch", "-b", help="Branch name (default: CI variables, then the git checkout)."
)
TargetOpt = typer.Option(None, "--target", "-t", help="Where resources live: local | aws.")
EngineOpt = typer.Option(
    None, "--engine", "-e", help=f"{engine_choices()} (default: as for `branchenv up`)."
)
SuiteOpt = typer.Option(None, "--suite", help="The pytest suite to run (default: <program>/tests).")
ReportDirOpt = typer.Option(
    None, "--report-dir", help="Where JUnit XML and the summary go (default: reports/)."
)
ReadyOpt = typer.Option(
    60.0, "--ready-timeout", min=1.0, help="Seconds to wait for the stack to answer."
)
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON.")
AllowSharedOpt = typer.Option(
    [],
    "--allow-shared",
    help="A fixed physical name this stack shares with other branches on purpose (repeatable); "
    "any other fixed name must be derived from the branch's prefix.",
)
ProgramOpt = typer.Option(
    None,
    "--program",
    help="Which configured program: the NAME of a `programs.NAME` settings table (default: the "
    "`program` setting's, or the only one).",
)


def _settings(
    target: str | None,
    engine: str | None,
    max_hourly: str | None = None,
    max_total: str | None = None,
) -> Settings:
    from branchenv.config import load_settings

    return load_settings(
        overrides={
            "default_target": target,
            "engine": engine,
            "max_hourly": max_hourly,
            "max_total": max_total,
        },
        flag_names={
            "default_target": "--target",
            "engine": "--engine",
            "max_hourly": "--max-hourly",
            "max_total": "--max-total",
        },
    )


def _render(outcome: RunOutcome, as_json: bool) -> None:
    def human() -> None:
        c = outcome.counts
        t = outcome.timings
        typer.echo(
            f"{outcome.command} {outcome.status}: {c.passed} passed, {c.failed} failed, "
            f"{c.errors} errors, {c.skipped} skipped — stack {outcome.stack} "
            f"({outcome.target}, {outcome.engine})"
        )
        parts = [
            ("provision", t.provision_s),
            ("ready", t.ready_s),
            ("test", t.test_s),
            ("teardown", t.teardown_s),
        ]
        shown = ", ".join(f"{name} {v:.1f} s" for name, v in parts if v is not None)
        typer.echo(f"timings: {shown} (total {t.total_s or 0:.1f} s)")
        for s in outcome.latency:
            typer.echo(
                f"latency {s.name}: n={s.count} errors={s.errors} p50={s.p50_ms:.1f} ms "
                f"p95={s.p95_ms:.1f} ms p99={s.p99_ms:.1f} ms"
            )
        if outcome.teardown is not None:
            td = outcome.teardown
            typer.echo(f"teardown: {td.summary()}")
        typer.echo(f"reports: {outcome.junit or '(no JUnit)'}, {outcome.summary}")

    render.emit(outcome, as_json=as_json, human=human)
    for note in outcome.notes:
        render.status(f"note: {note}")
    if outcome.error:
        render.status(f"branchenv: error: {outcome.error}")


@app.command("test", context_settings=_EXTRA)
def test(
    ctx: typer.Context,
    branch: str | None = BranchOpt,
    target: str | None = TargetOpt,
    engine: str | None = EngineOpt,
    suite: str | None = SuiteOpt,
    report_dir: str | None = ReportDirOpt,
    ready_timeout: float = ReadyOpt,
    program: str | None = ProgramOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Run the integration suite against this branch's existing stack.

    Arguments after `--` go to pytest. Exit 0 green, 1 tests failed, 2 bad input.
    """
    from branchenv.harness.flow import run_test
    from branchenv.harness.signals import Interrupted

    try:
        outcome = run_test(
            _settings(target, engine),
            branch=branch,
            suite=suite,
            report_dir=report_dir,
            ready_timeout_s=ready_timeout,
            pytest_args=list(ctx.args),
            program=program,
        )
    except Interrupted as exc:
        render.status(f"branchenv: {exc}")
        raise typer.Exit(exc.exit_code) from None
    _render(outcome, as_json)
    raise typer.Exit(outcome.exit_code)


@app.command("ci", context_settings=_EXTRA)
def ci(
    ctx: typer.Context,
    branch: str | None = BranchOpt,
    target: str | None = TargetOpt,
    engine: str | None = EngineOpt,
    suite: str | None = SuiteOpt,
    report_dir: str | None = ReportDirOpt,
    ready_timeout: float = ReadyOpt,
    ttl: str | None = typer.Option(None, "--ttl", help="Time to live: 90m, 24h, 7d, ..."),
    profile: str = typer.Option("ephemeral", "--profile", help="ephemeral | prodlike"),
    keep: bool = typer.Option(
        False, "--keep", help="Keep the stack when the run fails, for debugging (TTL applies)."
    ),
    max_hourly: str | None = typer.Option(
        None, "--max-hourly", help="Budget gate: fail (exit 1) if the stack burns more USD/h."
    ),
    max_total: str | None = typer.Option(
        None,
        "--max-total",
        help="Budget gate: fail (exit 1) if the stack would cost more USD by its expiry.",
    ),
    allow_shared: list[str] = AllowSharedOpt,
    program: str | None = ProgramOpt,
    use_pool: bool | None = typer.Option(
        None,
        "--pool/--no-pool",
        help="Claim a ready stack from the warm pool and release it at the end (default: the "
        "pool setting); see `branchenv pool`.",
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Up -> wait ready -> test -> down in one command; teardown is guaranteed.

    Teardown runs on test failure, on errors, on SIGINT and SIGTERM, and (by a watchdog
    process) when `ci` itself is killed. Arguments after `--` go to pytest. Exit 0 green, 1 failed, 2 bad input, 130/143 when stopped by a signal.
    """
    from branchenv.harness.ci import run_ci
    from branchenv.harness.signals import Interrupted

    try:
        outcome = run_ci(
            _settings(target, engine, max_hourly, max_total),
            branch=branch,
            suite=suite,
            report_dir=report_dir,
            keep=keep,
            ttl=ttl,
            profile=profile,
            ready_timeout_s=ready_timeout,
            pytest_args=list(ctx.args),
            program=program,
            allow_shared=allow_shared,
            use_pool=use_pool,
        )
    except Interrupted as exc:
        render.status(f"branchenv: {exc} before anything was created")
        raise typer.Exit(exc.exit_code) from None
    _render(outcome, as_json)
    raise typer.Exit(outcome.exit_code)
