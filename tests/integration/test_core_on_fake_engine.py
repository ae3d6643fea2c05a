"""The core's own guarantees, driven through provision with the tests' in-memory engine
(registered through the public registry): the identity tags only on resources, so a re-`up`
with a new TTL retags nothing (issue 13 item 2); the branch-isolation check runs on the plan
before anything exists (issue 13 item 3), with `--allow-shared` as the escape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from branchenv import provision
from branchenv.config import Settings
from branchenv.errors import EXIT_REFUSED, SafetyRefusal, StackNotFound
from branchenv.gitinfo import BranchInfo
from branchenv.naming import names_for
from branchenv.programs import select_program
from branchenv.targets import Target
from tests import fakes


def context(tmp_path: Path, resources: list[dict[str, Any]], branch: str) -> Any:
    from branchenv.engines import get_engine

    fakes.write_program(tmp_path / "prog", project="core-fake", resources=resources)
    settings = Settings(project_dir=tmp_path, program="prog")
    target = Target("aws", "us-east-1")  # the fake engine calls nothing; no allowlist: no STS
    return provision.StackContext(
        settings=settings,
        branch=BranchInfo(name=branch, source="flag", detached=False),
        names=names_for(branch),
        target=target,
        engine=get_engine("fake", settings=settings, target=target),
        engine_note=None,
        program=select_program(settings),
    )


@pytest.mark.usefixtures("registered")
def test_resources_carry_only_the_identity_tags_and_a_new_ttl_retags_nothing(
    tmp_path: Path,
) -> None:
    ctx = context(
        tmp_path,
        [{"name": "jobs", "type": "aws:sqs/queue:Queue", "physical_name": "{prefix}-jobs"}],
        "feature/tags",
    )
    first = provision.up(ctx, ttl="2h")
    world = ctx.engine.world()
    tags = world[f"{ctx.names.prefix}-jobs"]["tags"]
    assert tags == first.metadata.identity_tags()
    assert "branchenv:expires-at" not in tags and "branchenv:commit" not in tags

    second = provision.up(ctx, ttl="48h")
    assert second.metadata.expires_at > first.metadata.expires_at  # kept with the stack
    assert second.changes == {"create": 0, "update": 0, "replace": 0, "delete": 0, "same": 1}
    listed = ctx.engine.metadata(stack=ctx.names.stack, program=ctx.program)
    assert listed == second.metadata


@pytest.mark.usefixtures("registered")
def test_a_fixed_name_every_branch_would_share_is_refused_before_anything_exists(
    tmp_path: Path,
) -> None:
    ctx = context(
        tmp_path,
        [
            {"name": "mine", "type": "aws:sqs/queue:Queue", "physical_name": "{prefix}-jobs"},
            {"name": "uploads", "type": "aws:s3/bucket:Bucket", "physical_name": "team-uploads"},
        ],
        "feature/shared",
    )
    with pytest.raises(SafetyRefusal) as caught:
        provision.up(ctx)
    assert caught.value.exit_code == EXIT_REFUSED
    assert "'uploads'" in str(caught.value) and "'team-uploads'" in str(caught.value)
    assert ctx.engine.world() == {}
    with pytest.raises(StackNotFound):
        ctx.engine.outputs(stack=ctx.names.stack, program=ctx.program)

    shared = provision.up(ctx, allow_shared=["team-uploads"])
    assert shared.changes["create"] == 2
    assert set(ctx.engine.world()) == {f"{ctx.names.prefix}-jobs", "team-uploads"}


@pytest.mark.usefixtures("registered")
def test_preview_refuses_what_up_would_refuse_for_isolation(tmp_path: Path) -> None:
    """`preview` shows what `up` would do: a plan `up` would refuse is refused here too (exit 3,
    naming the resource), not shown as if it would apply; `--allow-shared` lets it through."""
    ctx = context(
        tmp_path,
        [{"name": "uploads", "type": "aws:s3/bucket:Bucket", "physical_name": "team-uploads"}],
        "feature/preview-shared",
    )
    with pytest.raises(SafetyRefusal) as caught:
        provision.preview(ctx)
    assert caught.value.exit_code == EXIT_REFUSED
    assert "'team-uploads'" in str(caught.value) and "`up` would refuse" in str(caught.value)
    assert ctx.engine.world() == {}
    shown = provision.preview(ctx, allow_shared=["team-uploads"])
    assert shown.changes["create"] == 1
    assert ctx.engine.world() == {}
