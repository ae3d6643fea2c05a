"""What makes a warm claim's time to ready short, driven through the pool's core with the tests'
in-memory engine and a claim store on the real local cloud:

- `ci` makes the claim store's S3 client and bucket on another thread while its watchdog starts
  (:func:`branchenv.pool.prepare`); a claim arriving meanwhile waits for them instead of making
  its own (one client, one CreateBucket), and a failure there is left to the claim;
- `pool fill` offers a stack only once it answers the readiness checks `ci` runs (which also
  starts its functions' runtimes): one that does not answer is never claimable."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from branchenv import pool
from branchenv.harness.ci import warm_up
from branchenv.harness.readiness import NotReady
from branchenv.pool import claims
from branchenv.targets import Target
from tests import fakes
from tests.integration.test_pool_fast_path import _context


def _quiet(_line: str) -> None:
    pass


def _project(tmp_path: Path, **outputs: Any) -> None:
    fakes.write_program(
        tmp_path / "prog",
        project=f"int-{uuid.uuid4().hex[:8]}",
        resources=[{"name": "jobs", "type": "aws:sqs/queue:Queue", "physical_name": "{prefix}-q"}],
        outputs=outputs,
    )


def _fresh_process(tmp_path: Path, local_cloud: Target, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A branch's context in a project of one queue, as in a fresh process: neither the claim
    store's client nor its bucket is known yet."""
    _project(tmp_path)
    ctx = _context(tmp_path, local_cloud, "feature/warm")
    monkeypatch.setattr(claims, "_S3", {})
    monkeypatch.setattr(claims, "_BUCKETS", {})
    return ctx


@pytest.mark.usefixtures("registered")
def test_a_claim_meeting_the_warm_up_midway_waits_for_its_client_and_bucket(
    tmp_path: Path, local_cloud: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = _fresh_process(tmp_path, local_cloud, monkeypatch)
    made: list[str] = []
    real_client = Target.client

    def slow_client(self: Target, service: str, **kwargs: Any) -> Any:
        made.append(service)
        time.sleep(0.2)  # boto3's first client: long enough for the claim to arrive meanwhile
        return real_client(self, service, **kwargs)

    monkeypatch.setattr(Target, "client", slow_client)
    buckets: list[str] = []
    warm = warm_up(ctx, pooled=True)
    claimer = threading.Thread(target=lambda: buckets.append(pool.store_for(ctx).bucket))
    claimer.start()
    warm.join(timeout=30)
    claimer.join(timeout=30)
    assert made == ["s3"], f"the claim made its own client: {made}"
    assert buckets == [claims._BUCKETS[local_cloud]]
    assert claims._S3[local_cloud] is pool.store_for(ctx).s3


@pytest.mark.usefixtures("registered")
def test_a_warm_up_that_fails_leaves_the_failure_to_the_claim(
    tmp_path: Path, local_cloud: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = _fresh_process(tmp_path, local_cloud, monkeypatch)

    def refused(self: Target, service: str, **kwargs: Any) -> Any:
        raise ConnectionError("the local cloud is down")

    monkeypatch.setattr(Target, "client", refused)
    # An exception escaping the thread would be a PytestUnhandledThreadExceptionWarning (an
    # error here): the warm-up says nothing, and caches nothing the claim would trust.
    warm_up(ctx, pooled=True).join(timeout=30)
    assert claims._S3 == {} and claims._BUCKETS == {}
    with pytest.raises(ConnectionError, match="down"):
        pool.store_for(ctx).bucket  # noqa: B018


@pytest.mark.usefixtures("registered")
def test_a_filled_stack_that_does_not_answer_is_never_offered(
    tmp_path: Path, local_cloud: Target
) -> None:
    # The stack's queue output names a queue that does not exist: its readiness check fails.
    _project(tmp_path, queue_url=f"{local_cloud.endpoint_url}/123456789012/{{prefix}}-gone")
    filler = _context(tmp_path, local_cloud, "main")
    member = pool.member_names(pool.pool_name(filler), 1)
    try:
        with pytest.raises(NotReady, match="sqs queue"):
            pool.fill(
                filler,
                size=1,
                profile="ephemeral",
                say=_quiet,
                ready_timeout_s=1.0,
                sleep=lambda _s: None,
            )
        (state,) = [s.state for s in pool.status(filler).stacks if s.stack == member]
        assert state == "making", "held by the fill that made it (alive: this process)"
        ctx = _context(tmp_path, local_cloud, "feature/claimer")
        assert pool.claim(ctx, ttl="1h", say=_quiet) is None
    finally:
        pool.store_for(filler).release(member)
        pool.drain(filler, yes=True, say=_quiet)


@pytest.mark.usefixtures("registered")
def test_a_filled_stack_is_offered_once_its_checks_pass(
    tmp_path: Path, local_cloud: Target
) -> None:
    name = f"int-ready-{uuid.uuid4().hex[:8]}"
    url = local_cloud.client("sqs").create_queue(QueueName=name)["QueueUrl"]
    _project(tmp_path, queue_url=url)
    filler = _context(tmp_path, local_cloud, "main")
    lines: list[str] = []
    try:
        done = pool.fill(filler, size=1, profile="ephemeral", say=lines.append)
        assert len(done.created) == 1
        assert any(f"ready: sqs queue {name}" in line for line in lines), lines
        assert [s.state for s in pool.status(filler).stacks] == ["free"]
    finally:
        pool.drain(filler, yes=True, say=_quiet)
        local_cloud.client("sqs").delete_queue(QueueUrl=url)
