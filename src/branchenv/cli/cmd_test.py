"""`branchenv test` and `branchenv ci`: the integration suite against a branch stack."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from branchenv.cli import common, render
from branchenv.cli.options import epilog, new_app, option

if TYPE_CHECKING:
    from branchenv.cifold import Annotator
    from branchenv.config import Settings
    from branchenv.harness.publish import RunOutcome

app = new_app()

_EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}

BranchOpt = option("--branch")
TargetOpt = option("--target", default_help="default: default_target")
EngineOpt = option("--engine", default_help="default: auto")
SuiteOpt = option("--suite")
ReportDirOpt = option("--report-dir")
ReadyOpt = option("--ready-timeout", 60.0, default_help="default: 60", min=1.0)
JsonOpt = option("--json", False)
AllowSharedOpt = option(
    "--allow-shared", [], default_help="any other fixed name must derive from the branch's prefix"
)
ProgramOpt = option("--program", default_help="default: the `program` setting's, or the only one")


def _settings(
    target: str | None,
    engine: str | None,
    max_hourly: str | None = None,
    max_total: str | None = None,
) -> Settings:
    return common.load(target=target, engine=engine, max_hourly=max_hourly, max_total=max_total)


def _annotator() -> Annotator:
    """This invocation's CI annotator (folds, annotations; off outside a CI)."""
    from branchenv.cli import output

    return output.current().annotator


_ERROR_CODES = {"failed": "tests_failed", "interrupted": "interrupted", "error": "failed"}


def _render(outcome: RunOutcome, as_json: bool) -> None:
    def human() -> None:
        c = outcome.counts
        t = outcome.timings
        typer.echo(
            f"{outcome.command} {outcome.status}: {c.line()} — stack {outcome.stack} "
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

    if as_json:
        from branchenv.cli import output

        body = None
        if outcome.exit_code:
            body = output.error_body(
                # The error's own class when a branchenv error ended the run (budget_exceeded,
                # safety_refusal, ...), else what the suite's status says.
                code=(
                    output.snake_case(outcome.error_class)
                    if outcome.error_class and outcome.status == "error"
                    else _ERROR_CODES.get(outcome.status, "failed")
                ),
                exit_code=outcome.exit_code,
                message=outcome.error or f"{outcome.command} {outcome.status}",
                hint=f"the reports are in {outcome.summary}" if outcome.summary else None,
            )
        output.print_document(output.envelope(result=outcome, error=body))
    else:
        human()
    common.notes(outcome.notes)
    if outcome.error:
        render.status(f"branchenv: error: {outcome.error}")


@app.command("test", context_settings=_EXTRA, epilog=epilog(signals=True))
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

    Arguments after `--` go to pytest.
    """
    from branchenv.harness.flow import run_test
    from branchenv.harness.signals import Interrupted

    settings = _settings(target, engine)
    common.preflight(settings, branch, program=program)
    try:
        outcome = run_test(
            settings,
            branch=branch,
            suite=suite,
            report_dir=report_dir,
            ready_timeout_s=ready_timeout,
            pytest_args=list(ctx.args),
            program=program,
            annotator=_annotator(),
            on_output=common.say,  # a note said during the run is not said again at its end
        )
    except Interrupted as exc:
        render.status(f"branchenv: {exc}")
        raise typer.Exit(exc.exit_code) from None
    _render(outcome, as_json)
    raise typer.Exit(outcome.exit_code)


@app.command("ci", context_settings=_EXTRA, epilog=epilog(signals=True))
def ci(
    ctx: typer.Context,
    branch: str | None = BranchOpt,
    target: str | None = TargetOpt,
    engine: str | None = EngineOpt,
    suite: str | None = SuiteOpt,
    report_dir: str | None = ReportDirOpt,
    ready_timeout: float = ReadyOpt,
    ttl: str | None = option("--ttl", default_help="default: default_ttl"),
    profile: str = option("--profile", "ephemeral"),
    keep: bool = option("--keep", False),
    destroy_existing: bool = option("--destroy-existing", False),
    max_hourly: str | None = option("--max-hourly"),
    max_total: str | None = option("--max-total"),
    allow_shared: list[str] = AllowSharedOpt,
    program: str | None = ProgramOpt,
    use_pool: bool | None = option(
        "--pool", default_help="released at the end; default: the pool setting"
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Up -> wait ready -> test -> down in one command; teardown is guaranteed.

    Teardown runs on test failure, on errors, on SIGINT and SIGTERM, and (by a watchdog
    process) when `ci` itself is killed. Arguments after `--` go to pytest.
    """
    from branchenv.harness.ci import run_ci
    from branchenv.harness.signals import Interrupted

    settings = _settings(target, engine, max_hourly, max_total)
    common.preflight(settings, branch, ttl=ttl, profile=profile, program=program)
    try:
        outcome = run_ci(
            settings,
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
            destroy_existing=destroy_existing,
            annotator=_annotator(),
            on_output=common.say,  # a note said during the run is not said again at its end
        )
    except Interrupted as exc:
        render.status(f"branchenv: {exc} before anything was created")
        raise typer.Exit(exc.exit_code) from None
    _render(outcome, as_json)
    raise typer.Exit(outcome.exit_code)
