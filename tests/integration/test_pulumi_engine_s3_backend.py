"""The pulumi engine on an ``s3://`` DIY backend: a bucket of the local cloud (moto over HTTP),
where the stand-in CLI keeps each stack's checkpoint, tags, locks and history as the DIY backend
lays them out, and where the engine itself reads locks and holds a stack's lock to write its tags.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import pytest

from branchenv.errors import StackLocked
from branchenv.targets import Target
from tests.integration.pulumi_rig import (
    LOCAL,
    PROJECT,
    Rig,
    bucket_keys,
    do_up,
    make_metadata,
    make_rig,
    s3_backend,
    stack_name,
)

pytestmark = pytest.mark.standin


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Rig:
    return make_rig(tmp_path, monkeypatch)


@pytest.fixture
def backend(local_cloud: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    return s3_backend(local_cloud, monkeypatch)


def put_lock(cloud: Target, url: str, stack: str, *, age: dt.timedelta) -> str:
    parts = urllib.parse.urlsplit(url)
    key = (
        f"{parts.path.strip('/')}/.pulumi/locks/organization/{PROJECT}/{stack}/{uuid.uuid4()}.json"
    )
    taken = (dt.datetime.now(dt.UTC) - age).isoformat()
    body = {"pid": 99, "username": "ci", "hostname": "runner-3", "timestamp": taken}
    cloud.client("s3").put_object(Bucket=parts.netloc, Key=key, Body=json.dumps(body).encode())
    return key


def test_state_tags_and_history_live_in_the_bucket_in_the_diy_layout(
    rig: Rig, local_cloud: Any, backend: str
) -> None:
    dev = rig.clone("dev")
    engine = rig.engine(dev, backend_url=backend)
    stack = stack_name()
    do_up(engine, dev, stack)

    keys = bucket_keys(local_cloud, backend)
    assert ".pulumi/meta.yaml" in keys
    assert f".pulumi/stacks/{PROJECT}/{stack}.json" in keys
    assert f".pulumi/stacks/{PROJECT}/{stack}.pulumi-tags" in keys
    assert any(k.startswith(f".pulumi/history/{PROJECT}/{stack}/") for k in keys)
    assert not [k for k in keys if k.startswith(".pulumi/locks/") and k.endswith(".json")]
    assert not (dev.state_dir / "pulumi").exists()  # nothing of the stack on local disk
    listed = {s.stack: s for s in engine.list_stacks(program=dev.program)}
    assert listed[stack].metadata == make_metadata(stack)


def test_a_fresh_clone_with_the_url_and_passphrase_reads_marks_and_destroys(
    rig: Rig, local_cloud: Any, backend: str
) -> None:
    dev, ci = rig.clone("dev"), rig.clone("ci")
    stack = stack_name()
    do_up(rig.engine(dev, backend_url=backend), dev, stack)

    fresh = rig.engine(ci, backend_url=backend)
    (summary,) = fresh.list_stacks(program=ci.program)
    assert (summary.stack, summary.metadata, summary.resource_count) == (
        stack,
        make_metadata(stack),
        4,
    )
    assert fresh.outputs(stack=stack, program=ci.program)["tableName"] == f"{stack}-orders"
    pending = dataclasses.replace(make_metadata(stack), reap_pending=True)
    fresh.set_metadata(stack=stack, program=ci.program, metadata=pending)
    assert rig.engine(dev, backend_url=backend).metadata(stack=stack, program=dev.program) == (
        pending
    )
    result = fresh.destroy(stack=stack, program=ci.program, target=LOCAL)
    assert (result.deleted, result.removed) == (4, True)
    assert not any(
        k.startswith(f".pulumi/stacks/{PROJECT}/") for k in bucket_keys(local_cloud, backend)
    )


def test_a_lock_in_the_bucket_holds_updates_and_tag_writes(
    rig: Rig, local_cloud: Any, backend: str
) -> None:
    dev = rig.clone("dev")
    engine = rig.engine(dev, backend_url=backend, max_attempts=2)
    stack = stack_name()
    do_up(engine, dev, stack)
    put_lock(local_cloud, backend, stack, age=dt.timedelta(minutes=1))

    with pytest.raises(StackLocked, match=r"ci@runner-3 \(pid 99\)"):
        engine.set_metadata(
            stack=stack,
            program=dev.program,
            metadata=dataclasses.replace(make_metadata(stack), reap_pending=True),
        )
    with pytest.raises(StackLocked, match="ci@runner-3"):
        engine.destroy(stack=stack, program=dev.program, target=LOCAL)
    assert engine.metadata(stack=stack, program=dev.program) == make_metadata(stack)


def test_a_stale_lock_in_the_bucket_is_cancelled_once(
    rig: Rig, local_cloud: Any, backend: str
) -> None:
    dev = rig.clone("dev")
    engine = rig.engine(dev, backend_url=backend, lock_stale_after_s=600)
    stack = stack_name()
    do_up(engine, dev, stack)
    stale = put_lock(local_cloud, backend, stack, age=dt.timedelta(hours=3))
    pending = dataclasses.replace(make_metadata(stack), reap_pending=True)

    engine.set_metadata(stack=stack, program=dev.program, metadata=pending)

    assert engine.metadata(stack=stack, program=dev.program) == pending
    prefix = urllib.parse.urlsplit(backend).path.strip("/") + "/"
    assert stale[len(prefix) :] not in bucket_keys(local_cloud, backend)
