"""`branchenv reap`: find stale branch stacks, destroy them (with `--yes`), sweep orphans."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from branchenv.cli import common, render
from branchenv.cli.options import epilog, format_option, new_app, option

if TYPE_CHECKING:
    from branchenv.errors import BranchenvError

app = new_app()

FORMATS = ("table", "json", "markdown")


@app.command("reap", epilog=epilog())
def reap(
    yes: bool = option("--yes", False, default_help="destroy and delete; default: a dry run"),
    orphans: bool = option("--orphans", False),
    max_reap: int | None = option("--max"),
    max_orphans: int = option("--max-orphans", 200, default_help="default: 200", min=0),
    orphan_grace: str = option(
        "--orphan-grace", "1h", default_help="their stack may still be provisioning; default: 1h"
    ),
    remote: str | None = option(
        "--remote", default_help="stacks of deleted branches are reaped; default: not checked"
    ),
    engine: str | None = option("--engine", default_help="default: every engine that runs here"),
    target: str | None = option("--target", default_help="default: default_target"),
    output_format: str = format_option(FORMATS),
    as_json: bool = option("--json", False),
    accounts: str | None = option("--accounts"),
    regions: str | None = option("--regions"),
    assume_role: str | None = option("--assume-role"),
    role_session_name: str | None = option("--role-session-name"),
    external_id: str | None = option(
        "--external-id", envvar="BRANCHENV_REAP_EXTERNAL_ID", show_envvar=True
    ),
    account_concurrency: int = option("--account-concurrency", 4, default_help="default: 4"),
) -> None:
    """Reap stale stacks: dry run by default; `--yes` destroys. With --accounts/--regions
    (and --assume-role), one run covers every account and region. Exit 1 if any deletion or
    account/region pair failed, 3 when a safety rule refuses."""
    from branchenv import provision
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
    settings = common.load(target=target, engine=engine, max_reap=max_reap)
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
        failed = _pairs_failed(report)
        _show(report, fmt, error=failed)
        if failed is not None:
            raise failed
        return
    refusal = reap_plan.refusal()
    if refusal is not None:
        refused = SafetyRefusal(refusal)
        _show(build_report(run.ReapResult(plan=reap_plan, acted=False)), fmt, error=refused)
        raise refused
    if common.stdin_is_terminal():
        _confirm(build_report(run.ReapResult(plan=reap_plan, acted=False)))
    result = run.execute(
        reap_plan, settings=settings, engines=engines, target=tgt, on_output=render.status
    )
    report = build_report(result)
    failed = _pairs_failed(report)
    if failed is None and report.leaked:
        failed = OperationFailed(
            f"{common.plural(report.leaked, 'resource')} still "
            f"{'carries' if report.leaked == 1 else 'carry'} the tag of a reaped stack "
            "(leaked, see the report)",
            hint="delete them, or sweep them with `branchenv reap --orphans --yes`",
        )
    elif failed is None and report.failed:
        failed = OperationFailed(
            f"{common.plural(report.failed, 'deletion')} failed (see the report)",
            hint="fix the cause and re-run `branchenv reap --yes`",
        )
    _show(report, fmt, error=failed)
    if failed is not None:
        raise failed


def _pairs_failed(report: object) -> BranchenvError | None:
    """Exit 1 naming every failed (account, region) pair and why (the others were done)."""
    from branchenv.errors import OperationFailed
    from branchenv.reaper.report import ReapReport

    assert isinstance(report, ReapReport)
    bad = [p for p in report.pairs if p.status == "failed"]
    if not bad:
        return None
    names = "; ".join(f"{p.account}/{p.region}: {p.error}" for p in bad)
    done = len(report.pairs) - len(bad)
    return OperationFailed(
        f"{len(bad)} of {common.plural(len(report.pairs), 'account/region pair')} failed "
        f"({names}); the other {done} were {'planned' if report.dry_run else 'reaped'}",
        hint="fix the cause and re-run `branchenv reap`",
    )


def _confirm(plan: object) -> None:
    """On a terminal, `reap --yes` shows what will go and asks for the target's name first."""
    from branchenv.reaper.report import ReapReport

    assert isinstance(plan, ReapReport)
    if not plan.reaped and not plan.orphans:
        return
    lines = [
        f"reap --yes on target {plan.target} destroys "
        f"{common.plural(len(plan.reaped), 'stack')} and deletes "
        f"{common.plural(len(plan.orphans), 'orphaned resource')}:"
    ]
    lines += [f"  {r.stack} ({r.engine}): {r.why}" for r in plan.reaped[:30]]
    lines += [f"  {o.arn}: {o.why}" for o in plan.orphans[:30]]
    common.confirm(lines, answer=plan.target, noun="target's name", command="reap --yes")


def _show(report: object, fmt: str, *, error: BranchenvError | None = None) -> None:
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
        render.emit_json(report, error=error)
        return
    if fmt == "markdown":
        typer.echo(to_markdown(report))
        return
    title = "to reap (dry run)" if report.dry_run else "reaped"
    if report.pairs:
        headers, rows = pair_columns(report)
        render.table(common.plural(len(rows), "account/region pair"), headers, rows)
        headers, rows = account_columns(report)
        render.table(common.plural(len(rows), "account"), headers, rows)
    headers, rows = reaped_columns(report)
    why = headers.index("why")
    for row in rows:  # one reason a line, each kept whole where it fits
        row[why] = str(row[why]).replace("; ", "\n")
    render.table(
        f"{common.plural(len(rows), 'stack')} {title}",
        headers,
        rows,
        abbreviate=["stack", "branch"],
        no_wrap=["age"],
        whole_lines=["why"],
        # the stack's name carries its branch: what gives way first on a narrow terminal
        optional=["account", "region", "resources", "branch"],
    )
    headers, rows = kept_columns(report)
    render.table(
        f"{common.plural(len(rows), 'stack')} kept",
        headers,
        rows,
        abbreviate=["stack", "branch"],
        optional=["account", "region"],
    )
    if report.orphans_checked:
        headers, rows = orphan_columns(report)
        render.table(f"{common.plural(len(rows), 'orphaned resource')}", headers, rows)
    if report.remote is None:
        common.note("branch-deleted rule not checked; pass `--remote origin` to check it")
    typer.echo(summary_line(report))
    for refill in report.refills:
        typer.echo(refill.describe())
    if report.next_step:
        typer.echo(report.next_step)
