"""`pool fill` and the claim records of stacks it is about to make, driven through the pool's
core with the tests' in-memory engine and a claim store on the real local cloud.

A fill used to delete whatever claim record a missing member had before claiming it, so two
fills that both listed the member as missing could both make it: the second deleted the first's
fresh service claim. Now a fill claims first; it drops a record only when no fill still makes
that stack (a record a destroyed stack left behind)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from branchenv import pool
from branchenv.errors import OperationFailed
from branchenv.pool.claims import Claim
from branchenv.targets import Target
from tests import fakes
from tests.integration.test_pool_fast_path import _context


def _filler(tmp_path: Path, local_cloud: Target) -> tuple[Any, str]:
    fakes.write_program(
        tmp_path / "prog",
        project=f"int-{uuid.uuid4().hex[:8]}",
        resources=[{"name": "jobs", "type": "aws:sqs/queue:Queue", "physical_name": "{prefix}-q"}],
    )
    ctx = _context(tmp_path, local_cloud, "main")
    return ctx, pool.member_names(pool.pool_name(ctx), 1)


def _quiet(_line: str) -> None:
    pass


@pytest.mark.usefixtures("registered")
def test_a_fill_never_takes_over_a_member_another_live_fill_is_making(
    tmp_path: Path, local_cloud: Target
) -> None:
    ctx, member = _filler(tmp_path, local_cloud)
    store = pool.store_for(ctx)
    # Another fill (this very process: alive, on this host) has just claimed the member and
    # not yet written its metadata, so the pool lists it as missing.
    theirs = pool._service_claim(member, pool.FILL_CLAIM)
    assert store.try_claim(theirs)
    try:
        with pytest.raises(OperationFailed, match="being made by another"):
            pool.fill(ctx, size=1, profile="ephemeral", say=_quiet)
        held = store.read_claim(member)
        assert held is not None and held.token == theirs.token, "its claim was taken over"
        assert "up" not in ctx.engine.calls
    finally:
        store.forget(member)


@pytest.mark.usefixtures("registered")
def test_a_claim_record_left_by_a_destroyed_member_does_not_block_the_fill(
    tmp_path: Path, local_cloud: Target
) -> None:
    ctx, member = _filler(tmp_path, local_cloud)
    store = pool.store_for(ctx)
    # A branch's claim on a member that was destroyed (a release killed before it dropped
    # the record): no stack of that name exists any more.
    left = Claim(
        stack=member,
        branch="feature/gone",
        owner="someone",
        claimed_at="2026-01-01T00:00:00Z",
        expires_at="2999-01-01T00:00:00Z",
        token="left-behind",
    )
    assert store.try_claim(left)
    try:
        outcome = pool.fill(ctx, size=1, profile="ephemeral", say=_quiet)
        assert outcome.created == (member,)
        assert store.read_claim(member) is None  # free for the first claimant
    finally:
        pool.drain(ctx, yes=True, say=_quiet)
        store.forget(member)
