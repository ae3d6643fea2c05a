"""The staleness policy: table-driven cases over plain data, plus properties."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from branchenv.config import Settings
from branchenv.engines.base import StackSummary
from branchenv.metadata import StackMetadata, format_timestamp
from branchenv.reaper.policy import Action, ReapPolicy, decide
from branchenv.safety import protected_match

NOW = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
D = dt.timedelta(days=1)
POLICY = ReapPolicy(target="local")


def summary(
    stack: str = "feature-x-1234abcd",
    *,
    branch: str = "feature/x",
    age: dt.timedelta = 2 * H,
    ttl: dt.timedelta = 24 * H,
    managed: bool = True,
    reap_pending: bool = False,
    target: str = "local",
    idle_for: dt.timedelta | None = None,
) -> StackSummary:
    md = StackMetadata.create(
        stack=stack,
        branch=branch,
        owner="jane@example.com",
        commit="abc1234",
        ttl=ttl,
        now=NOW - age,
        target=target,  # type: ignore[arg-type]
        engine="inprocess",
    )
    md = dataclasses.replace(md, managed=managed, reap_pending=reap_pending)
    tags = md.to_tags()
    last = format_timestamp(NOW - (idle_for if idle_for is not None else age))
    return StackSummary(
        stack=stack,
        metadata=StackMetadata.from_tags(tags),
        resource_count=18,
        last_update=last,
        tags=tags,
    )


CASES = [
    # id, summary, remote branches, policy, expected action, expected codes
    ("fresh", summary(), None, POLICY, Action.KEEP, ("fresh",)),
    ("expired", summary(age=25 * H), None, POLICY, Action.REAP, ("expired",)),
    ("expires-exactly-now", summary(age=24 * H), None, POLICY, Action.REAP, ("expired",)),
    (
        "one-second-left",
        summary(age=24 * H - dt.timedelta(seconds=1)),
        None,
        POLICY,
        Action.KEEP,
        ("fresh",),
    ),
    ("branch-deleted", summary(), {"main", "other"}, POLICY, Action.REAP, ("branch-deleted",)),
    ("branch-present", summary(), {"main", "feature/x"}, POLICY, Action.KEEP, ("fresh",)),
    ("remote-not-checked", summary(), None, POLICY, Action.KEEP, ("fresh",)),
    (
        "truncated-branch-never-judged",
        summary(branch="x" * 300),
        set(),
        POLICY,
        Action.KEEP,
        ("fresh",),
    ),
    (
        "idle",
        summary(age=3 * D, ttl=7 * D, idle_for=2 * D),
        None,
        ReapPolicy(idle_after=D, target="local"),
        Action.REAP,
        ("idle",),
    ),
    (
        "not-idle",
        summary(age=3 * D, ttl=7 * D, idle_for=H),
        None,
        ReapPolicy(idle_after=D, target="local"),
        Action.KEEP,
        ("fresh",),
    ),
    (
        "max-age",
        summary(age=10 * D, ttl=30 * D),
        None,
        ReapPolicy(max_age=7 * D, target="local"),
        Action.REAP,
        ("max-age",),
    ),
    (
        "under-max-age",
        summary(age=6 * D, ttl=30 * D),
        None,
        ReapPolicy(max_age=7 * D, target="local"),
        Action.KEEP,
        ("fresh",),
    ),
    ("reap-pending", summary(reap_pending=True), None, POLICY, Action.REAP, ("reap-pending",)),
    (
        "several-reasons",
        summary(age=25 * H, reap_pending=True),
        set(),
        POLICY,
        Action.REAP,
        ("expired", "branch-deleted", "reap-pending"),
    ),
    (
        "unmanaged-even-if-old",
        summary(age=99 * D, managed=False),
        set(),
        POLICY,
        Action.KEEP,
        ("unmanaged",),
    ),
    (
        "protected-stack-name",
        summary("production-eu", age=99 * D),
        set(),
        POLICY,
        Action.KEEP,
        ("protected",),
    ),
    (
        "protected-branch",
        summary("main-0a1b2c3d", branch="main", age=99 * D),
        set(),
        POLICY,
        Action.KEEP,
        ("protected",),
    ),
    (
        "protected-case-insensitive",
        summary("Staging-2", branch="Staging/2", age=99 * D),
        None,
        POLICY,
        Action.KEEP,
        ("protected",),
    ),
    (
        "protected-and-unmanaged",
        summary("prod", managed=False),
        None,
        POLICY,
        Action.KEEP,
        ("unmanaged", "protected"),
    ),
    (
        "custom-patterns",
        summary("feature-x-1234abcd", age=99 * D),
        None,
        ReapPolicy(protected_patterns=("feature-*",), target="local"),
        Action.KEEP,
        ("protected",),
    ),
    (
        "other-target",
        summary(age=99 * D, target="aws"),
        None,
        POLICY,
        Action.KEEP,
        ("other-target",),
    ),
    (
        "any-target-when-unset",
        summary(age=99 * D, target="aws"),
        None,
        ReapPolicy(),
        Action.REAP,
        ("expired",),
    ),
]


@pytest.mark.parametrize(
    ("stack", "remote", "policy", "action", "codes"),
    [pytest.param(*c[1:], id=c[0]) for c in CASES],
)
def test_decide(
    stack: StackSummary,
    remote: set[str] | None,
    policy: ReapPolicy,
    action: Action,
    codes: tuple[str, ...],
) -> None:
    [decision] = decide([stack], now=NOW, remote_branches=remote, config=policy)
    assert decision.action is action
    assert decision.codes == codes
    assert decision.stack == stack.stack
    assert all(b.detail for b in decision.reasons)


def test_details_say_how_long() -> None:
    [d] = decide([summary(age=27 * H)], now=NOW, remote_branches=None, config=POLICY)
    assert d.reason_text() == "TTL expired 3h ago"
    [k] = decide([summary(age=20 * H)], now=NOW, remote_branches=None, config=POLICY)
    assert k.reason_text() == "expires in 4h"


def test_order_and_fields_preserved() -> None:
    stacks = [summary("a-1", age=25 * H), summary("b-2"), summary("c-3", managed=False)]
    decisions = decide(stacks, now=NOW, remote_branches=None, config=POLICY)
    assert [d.stack for d in decisions] == ["a-1", "b-2", "c-3"]
    assert decisions[0].owner == "jane@example.com"
    assert decisions[0].age_s == 25 * 3600
    assert decisions[2].branch is None and decisions[2].age_s is None


def test_from_settings() -> None:
    settings = Settings(project_dir=Path("/nonexistent"), idle_after="2d", max_age="1w")
    policy = ReapPolicy.from_settings(settings, target="aws")
    assert policy.idle_after == 2 * D
    assert policy.max_age == 7 * D
    assert policy.target == "aws"
    assert "prod*" in policy.protected_patterns


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (("prod",), "prod*"),
        (("feature-x", "production/hotfix"), "prod*"),
        (("main",), "main"),
        (("mainline",), None),
        (("feature-main",), None),
        ((None, "master"), "master"),
        (("staging-eu",), "staging*"),
    ],
)
def test_protected_match(names: tuple[str | None, ...], expected: str | None) -> None:
    assert (
        protected_match(Settings(project_dir=Path("/nonexistent")).protected_patterns, *names)
        == expected
    )


@given(
    stack=st.sampled_from(["prod", "prod-1", "production", "staging-x", "main", "master"]),
    age_h=st.integers(min_value=0, max_value=10_000),
    pending=st.booleans(),
    remote=st.one_of(st.none(), st.just(set())),
)
def test_protected_is_never_reaped(
    stack: str, age_h: int, pending: bool, remote: set[str] | None
) -> None:
    s = summary(stack, branch=stack, age=dt.timedelta(hours=age_h), reap_pending=pending)
    [d] = decide([s], now=NOW, remote_branches=remote, config=POLICY)
    assert d.action is Action.KEEP
    assert "protected" in d.codes


@given(
    age_h=st.integers(min_value=0, max_value=10_000),
    pending=st.booleans(),
    remote=st.one_of(st.none(), st.just(set())),
)
def test_unmanaged_is_never_reaped(age_h: int, pending: bool, remote: set[str] | None) -> None:
    s = summary(age=dt.timedelta(hours=age_h), managed=False, reap_pending=pending)
    [d] = decide([s], now=NOW, remote_branches=remote, config=POLICY)
    assert d.action is Action.KEEP and d.codes == ("unmanaged",)


def test_a_stack_needing_attention_is_kept_whatever_its_age() -> None:
    from branchenv.engines.base import StackSummary

    old = summary(age=99 * H)
    flagged = StackSummary(
        stack=old.stack,
        metadata=old.metadata,
        resource_count=old.resource_count,
        attention="state written by a newer branchenv",
    )
    [d] = decide([flagged], now=NOW, remote_branches=None, config=POLICY)
    assert not d.reap and d.codes == ("needs-attention",)
    assert "newer branchenv" in d.reason_text()
