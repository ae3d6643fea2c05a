"""The warm pool with the real terraform engine, through the CLI (issue 17: the pool "works with
every engine" and "a claimed stack never holds data from its previous claimant").

tests/e2e/test_pool.py proves isolation on the inprocess engine; this runs the same loop on a
Terraform module (a bucket and a table, no SQS queue: the aws provider waits ~20 s after each
CreateQueue): fill a pool of one, branch A claims it and writes an object and an item, `down`
returns it to the pool, branch B claims the same stack and finds both resources empty, and
`pool drain` leaves nothing of it behind. Every check reads the local cloud over HTTP.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import cli_result
from tests.e2e.conftest import Project
from tests.e2e.test_terraform import leftovers, terraform_project
from tests.tfsupport import terraform_bin, terraform_mirror

__all__ = ["terraform_bin", "terraform_mirror"]  # fixtures, used by name

pytestmark = [pytest.mark.terraform, pytest.mark.slow]

MODULE = """
variable "prefix" {
  type = string
}

resource "aws_s3_bucket" "data" {
  bucket        = "${var.prefix}-data"
  force_destroy = true
}

resource "aws_dynamodb_table" "items" {
  name         = "${var.prefix}-items"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "pk"
  attribute {
    name = "pk"
    type = "S"
  }
}

output "bucket" {
  value = aws_s3_bucket.data.bucket
}

output "table" {
  value = aws_dynamodb_table.items.name
}
"""

TIMEOUT = 900  # terraform init + apply take minutes on a busy 2-core machine


def _json(project: Project, *args: str) -> Any:
    proc = project.run(*args, "--json", timeout=TIMEOUT)
    assert proc.returncode == 0, f"branchenv {' '.join(args)}: {proc.stderr[-4000:]}"
    return cli_result(proc.stdout)


def test_a_terraform_pool_stack_goes_back_wiped_to_the_next_claimant(
    tmp_path: Path, terraform_bin: str, terraform_mirror: Path
) -> None:
    root = tmp_path / "tfpool"
    project = terraform_project(root, terraform_mirror, program="module", extra="pool_size = 1\n")
    (root / "module").mkdir()
    (root / "module" / "main.tf").write_text(MODULE)
    a, b = f"feature/a-{uuid.uuid4().hex[:6]}", f"feature/b-{uuid.uuid4().hex[:6]}"
    try:
        fill = _json(project, "pool", "fill")
        [pool_stack] = fill["created"]
        assert fill["engine"] == "terraform"

        first = _json(project, "up", "--pool", "--branch", a)
        assert first["stack"] == pool_stack
        out = first["outputs"]
        assert out["bucket"] == f"{pool_stack}-data" and out["table"] == f"{pool_stack}-items"
        target = project.target()
        s3, ddb = target.client("s3"), target.client("dynamodb")
        s3.put_object(Bucket=out["bucket"], Key="a/secret.txt", Body=b"a was here")
        ddb.put_item(TableName=out["table"], Item={"pk": {"S": "a#1"}})
        assert s3.list_objects_v2(Bucket=out["bucket"])["KeyCount"] == 1
        assert ddb.scan(TableName=out["table"], ConsistentRead=True)["Count"] == 1

        down = _json(project, "down", "--branch", a)
        assert down["released"] is True and down["removed"] is False, down
        [member] = _json(project, "pool", "status")["stacks"]
        assert member["stack"] == pool_stack
        assert member["state"] == "free" and member["claimed_by"] is None

        second = _json(project, "up", "--pool", "--branch", b)
        assert second["stack"] == pool_stack  # the same stack, claimed again
        assert second["outputs"] == out
        assert s3.list_objects_v2(Bucket=out["bucket"])["KeyCount"] == 0
        assert not s3.list_object_versions(Bucket=out["bucket"]).get("Versions")
        assert ddb.scan(TableName=out["table"], ConsistentRead=True)["Count"] == 0
        assert _json(project, "down", "--branch", b)["released"] is True

        # The leak check below sees the stack while it exists (its state, its tagged resources).
        assert leftovers(target, pool_stack, pool_stack, "module")
        drain = _json(project, "pool", "drain", "--yes")
        assert list(drain["destroy"]) == [pool_stack] and not drain["failed"], drain
        assert _json(project, "pool", "status")["stacks"] == []
        assert leftovers(target, pool_stack, pool_stack, "module") == []
        assert out["bucket"] not in {x["Name"] for x in s3.list_buckets()["Buckets"]}
        assert out["table"] not in ddb.list_tables()["TableNames"]
        print(
            f"\nterraform pool: fill {fill['duration_s']:.1f} s, apply on claim "
            f"{first['duration_s']:.1f} s / {second['duration_s']:.1f} s, "
            f"release {down['duration_s']:.1f} s"
        )
    finally:
        for branch in (a, b):
            project.run("down", "--branch", branch, timeout=TIMEOUT)
        project.run("pool", "drain", "--yes", timeout=TIMEOUT)
        project.run("cloud", "stop")
