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
from branchenv.text import plural

if TYPE_CHECKING:
    from branchenv.pool.outcome import Refill
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
    account: str | None = None
    region: str | None = None


@dataclasses.dataclass(frozen=True)
class KeptRow:
    """A stack left alone, and why (protected, fresh, unmanaged, other-target)."""

    stack: str
    engine: str
    branch: str | None
    owner: str | None
    reasons: tuple[str, ...]
    why: str
    account: str | None = None
    region: str | None = None


@dataclasses.dataclass(frozen=True)
class OrphanRow:
    """A resource of an unknown stack. ``status``: planned | deleted | failed | skipped."""

    arn: str
    type: str
    stack: str
    status: str
    why: str
    account: str | None = None
    region: str | None = None


@dataclasses.dataclass(frozen=True)
class PairRow:
    """One (account, region) of an organisation-wide run: what it would do (dry run) or did
    there, and why. ``status``: planned | done | failed (``error`` says why)."""

    account: str
    region: str
    status: str
    stacks: int
    orphans: int
    what: str
    error: str | None = None
    hourly_cost: Decimal = Decimal(0)


@dataclasses.dataclass(frozen=True)
class AccountRow:
    """One account's totals: stacks and orphans reaped (to reap), failures, the cost
    reclaimed per hour (estimate, USD)."""

    account: str
    pairs: int
    failed_pairs: int
    stacks: int
    orphans: int
    hourly_cost: Decimal


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
    pairs: tuple[PairRow, ...] = ()
    """Every pair of an organisation-wide run, grouped by account then region."""
    accounts: tuple[AccountRow, ...] = ()
    refills: tuple[Refill, ...] = ()
    """Background refills started for pools whose claimed stacks were destroyed."""


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
                account=d.account,
                region=d.region,
            )
        )
    kept = [
        KeptRow(d.stack, d.engine, d.branch, d.owner, d.codes, d.reason_text(), d.account, d.region)
        for d in plan.kept
    ]
    orphans: list[OrphanRow] = []
    swept_by_arn = {s.arn: s for s in result.swept}
    for pp in plan.pairs:
        if pp.orphans is None:
            continue
        where = {"account": pp.pair.account, "region": pp.pair.region}
        for o in pp.orphans.orphans:
            s = swept_by_arn.get(o.arn)
            status = str(s.status) if s else "planned"
            why = s.error if s and s.error else f"stack {o.stack!r} is known to no engine"
            orphans.append(OrphanRow(o.arn, o.type, o.stack, status, why, **where))
        for k in pp.orphans.skipped:
            orphans.append(
                OrphanRow(k.arn, k.type, k.stack, "skipped", f"{k.reason}: {k.detail}", **where)
            )
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
    pairs, accounts = _pair_rows(result, reaped, orphans)
    if pairs:
        order = {(p.account, p.region): i for i, p in enumerate(pairs)}

        def rank(account: str | None, region: str | None) -> tuple[int, str, str]:
            return (
                order.get((account or "", region or ""), len(order)),
                account or "",
                region or "",
            )

        reaped.sort(key=lambda r: (*rank(r.account, r.region), r.stack))
        kept.sort(key=lambda k: (*rank(k.account, k.region), k.stack))
        orphans.sort(key=lambda o: (*rank(o.account, o.region), o.arn))
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
        pairs=pairs,
        accounts=accounts,
        refills=result.refills,
    )


_DONE = ("destroyed", "already-gone", "leaked")


def _pair_rows(
    result: ReapResult, reaped: list[ReapedRow], orphans: list[OrphanRow]
) -> tuple[tuple[PairRow, ...], tuple[AccountRow, ...]]:
    """Per pair: what it would do / did and why; per account: the totals and cost."""
    plan = result.plan
    if not plan.pairs:
        return (), ()
    errors = result.pair_errors()
    rows: list[PairRow] = []
    for pp in plan.pairs:  # the run's order: by account, then its regions
        key = (pp.pair.account, pp.pair.region)
        here = [r for r in reaped if (r.account, r.region) == key]
        mine = [o for o in orphans if (o.account, o.region) == key and o.status != "skipped"]
        skipped = sum(1 for o in orphans if (o.account, o.region) == key and o.status == "skipped")
        error = errors.get(key)
        if not result.acted:
            stacks = here
            gone = [o for o in mine if o.status == "planned"]
            verb, overb = "would destroy", "would delete"
        else:
            stacks = [r for r in here if r.status in _DONE]
            gone = [o for o in mine if o.status == "deleted"]
            verb, overb = "destroyed", "deleted"
        parts = []
        if stacks:
            parts.append(
                f"{verb} {plural(len(stacks), 'stack')}: "
                + ", ".join(f"{r.stack} ({', '.join(r.reasons)})" for r in stacks)
            )
        if pp.orphans is not None and gone:
            parts.append(f"{overb} {plural(len(gone), 'orphan')}")
        if skipped:
            parts.append(f"{plural(skipped, 'orphan')} skipped for safety")
        if error:
            parts.append(f"failed: {error}")
        elif not parts:
            parts.append(
                "nothing stale" + ("" if pp.orphans is not None else "; orphans not checked")
            )
        cost = sum((r.hourly_cost for r in stacks if r.hourly_cost is not None), Decimal(0))
        rows.append(
            PairRow(
                account=pp.pair.account,
                region=pp.pair.region,
                status="failed" if error else ("done" if result.acted else "planned"),
                stacks=len(stacks),
                orphans=len(gone),
                what="; ".join(parts),
                error=error,
                hourly_cost=cost,
            )
        )
    accounts: list[AccountRow] = []
    for account in dict.fromkeys(r.account for r in rows):
        mine_rows = [r for r in rows if r.account == account]
        accounts.append(
            AccountRow(
                account=account,
                pairs=len(mine_rows),
                failed_pairs=sum(1 for r in mine_rows if r.status == "failed"),
                stacks=sum(r.stacks for r in mine_rows),
                orphans=sum(r.orphans for r in mine_rows),
                hourly_cost=sum((r.hourly_cost for r in mine_rows), Decimal(0)),
            )
        )
    return tuple(rows), tuple(accounts)


def pair_columns(report: ReapReport) -> tuple[list[str], list[list[object]]]:
    """Headers and rows of the per-pair table (organisation-wide runs)."""
    headers = ["account", "region", "status", "stacks", "orphans", "$/h", "what and why"]
    rows: list[list[object]] = [
        [p.account, p.region, p.status, p.stacks, p.orphans, f"{p.hourly_cost:.4f}", p.what]
        for p in report.pairs
    ]
    return headers, rows


def account_columns(report: ReapReport) -> tuple[list[str], list[list[object]]]:
    """Headers and rows of the per-account totals, with the cost reclaimed per account."""
    verb = "to reclaim" if report.dry_run else "reclaimed"
    headers = ["account", "pairs", "failed pairs", "stacks", "orphans", f"$/h {verb}"]
    rows: list[list[object]] = [
        [a.account, a.pairs, a.failed_pairs, a.stacks, a.orphans, f"{a.hourly_cost:.4f}"]
        for a in report.accounts
    ]
    return headers, rows


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
    where = bool(report.pairs)
    if where:
        headers = ["account", "region", *headers]
    rows: list[list[object]] = [
        [
            *([r.account, r.region] if where else []),
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
    where = bool(report.pairs)
    if where:
        headers = ["account", "region", *headers]
    rows: list[list[object]] = [
        [
            *([k.account, k.region] if where else []),
            k.stack,
            k.branch or "(unmanaged)",
            k.owner,
            k.why,
        ]
        for k in report.kept
    ]
    return headers, rows


def orphan_columns(report: ReapReport) -> tuple[list[str], list[list[object]]]:
    headers = ["type", "arn", "stack", "status", "why"]
    where = bool(report.pairs)
    if where:
        headers = ["account", "region", *headers]
    rows: list[list[object]] = [
        [*([o.account, o.region] if where else []), o.type, o.arn, o.stack, o.status, o.why]
        for o in report.orphans
    ]
    return headers, rows


def summary_line(report: ReapReport) -> str:
    """One line: counts of reaped, kept and orphans."""
    verb = "to reap" if report.dry_run else "reaped"
    done = sum(1 for r in report.reaped if r.status in ("destroyed", "already-gone", "released"))
    count = len(report.reaped) if report.dry_run else done
    text = f"{plural(count, 'stack')} {verb}, {len(report.kept)} kept"
    if report.orphans_checked:
        planned = sum(1 for o in report.orphans if o.status in ("planned", "deleted"))
        skipped = sum(1 for o in report.orphans if o.status == "skipped")
        text += f", {plural(planned, 'orphan')} {'to delete' if report.dry_run else 'deleted'}"
        text += f", {skipped} skipped"
    if report.pairs:
        bad = sum(1 for p in report.pairs if p.status == "failed")
        text += f" in {plural(len(report.pairs), 'account/region pair')}"
        if bad:
            text += f" ({plural(bad, 'pair')} failed)"
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
    if report.pairs:
        lines += ["### By account", ""]
        headers, rows = account_columns(report)
        lines += [*_md_table(headers, rows), ""]
        lines += ["### By account and region", ""]
        headers, rows = pair_columns(report)
        lines += [*_md_table(headers, rows), ""]
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
