"""`branchenv reap`: find stale branch stacks, destroy them (with `--yes`), sweep orphans."""

from __future__ import annotations

import typer

from branchenv.cli import render
from branchenv.engines import engine_choices

app = typer.Typer()

FORMATS = ("table", "json", "markdown")


@app.command("reap")
def reap(
    yes: bool = typer.Option(False, "--yes", help="Act: destroy and delete. Default: dry run."),
    orphans: bool = typer.Option(
        False, "--orphans", help="Also sweep resources tagged for stacks no engine knows."
    ),
    max_reap: int | None = typer.Option(
        None, "--max", help="Most stacks one run may destroy (default: the max_reap setting)."
    ),
    max_orphans: int = typer.Option(
        200, "--max-orphans", min=0, help="Most orphaned resources one run may delete."
    ),
    orphan_grace: str = typer.Option(
        "1h",
        "--orphan-grace",
        help="Leave orphans younger than this (their stack may still be provisioning).",
    ),
    remote: str | None = typer.Option(
        None,
        "--remote",
        help="Git remote (name or URL) whose branches are checked; stacks of deleted branches "
        "are reaped. Default: not checked.",
    ),
    engine: str | None = typer.Option(
        None,
        "--engine",
        "-e",
        help=f"{engine_choices()} (default: every engine that runs here).",
    ),
    target: str | None = typer.Option(None, "--target", "-t", help="local | aws."),
    output_format: str = typer.Option(
        "table", "--format", help="table | json | markdown (--json is short for --format json)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    accounts: str | None = typer.Option(
        None,
        "--accounts",
        help="Comma-separated AWS account ids to reap in (each must be in "
        "allowed_account_ids); several need --assume-role.",
    ),
    regions: str | None = typer.Option(
        None,
        "--regions",
        help="Comma-separated regions to reap in, or `all`: every region each account has "
        "enabled. Default: the region setting.",
    ),
    assume_role: str | None = typer.Option(
        None,
        "--assume-role",
        help="Role ARN template assumed in each account, e.g. "
        "arn:aws:iam::{account}:role/branchenv-reaper.",
    ),
    role_session_name: str | None = typer.Option(
        None, "--role-session-name", help="Session name of the assumed roles (CloudTrail)."
    ),
    external_id: str | None = typer.Option(
        None,
        "--external-id",
        envvar="BRANCHENV_REAP_EXTERNAL_ID",
        show_envvar=True,
        help="External id the roles' trust policies require (prefer the variable: never printed).",
    ),
    account_concurrency: int = typer.Option(
        4,
        "--account-concurrency",
        help="Most API calls in flight per account at once (its rate limits).",
    ),
) -> None:
    """Reap stale stacks: dry run by default; `--yes` destroys. With --accounts/--regions
    (and --assume-role), one run covers every account and region. Exit 1 if any deletion or
    account/region pair failed, 3 when a safety rule refuses."""
    from branchenv import provision
    from branchenv.config import load_settings
    from branchenv.errors import OperationFailed, SafetyRefusal, UsageError
    from branchenv.metadata import parse_ttl
    from branchenv.reaper import run
    from branchenv.reaper.org import parse_scope
    from branchenv.reaper.report import build_report
    from branchenv.safety import resolve_target
    from branchenv.targets import check_target_name

    fmt = "json" if as_json else output_format.lower()
    if fmt not in FORMATS:
        raise UsageError(f"--format {output_format!r} is not one of: {', '.join(FORMATS)}")
    settings = load_settings(
        overrides={"default_target": target, "engine": engine, "max_reap": max_reap},
        flag_names={"default_target": "--target", "engine": "--engine", "max_reap": "--max"},
    )
    grace = parse_ttl(orphan_grace, flag="--orphan-grace")
    scope = parse_scope(
        accounts=accounts,
        regions=regions,
        assume_role=assume_role,
        session_name=role_session_name,
        external_id=external_id,
        account_concurrency=account_concurrency,
    )
    target_name = check_target_name(settings.default_target)
    engines = provision.engines_for_listing(settings, engine, target_name=target_name)
    # The rails (local-only engines, the orphan sweep, the AWS account) are enforced by
    # run.plan and run.execute themselves; the local cloud is started only to act on it (an
    # organisation-wide dry run asks every account too).
    tgt = resolve_target(
        settings, target_name, cloud="start" if (yes or orphans or scope) else "none"
    ).target
    remote_branches = None
    if remote is not None:
        from branchenv.gitinfo import redact, remote_heads

        remote_branches = remote_heads(remote, cwd=settings.project_dir)
        remote = redact(remote)
    reap_plan = run.plan(
        settings,
        engines=engines,
        target_name=target_name,
        remote_branches=remote_branches,
        remote=remote,
        orphan_target=tgt if orphans and scope is None else None,
        max_orphans=max_orphans,
        orphan_grace=grace,
        target=tgt,
        scope=scope,
        orphans=orphans,
    )
    if not yes:
        report = build_report(run.ReapResult(plan=reap_plan, acted=False))
        _show(report, fmt)
        _fail_on_pairs(report)
        return
    refusal = reap_plan.refusal()
    if refusal is not None:
        _show(build_report(run.ReapResult(plan=reap_plan, acted=False)), fmt)
        raise SafetyRefusal(refusal)
    result = run.execute(
        reap_plan, settings=settings, engines=engines, target=tgt, on_output=render.status
    )
    report = build_report(result)
    _show(report, fmt)
    _fail_on_pairs(report)
    if report.leaked:
        raise OperationFailed(
            f"{report.leaked} resource(s) still carry the tag of a reaped stack (leaked, see the "
            "report); delete them, or sweep them with `branchenv reap --orphans --yes`"
        )
    if report.failed:
        raise OperationFailed(
            f"{report.failed} deletion(s) failed (see the report); fix the cause and re-run "
            "`branchenv reap --yes`"
        )


def _fail_on_pairs(report: object) -> None:
    """Exit 1 naming every failed (account, region) pair and why (the others were done)."""
    from branchenv.errors import OperationFailed
    from branchenv.reaper.report import ReapReport

    assert isinstance(report, ReapReport)
    bad = [p for p in report.pairs if p.status == "failed"]
    if bad:
        names = "; ".join(f"{p.account}/{p.region}: {p.error}" for p in bad)
        done = len(report.pairs) - len(bad)
        raise OperationFailed(
            f"{len(bad)} of {len(report.pairs)} account/region pair(s) failed ({names}); "
            f"the other {done} were {'planned' if report.dry_run else 'reaped'}. Fix the cause "
            "and re-run `branchenv reap`"
        )


def _show(report: object, fmt: str) -> None:
    from branchenv.reaper.report import (
        ReapReport,
        account_columns,
        kept_columns,
        orphan_columns,
        pair_columns,
        reaped_columns,
        summary_line,
        to_markdown,
    )

    assert isinstance(report, ReapReport)
    if fmt == "json":
        render.emit_json(report)
        return
    if fmt == "markdown":
        typer.echo(to_markdown(report))
        return
    title = "to reap (dry run)" if report.dry_run else "reaped"
    if report.pairs:
        headers, rows = pair_columns(report)
        render.table(f"{len(rows)} account/region pair(s)", headers, rows)
        headers, rows = account_columns(report)
        render.table(f"{len(rows)} account(s)", headers, rows)
    headers, rows = reaped_columns(report)
    render.table(f"{len(rows)} stack(s) {title}", headers, rows)
    headers, rows = kept_columns(report)
    render.table(f"{len(rows)} stack(s) kept", headers, rows)
    if report.orphans_checked:
        headers, rows = orphan_columns(report)
        render.table(f"{len(rows)} orphaned resource(s)", headers, rows)
    if report.remote is None:
        typer.echo("note: branch-deleted rule not checked; pass `--remote origin` to check it")
    typer.echo(summary_line(report))
    if report.next_step:
        typer.echo(report.next_step)
