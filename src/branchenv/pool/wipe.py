"""Wipe a pool stack's data per resource type, then prove it is empty.

Before a released pool stack goes back to its pool, everything a claimant's tests may have put
in it goes: S3 objects with every version, delete marker and unfinished multipart upload;
DynamoDB items; SQS messages (visible, in flight and delayed); CloudWatch log streams. Each
wiper deletes, then *verifies* by reading the resource back; a stack is returned only when every
verification passed.

A resource type is either wipeable here (:data:`WIPERS`), known to hold nothing a test writes
(:data:`STATELESS`: its whole content comes from the program, which the next claimant's update
re-applies), or unknown. A stack holding an unknown type (an SSM parameter or a secret a test
may have overwritten, a topic a test subscribed to, ...) is never returned: it is destroyed
instead, and the pool refilled.

Types are compared in one canonical form for every engine: Pulumi's ``aws:s3/bucketV2:BucketV2``
and Terraform's ``aws_s3_bucket`` both read ``s3_bucket``.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from branchenv.engines.base import ResourceSummary
    from branchenv.targets import Target

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def canonical_type(token: str) -> str:
    """One name per AWS resource type whatever the engine spells it: ``aws:sqs/queue:Queue``
    and ``aws_sqs_queue`` are both ``sqs_queue``; ``aws:s3/bucketV2:BucketV2`` is
    ``s3_bucket``; non-AWS tokens (``pulumi:providers:aws``, ``terraform_data``) keep their
    form."""
    if token.startswith("aws:") and token.count(":") == 2:
        module_path = token.split(":")[1]
        module, _, resource = module_path.partition("/")
        name = f"{module}_{_CAMEL.sub('_', resource).lower()}"
        return re.sub(r"_?v2$", "", name) if not module.endswith("v2") else name
    if token.startswith("aws_"):
        return token[len("aws_") :]
    return token


STATELESS = frozenset(
    {
        "iam_role",
        "iam_role_policy",
        "iam_role_policy_attachment",
        "iam_policy",
        "lambda_function",
        "lambda_permission",
        "lambda_event_source_mapping",
        "apigatewayv2_api",
        "apigatewayv2_integration",
        "apigatewayv2_route",
        "apigatewayv2_stage",
        "s3_bucket_public_access_block",
        "s3_bucket_server_side_encryption_configuration",
        "s3_bucket_versioning",
        "s3_bucket_policy",
        "s3_bucket_ownership_controls",
        "s3_bucket_lifecycle_configuration",
        "sqs_queue_policy",
        "sqs_queue_redrive_policy",
        "cloudwatch_event_rule",
        "cloudwatch_event_target",
        "cloudwatch_metric_alarm",
        "ec2_vpc",
        "ec2_subnet",
        "ec2_security_group",
        "vpc",
        "subnet",
        "security_group",
        "terraform_data",
        "null_resource",
    }
)
"""Types whose whole content is the program's (the next claimant's update re-applies it)."""


@dataclasses.dataclass(frozen=True)
class Wiped:
    """What one wiper did to one resource: how many items it deleted and what the read-back
    found left (empty: verified empty)."""

    address: str
    type: str
    physical: str
    deleted: int
    left: int

    @property
    def empty(self) -> bool:
        return self.left == 0


Wiper = Callable[["Target", str, Callable[[float], None]], Wiped]


def _name(resource: ResourceSummary, *keys: str) -> str:
    for key in keys:
        value = resource.outputs.get(key)
        if isinstance(value, str) and value:
            return value
    if resource.id:
        return resource.id
    raise ValueError(f"{resource.address}: no physical name recorded")


# --- S3 -------------------------------------------------------------------------------------


def wipe_bucket(target: Target, bucket: str, sleep: Callable[[float], None]) -> Wiped:
    """Every object version, delete marker and unfinished multipart upload goes."""
    s3 = target.client("s3")
    deleted = 0
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        for upload in page.get("Uploads", []):
            s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            deleted += 1
    for _ in range(5):  # a writer racing the wipe: go again, the read-back decides
        batch = _bucket_entries(s3, bucket)
        if not batch:
            break
        for start in range(0, len(batch), 1000):
            chunk = batch[start : start + 1000]
            s3.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
            deleted += len(chunk)
    left = len(_bucket_entries(s3, bucket))
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return Wiped("", "s3_bucket", bucket, deleted, left + len(uploads))


def _bucket_entries(s3: Any, bucket: str) -> list[dict[str, str]]:
    entries: list[dict[str, str]] = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for item in (*page.get("Versions", []), *page.get("DeleteMarkers", [])):
            entry = {"Key": item["Key"]}
            if item.get("VersionId") and item["VersionId"] != "null":
                entry["VersionId"] = item["VersionId"]
            entries.append(entry)
    if not entries:  # an unversioned bucket's objects, should the listing above omit them
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            entries.extend({"Key": item["Key"]} for item in page.get("Contents", []))
    return entries


# --- DynamoDB -------------------------------------------------------------------------------


def wipe_table(target: Target, table: str, sleep: Callable[[float], None]) -> Wiped:
    """Every item goes (scanned by key, deleted in batches of 25); a consistent count
    verifies."""
    ddb = target.client("dynamodb")
    keys = [k["AttributeName"] for k in ddb.describe_table(TableName=table)["Table"]["KeySchema"]]
    names = {f"#k{i}": key for i, key in enumerate(keys)}
    deleted = 0
    for page in ddb.get_paginator("scan").paginate(
        TableName=table,
        ProjectionExpression=", ".join(names),
        ExpressionAttributeNames=names,
        ConsistentRead=True,
    ):
        items = page.get("Items", [])
        for start in range(0, len(items), 25):
            requests: list[dict[str, Any]] = [
                {"DeleteRequest": {"Key": {k: item[k] for k in keys}}}
                for item in items[start : start + 25]
            ]
            pending: dict[str, Any] = {table: requests}
            for attempt in range(8):
                unprocessed = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems")
                if not unprocessed:
                    break
                pending = unprocessed
                sleep(min(0.1 * 2**attempt, 2.0))
            deleted += len(requests)
    left = ddb.scan(TableName=table, Select="COUNT", ConsistentRead=True)["Count"]
    return Wiped("", "dynamodb_table", table, deleted, int(left))


# --- SQS ------------------------------------------------------------------------------------

_SQS_COUNTS = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


def wipe_queue(
    target: Target, url: str, sleep: Callable[[float], None], *, verify_s: float = 90.0
) -> Wiped:
    """PurgeQueue (visible, in-flight and delayed messages); when a purge ran in the last 60 s,
    receive-and-delete what is visible and, if messages in flight remain, purge again once
    allowed. Then the queue's counts must read zero (AWS updates them within a minute of a
    purge, so the check waits up to ``verify_s`` in all)."""
    from botocore.exceptions import ClientError

    sqs = target.client("sqs")
    before = _queue_count(sqs, url)
    waited = 0.0
    purged = False
    while not purged:
        try:
            sqs.purge_queue(QueueUrl=url)
            purged = True
        except ClientError as exc:
            if "PurgeQueueInProgress" not in str(exc.response.get("Error", {}).get("Code")):
                raise
            # One purge per 60 s: take what can be received meanwhile; messages in flight (a
            # test received them without deleting) can only go by a purge, so wait for it.
            _drain_queue(sqs, url)
            if not _queue_count(sqs, url) or waited >= verify_s:
                break
            sleep(5.0)
            waited += 5.0
    left = _queue_count(sqs, url)
    while left and waited < verify_s:
        sleep(2.0)
        waited += 2.0
        left = _queue_count(sqs, url)
    return Wiped("", "sqs_queue", url, before, left)


def _queue_count(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(_SQS_COUNTS))
    return sum(int(attrs.get("Attributes", {}).get(key, 0)) for key in _SQS_COUNTS)


def _drain_queue(sqs: Any, url: str) -> None:
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        messages = got.get("Messages", [])
        if not messages:
            return
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )


# --- CloudWatch Logs ------------------------------------------------------------------------


def wipe_log_group(target: Target, group: str, sleep: Callable[[float], None]) -> Wiped:
    """Every log stream (and so every event the claimant's code logged) goes."""
    logs = target.client("logs")
    deleted = 0
    for page in logs.get_paginator("describe_log_streams").paginate(logGroupName=group):
        for stream in page.get("logStreams", []):
            logs.delete_log_stream(logGroupName=group, logStreamName=stream["logStreamName"])
            deleted += 1
    left = len(logs.describe_log_streams(logGroupName=group).get("logStreams", []))
    return Wiped("", "cloudwatch_log_group", group, deleted, left)


WIPERS: dict[str, tuple[tuple[str, ...], Wiper]] = {
    "s3_bucket": (("bucket",), wipe_bucket),
    "dynamodb_table": (("name",), wipe_table),
    "sqs_queue": (("url",), wipe_queue),
    "cloudwatch_log_group": (("name",), wipe_log_group),
}
"""Canonical type -> (the outputs holding its physical name, first found wins; the wiper)."""


@dataclasses.dataclass(frozen=True)
class WipePlan:
    """What releasing a stack must wipe, and what keeps it from being returned at all."""

    wipe: tuple[ResourceSummary, ...]
    unknown: tuple[str, ...]
    """Canonical types that may hold a claimant's data and have no wiper."""


def plan_wipe(resources: Sequence[ResourceSummary]) -> WipePlan:
    """Sort a stack's resources into wipe / stateless / unknown (see the module doc)."""
    wipe: list[ResourceSummary] = []
    unknown: set[str] = set()
    for resource in resources:
        kind = canonical_type(resource.type)
        if kind in WIPERS:
            wipe.append(resource)
        elif kind not in STATELESS and not kind.startswith("pulumi:"):
            unknown.add(kind)
    return WipePlan(wipe=tuple(wipe), unknown=tuple(sorted(unknown)))


def wipe_all(
    target: Target,
    resources: Sequence[ResourceSummary],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Wiped]:
    """Wipe every resource of ``resources`` with a wiper; each result says what was left."""
    done: list[Wiped] = []
    for resource in resources:
        kind = canonical_type(resource.type)
        keys, wiper = WIPERS[kind]
        physical = _name(resource, *keys)
        result = wiper(target, physical, sleep)
        done.append(dataclasses.replace(result, address=resource.address))
    return done
