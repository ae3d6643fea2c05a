"""An orphan is a resource no *listed* stack claims, so a sweep may only judge the projects it
listed (issue 11's several programs, safety rail): a configured program no listing engine reads
(`reap --orphans --engine X` for another kind, or an engine that is not available here) has
stacks the sweep cannot see, and their resources must never be taken for orphans. On the local
cloud, with real tagged resources."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest

from branchenv.config import ProgramSetting, Settings
from branchenv.engines import get_engine
from branchenv.reaper import run
from branchenv.reaper.orphans import SkipReason
from branchenv.targets import LOCAL_ACCOUNT_ID, Target
from tests import fakes


def queue_for(target: Target, *, stack: str, project: str) -> str:
    name = f"scope-{uuid.uuid4().hex[:8]}"
    target.client("sqs").create_queue(
        QueueName=name,
        tags={
            "branchenv:managed-by": "branchenv",
            "branchenv:stack": stack,
            "branchenv:project": project,
            "branchenv:created-at": "2026-01-01T00:00:00Z",
        },
    )
    return f"arn:aws:sqs:{target.region}:{LOCAL_ACCOUNT_ID}:{name}"


@pytest.mark.usefixtures("registered")
def test_a_program_no_listing_engine_reads_is_never_swept(
    tmp_path: Path, local_cloud: Target
) -> None:
    suffix = uuid.uuid4().hex[:8]
    fakes.write_program(tmp_path / "listed", project=f"listed-{suffix}", resources=[])
    (tmp_path / "unlisted").mkdir()
    (tmp_path / "unlisted" / "Pulumi.yaml").write_text(
        f"name: unlisted-{suffix}\nruntime: python\n", encoding="utf-8"
    )
    (tmp_path / "unlisted" / "__main__.py").write_text("", encoding="utf-8")
    settings = Settings(
        project_dir=tmp_path,
        program="listed",
        programs=(ProgramSetting(name="other", path="unlisted"),),
    )
    # Only the fake engine is asked (as `reap --orphans --engine fake` would): it reads the
    # listed program; nothing lists the Pulumi program's stacks.
    engine = get_engine("fake", settings=settings, target=local_cloud)
    ghost = queue_for(local_cloud, stack=f"ghost-{suffix}", project=f"listed-{suffix}")
    unseen = queue_for(local_cloud, stack=f"feature-y-{suffix}", project=f"unlisted-{suffix}")

    plan = run.plan(
        settings,
        engines=[engine],
        target_name="local",
        orphan_target=local_cloud,
        orphan_grace=dt.timedelta(0),
        now=dt.datetime.now(dt.UTC),
    )
    assert plan.orphans is not None
    orphans = {o.arn for o in plan.orphans.orphans}
    assert ghost in orphans
    assert unseen not in orphans
    skipped = {s.arn: s for s in plan.orphans.skipped}
    assert skipped[unseen].reason is SkipReason.OTHER_PROJECT
