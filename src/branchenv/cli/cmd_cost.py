"""`branchenv cost`: what branch stacks cost (estimate, and actual from Cost Explorer), budget
gates, and `branchenv cost refresh-prices`."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from branchenv.cli import common, render
from branchenv.cli.options import epilog, format_option, new_app, option

if TYPE_CHECKING:
    from branchenv.config import Settings
    from branchenv.cost.estimate import StackCost
    from branchenv.cost.report import CostReport, ReportRow

app = new_app()
cost_app = new_app(
    epilog=epilog(),
    help=(
        "What branch stacks cost: inventory x unit prices x hours alive (prices and usage "
        "assumptions in branchenv/cost/prices.json), actuals from Cost Explorer (--actual), "
        "and budget gates (--max-hourly, --max-total; exit 1 when over)."
    ),
    invoke_without_command=True,
)
app.add_typer(cost_app, name="cost")


def _settings(engine: str | None, max_hourly: str | None, max_total: str | None) -> Settings:
    return common.load(engine=engine, max_hourly=max_hourly, max_total=max_total)


def _actuals(
    settings: Settings, target: str | None, costs: list[StackCost]
) -> tuple[dict[str, Decimal], tuple[str, ...]]:
    from branchenv.cost.actual import fetch_actuals
    from branchenv.safety import resolve_target
    from branchenv.targets import check_target_name

    name = check_target_name(target or settings.default_target)
    # Cost Explorer lives in us-east-1 on AWS; the local cloud serves it where it runs.
    region = settings.region if name == "local" else "us-east-1"
    tgt = resolve_target(settings, name, cloud="running", region=region).target
    today = dt.datetime.now(dt.UTC).date()
    created = [c.hours_alive for c in costs]
    days_back = int(max(created, default=Decimal(24)) // 24) + 1
    result = fetch_actuals(
        tgt.client("ce"),
        start=today - dt.timedelta(days=days_back),
        end=today + dt.timedelta(days=1),
        stacks=[c.stack for c in costs],
    )
    if result.note:
        common.note(result.note)
    # What Cost Explorer said (tag activation, ...) goes into the report's notes too.
    return dict(result.by_stack), ((result.note,) if result.note else ())


@cost_app.callback()
def cost(
    ctx: typer.Context,
    branch: str | None = option("--branch", default_help="only this branch's stack"),
    all_stacks: bool = option("--all", False),
    by: str = option("--by", "stack", default_help="account/region: per account and region"),
    fmt: str = format_option(("table", "json", "csv", "markdown")),
    as_json: bool = option("--json", False),
    actual: bool = option("--actual", False),
    target: str | None = option("--target", default_help="where Cost Explorer is asked"),
    engine: str | None = option("--engine", default_help="default: every engine that runs here"),
    max_hourly: str | None = option("--max-hourly"),
    max_total: str | None = option("--max-total"),
) -> None:
    """Estimated cost of branch stacks: hourly burn, cost so far, projection to expiry."""
    if ctx.invoked_subcommand is not None:
        return
    from branchenv import provision
    from branchenv.cost.budget import check_budget
    from branchenv.cost.estimate import collect_stack_costs
    from branchenv.cost.report import FORMATS, GROUPINGS, build_report, columns, table_rows
    from branchenv.cost.report import render as render_report
    from branchenv.errors import BudgetExceeded, UsageError

    fmt = "json" if as_json else fmt
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    if by not in GROUPINGS:
        raise UsageError(f"--by {by!r} is not one of {', '.join(GROUPINGS)}")
    if branch is not None and all_stacks:
        raise UsageError("pass either `--branch NAME` or `--all`, not both")
    settings = _settings(engine, max_hourly, max_total)
    engines = provision.engines_for_listing(settings, engine)
    stacks: list[str] | None = None
    branches: list[str] | None = None
    if not all_stacks:
        import os

        from branchenv.gitinfo import detect_branch
        from branchenv.naming import names_for

        info = detect_branch(branch, env=os.environ, cwd=settings.project_dir)
        stacks, branches = [names_for(info.name).stack], [info.name]
    costs = collect_stack_costs(settings, engines=engines, stacks=stacks, branches=branches)
    actuals, notes = _actuals(settings, target, costs) if actual else (None, ())
    report = build_report(costs, by=by, actuals=actuals, notes=notes)
    if not all_stacks and not costs:
        from branchenv.errors import StackNotFound

        assert branches is not None
        raise StackNotFound(
            f"no stack for branch {branches[0]!r} (stack {stacks[0] if stacks else '?'})",
            hint="`branchenv ls` lists the stacks there are; `branchenv cost --all` costs them all",
        )
    budget_error = None
    try:
        check_budget(costs, max_hourly=settings.max_hourly, max_total=settings.max_total)
    except BudgetExceeded as exc:
        budget_error = exc
    if fmt == "json":
        render.emit_json(_document(report), error=budget_error)
    elif fmt == "table":
        render.table(
            f"cost of {common.plural(len(costs), 'stack')} by {by} (USD)",
            columns(report),
            table_rows(report),
            abbreviate=("stack",),
        )
        common.notes(report.notes)
    else:
        typer.echo(render_report(report, fmt), nl=False)
    if budget_error is not None:
        raise budget_error


def _document(report: CostReport) -> dict[str, object]:
    """The report as the JSON envelope's result: every amount is money (a Decimal)."""

    def row(r: ReportRow) -> dict[str, object]:
        return {
            "key": r.key,
            report.by: r.key,
            "stacks": r.stacks,
            "hourly": r.hourly,
            "so_far": r.so_far,
            "projected_to_expiry": r.projected_to_expiry,
            "actual": r.actual,
            "unpriced_types": list(r.unpriced_types),
            "unavailable": r.unavailable,
        }

    return {
        "by": report.by,
        "currency": report.currency,
        "generated_at": report.generated_at,
        "rows": [row(r) for r in report.rows],
        "totals": row(report.totals),
        "idle_pool": row(report.idle_pool) if report.idle_pool is not None else None,
        "notes": list(report.notes),
    }


RegionOpt = option("--region", ["us-east-1", "eu-west-1"], default_help="to price; repeatable")
OutOpt = option("--out", default_help="the refreshed table; default: print it")


@cost_app.command("refresh-prices", epilog=epilog())
def refresh_prices(
    region: list[str] = RegionOpt,
    out: Path | None = OutOpt,
    as_json: bool = option("--json", False),
) -> None:
    """Re-read unit prices from the AWS Price List API (pricing:GetProducts, real AWS only)."""
    import json

    from branchenv.cost.prices import (
        load_prices,
        price_list_fetcher,
        refresh_prices,
        table_to_json,
    )
    from branchenv.targets import Target

    client = Target(name="aws", region="us-east-1").client("pricing")
    result = refresh_prices(load_prices(), regions=region, fetch=price_list_fetcher(client))
    document = json.dumps(table_to_json(result.table), indent=2) + "\n"
    summary = {
        "updated": list(result.updated),
        "unchanged": len(result.unchanged),
        "problems": list(result.problems),
        "out": str(out) if out else None,
    }
    if out is not None:
        out.write_text(document)
    if as_json:
        render.emit_json(summary if out else {**summary, "table": table_to_json(result.table)})
        return
    if out is None:
        typer.echo(document, nl=False)
    for line in result.updated:
        render.status(f"updated {line}")
    for line in result.problems:
        render.status(f"kept old price: {line}")
    render.status(
        f"{common.plural(len(result.updated), 'price')} updated, {len(result.unchanged)} "
        f"unchanged, {len(result.problems)} kept" + (f"; written to {out}" if out else "")
    )
