"""Issue 13's list, first try with a program of one's own: one S3 bucket and one SQS queue in a
temp git repo, `branchenv` run as a user runs it, on the local cloud. Each test is one reported
defect; each checks the local cloud itself over HTTP."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal

import pytest

from branchenv.naming import names_for
from tests.conftest import cli_result
from tests.e2e.own_project import (
    MotoRecording,
    UserProject,
    bucket_tags,
    buckets,
    queue_tags,
    request_action,
)

IDENTITY_KEYS = {
    "branchenv:managed-by",
    "branchenv:stack",
    "branchenv:branch",
    "branchenv:project",
    "branchenv:owner",
    "branchenv:created-at",
    "branchenv:target",
    "branchenv:engine",
}
MUTABLE_KEYS = {
    "branchenv:expires-at",
    "branchenv:commit",
    "branchenv:reap-pending",
    "branchenv:last-update",
}


@pytest.fixture
def project(own_project: UserProject) -> UserProject:
    return own_project


def branch() -> str:
    return f"feature/own-{uuid.uuid4().hex[:8]}"


def test_renaming_a_bucket_replaces_it_and_the_old_one_is_gone(project: UserProject) -> None:
    b = branch()
    prefix = names_for(b).prefix
    try:
        first = project.json("up", "--branch", b)
        assert first["outputs"]["bucket"] == f"{prefix}-data"
        project.write_program(
            (project.root / "__main__.py").read_text().replace('-data"', '-data-v2"')
        )
        second = project.json("up", "--branch", b)
        assert second["outputs"]["bucket"] == f"{prefix}-data-v2"
        assert second["changes"]["replace"] == 1, second["changes"]
        assert second["changes"]["update"] == 0 and second["changes"]["create"] == 0
        assert buckets(project.target(), prefix) == {f"{prefix}-data-v2"}
    finally:
        project.run("down", "--branch", b)
    assert buckets(project.target(), prefix) == set()


def test_an_untagged_queue_updates_and_re_ups(project: UserProject) -> None:
    project.write_program(
        """
        import pulumi
        import pulumi_aws as aws
        queue = aws.sqs.Queue("jobs", visibility_timeout_seconds=30)
        pulumi.export("queue_url", queue.url)
        """
    )
    b = branch()
    try:
        first = project.json("up", "--branch", b)
        url = first["outputs"]["queue_url"]
        again = project.run("up", "--branch", b)
        assert again.returncode == 0, again.stderr
        project.write_program((project.root / "__main__.py").read_text().replace("=30", "=60"))
        changed = project.json("up", "--branch", b)
        assert changed["changes"]["update"] == 1, changed["changes"]
        attrs = (
            project.target()
            .client("sqs")
            .get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])["Attributes"]
        )
        assert attrs["VisibilityTimeout"] == "60"
    finally:
        project.run("down", "--branch", b)


def test_every_resource_carries_the_identity_tags_and_only_those(project: UserProject) -> None:
    b = branch()
    try:
        out = project.json("up", "--branch", b)
        target = project.target()
        for tags in (
            bucket_tags(target, out["outputs"]["bucket"]),
            queue_tags(target, out["outputs"]["queue_url"]),
        ):
            assert set(tags) >= IDENTITY_KEYS, IDENTITY_KEYS - set(tags)
            assert not MUTABLE_KEYS & set(tags)
            assert tags["branchenv:stack"] == names_for(b).stack
            assert tags["branchenv:branch"] == b
            assert tags["branchenv:project"] == "acme-shop"
    finally:
        project.run("down", "--branch", b)


def test_a_no_op_re_up_reports_no_changes_and_makes_no_tag_calls(project: UserProject) -> None:
    b = branch()
    try:
        project.ok("up", "--branch", b)
        recording = MotoRecording(project.target().endpoint_url)
        recording.start()
        again = project.json("up", "--branch", b)
        actions = [request_action(r) for r in recording.requests()]
        assert {k: v for k, v in again["changes"].items() if k != "same"} == {
            "create": 0,
            "update": 0,
            "replace": 0,
            "delete": 0,
        }
        assert again["changes"]["same"] == 2
        tagging = [a for a in actions if "tag" in a.lower()]
        assert tagging == [], tagging
        writes = [a for a in actions if a.startswith(("Create", "Put", "Set", "Delete", "PUT"))]
        assert writes == [], writes
    finally:
        project.run("down", "--branch", b)


def test_after_a_local_cloud_wipe_nothing_is_claimed_that_did_not_happen(
    project: UserProject,
) -> None:
    kept, expiring = branch(), branch()
    try:
        project.ok("up", "--branch", kept)
        project.ok("up", "--branch", expiring, "--ttl", "1s")
        project.ok("cloud", "stop")
        project.ok("cloud", "start")
        rows = {r["stack"]: r for r in project.json("ls")}
        for b in (kept, expiring):
            row = rows[names_for(b).stack]
            assert row["resource_count"] == 2 and row["missing"] == 2, row
        human = project.ok("ls").stdout
        assert "missing" in human
        # What is gone costs nothing: it is not priced as if it still ran.
        costs = {r["stack"]: r for r in project.json("cost", "--all")["rows"]}
        assert Decimal(costs[names_for(kept).stack]["hourly"]["amount"]) == 0, costs

        time.sleep(1.5)  # the second stack's TTL runs out
        reaped = project.run("reap", "--yes", "--json")
        assert reaped.returncode == 0, reaped.stderr
        report = cli_result(reaped.stdout)
        [row] = [r for r in report["reaped"] if r["stack"] == names_for(expiring).stack]
        assert row["status"] in ("destroyed", "already-gone"), row
        # Its two resources were already gone: nothing is claimed deleted.
        assert f"[{names_for(expiring).stack}] destroyed: 0 resources deleted" in reaped.stderr

        again = project.json("up", "--branch", kept)
        assert again["changes"]["create"] == 2, again["changes"]
        assert again["changes"]["update"] == 0 and again["changes"]["same"] == 0
        prefix = names_for(kept).prefix
        assert buckets(project.target(), prefix) == {f"{prefix}-data"}
    finally:
        project.run("down", "--branch", kept)
        project.run("down", "--branch", expiring)


def test_down_continues_past_a_resource_it_cannot_delete(project: UserProject) -> None:
    project.write_program(
        """
        import pulumi
        import pulumi_aws as aws
        prefix = pulumi.Config("branchenv").require("prefix")
        bucket = aws.s3.Bucket("data", bucket=f"{prefix}-data")
        queue = aws.sqs.Queue("jobs")
        # The table comes last (it waits for `ready`), so it is the first to be deleted; the
        # bucket and the queue do not depend on it, nor it on them.
        ready = aws.sqs.Queue("ready")
        table = aws.dynamodb.Table("orders", name=f"{prefix}-orders", hash_key="id",
            billing_mode="PAY_PER_REQUEST", attributes=[{"name": "id", "type": "S"}],
            tags={"after": ready.name})
        pulumi.export("queue_url", queue.url)
        pulumi.export("table", table.name)
        """
    )
    b = branch()
    prefix = names_for(b).prefix
    out = project.json("up", "--branch", b)
    target = project.target()
    ddb = target.client("dynamodb")
    try:
        # Someone protects the table behind branchenv's back: its delete, the first, now fails.
        ddb.update_table(TableName=out["outputs"]["table"], DeletionProtectionEnabled=True)
        failed = project.run("down", "--branch", b)
        assert failed.returncode == 1, failed.stderr
        assert "Traceback" not in failed.stderr
        assert f"{prefix}-orders" in failed.stderr
        # The independent resources went anyway.
        assert buckets(target, prefix) == set()
        sqs = target.client("sqs")
        assert out["outputs"]["queue_url"] not in sqs.list_queues().get("QueueUrls", [])
        assert ddb.describe_table(TableName=out["outputs"]["table"])["Table"]
        # What is left is still known (the table, and `ready` that it depends on): fixing the
        # cause and re-running finishes the job.
        rows = {r["stack"]: r for r in project.json("ls")}
        assert rows[names_for(b).stack]["resource_count"] == 2
        # ... and the stack is due for the reaper, said so (issue 15 item 9).
        assert rows[names_for(b).stack]["reap_pending"] is True
        assert "marked reap-pending" in failed.stderr
    finally:
        ddb.update_table(TableName=out["outputs"]["table"], DeletionProtectionEnabled=False)
        project.run("down", "--branch", b)
    assert f"{prefix}-orders" not in ddb.list_tables()["TableNames"]


def test_preview_shows_each_change_with_its_properties_and_changes_nothing(
    project: UserProject,
) -> None:
    b = branch()
    prefix = names_for(b).prefix
    fresh = project.json("preview", "--branch", b)
    assert {s["name"]: s["op"] for s in fresh["steps"]} == {"data": "create", "jobs": "create"}
    data = next(s for s in fresh["steps"] if s["name"] == "data")
    assert data["physical_name"] == f"{prefix}-data" and data["name_property"] == "bucket"
    assert buckets(project.target(), prefix) == set()  # a preview creates nothing
    try:
        project.ok("up", "--branch", b)
        project.write_program(
            (project.root / "__main__.py")
            .read_text()
            .replace('aws.sqs.Queue("jobs")', 'aws.sqs.Queue("jobs", delay_seconds=5)')
            .replace('-data"', '-data-v2"')
        )
        plan = project.json("up", "--branch", b, "--preview-only")
        steps = {s["name"]: s for s in plan["steps"]}
        assert steps["jobs"]["op"] == "update" and steps["jobs"]["diff"] == ["delaySeconds"]
        assert steps["data"]["op"] == "replace" and steps["data"]["diff"] == ["bucket"]
        assert plan["changes"]["update"] == 1 and plan["changes"]["replace"] == 1
        human = project.ok("preview", "--branch", b).stdout
        assert "delaySeconds" in human and "replace" in human and "1 to update" in human
        # Nothing changed: the old bucket is still the one there.
        assert buckets(project.target(), prefix) == {f"{prefix}-data"}
    finally:
        project.run("down", "--branch", b)


def test_a_second_branch_claiming_a_fixed_name_is_refused_and_never_touches_the_first(
    project: UserProject,
) -> None:
    """One bucket name for every branch (not derived from `branchenv:prefix`): the branch that
    shares it on purpose (`--allow-shared`) has it; another branch's `up` is refused before
    anything is created, and no `down` of that branch ever deletes the first one's bucket."""
    shared = f"acme-uploads-{uuid.uuid4().hex[:8]}"
    project.write_program(
        f"""
        import pulumi
        import pulumi_aws as aws
        bucket = aws.s3.Bucket("uploads", bucket="{shared}")
        queue = aws.sqs.Queue("jobs")
        pulumi.export("bucket", bucket.bucket)
        """
    )
    first, second = branch(), branch()
    try:
        project.ok("up", "--branch", first, "--allow-shared", shared)
        target = project.target()
        owner = bucket_tags(target, shared)["branchenv:stack"]
        assert owner == names_for(first).stack

        refused = project.run("up", "--branch", second)
        assert refused.returncode == 3, refused.stderr
        message = refused.stderr
        assert "uploads" in message and shared in message, message
        assert "branchenv:prefix" in message and "--allow-shared" in message, message
        assert "Traceback" not in message
        # Refused before anything: no stack for the second branch, not even its queue.
        rows = {r["stack"] for r in project.json("ls")}
        assert names_for(second).stack not in rows
        assert names_for(first).stack in rows
        assert bucket_tags(target, shared)["branchenv:stack"] == owner

        # Claiming it on purpose does not take it over either: the create fails as the real
        # provider's would ("already exists"), it is not adopted.
        taken = project.run("up", "--branch", second, "--allow-shared", shared)
        assert taken.returncode == 1, taken.stderr
        assert "already exists" in taken.stderr and "Traceback" not in taken.stderr

        # The second branch's down removes what it made (its queue), never the first's bucket.
        project.ok("down", "--branch", second)
        target.client("s3").head_bucket(Bucket=shared)
        assert bucket_tags(target, shared)["branchenv:stack"] == owner
    finally:
        project.run("down", "--branch", second)
        project.run("down", "--branch", first)
    assert shared not in {
        b["Name"] for b in project.target().client("s3").list_buckets()["Buckets"]
    }
