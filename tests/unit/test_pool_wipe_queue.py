"""wipe_queue against AWS's own purge rule (one PurgeQueue per queue per 60 s) on a fake clock:
a queue released twice within a minute, with a message left in flight each time, must wait
out the rest of the minute and purge again, within its verify budget (benchmarks/pool.py found
a second release giving up and destroying the stack). The real local cloud runs the same
sequence with a shorter interval in tests/integration/test_pool_wipe.py."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from branchenv.localcloud.fidelity import (
    SQS_PURGE_INTERVAL_ENV,
    SQS_PURGE_INTERVAL_S,
    sqs_purge_interval_s,
)
from branchenv.pool.wipe import wipe_queue

URL = "http://sqs.local/000000000000/q"


class FakeSqs:
    """One queue: visible and in-flight message counts, purges on ``clock``, AWS's rule."""

    def __init__(self, *, visible: int, in_flight: int, last_purge: float | None) -> None:
        self.clock = 0.0
        self.visible = visible
        self.in_flight = in_flight
        self.last_purge = last_purge
        self.purges: list[float] = []
        self.refused: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.clock += seconds

    def purge_queue(self, QueueUrl: str) -> None:
        assert QueueUrl == URL
        if self.last_purge is not None and self.clock - self.last_purge < SQS_PURGE_INTERVAL_S:
            self.refused.append(self.clock)
            raise ClientError(
                {"Error": {"Code": "AWS.SimpleQueueService.PurgeQueueInProgress"}}, "PurgeQueue"
            )
        self.last_purge = self.clock
        self.purges.append(self.clock)
        self.visible = self.in_flight = 0

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> Any:
        counts = {
            "ApproximateNumberOfMessages": self.visible,
            "ApproximateNumberOfMessagesNotVisible": self.in_flight,
            "ApproximateNumberOfMessagesDelayed": 0,
        }
        return {"Attributes": {k: str(v) for k, v in counts.items() if k in AttributeNames}}

    def receive_message(self, QueueUrl: str, MaxNumberOfMessages: int, WaitTimeSeconds: int) -> Any:
        taken = min(self.visible, MaxNumberOfMessages)
        if not taken:
            self.clock += WaitTimeSeconds
        self.visible -= taken
        self.in_flight += taken
        return {"Messages": [{"ReceiptHandle": f"h{i}"} for i in range(taken)]}

    def delete_message_batch(self, QueueUrl: str, Entries: list[Any]) -> None:
        self.in_flight -= len(Entries)


class FakeTarget:
    def __init__(self, sqs: FakeSqs) -> None:
        self.sqs = sqs

    def client(self, service: str) -> FakeSqs:
        assert service == "sqs"
        return self.sqs


def test_a_second_wipe_within_the_minute_waits_for_the_next_purge_and_ends_empty() -> None:
    # The first release purged at 0 s; the second comes 1 s later with one visible message and
    # one a test received and left in flight (only a purge can remove it).
    sqs = FakeSqs(visible=1, in_flight=1, last_purge=0.0)
    sqs.clock = 1.0
    done = wipe_queue(FakeTarget(sqs), URL, sqs.sleep)
    assert done.empty, done
    assert sqs.refused and sqs.refused[0] == 1.0, sqs.refused
    assert len(sqs.purges) == 1 and sqs.purges[0] >= SQS_PURGE_INTERVAL_S, sqs.purges


def test_a_first_wipe_purges_at_once() -> None:
    sqs = FakeSqs(visible=3, in_flight=2, last_purge=None)
    done = wipe_queue(FakeTarget(sqs), URL, sqs.sleep)
    assert done.empty and done.deleted == 5, done
    assert sqs.purges == [0.0] and not sqs.refused


def test_a_wipe_that_cannot_purge_within_its_budget_reports_what_is_left() -> None:
    sqs = FakeSqs(visible=0, in_flight=1, last_purge=0.0)
    done = wipe_queue(FakeTarget(sqs), URL, sqs.sleep, verify_s=10.0)
    assert not done.empty and done.left == 1, done
    assert not sqs.purges


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, 60.0), ("", 60.0), ("5", 5.0), (" 0.5 ", 0.5), ("60", 60.0)],
)
def test_the_local_cloud_purge_interval_is_aws_unless_shortened(
    value: str | None, expected: float
) -> None:
    env = {} if value is None else {SQS_PURGE_INTERVAL_ENV: value}
    assert sqs_purge_interval_s(env) == expected


@pytest.mark.parametrize("value", ["0", "-1", "61", "soon", "nan"])
def test_a_bad_purge_interval_is_refused_naming_the_variable(value: str) -> None:
    with pytest.raises(ValueError, match=SQS_PURGE_INTERVAL_ENV):
        sqs_purge_interval_s({SQS_PURGE_INTERVAL_ENV: value})
