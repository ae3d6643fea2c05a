"""A claimant that changes the resource graph gets the pool stack destroyed, on the real
terraform engine (issue 17: on release a pool stack is "destroyed ... when the program's resource
graph changed"; tests/e2e/test_pool.py shows it for inprocess only).

The pool is the bucket-and-table module of test_pool_terraform.py, in a pool of one. Branch A's
module adds a second bucket; `up --pool` claims the pool stack and applies it (an update that
creates the bucket). Its release (`down`) finds the stack's addresses differ from the pool's
baseline, so the stack is destroyed, not returned: nothing tagged with it is left on the local
cloud (the leak check, read over HTTP), no state, and `pool status` no longer lists it.

Only what the release did is asserted: whether a replacement is then made in the background is
another test's matter.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.e2e.test_pool_terraform import MODULE, TIMEOUT, _json
from tests.e2e.test_terraform import leftovers, terraform_project
from tests.tfsupport import terraform_bin, terraform_mirror

__all__ = ["terraform_bin", "terraform_mirror"]  # fixtures, used by name

pytestmark = [pytest.mark.terraform, pytest.mark.slow]

SECOND_BUCKET = """
resource "aws_s3_bucket" "extra" {
  bucket        = "${var.prefix}-extra"
  force_destroy = true
}
"""


def test_a_claimant_that_adds_a_resource_gets_the_pool_stack_destroyed_on_release(
    tmp_path: Path, terraform_bin: str, terraform_mirror: Path
) -> None:
    root = tmp_path / "tfgraph"
    project = terraform_project(
        root, terraform_mirror, program="module", extra='pool_size = 1\npool_refill = "off"\n'
    )
    (root / "module").mkdir()
    (root / "module" / "main.tf").write_text(MODULE)
    branch = f"feature/graph-{uuid.uuid4().hex[:6]}"
    try:
        fill = _json(project, "pool", "fill")
        [pool_stack] = fill["created"]
        assert fill["engine"] == "terraform"

        (root / "module" / "main.tf").write_text(MODULE + SECOND_BUCKET)  # the branch's module
        up = _json(project, "up", "--pool", "--branch", branch)
        assert up["stack"] == pool_stack  # claimed, and the update applied on top
        assert up["resource_count"] == 3, up
        target = project.target()
        s3, ddb = target.client("s3"), target.client("dynamodb")
        data, extra, table = f"{pool_stack}-data", f"{pool_stack}-extra", f"{pool_stack}-items"
        assert {data, extra} <= {b["Name"] for b in s3.list_buckets()["Buckets"]}
        s3.put_object(Bucket=data, Key="a/secret.txt", Body=b"the claimant was here")
        [member] = _json(project, "pool", "status")["stacks"]
        assert member["stack"] == pool_stack and member["claimed_by"] == branch
        # The leak check below sees the stack while it exists (its state, its tagged resources).
        assert len(leftovers(target, pool_stack, pool_stack, "module")) >= 3

        down = _json(project, "down", "--branch", branch)
        assert down["stack"] == pool_stack
        assert down["released"] is False and down["removed"] is True, down
        assert down["deleted"] == 3, down  # the data bucket, the table, the claimant's bucket
        assert down["leaked"] == [] and down["leak_check"] is None, down
        assert any("changed its resource graph (+1/-0" in note for note in down["notes"]), down
        assert leftovers(target, pool_stack, pool_stack, "module") == []
        buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
        assert not {data, extra} & buckets
        assert table not in ddb.list_tables()["TableNames"]
        assert pool_stack not in {s["stack"] for s in _json(project, "pool", "status")["stacks"]}
        assert pool_stack not in {row["stack"] for row in _json(project, "ls")}
        print(
            f"\nterraform pool, graph changed: fill {fill['duration_s']:.1f} s, claim + update "
            f"{up['duration_s']:.1f} s, release by destroy {down['duration_s']:.1f} s"
        )
    finally:
        project.run("down", "--branch", branch, timeout=TIMEOUT)
        project.run("pool", "drain", "--yes", timeout=TIMEOUT)
        project.run("cloud", "stop")
