"""The reaper's report: what was (or would be) reaped and why, what was kept and why, and the
orphan sweep, as one frozen value rendered as JSON, Markdown or tables (by the CLI).

``hourly_cost`` on each reaped stack is the cost reclaimed per hour, estimated from the stack's
inventory before it was destroyed (:mod:`branchenv.cost.estimate`); None where the engine could
not list the stack's resources.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING

from branchenv.metadata import format_duration, format_timestamp

if TYPE_CHECKING:
    from branchenv.reaper.run import ReapResult


@dataclasses.dataclass(frozen=True)
class ReapedRow:
    """A stack reaped (or, in a dry run, to be reaped). ``status``: planned | destroyed |
    already-gone | failed | leaked (``leaked``: what still carries its tag after teardown)."""

    stack: str
    engine: str
    branch: str | None
    owner: str | None
    reasons: tuple[str, ...]
    why: str
    age_s: float | None
    age: str
    resource_count: int | None
    status: str
    attempts: int = 0
    error: str | None = None
    hourly_cost: Decimal | None = None
    program: str = "default"
    """Cost reclaimed per hour, in USD (estimate); None when the inventory was unavailable."""
    leaked: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class KeptRow:
    """A stack left alone, and why (protected, fresh, unmanaged, other-target)."""

    stack: str
    engine: str
    branch: str | None
    owner: str | None
    reasons: tuple[str, ...]
    why: str


@dataclasses.dataclass(frozen=True)
class OrphanRow:
    """A resource of an unknown stack. ``status``: planned | deleted | failed | skipped."""

    arn: str
    type: str
    stack: str
    status: str
    why: str


@dataclasses.dataclass(frozen=True)
class ReapReport:
    generated_at: str
    dry_run: bool
    target: str
    engines: tuple[str, ...]
    remote: str | None
    max_reap: int
    refusal: str | None
    reaped: tuple[ReapedRow, ...]
    kept: tuple[KeptRow, ...]
    orphans_checked: bool
    orphans: tuple[OrphanRow, ...]
    failed: int
    next_step: str | None
    leaked: int = 0
    """Resources still carrying a reaped stack's tag after its teardown (the leak check)."""


def build_report(result: ReapResult) -> ReapReport:
    """The report of a run (a dry run when ``result.acted`` is false)."""
    plan = result.plan
    outcomes = {(o.engine, o.program, o.stack): o for o in result.outcomes}
    reaped = []
    for d in plan.candidates:
        outcome = outcomes.get(d.key)
        reaped.append(
            ReapedRow(
                stack=d.stack,
                engine=d.engine,
                branch=d.branch,
                owner=d.owner,
                reasons=d.codes,
                why=d.reason_text(),
                age_s=d.age_s,
                age=format_duration(dt.timedelta(seconds=d.age_s)) if d.age_s is not None else "",
                resource_count=d.resource_count,
                status=str(outcome.status) if outcome else "planned",
                attempts=outcome.attempts if outcome else 0,
                error=outcome.error if outcome else None,
                hourly_cost=plan.hourly_cost.get(d.key),
                program=d.program,
                leaked=outcome.leaked if outcome else (),
            )
        )
    kept = [
        KeptRow(d.stack, d.engine, d.branch, d.owner, d.codes, d.reason_text()) for d in plan.kept
    ]
    orphans: list[OrphanRow] = []
    if plan.orphans is not None:
        swept = {s.arn: s for s in result.swept}
        for o in plan.orphans.orphans:
            s = swept.get(o.arn)
            status = str(s.status) if s else "planned"
            why = s.error if s and s.error else f"stack {o.stack!r} is known to no engine"
            orphans.append(OrphanRow(o.arn, o.type, o.stack, status, why))
        for k in plan.orphans.skipped:
            orphans.append(OrphanRow(k.arn, k.type, k.stack, "skipped", f"{k.reason}: {k.detail}"))
    refusal = plan.refusal()
    next_step = None
    if not result.acted:
        if refusal:
            next_step = refusal
        elif plan.candidates or any(o.status == "planned" for o in orphans):
            next_step = "dry run: nothing was destroyed; re-run with `--yes` to act"
    elif any(r.leaked for r in reaped):
        next_step = (
            "some reaped stacks left resources carrying their tag (see the report): delete "
            "them, or sweep them with `branchenv reap --orphans --yes` once past its grace"
        )
    elif result.failed:
        next_step = "some deletions failed; fix the cause and re-run `branchenv reap --yes`"
    return ReapReport(
        generated_at=format_timestamp(plan.now),
        dry_run=not result.acted,
        target=plan.target,
        engines=plan.engines,
        remote=plan.remote,
        max_reap=plan.max_reap,
        refusal=refusal,
        reaped=tuple(reaped),
        kept=tuple(kept),
        orphans_checked=plan.orphans is not None,
        orphans=tuple(orphans),
        failed=result.failed,
        next_step=next_step,
        leaked=sum(len(r.leaked) for r in reaped),
    )


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(headers: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def reaped_columns(report: ReapReport) -> tuple[list[str], list[list[object]]]:
    """Headers and rows of the reaped-stacks table (shared by Markdown and rich tables)."""
    headers = ["stack", "branch", "owner", "age", "resources", "$/h", "why", "status"]
    rows: list[list[object]] = [
        [
            r.stack,
            r.branch,
            r.owner,
            r.age,
            r.resource_count,
            "n/a" if r.hourly_cost is None else f"{r.hourly_cost:.4f}",
            r.why,
            r.status + (f" ({r.error})" if r.error else ""),
        ]
        for r in report.reaped
    ]
    return headers, rows


def kept_columns(report: ReapReport) -> tuple[list[str], list[list[object]]]:
    headers = ["stack", "branch", "owner", "kept because"]
    rows: list[list[object]] = [
        [k.stack, k.branch or "(unmanaged)", k.owner, k.why] for k in report.kept
    ]
    return headers, rows


def orphan_columns(report: ReapReport) -> tuple[list[str], list[list[object]]]:
    headers = ["type", "arn", "stack", "status", "why"]
    rows: list[list[object]] = [[o.type, o.arn, o.stack, o.status, o.why] for o in report.orphans]
    return headers, rows


def summary_line(report: ReapReport) -> str:
    """One line: counts of reaped, kept and orphans."""
    verb = "to reap" if report.dry_run else "reaped"
    done = sum(1 for r in report.reaped if r.status in ("destroyed", "already-gone"))
    count = len(report.reaped) if report.dry_run else done
    text = f"{count} stack(s) {verb}, {len(report.kept)} kept"
    if report.orphans_checked:
        planned = sum(1 for o in report.orphans if o.status in ("planned", "deleted"))
        skipped = sum(1 for o in report.orphans if o.status == "skipped")
        text += f", {planned} orphan(s) {'to delete' if report.dry_run else 'deleted'}"
        text += f", {skipped} skipped"
    if report.failed:
        text += f", {report.failed} failed"
    if not report.dry_run:
        text += f", leaked: {report.leaked}"
    reclaimed = reclaimed_hourly(report)
    if reclaimed:
        text += f"; burn rate {'to reclaim' if report.dry_run else 'reclaimed'} ${reclaimed:.4f}/h"
    return text


def reclaimed_hourly(report: ReapReport) -> Decimal:
    """USD/h no longer spent once the reaped stacks are gone (planned ones, in a dry run)."""
    done = ("planned",) if report.dry_run else ("destroyed", "already-gone")
    return sum(
        (r.hourly_cost for r in report.reaped if r.hourly_cost is not None and r.status in done),
        Decimal(0),
    )


def to_markdown(report: ReapReport) -> str:
    """The report as GitHub-flavoured Markdown (for a job summary or an issue comment)."""
    title = "branchenv reap (dry run)" if report.dry_run else "branchenv reap"
    lines = [f"## {title}", ""]
    lines.append(
        f"{report.generated_at} · target `{report.target}` · engines "
        f"{', '.join(report.engines) or 'none'} · remote "
        f"{f'`{report.remote}`' if report.remote else 'not checked'}"
    )
    lines += ["", f"**{summary_line(report)}**", ""]
    if report.refusal:
        lines += [f"> refused: {report.refusal}", ""]
    lines += ["### Reaped" if not report.dry_run else "### To reap", ""]
    headers, rows = reaped_columns(report)
    lines += [*_md_table(headers, rows), ""] if rows else ["(none)", ""]
    lines += ["### Kept", ""]
    headers, rows = kept_columns(report)
    lines += [*_md_table(headers, rows), ""] if rows else ["(none)", ""]
    if report.orphans_checked:
        lines += ["### Orphaned resources", ""]
        headers, rows = orphan_columns(report)
        lines += [*_md_table(headers, rows), ""] if rows else ["(none)", ""]
    if report.next_step:
        lines += [f"_{report.next_step}_", ""]
    return "\n".join(lines)
