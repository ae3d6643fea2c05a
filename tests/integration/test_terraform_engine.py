"""The terraform engine behind the Engine protocol, with the real terraform CLI on the local
cloud: what the contract suite does not cover (plan check, preview diffs, refresh, metadata,
secret masking, locks, the local file backend).

One stack serves the checks of the lifecycle test (each apply costs several provider starts);
the lock and file-backend tests use a module of builtin resources only (no aws provider start).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest

from branchenv.config import Settings
from branchenv.engines import get_engine
from branchenv.engines.base import PlannedStep, Program
from branchenv.engines.terraform.backend import LOCAL_STATE_BUCKET
from branchenv.engines.terraform.engine import TerraformEngine
from branchenv.errors import SafetyRefusal, StackLocked, StackNotFound
from branchenv.metadata import StackMetadata
from branchenv.targets import Target
from tests.conftest import inputs_for, program_at
from tests.tfsupport import PROGRAMS, terraform_bin, terraform_mirror, tf_metadata

__all__ = ["terraform_bin", "terraform_mirror"]

pytestmark = pytest.mark.terraform


def _engine(tmp_path: Path, target: Target, mirror: Path, **settings: str) -> TerraformEngine:
    engine = get_engine(
        "terraform",
        settings=Settings(project_dir=tmp_path, terraform_plugin_mirror=str(mirror), **settings),
        target=target,
    )
    assert isinstance(engine, TerraformEngine)
    return engine


def _objects(target: Target, prefix: str) -> list[str]:
    listed = target.client("s3").list_object_versions(Bucket=LOCAL_STATE_BUCKET, Prefix=prefix)
    return [v["Key"] for v in (listed.get("Versions") or []) + (listed.get("DeleteMarkers") or [])]


def test_lifecycle_plan_check_preview_refresh_metadata(
    tmp_path: Path, local_cloud: Target, terraform_mirror: Path
) -> None:
    engine = _engine(tmp_path, local_cloud, terraform_mirror)
    program = program_at(PROGRAMS / "contract")
    stack = f"int-{uuid.uuid4().hex[:8]}"
    md = tf_metadata(stack)
    seen: list[PlannedStep] = []

    def remember(steps: Sequence[PlannedStep]) -> None:
        seen.extend(steps)

    try:
        first = engine.up(
            stack=stack,
            program=program,
            target=local_cloud,
            metadata=md,
            inputs=inputs_for(md, target=local_cloud),
            plan_check=remember,
        )
        # The check saw every planned physical name, read from the plan JSON.
        names = {s.address: (s.op, s.physical_name, s.name_property) for s in seen}
        assert names == {
            "aws_s3_bucket.data": ("create", f"{stack}-data", "bucket"),
            "aws_dynamodb_table.items": ("create", f"{stack}-items", "name"),
        }
        assert first.changes == {"create": 2, "update": 0, "replace": 0, "delete": 0, "same": 0}
        assert first.outputs["token"] == "[secret]"
        assert first.outputs["bucket_name"] == f"{stack}-data"
        assert {r.type for r in first.resources} == {"aws_s3_bucket", "aws_dynamodb_table"}

        # A second stack whose plan the check refuses: nothing is created, nothing recorded.
        refused = f"int-{uuid.uuid4().hex[:8]}"

        def refuse(steps: Sequence[PlannedStep]) -> None:
            raise SafetyRefusal(f"refused {len(steps)} steps")

        with pytest.raises(SafetyRefusal):
            engine.up(
                stack=refused,
                program=program,
                target=local_cloud,
                metadata=tf_metadata(refused),
                inputs=inputs_for(tf_metadata(refused), target=local_cloud),
                plan_check=refuse,
            )
        assert _objects(local_cloud, f"branchenv/contract/{refused}/") == []
        buckets = {b["Name"] for b in local_cloud.client("s3").list_buckets()["Buckets"]}
        assert f"{refused}-data" not in buckets
        with pytest.raises(StackNotFound):
            engine.outputs(stack=refused, program=program)

        # Preview: per resource its change kind and the properties that change; nothing moves.
        preview = engine.preview(
            stack=stack,
            program=program,
            target=local_cloud,
            metadata=md,
            inputs=inputs_for(md, {"marker": "two"}, target=local_cloud),
        )
        steps = {s.address: s for s in preview.steps}
        assert steps["aws_s3_bucket.data"].op == "update"
        assert "tags" in steps["aws_s3_bucket.data"].diff
        assert steps["aws_dynamodb_table.items"].op == "same"
        assert preview.changes["update"] == 1 and preview.changes["same"] == 1
        tags = local_cloud.client("s3").get_bucket_tagging(Bucket=f"{stack}-data")["TagSet"]
        assert {"Key": "marker", "Value": "one"} in tags

        # A no-op up changes nothing and reports so.
        again = engine.up(
            stack=stack,
            program=program,
            target=local_cloud,
            metadata=md,
            inputs=inputs_for(md, target=local_cloud),
            plan_check=lambda steps: None,
        )
        assert again.changes == {"create": 0, "update": 0, "replace": 0, "delete": 0, "same": 2}
        assert again.outputs == first.outputs

        # Metadata lives in the sidecar: rewritten without touching any resource.
        pending = StackMetadata.from_tags({**md.to_tags(), "branchenv:reap-pending": "true"})
        assert pending is not None
        engine.set_metadata(stack=stack, program=program, metadata=pending)
        assert engine.metadata(stack=stack, program=program) == pending
        listed = {s.stack: s for s in engine.list_stacks(program=program)}
        assert listed[stack].metadata == pending and listed[stack].resource_count == 2
        assert listed[stack].attention is None

        # Refresh: a resource deleted behind terraform's back leaves the state.
        local_cloud.client("dynamodb").delete_table(TableName=f"{stack}-items")
        refreshed = engine.refresh(stack=stack, program=program, target=local_cloud)
        assert refreshed.missing == ("aws_dynamodb_table.items",)
        assert [r.address for r in engine.resources(stack=stack, program=program)] == [
            "aws_s3_bucket.data"
        ]
    finally:
        with contextlib.suppress(StackNotFound):
            result = engine.destroy(stack=stack, program=program, target=local_cloud)
            assert result.removed and result.deleted == 1
    # Nothing of the stack stays in the backend, nor its work dir.
    assert _objects(local_cloud, f"branchenv/contract/{stack}/") == []
    assert not (tmp_path / ".branchenv" / "terraform" / "contract" / stack).exists()
    with pytest.raises(StackNotFound):
        engine.destroy(stack=stack, program=program, target=local_cloud)


def _builtin_module(tmp_path: Path) -> Program:
    module = tmp_path / "builtin"
    module.mkdir(exist_ok=True)
    (module / "main.tf").write_text(
        'variable "prefix" {\n  type = string\n}\n'
        'resource "terraform_data" "marker" {\n  input = var.prefix\n}\n'
        'output "marker" {\n  value = terraform_data.marker.output\n}\n'
    )
    return program_at(module)


def test_a_stale_lock_is_cleared_once_and_a_live_one_refuses(
    tmp_path: Path, local_cloud: Target, terraform_mirror: Path
) -> None:
    engine = _engine(tmp_path, local_cloud, terraform_mirror)
    engine.lock_timeout_s = 1
    program = _builtin_module(tmp_path)
    stack = f"int-{uuid.uuid4().hex[:8]}"
    md = tf_metadata(stack)
    lock_key = f"branchenv/{program.project}/{stack}/terraform.tfstate.tflock"
    s3 = local_cloud.client("s3")

    def plant_lock(age: dt.timedelta, lock_id: str) -> None:
        created = (dt.datetime.now(dt.UTC) - age).isoformat().replace("+00:00", "Z")
        info = {
            "ID": lock_id,
            "Operation": "OperationTypeApply",
            "Who": "ghost@elsewhere",
            "Version": "1.11.4",
            "Created": created,
            "Path": lock_key[: -len(".tflock")],
            "Info": "",
        }
        s3.put_object(Bucket=LOCAL_STATE_BUCKET, Key=lock_key, Body=json.dumps(info).encode())

    def up() -> object:
        return engine.up(
            stack=stack,
            program=program,
            target=local_cloud,
            metadata=md,
            inputs=inputs_for(md, target=local_cloud),
        )

    try:
        up()
        plant_lock(dt.timedelta(minutes=5), "11111111-1111-1111-1111-111111111111")
        with pytest.raises(StackLocked, match="ghost@elsewhere") as caught:
            up()
        assert caught.value.exit_code == 1
        plant_lock(dt.timedelta(hours=3), "22222222-2222-2222-2222-222222222222")
        assert up() is not None  # stale: force-unlocked once, then applied
    finally:
        s3.delete_object(Bucket=LOCAL_STATE_BUCKET, Key=lock_key)
        with contextlib.suppress(StackNotFound):
            engine.destroy(stack=stack, program=program, target=local_cloud)


def test_the_local_file_backend_is_one_persons_and_says_so(
    tmp_path: Path, local_cloud: Target, terraform_mirror: Path
) -> None:
    engine = _engine(tmp_path, local_cloud, terraform_mirror, terraform_backend="local")
    program = _builtin_module(tmp_path)
    stack = f"int-{uuid.uuid4().hex[:8]}"
    md = tf_metadata(stack)
    root = tmp_path / ".branchenv" / "terraform-state" / program.project / stack
    try:
        result = engine.up(
            stack=stack,
            program=program,
            target=local_cloud,
            metadata=md,
            inputs=inputs_for(md, target=local_cloud),
        )
        assert result.outputs == {"marker": stack}
        assert (root / "terraform.tfstate").is_file() and (root / "branchenv.json").is_file()
        assert [s.stack for s in engine.list_stacks(program=program)] == [stack]
        [listed] = engine.list_stacks(program=program)
        assert listed.backend is not None and "one person's use" in listed.backend
    finally:
        with contextlib.suppress(StackNotFound):
            engine.destroy(stack=stack, program=program, target=local_cloud)
    assert not root.exists()
    assert shutil.which("terraform")
