"""`branchenv reap` as a user runs it: a dry run that says how to act, then `--yes --orphans`
that destroys the expired stack and the orphans and keeps the rest."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from branchenv.config import Settings
from branchenv.engines import get_engine
from branchenv.localcloud import LocalCloud
from tests.conftest import cli_result, program_at
from tests.e2e.conftest import Project
from tests.integration.reaper_seed import inventory, make_remote, seed_orphans, up_stack

H = dt.timedelta(hours=1)


def test_reap_dry_run_then_yes(project: Project) -> None:
    state = project.root / ".branchenv"
    target = LocalCloud(state).ensure("us-east-1")
    engine = get_engine("inprocess", settings=Settings(project_dir=project.root), target=target)
    program = program_at(project.root / "infra" / "aws")
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
    assert all(Decimal(r["hourly_cost"]["amount"]) > 0 for r in plan["reaped"])
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
    report = cli_result(done.stdout)
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


def test_aws_rails_refuse_before_anything_is_listed_or_destroyed(project: Project) -> None:
    """On target aws: no allowlist -> refuse; an account outside it -> refuse; orphans without a
    shared backend -> refuse. The AWS calls go to the local cloud's STS (AWS_ENDPOINT_URL on
    loopback), never to a real account."""
    target = LocalCloud(project.root / ".branchenv").ensure("us-east-1")
    local_sts = {
        "AWS_ENDPOINT_URL": str(target.endpoint_url),
        "AWS_ACCESS_KEY_ID": "branchenv-local",
        "AWS_SECRET_ACCESS_KEY": "branchenv-local-secret",
    }
    no_list = project.run("reap", "--target", "aws", "--yes", **local_sts)
    assert no_list.returncode == 3, no_list.stderr
    assert "no allowed_account_ids" in no_list.stderr and "123456789012" in no_list.stderr
    wrong = project.run(
        "reap",
        "--target",
        "aws",
        "--yes",
        BRANCHENV_ALLOWED_ACCOUNT_IDS="111111111111",
        **local_sts,
    )
    assert wrong.returncode == 3 and "not in allowed_account_ids" in wrong.stderr
    allowed = project.run(
        "reap",
        "--target",
        "aws",
        "--json",
        BRANCHENV_ALLOWED_ACCOUNT_IDS="123456789012",
        **local_sts,
    )
    assert allowed.returncode == 0, allowed.stderr
    assert cli_result(allowed.stdout)["reaped"] == []
    orphans = project.run(
        "reap",
        "--target",
        "aws",
        "--orphans",
        BRANCHENV_ALLOWED_ACCOUNT_IDS="123456789012",
        **local_sts,
    )
    assert orphans.returncode == 3 and "refusing to sweep orphans on AWS" in orphans.stderr
    # Without any credentials at all: one line, exit 1, no traceback.
    bare = project.run("reap", "--target", "aws", BRANCHENV_ALLOWED_ACCOUNT_IDS="123456789012")
    assert bare.returncode == 1 and "Traceback" not in bare.stderr
    assert bare.stderr.strip().startswith("branchenv: error: AWS:")


def test_a_local_only_engine_on_aws_is_refused_up_front(project: Project) -> None:
    """Issue 15 item 8: `reap --target aws --engine inprocess --yes` refuses before any AWS
    call: without credentials or an endpoint it still exits 3 naming the engine, never 1 from
    an STS call."""
    proc = project.run(
        "reap",
        "--target",
        "aws",
        "--engine",
        "inprocess",
        "--yes",
        BRANCHENV_ALLOWED_ACCOUNT_IDS="123456789012",
    )
    assert proc.returncode == 3, proc.stderr
    assert "inprocess engine only runs on the local target" in proc.stderr
    assert "AWS:" not in proc.stderr and "Traceback" not in proc.stderr
