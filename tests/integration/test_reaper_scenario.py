"""The reaper on a seeded local cloud: six real stacks (expired, fresh, branch deleted from a
real bare git remote, protected, unmanaged, reap-pending) plus orphaned resources. The dry run
lists exactly the right ones with the right reasons; `--yes` destroys exactly those, and an
inventory before and after proves nothing else changed."""

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
from branchenv.gitinfo import remote_heads
from branchenv.localcloud import LocalCloud
from branchenv.programs import default_program
from branchenv.reaper import run
from branchenv.reaper.executor import Status
from branchenv.reaper.report import build_report
from branchenv.targets import Target
from tests.e2e.conftest import make_project
from tests.integration.reaper_seed import Orphans, inventory, make_remote, seed_orphans, up_stack

H = dt.timedelta(hours=1)


@dataclasses.dataclass(frozen=True)
class Scenario:
    settings: Settings
    engine: Engine
    target: Target
    stacks: dict[str, str]  # role -> stack name
    remote: Path
    orphans: Orphans


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    root = tmp_path_factory.mktemp("reap-scenario")
    project = make_project(root)
    settings = load_settings(cwd=root, env={})
    cloud = LocalCloud(settings.state_path)
    target = cloud.ensure(settings.region)
    try:
        engine = get_engine("inprocess", settings=settings, target=target)
        now = dt.datetime.now(dt.UTC)
        roles = {
            "expired": ("feature/expired", dict(age=3 * H, ttl=H)),
            "fresh": ("feature/fresh", dict(age=H, ttl=24 * H)),
            "branch-deleted": ("feature/gone", dict(age=H, ttl=24 * H)),
            "protected": ("staging", dict(age=99 * H, ttl=H)),
            "unmanaged": ("feature/adopted", dict(age=99 * H, ttl=H, managed=False)),
            "reap-pending": ("feature/pending", dict(age=H, ttl=24 * H, reap_pending=True)),
        }
        stacks = {
            role: up_stack(
                engine,
                project=project.root,
                program=default_program(settings),
                target=target,
                branch=branch,
                now=now,
                **opts,  # type: ignore[arg-type]
            )
            for role, (branch, opts) in roles.items()
        }
        remote = make_remote(
            root,
            pushed=["feature/expired", "feature/fresh", "feature/gone", "feature/pending"],
            deleted=["feature/gone"],
        )
        orphans = seed_orphans(target)
        yield Scenario(settings, engine, target, stacks, remote, orphans)
    finally:
        cloud.stop()


def _plan(s: Scenario, **kw: object) -> run.ReapPlan:
    return run.plan(
        s.settings,
        engines=[s.engine],
        target_name="local",
        remote_branches=remote_heads(str(s.remote)),
        remote=str(s.remote),
        orphan_target=s.target,
        **kw,  # type: ignore[arg-type]
    )


def check_dry_run_lists_exactly_the_stale_ones(scenario: Scenario) -> None:
    before = inventory(scenario.target, scenario.engine, default_program(scenario.settings))
    plan = _plan(scenario)
    names = scenario.stacks
    assert {d.stack: d.codes for d in plan.candidates} == {
        names["expired"]: ("expired",),
        names["branch-deleted"]: ("branch-deleted",),
        names["reap-pending"]: ("reap-pending",),
    }
    assert {d.stack: d.codes for d in plan.kept} == {
        names["fresh"]: ("fresh",),
        names["protected"]: ("protected",),
        names["unmanaged"]: ("unmanaged",),
    }
    assert plan.orphans is not None
    assert {o.arn for o in plan.orphans.orphans} == scenario.orphans.doomed
    assert {o.stack for o in plan.orphans.orphans} == {scenario.orphans.ghost}

    def why(arn: str) -> str:
        return (
            "unmanaged" if "unmanaged" in arn else "too-new" if "orph-new" in arn else "protected"
        )

    assert {(k.arn, str(k.reason)) for k in plan.orphans.skipped} == {
        (arn, why(arn)) for arn in scenario.orphans.skipped
    }
    report = build_report(run.ReapResult(plan=plan, acted=False))
    assert report.dry_run and {r.status for r in report.reaped} == {"planned"}
    assert all(r.resource_count == 18 for r in report.reaped)
    # a dry run changes nothing
    assert inventory(scenario.target, scenario.engine, default_program(scenario.settings)) == before


def check_too_many_candidates_refuses_and_changes_nothing(scenario: Scenario) -> None:
    before = inventory(scenario.target, scenario.engine, default_program(scenario.settings))
    plan = _plan(scenario, max_reap=2)
    with pytest.raises(SafetyRefusal, match=r"3 stacks are due .* at most 2 .* `--max 3`"):
        run.execute(
            plan, settings=scenario.settings, engines=[scenario.engine], target=scenario.target
        )
    # --max caps orphans too (separately): a sweep never deletes more than it was allowed.
    plan = _plan(scenario, max_orphans=2)
    with pytest.raises(
        SafetyRefusal, match=r"3 orphaned resources .* at most 2 .* `--max-orphans 3`"
    ):
        run.execute(
            plan, settings=scenario.settings, engines=[scenario.engine], target=scenario.target
        )
    assert inventory(scenario.target, scenario.engine, default_program(scenario.settings)) == before


def check_yes_destroys_exactly_those(scenario: Scenario) -> None:
    program = default_program(scenario.settings)
    res_before, stacks_before = inventory(scenario.target, scenario.engine, program)
    plan = _plan(scenario)
    doomed_stacks = {d.stack for d in plan.candidates}
    doomed_arns = {
        arn
        for arn, tags in res_before.items()
        if any(f"('branchenv:stack', '{s}')" in tags for s in doomed_stacks)
    } | set(scenario.orphans.doomed)
    assert len(doomed_arns) > len(scenario.orphans.doomed)  # the stacks' own tagged resources too

    result = run.execute(
        plan, settings=scenario.settings, engines=[scenario.engine], target=scenario.target
    )

    assert result.failed == 0
    assert {o.stack: o.status for o in result.outcomes} == dict.fromkeys(
        doomed_stacks, Status.DESTROYED
    )
    assert {s.arn for s in result.swept} == set(scenario.orphans.doomed)
    res_after, stacks_after = inventory(scenario.target, scenario.engine, program)
    assert stacks_after == stacks_before - doomed_stacks
    assert set(res_after) == set(res_before) - doomed_arns
    assert {a: res_before[a] for a in res_after} == res_after  # survivors untouched, tags too
    scenario.target.client("s3").head_bucket(Bucket=scenario.orphans.untagged_bucket)
    # the next run finds nothing more to reap
    again = _plan(scenario)
    assert again.candidates == ()
    assert again.orphans is not None and again.orphans.orphans == ()


def test_reaper_scenario(scenario: Scenario) -> None:
    """One test, in order, so the (costly) seeded scenario is built once even under xdist:
    dry run -> a --max refusal -> --yes."""
    check_dry_run_lists_exactly_the_stale_ones(scenario)
    check_too_many_candidates_refuses_and_changes_nothing(scenario)
    check_yes_destroys_exactly_those(scenario)
