"""The wipers on the real local cloud. SQS allows one purge per 60 s (moto enforces it, as AWS
does): a queue released twice within a minute, each time with a message a test received and
left in flight, must still be verified empty the second time (found by benchmarks/pool.py: the
second release took 95 s and destroyed the stack instead of returning it)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from branchenv.pool.wipe import wipe_queue


def test_a_queue_wiped_twice_within_a_minute_with_messages_in_flight_ends_empty(
    local_cloud: Any,
) -> None:
    sqs = local_cloud.client("sqs")
    url = sqs.create_queue(QueueName=f"int-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    try:
        for round_ in range(2):
            sqs.send_message(QueueUrl=url, MessageBody=f"visible-{round_}")
            sqs.send_message(QueueUrl=url, MessageBody=f"in-flight-{round_}")
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=600)
            assert got.get("Messages")
            done = wipe_queue(local_cloud, url, time.sleep)
            assert done.empty, (round_, done)
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attrs["ApproximateNumberOfMessages"] == "0"
        assert attrs["ApproximateNumberOfMessagesNotVisible"] == "0"
    finally:
        sqs.delete_queue(QueueUrl=url)
