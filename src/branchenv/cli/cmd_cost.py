"""`branchenv cost`: what branch stacks cost (estimate, and actual from Cost Explorer), budget
gates, and `branchenv cost refresh-prices`."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from branchenv.cli import render
from branchenv.engines import engine_choices

if TYPE_CHECKING:
    from branchenv.config import Settings
    from branchenv.cost.estimate import StackCost

app = typer.Typer()
cost_app = typer.Typer(
    help=(
        "What branch stacks cost: inventory x unit prices x hours alive (prices and usage "
        "assumptions in branchenv/cost/prices.json), actuals from Cost Explorer (--actual), "
        "and budget gates (--max-hourly, --max-total; exit 1 when over)."
    ),
    invoke_without_command=True,
)
app.add_typer(cost_app, name="cost")


def _settings(engine: str | None, max_hourly: str | None, max_total: str | None) -> Settings:
    from branchenv.config import load_settings

    return load_settings(
        overrides={"engine": engine, "max_hourly": max_hourly, "max_total": max_total},
        flag_names={
            "engine": "--engine",
            "max_hourly": "--max-hourly",
            "max_total": "--max-total",
        },
    )


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
        render.status(f"note: {result.note}")
    # What Cost Explorer said (tag activation, ...) goes into the report's notes too.
    return dict(result.by_stack), ((result.note,) if result.note else ())


@cost_app.callback()
def cost(
    ctx: typer.Context,
    branch: str | None = typer.Option(
        None, "--branch", "-b", help="Only this branch's stack (default: the current branch)."
    ),
    all_stacks: bool = typer.Option(False, "--all", help="Every stack the engines know."),
    by: str = typer.Option(
        "stack",
        "--by",
        help="Group by: stack | branch | owner | account | region (account/region).",
    ),
    fmt: str = typer.Option("table", "--format", "-f", help="table | json | csv | markdown."),
    as_json: bool = typer.Option(False, "--json", help="Same as --format json."),
    actual: bool = typer.Option(
        False, "--actual", help="Add actual cost from Cost Explorer (the branchenv:stack tag)."
    ),
    target: str | None = typer.Option(
        None, "--target", "-t", help="Where Cost Explorer is asked with --actual: local | aws."
    ),
    engine: str | None = typer.Option(
        None, "--engine", "-e", help=f"{engine_choices()} (default: every engine that runs here)."
    ),
    max_hourly: str | None = typer.Option(
        None, "--max-hourly", help="Fail (exit 1) when a stack burns more USD/hour than this."
    ),
    max_total: str | None = typer.Option(
        None,
        "--max-total",
        help="Fail (exit 1) when a stack's projected cost to expiry exceeds this (USD).",
    ),
) -> None:
    """Estimated cost of branch stacks: hourly burn, cost so far, projection to expiry."""
    if ctx.invoked_subcommand is not None:
        return
    from branchenv import provision
    from branchenv.cost.budget import check_budget
    from branchenv.cost.estimate import collect_stack_costs
    from branchenv.cost.report import FORMATS, GROUPINGS, build_report, columns, table_rows
    from branchenv.cost.report import render as render_report
    from branchenv.errors import UsageError

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
    if fmt == "table":
        render.table(
            f"cost of {len(costs)} stack(s) by {by} (USD)", columns(report), table_rows(report)
        )
        for note in report.notes:
            render.status(f"note: {note}")
    else:
        typer.echo(render_report(report, fmt), nl=False)
    check_budget(costs, max_hourly=settings.max_hourly, max_total=settings.max_total)


RegionOpt = typer.Option(
    ["us-east-1", "eu-west-1"], "--region", "-r", help="Region to price (repeatable)."
)
OutOpt = typer.Option(
    None, "--out", "-o", help="Write the refreshed table here (default: print it)."
)


@cost_app.command("refresh-prices")
def refresh_prices(
    region: list[str] = RegionOpt,
    out: Path | None = OutOpt,
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
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
        f"{len(result.updated)} price(s) updated, {len(result.unchanged)} unchanged, "
        f"{len(result.problems)} kept" + (f"; written to {out}" if out else "")
    )
