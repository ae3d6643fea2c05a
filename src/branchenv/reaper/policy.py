"""The staleness policy: which stacks the reaper destroys and why. A pure function over plain
data (stack summaries, the time, the remote's branches, the policy's settings).

Every stack gets one :class:`Decision`. A stack is *kept* when any keep rule holds (it needs
attention, no managed marker, a protected name or branch, another target), whatever its age; otherwise it is *reaped*
when any reap rule holds (expired TTL, branch deleted from the remote, idle, older than the
maximum age, an earlier teardown left it reap-pending), and kept as *fresh* when none does.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Iterable
from typing import TYPE_CHECKING

from branchenv.metadata import format_duration, parse_timestamp, parse_ttl
from branchenv.safety import protected_match

if TYPE_CHECKING:
    from branchenv.config import Settings
    from branchenv.engines.base import StackSummary


class Reason(enum.StrEnum):
    """Why a stack is reaped."""

    EXPIRED = "expired"
    BRANCH_DELETED = "branch-deleted"
    IDLE = "idle"
    MAX_AGE = "max-age"
    REAP_PENDING = "reap-pending"


class KeepReason(enum.StrEnum):
    """Why a stack is kept."""

    UNMANAGED = "unmanaged"
    ATTENTION = "needs-attention"
    PROTECTED = "protected"
    OTHER_TARGET = "other-target"
    OUT_OF_SCOPE = "out-of-scope"
    """Lives in an (account, region) this run does not reap (organisation-wide runs)."""
    FRESH = "fresh"


class Action(enum.StrEnum):
    REAP = "reap"
    KEEP = "keep"


@dataclasses.dataclass(frozen=True)
class Because:
    """One reason with its detail for people (``expired 3h 2m ago``)."""

    code: str
    detail: str


@dataclasses.dataclass(frozen=True)
class ReapPolicy:
    """The policy's settings. ``target``: only stacks made for this target may be reaped."""

    protected_patterns: tuple[str, ...] = ("prod*", "production*", "staging*", "main", "master")
    idle_after: dt.timedelta | None = None
    max_age: dt.timedelta | None = None
    target: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, target: str | None = None) -> ReapPolicy:
        """The policy of a project's settings (``idle_after``/``max_age`` parsed)."""
        return cls(
            protected_patterns=tuple(settings.protected_patterns),
            idle_after=parse_ttl(settings.idle_after) if settings.idle_after else None,
            max_age=parse_ttl(settings.max_age) if settings.max_age else None,
            target=target,
        )


@dataclasses.dataclass(frozen=True)
class Decision:
    """What the policy decided for one stack, with every reason that applied."""

    stack: str
    action: Action
    reasons: tuple[Because, ...]
    branch: str | None
    owner: str | None
    created_at: dt.datetime | None
    age_s: float | None
    resource_count: int | None
    engine: str = ""
    program: str = "default"
    account: str | None = None
    """The account the stack lives in (organisation-wide runs; None: unknown or one pair)."""
    region: str | None = None

    @property
    def reap(self) -> bool:
        return self.action is Action.REAP

    @property
    def key(self) -> tuple[str, str, str]:
        """(engine, program, stack): one stack among every listing of a run."""
        return (self.engine, self.program, self.stack)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(b.code for b in self.reasons)

    def reason_text(self) -> str:
        """Every reason's detail, joined for a table cell."""
        return "; ".join(b.detail for b in self.reasons)


def _last_update(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return parse_timestamp(text)
    except ValueError:
        return None


def decide(
    stacks: Iterable[StackSummary],
    *,
    now: dt.datetime,
    remote_branches: set[str] | frozenset[str] | None,
    config: ReapPolicy,
) -> list[Decision]:
    """One decision per stack, in the order given.

    ``remote_branches`` None means the remote was not checked: no stack is reaped for a
    deleted branch then. A branch whose tag was truncated (it ends with ``…``) is never judged
    deleted, since its full name is unknown.
    """
    decisions: list[Decision] = []
    for summary in stacks:
        md = summary.metadata
        keep: list[Because] = []
        if summary.attention:
            # Unreadable or newer state: what it holds is unknown, so it is never reaped.
            keep.append(Because(KeepReason.ATTENTION, f"needs attention: {summary.attention}"))
        elif md is None:
            keep.append(Because(KeepReason.UNMANAGED, "no branchenv:managed-by marker"))
        pattern = protected_match(
            config.protected_patterns, summary.stack, md.branch if md else None
        )
        if pattern is not None:
            keep.append(Because(KeepReason.PROTECTED, f"matches protected pattern {pattern!r}"))
        if md is not None and config.target is not None and md.target != config.target:
            keep.append(
                Because(
                    KeepReason.OTHER_TARGET,
                    f"made for target {md.target!r}, this run reaps {config.target!r}",
                )
            )
        reap: list[Because] = []
        # A free warm-pool stack has no branch of its own and sits idle by design: only its
        # TTL (pool_ttl, renewed on each release) and the reap-pending mark apply to it.
        free_in_pool = md is not None and md.pool is not None and md.claimed_by is None
        if md is not None and not keep:
            if md.expired(now):
                ago = format_duration(now - md.expires_at)
                reap.append(Because(Reason.EXPIRED, f"TTL expired {ago} ago"))
            branch = md.claimed_by if md.pool is not None else md.branch
            if (
                remote_branches is not None
                and branch is not None
                and not branch.endswith("…")
                and branch not in remote_branches
            ):
                reap.append(
                    Because(Reason.BRANCH_DELETED, f"branch {branch!r} is gone from the remote")
                )
            if config.idle_after is not None and not free_in_pool:
                updated = _last_update(summary.last_update) or md.created_at
                if now - updated >= config.idle_after:
                    reap.append(
                        Because(Reason.IDLE, f"no update for {format_duration(now - updated)}")
                    )
            if config.max_age is not None and not free_in_pool and md.age(now) >= config.max_age:
                reap.append(
                    Because(
                        Reason.MAX_AGE,
                        f"{format_duration(md.age(now))} old, max age "
                        f"{format_duration(config.max_age)}",
                    )
                )
            if md.reap_pending:
                reap.append(Because(Reason.REAP_PENDING, "an earlier teardown did not finish"))
            if not reap:
                keep.append(
                    Because(KeepReason.FRESH, f"expires in {format_duration(md.expires_in(now))}")
                )
        decisions.append(
            Decision(
                stack=summary.stack,
                action=Action.REAP if reap else Action.KEEP,
                reasons=tuple(reap or keep),
                branch=md.branch if md else None,
                owner=md.owner if md else None,
                created_at=md.created_at if md else None,
                age_s=md.age(now).total_seconds() if md else None,
                resource_count=summary.resource_count,
            )
        )
    return decisions
