"""The pool's claim store on the real local cloud: of many processes claiming one stack at the
same instant, exactly one holds it; releasing lets the next one in; baselines round-trip."""

from __future__ import annotations

import dataclasses
import multiprocessing
import uuid
from typing import Any

from branchenv.pool.claims import SETTLE_S, Claim, ClaimStore, new_token


def _claim(target: Any, project: str, stack: str, name: str, barrier: Any, out: Any) -> None:
    store = ClaimStore(target, engine="inprocess", project=project)
    store.bucket  # noqa: B018 - the bucket exists before the race
    barrier.wait(timeout=60)
    record = Claim(
        stack, name, "tester", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", new_token()
    )
    out.put((name, store.try_claim(record)))


def test_of_four_processes_claiming_one_stack_at_once_exactly_one_holds_it(
    local_cloud: Any,
) -> None:
    project = f"int-{uuid.uuid4().hex[:8]}"
    ClaimStore(local_cloud, engine="inprocess", project=project).bucket  # noqa: B018
    ctx = multiprocessing.get_context("spawn")
    for round_ in range(3):
        stack = f"{project}-pool-{round_}"
        barrier = ctx.Barrier(4)
        out = ctx.Queue()
        procs = [
            ctx.Process(target=_claim, args=(local_cloud, project, stack, f"b{i}", barrier, out))
            for i in range(4)
        ]
        for p in procs:
            p.start()
        results = dict(out.get(timeout=90) for _ in procs)
        for p in procs:
            p.join(timeout=30)
        winners = [name for name, won in results.items() if won]
        assert len(winners) == 1, results
        held = ClaimStore(local_cloud, engine="inprocess", project=project).read_claim(stack)
        assert held is not None and held.branch == winners[0]


def test_a_released_claim_lets_the_next_claimer_in_and_baselines_round_trip(
    local_cloud: Any,
) -> None:
    project = f"int-{uuid.uuid4().hex[:8]}"
    store = ClaimStore(local_cloud, engine="inprocess", project=project, sleep=lambda _s: None)
    stack = f"{project}-pool-1"

    def record(branch: str) -> Claim:
        return Claim(
            stack, branch, "me", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", new_token()
        )

    assert store.try_claim(record("a"))
    assert not store.try_claim(record("b"))
    assert store.claims()[stack] is not None
    store.release(stack)
    assert store.read_claim(stack) is None
    assert store.try_claim(record("b"))
    assert store.baseline(stack) is None
    store.write_baseline(stack, ["urn:b", "urn:a", "urn:a"])
    assert store.baseline(stack) == frozenset({"urn:a", "urn:b"})
    store.forget(stack)
    assert store.read_claim(stack) is None and store.baseline(stack) is None


def test_a_claim_waits_for_the_settle_only_where_the_local_cloud_is_not_atomic(
    local_cloud: Any,
) -> None:
    # The session's local cloud is started by this branchenv: its S3 checks and applies a
    # conditional write as one step and says so, so a claim has nothing to wait for. A local
    # cloud that does not say so (an older server still running) gets the settle.
    assert local_cloud.atomic_conditional_writes
    project = f"int-{uuid.uuid4().hex[:8]}"
    for target, waits in (
        (local_cloud, []),
        (dataclasses.replace(local_cloud, atomic_conditional_writes=False), [SETTLE_S]),
    ):
        slept: list[float] = []
        store = ClaimStore(target, engine="inprocess", project=project, sleep=slept.append)
        stack = f"{project}-pool-{len(waits)}"
        record = Claim(
            stack, "a", "me", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", new_token()
        )
        assert store.try_claim(record)
        assert slept == waits
        assert not store.try_claim(dataclasses.replace(record, branch="b", token=new_token()))
        assert slept == waits  # a refused claim reads nothing back
        store.forget(stack)
