"""The organisation-wide run's pure parts: the scope the flags name (validated before anything
is contacted), the allowlist checked for every named account, where a stack lives, the
per-account gate, and the report grouped by account and region with cost per account."""

from __future__ import annotations

import datetime as dt
import threading
import time
from decimal import Decimal

import pytest

from branchenv.errors import SafetyRefusal, UsageError
from branchenv.metadata import StackMetadata
from branchenv.reaper.executor import Outcome, Status
from branchenv.reaper.org import (
    AccountGates,
    Pair,
    PairPlan,
    Scope,
    check_allowlist,
    parse_scope,
    stack_pair,
)
from branchenv.reaper.orphans import Orphan, OrphanPlan
from branchenv.reaper.policy import Action, Because, Decision
from branchenv.reaper.report import build_report, to_markdown
from branchenv.reaper.run import ReapPlan, ReapResult
from branchenv.targets import Target

A, B, C = "111111111111", "222222222222", "333333333333"
ROLE = "arn:aws:iam::{account}:role/reaper"
NOW = dt.datetime(2026, 12, 2, 3, 0, tzinfo=dt.UTC)


def scope(**kw: object) -> Scope | None:
    args: dict[str, object] = {"accounts": None, "regions": None, "assume_role": None, **kw}
    return parse_scope(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "flag"),
    [
        ({"accounts": "12345"}, "--accounts"),
        ({"accounts": f"{A},"}, "--accounts"),
        ({"accounts": f"{A},{B}"}, "--assume-role"),  # two accounts, one set of credentials
        ({"regions": "mars-1"}, "--regions"),
        ({"regions": "us-east-1,,eu-west-1"}, "--regions"),
        ({"accounts": A, "assume_role": "arn:aws:iam::x:role"}, "--assume-role"),
        ({"accounts": f"{A},{B}", "assume_role": f"arn:aws:iam::{A}:role/r"}, "placeholder"),
        ({"assume_role": ROLE}, "--accounts"),
        ({"accounts": A, "assume_role": ROLE, "session_name": "x"}, "--role-session-name"),
        ({"accounts": A, "assume_role": ROLE, "account_concurrency": 0}, "--account-concurrency"),
    ],
)
def test_bad_scope_is_a_usage_error_naming_the_flag(kw: dict[str, object], flag: str) -> None:
    with pytest.raises(UsageError, match=flag):
        scope(**kw)


def test_scope_values() -> None:
    assert scope() is None  # no flag: the one-account, one-region run
    s = scope(accounts=f"{A}, {B},{A}", regions="us-east-1,eu-west-1", assume_role=ROLE)
    assert s is not None
    assert s.accounts == (A, B)  # de-duplicated, order kept
    assert s.regions == ("us-east-1", "eu-west-1")
    assert s.role_for(B) == "arn:aws:iam::222222222222:role/reaper"
    every = scope(accounts=A, regions="ALL", assume_role=ROLE, external_id="xid")
    assert every is not None and every.regions is None
    assert "xid" not in repr(every)  # the external id never shows in logs
    own = scope(regions="us-west-2")
    assert own is not None and own.accounts == () and own.role_for(A) is None


def test_allowlist_is_checked_for_every_named_account() -> None:
    s = scope(accounts=f"{A},{B},{C}", assume_role=ROLE)
    assert s is not None
    with pytest.raises(SafetyRefusal, match=f"account {C} is not in allowed_account_ids"):
        check_allowlist(s, [A, B])
    with pytest.raises(SafetyRefusal, match="no allowed_account_ids"):
        check_allowlist(s, [])
    check_allowlist(s, [A, B, C])
    own = scope(regions="us-east-1")
    assert own is not None
    check_allowlist(own, [])  # the caller's own account: checked against it where it acts


def meta(**kw: object) -> StackMetadata:
    return StackMetadata.create(
        stack="feature-x-1234abcd",
        branch="feature/x",
        owner="o",
        commit="c",
        ttl=dt.timedelta(hours=1),
        now=NOW,
        target="local",
        engine="inprocess",
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("kw", "default_account", "expected"),
    [
        ({"account": A, "region": "eu-west-1"}, None, Pair(A, "eu-west-1")),
        ({"account": A}, None, Pair(A, "us-east-1")),  # region: the settings' default
        ({}, None, None),  # account unknown: never attributed in a multi-account run
        ({}, B, Pair(B, "us-east-1")),  # the caller's own account run
    ],
)
def test_stack_pair(kw: dict[str, str], default_account: str | None, expected: Pair | None) -> None:
    got = stack_pair(meta(**kw), default_region="us-east-1", default_account=default_account)
    assert got == expected
    assert stack_pair(None, default_region="us-east-1", default_account=A) is None


def test_account_gate_bounds_calls_per_account() -> None:
    gates = AccountGates(2)
    active: dict[str, int] = {A: 0, B: 0}
    peak: dict[str, int] = {A: 0, B: 0}
    lock = threading.Lock()

    def work(account: str) -> None:
        with gates.hold(account):
            with lock:
                active[account] += 1
                peak[account] = max(peak[account], active[account])
            time.sleep(0.01)
            with lock:
                active[account] -= 1

    threads = [threading.Thread(target=work, args=(a,)) for a in [A, B] * 6]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == {A: 2, B: 2}


def decision(stack: str, account: str, region: str, *, reap: bool = True) -> Decision:
    return Decision(
        stack=stack,
        action=Action.REAP if reap else Action.KEEP,
        reasons=(Because("expired" if reap else "fresh", "why"),),
        branch=stack,
        owner="o",
        created_at=NOW,
        age_s=3600.0,
        resource_count=1,
        engine="inprocess",
        account=account,
        region=region,
    )


def test_report_groups_by_account_and_region_with_cost_per_account() -> None:
    target = Target("local", "us-east-1", endpoint_url="http://127.0.0.1:1")
    pairs = (
        PairPlan(
            Pair(A, "us-east-1"),
            target,
            orphans=OrphanPlan((Orphan(f"arn:aws:sqs:us-east-1:{A}:q", "sqs", "g", None),), (), 0),
        ),
        PairPlan(Pair(A, "eu-west-1"), target, orphans=OrphanPlan((), (), 0)),
        PairPlan(Pair(B, "us-east-1"), target, error="cannot assume role: AccessDenied"),
    )
    decisions = (
        decision("b-old", B, "us-east-1"),
        decision("a-old", A, "eu-west-1"),
        decision("a-new", A, "us-east-1", reap=False),
        decision("a-old2", A, "us-east-1"),
    )
    plan = ReapPlan(
        now=NOW,
        target="local",
        engines=("inprocess",),
        remote=None,
        decisions=decisions,
        orphans=None,
        max_reap=10,
        hourly_cost={
            d.key: Decimal(c) for d, c in zip(decisions, ["1", "0.5", "0", "0.25"], strict=True)
        },
        scope=scope(accounts=f"{A},{B}", assume_role=ROLE),
        pairs=pairs,
    )
    dry = build_report(ReapResult(plan=plan, acted=False))
    assert [(p.account, p.region, p.status) for p in dry.pairs] == [
        (A, "us-east-1", "planned"),
        (A, "eu-west-1", "planned"),
        (B, "us-east-1", "failed"),
    ]
    assert "would destroy 1 stack: a-old2 (expired)" in dry.pairs[0].what
    assert "would delete 1 orphan" in dry.pairs[0].what
    assert "AccessDenied" in dry.pairs[2].what
    assert [(r.account, r.region) for r in dry.reaped] == [
        (A, "us-east-1"),
        (A, "eu-west-1"),
        (B, "us-east-1"),
    ]  # grouped in the run's pair order
    outcomes = (
        Outcome("a-old2", "inprocess", Status.DESTROYED, 1, 1, 0.1),
        Outcome("a-old", "inprocess", Status.DESTROYED, 1, 1, 0.1),
        Outcome("b-old", "inprocess", Status.FAILED, 0, 0, 0.0, error="pair failed"),
    )
    done = build_report(ReapResult(plan=plan, acted=True, outcomes=outcomes))
    assert [(a.account, a.stacks, a.failed_pairs, a.hourly_cost) for a in done.accounts] == [
        (A, 2, 0, Decimal("0.75")),
        (B, 0, 1, Decimal("0")),
    ]
    assert done.failed == 2  # the failed stack and its failed pair
    md = to_markdown(done)
    assert "### By account" in md and f"| {A} | 2 | 0 | 2 | 0 | 0.7500 |" in md
