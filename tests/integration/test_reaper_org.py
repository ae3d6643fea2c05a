"""One reaper for the organisation (issue 18), on the local cloud: real inprocess stacks and
orphans in two accounts x two regions (reached by assuming a role in each account), plus a
stack in a third account the run does not name.

In order, on one seeded cloud: the dry run lists every pair, what it would do there and why,
and changes nothing; an account outside the allowlist refuses the run (exit 3) with nothing
destroyed anywhere; `--max` counts across all pairs; with the role denied through one
region's STS, the other three pairs are reaped and the failed one is named with its reason;
once the role is allowed again, the last pair is reaped. Protected and fresh stacks, the
third account's stack and unmanaged orphans survive throughout."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from branchenv.config import Settings, load_settings
from branchenv.engines import get_engine
from branchenv.engines.base import Engine
from branchenv.errors import SafetyRefusal
from branchenv.inventory import find_tagged
from branchenv.localcloud import LocalCloud
from branchenv.programs import default_program
from branchenv.reaper import run
from branchenv.reaper.org import Pair, parse_scope
from branchenv.reaper.report import build_report, to_markdown
from branchenv.targets import Target
from tests.integration.reaper_seed import (
    ORG_PROGRAM,
    ROLE_TEMPLATE,
    org_stack,
    orphan_queue,
    pair_target,
    put_role,
)

H = dt.timedelta(hours=1)
A, B, C = "111111111111", "222222222222", "333333333333"
R1, R2 = "us-east-1", "eu-west-1"
PAIRS = [(A, R1), (A, R2), (B, R1), (B, R2)]


@dataclasses.dataclass
class Org:
    settings: Settings
    engine: Engine
    base: Target
    stale: dict[tuple[str, str], str]
    kept: dict[tuple[str, str], set[str]]
    orphans: dict[tuple[str, str], str]
    unmanaged: dict[tuple[str, str], str]
    outsider: str
    west: str
    """A stale stack of the base credentials' own account, brought up in eu-west-1."""


def everything(base: Target) -> set[str]:
    """Every tagged resource in every pair (and the third account), as account/region/arn."""
    found: set[str] = set()
    for account, region in [*PAIRS, (C, R1)]:
        for res in find_tagged(pair_target(base, account, region), key="branchenv:stack"):
            found.add(res.arn)
    return found


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    root = tmp_path_factory.mktemp("reap-org")
    (root / "prog").mkdir()
    (root / "prog" / "Pulumi.yaml").write_text("name: orgreap\nruntime: python\n")
    (root / "prog" / "__main__.py").write_text(ORG_PROGRAM)
    (root / "branchenv.toml").write_text(
        f'program = "prog"\ndefault_target = "local"\nallowed_account_ids = ["{A}", "{B}"]\n'
    )
    settings = load_settings(cwd=root, env={})
    cloud = LocalCloud(settings.state_path)
    base = cloud.ensure(R1)
    try:
        for account in (A, B, C):
            put_role(base, account)
        engine = get_engine("inprocess", settings=settings, target=base)
        stale, kept, orphans, unmanaged = {}, {}, {}, {}
        for account, region in PAIRS:
            t = pair_target(base, account, region)
            stale[(account, region)] = org_stack(engine, settings, t, "feature/old")
            kept[(account, region)] = {
                org_stack(engine, settings, t, "feature/new", age=H, ttl=24 * H)
            }
            orphans[(account, region)] = orphan_queue(t, managed=True)
            unmanaged[(account, region)] = orphan_queue(t, managed=False)
        kept[(A, R2)].add(org_stack(engine, settings, pair_target(base, A, R2), "staging"))
        outsider = org_stack(engine, settings, pair_target(base, C, R1), "feature/elsewhere")
        west = org_stack(engine, settings, base.with_role(None, region=R2), "feature/west")
        yield Org(settings, engine, base, stale, kept, orphans, unmanaged, outsider, west)
    finally:
        cloud.stop()


def plan(org: Org, **kw: object) -> run.ReapPlan:
    scope = parse_scope(
        accounts=str(kw.pop("accounts", f"{A},{B}")),
        regions=f"{R1},{R2}",
        assume_role=ROLE_TEMPLATE,
        session_name=str(kw.pop("session", "org-reaper")),
    )
    return run.plan(
        org.settings,
        engines=[org.engine],
        target_name="local",
        target=org.base,
        scope=scope,
        orphans=True,
        orphan_grace=dt.timedelta(0),
        **kw,  # type: ignore[arg-type]
    )


def stacks(org: Org) -> set[str]:
    return {s.stack for s in org.engine.list_stacks(program=default_program(org.settings))}


def check_dry_run_lists_every_pair(org: Org) -> None:
    before = everything(org.base), stacks(org)
    p = plan(org)
    assert [(pp.pair.account, pp.pair.region) for pp in p.pairs] == PAIRS
    assert all(pp.ok for pp in p.pairs)
    assert {(d.account, d.region): d.stack for d in p.candidates} == org.stale
    assert {d.codes for d in p.candidates} == {("expired",)}
    kept = {d.stack: d.codes for d in p.kept}
    assert kept[org.outsider] == ("out-of-scope",)
    assert {s for names in org.kept.values() for s in names} <= set(kept)
    assert all(
        kept[s] in (("fresh",), ("protected",)) for names in org.kept.values() for s in names
    )
    for pp in p.pairs:
        assert pp.orphans is not None
        key = (pp.pair.account, pp.pair.region)
        assert {o.arn for o in pp.orphans.orphans} == {org.orphans[key]}
        assert org.unmanaged[key] in {k.arn for k in pp.orphans.skipped}
    report = build_report(run.ReapResult(plan=p, acted=False))
    assert [(r.account, r.region, r.status) for r in report.pairs] == [
        (a, r, "planned") for a, r in PAIRS
    ]
    for row in report.pairs:
        assert org.stale[(row.account, row.region)] in row.what
        assert "would delete 1 orphan" in row.what
    assert [a.account for a in report.accounts] == [A, B]
    md = to_markdown(report)
    assert "### By account and region" in md and f"| {B} | {R2} | planned |" in md
    assert (everything(org.base), stacks(org)) == before


def check_unlisted_account_refuses_before_anything(org: Org) -> None:
    before = everything(org.base), stacks(org)
    with pytest.raises(SafetyRefusal, match=f"{C}.*not in allowed_account_ids"):
        plan(org, accounts=f"{A},{B},{C}")
    assert (everything(org.base), stacks(org)) == before


def check_max_counts_across_pairs(org: Org) -> None:
    before = everything(org.base), stacks(org)
    p = plan(org, max_reap=3)
    refusal = p.refusal()
    assert refusal is not None and "4 stacks" in refusal and "4 account/region pairs" in refusal
    with pytest.raises(SafetyRefusal):
        run.execute(p, settings=org.settings, engines=[org.engine], target=org.base)
    assert (everything(org.base), stacks(org)) == before


def check_denied_pair_fails_alone(org: Org) -> None:
    put_role(org.base, B, deny_regions=(R2,))
    p = plan(org, session="org-denied")
    denied = {(pp.pair.account, pp.pair.region): pp.error for pp in p.pairs if not pp.ok}
    assert list(denied) == [(B, R2)]
    assert "AccessDenied" in str(denied[(B, R2)])
    result = run.execute(
        p, settings=org.settings, engines=[org.engine], target=org.base, sleep=lambda _s: None
    )
    report = build_report(result)
    assert result.failed >= 1
    rows = {(r.account, r.region): r for r in report.pairs}
    assert rows[(B, R2)].status == "failed" and "AccessDenied" in (rows[(B, R2)].error or "")
    assert {k for k, r in rows.items() if r.status == "done"} == {(A, R1), (A, R2), (B, R1)}
    left = stacks(org)
    resources = everything(org.base)
    for key in PAIRS:
        gone = key != (B, R2)
        assert (org.stale[key] not in left) is gone
        assert (org.orphans[key] not in resources) is gone
        assert org.kept[key] <= left
        assert org.unmanaged[key] in resources
    assert org.outsider in left


def check_allowed_again_reaps_the_last_pair(org: Org) -> None:
    put_role(org.base, B)
    p = plan(org, session="org-again")
    assert all(pp.ok for pp in p.pairs)
    assert [(d.account, d.region) for d in p.candidates] == [(B, R2)]
    result = run.execute(p, settings=org.settings, engines=[org.engine], target=org.base)
    assert result.failed == 0
    left = stacks(org)
    assert not set(org.stale.values()) & left
    assert {s for names in org.kept.values() for s in names} | {org.outsider} <= left
    resources = everything(org.base)
    assert not set(org.orphans.values()) & resources
    assert set(org.unmanaged.values()) <= resources
    report = build_report(result)
    assert [a.account for a in report.accounts] == [A, B]
    assert Pair(B, R2) in {pp.pair for pp in p.pairs}


def check_one_account_run_reaps_its_stacks_in_their_own_region(org: Org) -> None:
    # Without --accounts/--regions: the base credentials' account only, each stack destroyed in
    # the region it was brought up in (it used to be looked for in the settings' region).
    p = run.plan(org.settings, engines=[org.engine], target_name="local", target=org.base)
    assert [d.stack for d in p.candidates] == [org.west]
    kept = {d.stack: d for d in p.kept}
    assert kept[org.outsider].codes == ("out-of-scope",)
    assert f"--accounts {C}" in kept[org.outsider].reason_text()
    result = run.execute(p, settings=org.settings, engines=[org.engine], target=org.base)
    assert result.failed == 0, result.outcomes
    assert org.west not in stacks(org)
    west = org.base.with_role(None, region=R2)
    assert not [r for r in find_tagged(west, key="branchenv:stack") if org.west in r.arn]
    assert org.outsider in stacks(org)


def test_org_wide_reap(org: Org) -> None:
    check_dry_run_lists_every_pair(org)
    check_unlisted_account_refuses_before_anything(org)
    check_max_counts_across_pairs(org)
    check_denied_pair_fails_alone(org)
    check_allowed_again_reaps_the_last_pair(org)
    check_one_account_run_reaps_its_stacks_in_their_own_region(org)


def test_unknown_flags_values_are_usage_errors(tmp_path: Path) -> None:
    from branchenv.errors import UsageError

    for kwargs, flag in [
        ({"accounts": "12345"}, "--accounts"),
        ({"accounts": f"{A},{B}"}, "--assume-role"),
        ({"regions": "mars-1"}, "--regions"),
        ({"accounts": A, "assume_role": "arn:aws:iam::x:role"}, "--assume-role"),
        ({"assume_role": ROLE_TEMPLATE}, "--accounts"),
    ]:
        args = {"accounts": None, "regions": None, "assume_role": None, **kwargs}
        with pytest.raises(UsageError, match=flag):
            parse_scope(**args)  # type: ignore[arg-type]
