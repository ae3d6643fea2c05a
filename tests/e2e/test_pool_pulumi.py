"""The warm pool with the pulumi engine, through the CLI (issue 17: the pool "works with every
engine"; tests/e2e/test_pool.py proves it for inprocess, test_pool_terraform.py for terraform).

The real ``pulumi`` CLI cannot run here: the stand-in (tests/standin/pulumi) is the ``pulumi`` on
PATH, with a program of a bucket and a table (its fixture JSON), and an ``s3://`` DIY backend as
in test_pulumi_standin_cli.py. Everything of branchenv is real: the installed CLI, the pulumi
engine through pulumi.automation, the stack tags it keeps the pool's metadata and claims in, the
claim bucket and the baseline of resource addresses (URNs here), the wipers.

The stand-in keeps state but creates nothing in a cloud, so the test plays the aws provider's
part once: before `pool fill` (which offers a stack only once it answers ci's readiness checks)
it makes the bucket and the table the stand-in's state will name, on
the project's local cloud, without tags (the leak check looks for tags: these would read as
leaked after a destroy the stand-in cannot do). Every check of data reads that cloud over HTTP.

fill a pool of one -> branch A claims it (`up --pool`) and writes an object and an item -> `down`
returns it wiped and verified empty -> branch B's `ci --pool` claims the same stack, its suite
finds both empty and writes again -> the end of `ci` returns it wiped -> `pool drain` leaves no
stack, no tags and nothing in the claim bucket.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from branchenv.naming import names_for
from tests.conftest import cli_result
from tests.e2e.test_pulumi_standin_cli import Clone, clones, standin_env
from tests.integration.pulumi_rig import PROJECT, bucket_keys

__all__ = ["clones", "standin_env"]  # fixtures, used by name

pytestmark = [pytest.mark.standin, pytest.mark.slow]

PROGRAM = {
    "resources": [
        {
            "type": "aws:s3/bucketV2:BucketV2",
            "name": "data",
            "inputs": {"bucket": "{config:branchenv:prefix}-data", "forceDestroy": True},
            "forceNew": ["bucket"],
        },
        {
            "type": "aws:dynamodb/table:Table",
            "name": "items",
            "inputs": {
                "name": "{config:branchenv:prefix}-items",
                "billingMode": "PAY_PER_REQUEST",
                "hashKey": "pk",
            },
            "forceNew": ["name", "hashKey"],
        },
    ],
    "outputs": {
        "bucket_name": "{config:branchenv:prefix}-data",
        "table_name": "{config:branchenv:prefix}-items",
    },
}

SUITE = """
def test_finds_nothing_of_the_last_claimant_then_writes(branchenv_outputs, branchenv_boto3_session):
    s3 = branchenv_boto3_session.client("s3")
    ddb = branchenv_boto3_session.client("dynamodb")
    bucket, table = branchenv_outputs["bucket_name"], branchenv_outputs["table_name"]
    assert not s3.list_object_versions(Bucket=bucket).get("Versions")
    assert ddb.scan(TableName=table, ConsistentRead=True)["Count"] == 0
    s3.put_object(Bucket=bucket, Key="b/left.txt", Body=b"b was here")
    ddb.put_item(TableName=table, Item={"pk": {"S": "b#1"}})
"""

POOL_STACK = names_for(f"{PROJECT}-pool-1").stack


@pytest.fixture
def dev(
    clones: tuple[Clone, Clone], standin_env: dict[str, str], tmp_path: Path
) -> Iterator[Clone]:
    """The demo project's clone with a pool of one, the stand-in running :data:`PROGRAM`."""
    clone, _ = clones
    fixture = tmp_path / "pool-program.json"
    fixture.write_text(json.dumps(PROGRAM))
    standin_env["STANDIN_FIXTURE"] = str(fixture)  # the clones share this dict
    with (clone.root / "branchenv.toml").open("a") as fh:
        fh.write('pool_size = 1\npool_refill = "off"\n')
    try:
        yield clone
    finally:
        clone.run("pool", "drain", "--yes")


def _provide(target: Any, outputs: dict[str, Any]) -> None:
    """What the aws provider would have made for the stand-in's state (see the module doc)."""
    target.client("s3").create_bucket(Bucket=outputs["bucket_name"])
    target.client("dynamodb").create_table(
        TableName=outputs["table_name"],
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    )


POOL_OUTPUTS = {"bucket_name": f"{POOL_STACK}-data", "table_name": f"{POOL_STACK}-items"}
"""What the fixture's program names for the pool's one stack."""


def _fill_provided(clone: Clone) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """`pool fill` of a pool of one, the aws provider's part played first: pool fill offers a
    stack only once it answers ci's readiness checks (its bucket and table), which the stand-in
    cannot make. Returns the target, the outputs provided and the fill's JSON."""
    assert clone.run("cloud", "start").returncode == 0
    target = _target(clone)
    outputs = dict(POOL_OUTPUTS)
    _provide(target, outputs)
    return target, outputs, clone.json("pool", "fill")


def _unprovide(target: Any, outputs: dict[str, Any]) -> None:
    from branchenv.pool.wipe import wipe_bucket

    wipe_bucket(target, outputs["bucket_name"], lambda _s: None)
    target.client("s3").delete_bucket(Bucket=outputs["bucket_name"])
    target.client("dynamodb").delete_table(TableName=outputs["table_name"])


def _target(clone: Clone) -> Any:
    from branchenv.localcloud import LocalCloud

    return LocalCloud(clone.root / ".branchenv").status().target("us-east-1")


def _claim_keys(target: Any) -> list[str]:
    """Every key the pool keeps for the pulumi engine's pool stacks in the claim bucket."""
    s3 = target.client("s3")
    found = []
    for bucket in s3.list_buckets()["Buckets"]:
        if bucket["Name"].startswith("branchenv-pool-"):
            listed = s3.list_objects_v2(Bucket=bucket["Name"])
            found += [o["Key"] for o in listed.get("Contents", []) if "/pulumi/" in o["Key"]]
    return found


def test_a_pulumi_pool_stack_goes_back_wiped_to_the_next_claimant(
    dev: Clone, standin_env: dict[str, str], local_cloud: Any
) -> None:
    a, b = f"feature/a-{uuid.uuid4().hex[:6]}", f"feature/b-{uuid.uuid4().hex[:6]}"
    outputs: dict[str, Any] = {}
    target: Any = None
    try:
        target, outputs, fill = _fill_provided(dev)
        assert fill["engine"] == "pulumi" and fill["created"] == [POOL_STACK], fill
        [member] = dev.json("pool", "status")["stacks"]
        assert member["state"] == "free" and member["claimed_by"] is None
        listed = {row["stack"]: row for row in dev.json("ls")}
        assert listed[POOL_STACK]["branch"] == f"pool/{PROJECT}-pool"

        up = dev.run("up", "--pool", "--branch", a, "--json")
        assert up.returncode == 0, up.stderr[-4000:]
        first = cli_result(up.stdout)
        assert first["stack"] == POOL_STACK
        # The program and inputs are the pool's own: the claim applies nothing.
        assert "nothing to apply" in up.stderr, up.stderr[-4000:]
        assert first["outputs"]["bucket_name"] == outputs["bucket_name"], first["outputs"]
        s3, ddb = target.client("s3"), target.client("dynamodb")
        # The claim is in the stack's tags: `ls` and `pool status` name branch A.
        [member] = dev.json("pool", "status")["stacks"]
        assert member["state"] == "claimed" and member["claimed_by"] == a
        assert {row["stack"]: row for row in dev.json("ls")}[POOL_STACK]["branch"] == a
        assert dev.json("outputs", "--branch", a) == outputs

        s3.put_object(Bucket=outputs["bucket_name"], Key="a/secret.txt", Body=b"a was here")
        ddb.put_item(TableName=outputs["table_name"], Item={"pk": {"S": "a#1"}})

        down = dev.json("down", "--branch", a)
        assert down["released"] is True and down["removed"] is False, down
        assert s3.list_objects_v2(Bucket=outputs["bucket_name"])["KeyCount"] == 0
        assert ddb.scan(TableName=outputs["table_name"], ConsistentRead=True)["Count"] == 0
        [member] = dev.json("pool", "status")["stacks"]
        assert member["stack"] == POOL_STACK
        assert member["state"] == "free" and member["claimed_by"] is None

        suite = dev.root / "pool-suite"
        suite.mkdir()
        (suite / "test_claimant.py").write_text(SUITE)
        ci = dev.run("ci", "--pool", "--branch", b, "--suite", str(suite), "--json")
        assert ci.returncode == 0, ci.stderr[-4000:]
        result = cli_result(ci.stdout)
        assert result["stack"] == POOL_STACK  # the same stack, claimed again
        assert "nothing to apply" in ci.stderr, ci.stderr[-4000:]
        assert result["counts"]["passed"] == result["counts"]["total"] == 1, result["counts"]
        assert result["teardown"]["status"] == "released", result["teardown"]
        assert not s3.list_object_versions(Bucket=outputs["bucket_name"]).get("Versions")
        assert ddb.scan(TableName=outputs["table_name"], ConsistentRead=True)["Count"] == 0
        [member] = dev.json("pool", "status")["stacks"]
        assert member["state"] == "free" and member["claimed_by"] is None

        backend = standin_env["BRANCHENV_BACKEND_URL"]
        assert f".pulumi/stacks/{PROJECT}/{POOL_STACK}.json" in bucket_keys(local_cloud, backend)
        assert _claim_keys(target)  # the baseline and applied records, while the stack exists
        drain = dev.json("pool", "drain", "--yes")
        assert list(drain["destroy"]) == [POOL_STACK] and not drain["failed"], drain
        assert dev.json("pool", "status")["stacks"] == []
        assert dev.json("ls") == []
        assert not [
            k
            for k in bucket_keys(local_cloud, backend)
            if k.startswith(f".pulumi/stacks/{PROJECT}/")
        ]
        assert _claim_keys(target) == []
    finally:
        for branch in (a, b):
            dev.run("down", "--branch", branch)
        if target is not None and outputs:
            _unprovide(target, outputs)


def test_a_pulumi_claimant_that_adds_a_resource_gets_the_stack_destroyed_at_the_end_of_ci(
    dev: Clone, standin_env: dict[str, str], local_cloud: Any, tmp_path: Path
) -> None:
    branch = f"feature/graph-{uuid.uuid4().hex[:6]}"
    outputs: dict[str, Any] = {}
    target: Any = None
    try:
        target, outputs, fill = _fill_provided(dev)
        assert fill["created"] == [POOL_STACK], fill

        # The branch's program adds a bucket: its code changed, and so does what it declares.
        with (dev.root / "infra" / "aws" / "__main__.py").open("a") as fh:
            fh.write("\n# the branch adds a bucket\n")
        grown = tmp_path / "grown-program.json"
        extra = {
            "type": "aws:s3/bucketV2:BucketV2",
            "name": "extra",
            "inputs": {"bucket": "{config:branchenv:prefix}-extra"},
        }
        grown.write_text(json.dumps({**PROGRAM, "resources": [*PROGRAM["resources"], extra]}))
        standin_env["STANDIN_FIXTURE"] = str(grown)
        suite = dev.root / "pool-suite"
        suite.mkdir()
        (suite / "test_claimant.py").write_text(SUITE)

        ci = dev.run("ci", "--pool", "--branch", branch, "--suite", str(suite), "--json")
        assert ci.returncode == 0, ci.stderr[-4000:]
        result = cli_result(ci.stdout)
        assert result["stack"] == POOL_STACK
        assert result["counts"]["passed"] == 1, result["counts"]
        teardown = result["teardown"]
        assert teardown["status"] == "destroyed", teardown
        assert teardown["deleted"] == 3, teardown  # the pool's two resources and the branch's
        assert "resource graph (+1/-0" in ci.stderr, ci.stderr[-4000:]
        assert dev.json("pool", "status")["stacks"] == []
        backend = standin_env["BRANCHENV_BACKEND_URL"]
        assert not [
            k
            for k in bucket_keys(local_cloud, backend)
            if k.startswith(f".pulumi/stacks/{PROJECT}/")
        ]
        assert _claim_keys(target) == []
    finally:
        dev.run("down", "--branch", branch)
        if target is not None and outputs:
            _unprovide(target, outputs)
