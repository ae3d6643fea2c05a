"""Cost reports: estimates (and actuals) grouped per stack, branch or owner, with totals, as
rows for a table, JSON, CSV or Markdown (ready to paste as a pull-request comment).

Figures keep full precision in the report; rendering rounds them (cents; the hourly rate to
four places, since a branch stack burns fractions of a cent per hour).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from branchenv.cost.actual import ACTIVATION_HINT
from branchenv.cost.budget import money
from branchenv.cost.estimate import StackCost
from branchenv.cost.prices import plain
from branchenv.text import plural

GROUPINGS = ("stack", "branch", "owner", "account", "region")
FORMATS = ("table", "json", "csv", "markdown")
_UNKNOWN = "(unknown)"
IDLE_POOL_KEY = "of which idle pool"
"""The key of the row after the totals: the free warm-pool stacks' share of them."""


@dataclasses.dataclass(frozen=True)
class ReportRow:
    """One group (or the totals): how many stacks, their burn, cost so far and projection."""

    key: str
    stacks: int
    hourly: Decimal
    so_far: Decimal
    projected_to_expiry: Decimal
    actual: Decimal | None
    unpriced_types: tuple[str, ...]
    unavailable: int  # stacks whose inventory could not be read


@dataclasses.dataclass(frozen=True)
class CostReport:
    by: str
    rows: tuple[ReportRow, ...]
    totals: ReportRow
    currency: str
    generated_at: dt.datetime
    notes: tuple[str, ...] = ()
    idle_pool: ReportRow | None = None
    """The free warm-pool stacks among the report's (kept ready, held by no branch): the
    pool's idle burn rate, already counted in the totals; None when there are none."""


def _key(cost: StackCost, by: str) -> str:
    if by == "stack":
        return cost.stack
    if by == "branch":
        return cost.branch or _UNKNOWN
    if by == "account":
        return cost.account or _UNKNOWN
    if by == "region":
        # Grouped per account too: the same region of two accounts is two bills.
        return f"{cost.account or _UNKNOWN}/{cost.region or _UNKNOWN}"
    return cost.owner or _UNKNOWN


def _combine(
    key: str, costs: Sequence[StackCost], actuals: Mapping[str, Decimal] | None
) -> ReportRow:
    zero = Decimal(0)
    actual: Decimal | None = None
    if actuals is not None:
        known = [actuals[c.stack] for c in costs if c.stack in actuals]
        # No figure is not a zero: Cost Explorer may simply not have the tag yet.
        actual = sum(known, zero) if known else None
    return ReportRow(
        key=key,
        stacks=len(costs),
        hourly=sum((c.hourly for c in costs), zero),
        so_far=sum((c.so_far for c in costs), zero),
        projected_to_expiry=sum((c.projected_to_expiry for c in costs), zero),
        actual=actual,
        unpriced_types=tuple(sorted({t for c in costs for t in c.unpriced_types})),
        unavailable=sum(1 for c in costs if not c.inventory_available),
    )


def build_report(
    costs: Sequence[StackCost],
    *,
    by: str = "stack",
    actuals: Mapping[str, Decimal] | None = None,
    currency: str = "USD",
    now: dt.datetime | None = None,
    notes: Sequence[str] = (),
) -> CostReport:
    """Group ``costs`` by ``by`` (stack | branch | owner | account | region: account/region),
    most expensive burn first (pure)."""
    if by not in GROUPINGS:
        from branchenv.errors import UsageError

        raise UsageError(f"unknown grouping {by!r}; use `--by` with one of {', '.join(GROUPINGS)}")
    groups: dict[str, list[StackCost]] = {}
    for cost in costs:
        groups.setdefault(_key(cost, by), []).append(cost)
    rows = [_combine(k, v, actuals) for k, v in groups.items()]
    rows.sort(key=lambda r: (-r.hourly, r.key))
    all_notes = list(notes)
    for cost in costs:
        if cost.note and not cost.inventory_available:
            all_notes.append(f"{cost.stack}: {cost.note}")
    if actuals is not None:
        missing = sorted(c.stack for c in costs if c.stack not in actuals)
        if missing:
            # the activation advice, when Cost Explorer had nothing at all, is given once
            why = (
                ""
                if ACTIVATION_HINT in notes
                else ": cost-allocation tags take up to ~24 h to appear"
            )
            all_notes.append(
                "no Cost Explorer figures for "
                + ", ".join(missing)
                + f" (shown as n/a, not zero{why})"
            )
    idle = [c for c in costs if c.pool_idle]
    return CostReport(
        by=by,
        rows=tuple(rows),
        totals=_combine("total", costs, actuals),
        currency=currency,
        generated_at=now or dt.datetime.now(dt.UTC),
        notes=tuple(all_notes),
        idle_pool=_combine(IDLE_POOL_KEY, idle, actuals) if idle else None,
    )


# --- rendering ----------------------------------------------------------------------------------


def columns(report: CostReport) -> list[str]:
    cols = [report.by, "stacks", "hourly", "so far", "projected to expiry"]
    if report.totals.actual is not None:
        cols.append("actual")
    cols.append("unpriced")
    return cols


def cells(report: CostReport, row: ReportRow) -> list[str]:
    """One row as display strings (rounded here, and only here)."""
    out = [
        row.key,
        str(row.stacks),
        money(row.hourly, 4),
        money(row.so_far),
        money(row.projected_to_expiry),
    ]
    if report.totals.actual is not None:
        out.append(money(row.actual) if row.actual is not None else "n/a")
    extra = list(row.unpriced_types)
    if row.unavailable:
        extra.append(f"{plural(row.unavailable, 'stack')} without inventory")
    out.append(", ".join(extra))
    return out


def table_rows(report: CostReport) -> list[list[str]]:
    """Rows for a rich table: every group, the totals, then the idle pool's share of them."""
    rows = [cells(report, r) for r in report.rows] + [cells(report, report.totals)]
    if report.idle_pool is not None:
        rows.append(cells(report, report.idle_pool))
    return rows


def to_json(report: CostReport) -> dict[str, Any]:
    """The report as JSON-ready data; amounts as full-precision strings."""

    def row(r: ReportRow) -> dict[str, Any]:
        return {
            report.by if r is not report.totals else "key": r.key,
            "stacks": r.stacks,
            "hourly": plain(r.hourly),
            "so_far": plain(r.so_far),
            "projected_to_expiry": plain(r.projected_to_expiry),
            "actual": plain(r.actual) if r.actual is not None else None,
            "unpriced_types": list(r.unpriced_types),
            "unavailable": r.unavailable,
        }

    return {
        "by": report.by,
        "currency": report.currency,
        "generated_at": report.generated_at.isoformat(),
        "rows": [row(r) for r in report.rows],
        "totals": row(report.totals),
        "idle_pool": row(report.idle_pool) if report.idle_pool is not None else None,
        "notes": list(report.notes),
    }


def to_csv(report: CostReport) -> str:
    """The report as CSV, a header line then one line per group, then ``total``."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([c.replace(" ", "_") for c in columns(report)])
    writer.writerows(table_rows(report))
    return buf.getvalue()


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(report: CostReport) -> str:
    """A Markdown table with a heading and notes, ready to paste as a PR comment."""
    cols = columns(report)
    right = {"stacks", "hourly", "so far", "projected to expiry", "actual"}
    lines = [
        f"### branchenv cost by {report.by} ({report.currency})",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "|".join("---:" if c in right else "---" for c in cols) + "|",
    ]
    for r in report.rows:
        lines.append("| " + " | ".join(_md_cell(c) for c in cells(report, r)) + " |")
    total = cells(report, report.totals)
    total[0] = f"**{total[0]}**"
    lines.append("| " + " | ".join(_md_cell(c) for c in total) + " |")
    if report.idle_pool is not None:
        idle = cells(report, report.idle_pool)
        idle[0] = f"_{idle[0]}_"
        lines.append("| " + " | ".join(_md_cell(c) for c in idle) + " |")
    lines.append("")
    lines.append(
        "_Estimates: list prices x usage assumptions per hour (see `branchenv cost --help`); "
        "hourly to 4 places, amounts to cents._"
    )
    for note in report.notes:
        lines.append(f"- {_md_cell(note)}")
    return "\n".join(lines) + "\n"


def render(report: CostReport, fmt: str) -> str:
    """The report as text in ``fmt`` (json | csv | markdown); ``table`` is drawn by the CLI."""
    if fmt == "json":
        import json

        return json.dumps(to_json(report), indent=2) + "\n"
    if fmt == "csv":
        return to_csv(report)
    if fmt == "markdown":
        return to_markdown(report)
    from branchenv.errors import UsageError

    raise UsageError(f"unknown format {fmt!r}; use `--format` with one of {', '.join(FORMATS)}")
