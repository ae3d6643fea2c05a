"""The wipers on the real local cloud. SQS allows one purge per 60 s (moto enforces it, as AWS
does): a queue released twice within a minute, each time with a message a test received and
left in flight, must still be verified empty the second time (found by benchmarks/pool.py: the
second release took 95 s and destroyed the stack instead of returning it).

The local cloud here keeps the rule with a 5 s interval
(:data:`branchenv.localcloud.fidelity.SQS_PURGE_INTERVAL_ENV`), so the second wipe meets a
refused purge and waits it out in seconds rather than a minute; that the wait covers AWS's
full 60 s is checked on a fake clock in tests/unit/test_pool_wipe_queue.py."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from branchenv.localcloud.fidelity import SQS_PURGE_INTERVAL_ENV
from branchenv.pool.wipe import wipe_queue

PURGE_INTERVAL_S = 5


@pytest.fixture(scope="module")
def quick_purge_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A local cloud of this module's own whose SQS allows one purge per queue per 5 s."""
    from branchenv.localcloud import LocalCloud

    cloud = LocalCloud(Path(tmp_path_factory.mktemp("quick-purge")))
    with pytest.MonkeyPatch.context() as env:
        env.setenv(SQS_PURGE_INTERVAL_ENV, str(PURGE_INTERVAL_S))
        status = cloud.start()
    try:
        yield status.target("us-east-1")
    finally:
        cloud.stop()


def test_a_queue_wiped_twice_within_a_minute_with_messages_in_flight_ends_empty(
    quick_purge_cloud: Any,
) -> None:
    sqs = quick_purge_cloud.client("sqs")
    url = sqs.create_queue(QueueName=f"int-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    try:
        for round_ in range(2):
            sqs.send_message(QueueUrl=url, MessageBody=f"visible-{round_}")
            sqs.send_message(QueueUrl=url, MessageBody=f"in-flight-{round_}")
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=600)
            assert got.get("Messages")
            if round_:
                # The second wipe really meets the rule: a purge now is refused.
                with pytest.raises(ClientError, match="PurgeQueueInProgress"):
                    sqs.purge_queue(QueueUrl=url)
            done = wipe_queue(quick_purge_cloud, url, time.sleep)
            assert done.empty, (round_, done)
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attrs["ApproximateNumberOfMessages"] == "0"
        assert attrs["ApproximateNumberOfMessagesNotVisible"] == "0"
    finally:
        sqs.delete_queue(QueueUrl=url)
