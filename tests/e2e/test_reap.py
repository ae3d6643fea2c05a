"""`branchenv reap` as a user runs it: a dry run that says how to act, then `--yes --orphans`
that destroys the expired stack and the orphans and keeps the rest."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from branchenv.engines.base import get_engine
from branchenv.localcloud import LocalCloud
from tests.e2e.conftest import Project
from tests.integration.reaper_seed import inventory, make_remote, seed_orphans, up_stack

H = dt.timedelta(hours=1)


def test_reap_dry_run_then_yes(project: Project) -> None:
    state = project.root / ".branchenv"
    target = LocalCloud(state).ensure("us-east-1")
    engine = get_engine("inprocess", state_dir=state)
    program = project.root / "infra" / "aws"
    now = dt.datetime.now(dt.UTC)
    common = dict(engine=engine, project=project.root, program=program, target=target, now=now)
    expired = up_stack(branch="feature/old", age=5 * H, ttl=H, **common)  # type: ignore[arg-type]
    fresh = up_stack(branch="feature/new", age=H, ttl=9 * H, **common)  # type: ignore[arg-type]
    remote = make_remote(project.root.parent, pushed=["feature/old", "feature/new"], deleted=[])
    orphans = seed_orphans(target)
    before = inventory(target, engine, program)

    dry = project.run("reap", "--orphans", "--remote", str(remote))
    assert dry.returncode == 0, dry.stderr
    assert "re-run with `--yes`" in dry.stdout
    assert expired in dry.stdout and "TTL expired" in dry.stdout

    plan = project.json("reap", "--orphans", "--remote", str(remote))
    assert plan["dry_run"] is True
    assert [(r["stack"], r["reasons"], r["status"]) for r in plan["reaped"]] == [
        (expired, ["expired"], "planned")
    ]
    assert [(k["stack"], k["reasons"]) for k in plan["kept"]] == [(fresh, ["fresh"])]
    assert {o["arn"] for o in plan["orphans"] if o["status"] == "planned"} == orphans.doomed
    # The burn rate the reap reclaims, estimated from the stack's inventory before destroying.
    assert all(Decimal(r["hourly_cost"]) > 0 for r in plan["reaped"])
    assert inventory(target, engine, program) == before  # the dry runs changed nothing

    markdown = project.run("reap", "--format", "markdown")
    assert markdown.returncode == 0, markdown.stderr
    assert markdown.stdout.startswith("## branchenv reap (dry run)")
    assert f"| {expired} | feature/old |" in markdown.stdout

    refused = project.run("reap", "--yes", "--orphans", "--max", "0")
    assert refused.returncode == 3, refused.stderr
    assert "1 stacks are due for reaping but at most 0" in refused.stderr
    assert "--max 1" in refused.stderr
    assert inventory(target, engine, program) == before  # refused: nothing was touched

    done = project.run("reap", "--yes", "--orphans", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["dry_run"] is False and report["failed"] == 0
    assert [(r["stack"], r["status"]) for r in report["reaped"]] == [(expired, "destroyed")]
    assert {o["arn"] for o in report["orphans"] if o["status"] == "deleted"} == orphans.doomed
    resources, stacks = inventory(target, engine, program)
    assert stacks == {fresh}
    assert set(resources) <= set(before[0]) and not set(resources) & orphans.doomed


def test_reap_bad_format_is_usage_error(project: Project) -> None:
    proc = project.run("reap", "--format", "yaml")
    assert proc.returncode == 2
    assert "--format" in proc.stderr
