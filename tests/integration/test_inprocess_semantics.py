"""Pulumi's semantics in the inprocess engine, scenario by scenario, on the local cloud:
replacement (create-before-delete for auto-named resources, delete-before-replace for fixed
names), updates in place, honest change kinds, never adopting, the plan check before anything
exists, secrets kept out of the state, and recovery of interrupted operations."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from branchenv.engines.inprocess.state import PendingOp, StateStore
from branchenv.errors import EngineError, SafetyRefusal
from branchenv.targets import Target
from tests.integration.inprocess_harness import Stack


@pytest.fixture
def stack(tmp_path: Path, local_cloud: Target) -> Iterator[Stack]:
    s = Stack(root=tmp_path, target=local_cloud)
    try:
        yield s
    finally:
        s.cleanup()


def tables(target: Target) -> set[str]:
    return set(target.client("dynamodb").list_tables()["TableNames"])


def key_of(target: Target, table: str) -> str:
    schema = target.client("dynamodb").describe_table(TableName=table)["Table"]["KeySchema"]
    return str(schema[0]["AttributeName"])


TABLE = """
key = cfg.get("key") or "id"
name = cfg.get("name")
t = aws.dynamodb.Table("orders", name=name, hash_key=key, billing_mode="PAY_PER_REQUEST",
                       attributes=[{"name": key, "type": "S"}])
pulumi.export("table", t.name)
"""


def test_replacing_an_auto_named_resource_creates_the_new_one_first(stack: Stack) -> None:
    stack.write(TABLE)
    first = stack.up()
    old = first.outputs["table"]
    second = stack.up(key="pk")
    new = second.outputs["table"]
    assert second.changes["replace"] == 1 and second.changes["update"] == 0
    assert new != old and new.startswith("orders-")  # a new auto-name
    assert new in tables(stack.target) and old not in tables(stack.target)
    assert key_of(stack.target, new) == "pk"
    created = next(i for i, line in enumerate(stack.lines) if "replaced" in line)
    deleted = next(i for i, line in enumerate(stack.lines) if "deleted" in line and old in line)
    assert created < deleted, stack.lines  # create-before-delete


def test_replacing_a_resource_with_a_fixed_name_deletes_it_first(stack: Stack) -> None:
    name = f"fixed-{uuid.uuid4().hex[:8]}"
    stack.write(TABLE)
    stack.up(name=name)
    result = stack.up(name=name, key="pk")
    assert result.changes["replace"] == 1
    assert key_of(stack.target, name) == "pk"
    deleted = next(i for i, line in enumerate(stack.lines) if "to replace it" in line)
    replaced = next(i for i, line in enumerate(stack.lines) if "replaced" in line)
    assert deleted < replaced, stack.lines  # delete-before-replace: both cannot coexist


def test_changes_are_reported_honestly(stack: Stack) -> None:
    stack.write(
        """
        q = aws.sqs.Queue("jobs", visibility_timeout_seconds=int(cfg.get("vis") or 30))
        if cfg.get_bool("extra"):
            aws.sqs.Queue("extra")
        pulumi.export("url", q.url)
        """
    )
    first = stack.up(extra="true")
    assert first.changes == {"create": 2, "update": 0, "replace": 0, "delete": 0, "same": 0}
    same = stack.up(extra="true")
    assert same.changes == {"create": 0, "update": 0, "replace": 0, "delete": 0, "same": 2}
    updated = stack.up(extra="true", vis="60")
    assert updated.changes == {"create": 0, "update": 1, "replace": 0, "delete": 0, "same": 1}
    assert updated.outputs["url"] == first.outputs["url"]  # in place
    attrs = stack.target.client("sqs").get_queue_attributes(
        QueueUrl=first.outputs["url"], AttributeNames=["VisibilityTimeout"]
    )["Attributes"]
    assert attrs["VisibilityTimeout"] == "60"
    dropped = stack.up(vis="60")
    assert dropped.changes == {"create": 0, "update": 0, "replace": 0, "delete": 1, "same": 1}


def test_a_create_never_adopts_what_the_stack_did_not_create(stack: Stack) -> None:
    name = f"theirs-{uuid.uuid4().hex[:8]}"
    s3 = stack.target.client("s3")
    s3.create_bucket(Bucket=name)
    s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": [{"Key": "owner", "Value": "them"}]})
    stack.write(f'aws.s3.Bucket("data", bucket="{name}")\n')
    with pytest.raises(EngineError, match="already exists"):
        stack.up()
    assert s3.get_bucket_tagging(Bucket=name)["TagSet"] == [{"Key": "owner", "Value": "them"}]
    assert stack.engine.resources(stack=stack.stack, program=stack.prog) == []
    stack.destroy()
    s3.head_bucket(Bucket=name)  # still theirs, still there
    s3.delete_bucket(Bucket=name)


def test_the_plan_check_sees_every_planned_name_before_anything_exists(stack: Stack) -> None:
    name = f"planned-{uuid.uuid4().hex[:8]}"
    stack.write(
        f"""
        b = aws.s3.Bucket("data", bucket="{name}")
        q = aws.sqs.Queue("jobs")
        aws.s3.BucketVersioning("v", bucket=b.id,
                                versioning_configuration={{"status": "Enabled"}})
        """
    )
    seen: list[Any] = []

    def refuse(steps: Sequence[Any]) -> None:
        seen.extend(steps)
        raise SafetyRefusal("refused by the test")

    with pytest.raises(SafetyRefusal):
        stack.up(plan_check=refuse)
    by_name = {s.name: s for s in seen}
    assert by_name["data"].physical_name == name and by_name["data"].name_property == "bucket"
    assert by_name["jobs"].physical_name is None  # auto-named: unique to the stack anyway
    assert {s.op for s in seen} == {"create"}
    names = {b["Name"] for b in stack.target.client("s3").list_buckets()["Buckets"]}
    assert name not in names
    assert not stack.state_path().exists()  # nothing recorded either


def test_the_preview_shows_each_change_and_its_properties(stack: Stack) -> None:
    stack.write(
        TABLE
        + """
q = aws.sqs.Queue("jobs", visibility_timeout_seconds=int(cfg.get("vis") or 30))
"""
    )
    stack.up()
    preview = stack.preview(key="pk", vis="45")
    steps = {s.name: s for s in preview.steps}
    assert steps["orders"].op == "replace" and "hashKey" in steps["orders"].diff
    assert steps["jobs"].op == "update" and steps["jobs"].diff == ("visibilityTimeoutSeconds",)
    assert preview.changes["replace"] == 1 and preview.changes["update"] == 1
    assert stack.up().changes["same"] == 2  # the preview changed nothing


def test_secret_values_stay_out_of_the_state_and_the_log(stack: Stack) -> None:
    value = f"hunter2-{uuid.uuid4().hex}"
    stack.write(
        """
        p = aws.ssm.Parameter("db", type="SecureString", value=cfg.require("value"))
        s = aws.secretsmanager.Secret("api", recovery_window_in_days=0)
        aws.secretsmanager.SecretVersion("api-v", secret_id=s.id,
                                         secret_string=cfg.require("value"))
        pulumi.export("param", p.name)
        """
    )
    stack.up(value=value)
    param = stack.engine.outputs(stack=stack.stack, program=stack.prog)["param"]
    got = stack.target.client("ssm").get_parameter(Name=param, WithDecryption=True)
    assert got["Parameter"]["Value"] == value
    assert value not in stack.state_path().read_text()
    assert not any(value in line for line in stack.lines)
    same = stack.up(value=value)
    assert same.changes["same"] == 3  # unchanged secrets are seen as unchanged
    changed = stack.up(value=value + "-rotated")
    assert changed.changes["update"] == 1 and changed.changes["replace"] == 1
    assert value not in stack.state_path().read_text()


def test_an_interrupted_create_and_delete_are_settled_by_destroy(stack: Stack) -> None:
    """What a SIGKILL leaves (a journaled create whose resource exists, a journaled delete not
    settled) is found and removed by the next operation; the e2e tier does it with signals."""
    stack.write('aws.sqs.Queue("kept")\n')
    stack.up()
    store = StateStore(stack.root / "state" / "inprocess")
    state = store.load("semantics", stack.stack)
    assert state is not None
    orphan = f"orphan-{uuid.uuid4().hex[:8]}"
    stack.target.client("s3").create_bucket(Bucket=orphan)  # the create happened, then: kill
    state.pending.append(
        PendingOp(
            op="creating",
            urn="urn:pulumi:x::semantics::aws:s3/bucket:Bucket::data",
            type="aws:s3/bucket:Bucket",
            name="data",
            inputs={"bucket": orphan},
            region="us-east-1",
        )
    )
    [kept] = state.resources
    state.pending.append(
        PendingOp(
            op="deleting",
            urn=kept.urn,
            type=kept.type,
            name=kept.name,
            inputs={},
            region=kept.region,
            id=kept.id,
        )
    )
    store.save(state)
    result = stack.destroy()
    assert result.deleted == 2 and result.removed
    assert orphan not in {b["Name"] for b in stack.target.client("s3").list_buckets()["Buckets"]}
    assert kept.id not in stack.target.client("sqs").list_queues().get("QueueUrls", [])


def test_a_format_1_state_is_read_and_upgraded_without_churn(stack: Stack) -> None:
    stack.write('q = aws.sqs.Queue("jobs")\npulumi.export("url", q.url)\n')
    stack.up()
    path = stack.state_path()
    data = json.loads(path.read_text())
    data["version"] = 1
    for r in data["resources"]:
        for key in ("inputs", "tags", "autonamed", "delete", "protect", "retain_on_delete"):
            r.pop(key, None)
    data.pop("pending", None)
    path.write_text(json.dumps(data))
    again = stack.up()
    assert again.changes["same"] == 1 and again.changes["create"] == 0
    assert json.loads(path.read_text())["version"] == 2


def test_a_program_that_raises_is_one_line_naming_where_and_creates_nothing(
    stack: Stack,
) -> None:
    stack.write('aws.s3.Bucket("never")\nratio = 1 / 0\n')
    with pytest.raises(EngineError) as err:
        stack.up()
    message = str(err.value)
    assert "ZeroDivisionError" in message and "__main__.py:" in message
    assert "\n" not in message
    assert not stack.state_path().exists()  # failed in the preview pass: nothing made


def test_refresh_finds_what_is_gone_and_tags_changed_behind_its_back(stack: Stack) -> None:
    stack.write(
        """
        b = aws.s3.Bucket("data", tags={"team": "shop"})
        q = aws.sqs.Queue("jobs")
        pulumi.export("bucket", b.bucket)
        pulumi.export("queue", q.url)
        """
    )
    first = stack.up()
    s3, sqs = stack.target.client("s3"), stack.target.client("sqs")
    s3.put_bucket_tagging(
        Bucket=first.outputs["bucket"], Tagging={"TagSet": [{"Key": "team", "Value": "x"}]}
    )
    sqs.delete_queue(QueueUrl=first.outputs["queue"])
    result = stack.engine.refresh(stack=stack.stack, program=stack.prog, target=stack.target)
    assert [a.rsplit("::", 1)[1] for a in result.missing] == ["jobs"]
    assert [a.rsplit("::", 1)[1] for a in result.changed] == ["data"]
    again = stack.up()
    assert again.changes["create"] == 1 and again.changes["update"] == 1  # queue, bucket tags
    tags = {
        t["Key"]: t["Value"]
        for t in s3.get_bucket_tagging(Bucket=first.outputs["bucket"])["TagSet"]
    }
    assert tags["team"] == "shop" and tags["branchenv:stack"] == stack.stack


def test_a_refused_plan_changes_nothing_not_even_what_an_interrupted_run_left(
    stack: Stack,
) -> None:
    """The plan check comes before every side effect: settling an interrupted operation (which
    deletes) and forgetting what the target lost (which rewrites the state) wait for it."""
    stack.write('aws.sqs.Queue("kept")\naws.sqs.Queue("lost")\n')
    stack.up()
    store = StateStore(stack.root / "state" / "inprocess")
    state = store.load("semantics", stack.stack)
    assert state is not None
    sqs = stack.target.client("sqs")
    kept, lost = sorted(state.resources, key=lambda e: e.name)
    sqs.delete_queue(QueueUrl=lost.id)  # gone behind the engine's back
    orphan = f"orphan-{uuid.uuid4().hex[:8]}"
    stack.target.client("s3").create_bucket(Bucket=orphan)  # an interrupted create's bucket
    state.pending.append(
        PendingOp(
            op="creating",
            urn="urn:pulumi:x::semantics::aws:s3/bucket:Bucket::data",
            type="aws:s3/bucket:Bucket",
            name="data",
            inputs={"bucket": orphan},
            region="us-east-1",
        )
    )
    state.pending.append(
        PendingOp(
            op="deleting",
            urn=kept.urn,
            type=kept.type,
            name=kept.name,
            inputs={},
            region=kept.region,
            id=kept.id,
        )
    )
    store.save(state)
    before = stack.state_path().read_bytes()

    def refuse(steps: Sequence[Any]) -> None:
        raise SafetyRefusal("refused by the test")

    with pytest.raises(SafetyRefusal):
        stack.up(plan_check=refuse)
    assert stack.state_path().read_bytes() == before
    stack.target.client("s3").head_bucket(Bucket=orphan)  # not removed yet
    sqs.get_queue_attributes(QueueUrl=kept.id)  # its delete not finished yet
    # The next operation allowed to act settles both.
    stack.up()
    assert orphan not in {b["Name"] for b in stack.target.client("s3").list_buckets()["Buckets"]}


def test_a_crash_after_journaling_a_create_never_removes_another_stacks_resource(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recovery removes what an interrupted create made, found by its name; so the create's
    intent is journaled only once that name was seen free. Otherwise a kill between the journal
    write and the create's own check would have the next `down` delete another's bucket."""
    theirs = f"theirs-{uuid.uuid4().hex[:8]}"
    s3 = stack.target.client("s3")
    s3.create_bucket(Bucket=theirs)
    s3.put_bucket_tagging(
        Bucket=theirs, Tagging={"TagSet": [{"Key": "branchenv:stack", "Value": "someone-else"}]}
    )
    stack.write(f'aws.s3.Bucket("data", bucket="{theirs}")\n')
    real_save = StateStore.save

    def save_then_die(self: StateStore, state: Any) -> None:
        real_save(self, state)
        if any(op.op == "creating" and op.name == "data" for op in state.pending):
            raise SystemExit("killed right after the journal write")

    monkeypatch.setattr(StateStore, "save", save_then_die)
    with pytest.raises((SystemExit, EngineError)):
        stack.up()
    monkeypatch.undo()
    stack.destroy()
    s3.head_bucket(Bucket=theirs)  # still there
    assert s3.get_bucket_tagging(Bucket=theirs)["TagSet"][0]["Value"] == "someone-else"
    s3.delete_bucket(Bucket=theirs)
