"""Local-cloud answers a real provider depends on (issue 12 item 5, issue 15 item 9).

Each case talks to the session's local cloud over HTTP, as the terraform aws provider does; each
was seen failing against plain moto before the fix in branchenv.localcloud.fidelity.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from branchenv.targets import Target
from tests.integration.test_function_runner import _deploy


def _suffix() -> str:
    return uuid.uuid4().hex[:8]


def test_dynamodb_list_tags_answers_every_tag_in_one_page(local_cloud: Target) -> None:
    # The aws provider reads a table's tags with one ListTagsOfResource call and never follows
    # NextToken: with moto's 10-tag pages, tags 11+ look deleted and every plan re-tags.
    ddb = local_cloud.client("dynamodb")
    name = f"fid-tags-{_suffix()}"
    tags = [{"Key": f"k{i:02d}", "Value": f"v{i}"} for i in range(15)]
    arn = ddb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        Tags=tags,
    )["TableDescription"]["TableArn"]
    try:
        answer = ddb.list_tags_of_resource(ResourceArn=arn)
        assert "NextToken" not in answer
        assert sorted(answer["Tags"], key=lambda t: t["Key"]) == tags
    finally:
        ddb.delete_table(TableName=name)


def test_sqs_redrive_policy_is_returned_exactly_as_set(local_cloud: Target) -> None:
    # terraform's jsonencode sends compact JSON; moto re-serialised it with spaces, which the
    # provider shows as a perpetual "whitespace changes" diff (and a 25 s wait per re-apply).
    sqs = local_cloud.client("sqs")
    suffix = _suffix()
    dlq_url = sqs.create_queue(QueueName=f"fid-dlq-{suffix}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    compact = json.dumps(
        {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3}, separators=(",", ":")
    )
    queue_url = sqs.create_queue(
        QueueName=f"fid-q-{suffix}", Attributes={"RedrivePolicy": compact}
    )["QueueUrl"]
    other_url = sqs.create_queue(QueueName=f"fid-q2-{suffix}")["QueueUrl"]
    spaced = json.dumps({"maxReceiveCount": "5", "deadLetterTargetArn": dlq_arn})
    try:
        got = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"])
        assert got["Attributes"]["RedrivePolicy"] == compact
        sqs.set_queue_attributes(QueueUrl=other_url, Attributes={"RedrivePolicy": spaced})
        got = sqs.get_queue_attributes(QueueUrl=other_url, AttributeNames=["All"])
        assert got["Attributes"]["RedrivePolicy"] == spaced
        # The policy still works: it is only how it is echoed that changed.
        sqs.set_queue_attributes(QueueUrl=other_url, Attributes={"RedrivePolicy": ""})
        got = sqs.get_queue_attributes(QueueUrl=other_url, AttributeNames=["All"])
        assert "RedrivePolicy" not in got["Attributes"]
    finally:
        for url in (queue_url, other_url, dlq_url):
            sqs.delete_queue(QueueUrl=url)


def _worker_pids(code_dir_fragment: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "branchenv.localcloud.worker" in argv and any(code_dir_fragment in a for a in argv):
            pids.append(int(proc.name))
    return pids


def _gone_within(check: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(check) and check():
            return True
        time.sleep(0.1)
    return False


def test_deleted_function_worker_is_stopped_and_its_code_removed(
    local_cloud: Target, local_cloud_dir: Path
) -> None:
    fn, _api, _bucket = _deploy(local_cloud)
    assert requests.get(f"{local_cloud.functions_url}/fn/{fn}/x", timeout=30).status_code == 200
    functions_dir = local_cloud_dir / "localcloud" / "functions"
    code_dirs = [p for p in functions_dir.iterdir() if p.name.startswith(f"{fn}-")]
    assert len(code_dirs) == 1 and _worker_pids(fn), "the warm worker should be running"

    local_cloud.client("lambda").delete_function(FunctionName=fn)

    assert _gone_within(lambda: not _worker_pids(fn), 10), "the worker outlived its function"
    assert _gone_within(lambda: not code_dirs[0].exists(), 10), "the code dir was left behind"
    assert requests.get(f"{local_cloud.functions_url}/fn/{fn}/x", timeout=30).status_code == 404


def _race(n: int, put: Callable[[int], None]) -> list[int]:
    """Run ``put(i)`` on ``n`` threads released at one instant; the indexes that got 200
    (every other answer must be 412 Precondition Failed)."""
    from botocore.exceptions import ClientError

    barrier = threading.Barrier(n)
    winners: list[int] = []
    errors: list[BaseException] = []

    def one(i: int) -> None:
        barrier.wait(timeout=60)
        try:
            put(i)
            winners.append(i)
        except ClientError as exc:
            if exc.response["ResponseMetadata"]["HTTPStatusCode"] != 412:
                errors.append(exc)
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    return winners


# Large enough that moto writes the body to a temporary file between its condition check and
# storing the key (its buffer is 5 MB): with the check and the write unlocked, a racer slips
# into that gap in about one round in three, so twenty rounds show it every time.
_BODY = b"x" * (5 * 1024 * 1024 + 4096)
_ROUNDS = 20
_RACERS = 8


def test_s3_if_none_match_put_is_atomic_exactly_one_racer_creates_the_key(
    local_cloud: Target,
) -> None:
    # The warm pool's claim is one PutObject with If-None-Match: * (branchenv.pool.claims):
    # moto checked the condition and stored the key in two unlocked steps, so two racers could
    # both get 200 and both believe they hold the stack.
    s3 = local_cloud.client("s3")
    bucket = f"fid-cond-{_suffix()}"
    s3.create_bucket(Bucket=bucket)
    try:
        for round_ in range(_ROUNDS):
            key = f"claim-{round_}"
            winners = _race(
                _RACERS,
                lambda i, key=key: s3.put_object(
                    Bucket=bucket, Key=key, Body=b"%d:" % i + _BODY, IfNoneMatch="*"
                ),
            )
            assert len(winners) == 1, f"round {round_}: {len(winners)} racers created {key}"
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            assert body.startswith(b"%d:" % winners[0]), "the key holds a loser's body"
    finally:
        _empty_and_delete(s3, bucket)


def test_s3_if_match_put_is_atomic_exactly_one_racer_replaces_the_version_read(
    local_cloud: Target,
) -> None:
    # Compare-and-swap: every racer read the same ETag and writes If-Match on it; only the
    # first write matches it, every later one must find the ETag changed.
    s3 = local_cloud.client("s3")
    bucket = f"fid-cas-{_suffix()}"
    s3.create_bucket(Bucket=bucket)
    try:
        for round_ in range(_ROUNDS):
            key = f"record-{round_}"
            etag = s3.put_object(Bucket=bucket, Key=key, Body=b"start")["ETag"]
            winners = _race(
                _RACERS,
                lambda i, key=key, etag=etag: s3.put_object(
                    Bucket=bucket, Key=key, Body=b"%d:" % i + _BODY, IfMatch=etag
                ),
            )
            assert len(winners) == 1, f"round {round_}: {len(winners)} racers replaced {key}"
    finally:
        _empty_and_delete(s3, bucket)


def _empty_and_delete(s3: Any, bucket: str) -> None:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=item["Key"])
    s3.delete_bucket(Bucket=bucket)
