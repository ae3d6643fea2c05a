"""The warm claim's fast path (the program and inputs are what the pool stack runs already),
driven through the pool's core with the tests' in-memory engine and a claim store on the real
local cloud: how often the engine is asked for the stack's resources before the stack is
ready, and that the cost estimate still prices what the engine reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from branchenv import pool, provision
from branchenv.config import Settings
from branchenv.gitinfo import BranchInfo
from branchenv.harness.ci import estimate_cost
from branchenv.naming import names_for
from branchenv.programs import select_program
from branchenv.targets import Target
from tests import fakes


def _context(tmp_path: Path, local_cloud: Target, branch: str) -> Any:
    from branchenv.engines import get_engine

    settings = Settings(project_dir=tmp_path, program="prog")
    return provision.StackContext(
        settings=settings,
        branch=BranchInfo(name=branch, source="flag", detached=False),
        names=names_for(branch),
        target=local_cloud,  # the claim store's bucket; the fake engine itself calls nothing
        engine=get_engine("fake", settings=settings, target=local_cloud),
        engine_note=None,
        program=select_program(settings),
    )


@pytest.mark.usefixtures("registered")
def test_a_claim_with_nothing_to_apply_asks_for_the_resources_once_and_prices_them(
    tmp_path: Path, local_cloud: Target
) -> None:
    import uuid

    project = f"int-{uuid.uuid4().hex[:8]}"
    fakes.write_program(
        tmp_path / "prog",
        project=project,
        resources=[
            {"name": "jobs", "type": "aws:sqs/queue:Queue", "physical_name": "{prefix}-jobs"},
            {"name": "orders", "type": "aws:dynamodb/table:Table", "physical_name": "{prefix}-o"},
        ],
    )
    filler = _context(tmp_path, local_cloud, "main")
    pool.fill(filler, size=1, profile="ephemeral", say=lambda _line: None)
    ctx = _context(tmp_path, local_cloud, "feature/fast")
    got = pool.acquire(ctx, ttl="1h", say=lambda _line: None, existing=None)
    assert got.metadata is not None, "the pool of one should have a free stack"
    try:
        engine = got.ctx.engine
        engine.calls.clear()
        up = pool.apply(
            got.ctx,
            got.metadata,
            profile="ephemeral",
            on_output=None,
            say=lambda _line: None,
            existing=provision.check_may_manage(got.ctx),
        )
        assert up.changes["same"] == 2 and "up" not in engine.calls  # the fast path
        estimate = estimate_cost(got.ctx, up, lambda _line: None)
        assert estimate is not None and estimate.inventory_available
        assert estimate.resource_count == 2
        assert sorted(line.type for line in estimate.lines) == [
            "aws:dynamodb/table:Table",
            "aws:sqs/queue:Queue",
        ]
        # Each call on the inprocess engine checks every resource still exists (a client
        # per service): the claim's time to ready pays for it once.
        assert engine.calls.count("resources") == 1, engine.calls
    finally:
        pool.release(got.ctx, got.metadata, say=lambda _line: None)
        pool.drain(filler, yes=True, say=lambda _line: None)


@pytest.mark.usefixtures("registered")
def test_a_claim_finds_the_pool_s_resources_in_place_or_updates_the_stack(
    tmp_path: Path, local_cloud: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing to apply only when every resource the pool made is still there; when the engine's
    ``resources`` asked the target (``resources_checked``), they are proven in place and the
    readiness wait probes the endpoints alone (``in_place``). One gone meanwhile (deleted behind
    the engine's back) makes the claim an update, which creates it again."""
    import uuid

    fakes.write_program(
        tmp_path / "prog",
        project=f"int-{uuid.uuid4().hex[:8]}",
        resources=[
            {"name": "jobs", "type": "aws:sqs/queue:Queue", "physical_name": "{prefix}-jobs"},
            {"name": "orders", "type": "aws:dynamodb/table:Table", "physical_name": "{prefix}-o"},
        ],
    )
    filler = _context(tmp_path, local_cloud, "main")
    said: list[str] = []
    try:
        for branch, checked, lose_one in (
            ("feature/in-place", True, False),
            ("feature/state-only", False, False),
            ("feature/lost-one", True, True),
        ):
            # (The fake's resources exist nowhere: the release cannot wipe them, destroys the
            # stack, and the next pass fills the pool again.)
            pool.fill(filler, size=1, profile="ephemeral", say=lambda _line: None)
            ctx = _context(tmp_path, local_cloud, branch)
            got = pool.acquire(ctx, ttl="1h", say=said.append, existing=None)
            assert got.metadata is not None
            engine = got.ctx.engine
            engine.calls.clear()
            monkeypatch.setattr(engine, "resources_checked", checked)
            if lose_one:

                def without_jobs(*, _all: Any = engine.resources, **kw: Any) -> Any:
                    return [r for r in _all(**kw) if "jobs" not in r.address]

                monkeypatch.setattr(engine, "resources", without_jobs)
            up = pool.apply(
                got.ctx,
                got.metadata,
                profile="ephemeral",
                on_output=None,
                say=said.append,
                existing=provision.check_may_manage(got.ctx),
            )
            assert up.in_place is (checked and not lose_one)
            assert ("up" in engine.calls) is lose_one, engine.calls
            if lose_one:
                assert any("not every resource the pool made is in place" in s for s in said)
            monkeypatch.undo()
            pool.release(got.ctx, got.metadata, say=lambda _line: None)
    finally:
        pool.drain(filler, yes=True, say=lambda _line: None)
