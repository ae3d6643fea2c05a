"""Materializers for data services: DynamoDB tables, SQS queues, S3 buckets and their settings."""

from __future__ import annotations

import json
from typing import Any

from branchenv.engines.inprocess.materializers.base import (
    Applied,
    Context,
    Materializer,
    answers,
    as_int,
    aws_tags_list,
    error_code,
    ignore_missing,
    register,
)


@register
class DynamoDBTable(Materializer):
    """aws.dynamodb.Table: key schema, billing mode, PITR, TTL, SSE, tags."""

    type_token = "aws:dynamodb/table:Table"
    name_max_len = 255

    def apply(
        self,
        ctx: Context,
        *,
        inputs: dict[str, Any],
        tags: dict[str, str],
        existing: Applied | None,
    ) -> Applied:
        from botocore.exceptions import ClientError

        ddb = ctx.client("dynamodb")
        name = inputs["name"]
        try:
            desc = ddb.describe_table(TableName=name)["Table"]
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
            schema = [{"AttributeName": inputs["hashKey"], "KeyType": "HASH"}]
            if inputs.get("rangeKey"):
                schema.append({"AttributeName": inputs["rangeKey"], "KeyType": "RANGE"})
            args: dict[str, Any] = {
                "TableName": name,
                "KeySchema": schema,
                "AttributeDefinitions": [
                    {"AttributeName": a["name"], "AttributeType": a["type"]}
                    for a in inputs.get("attributes", [])
                ],
                "BillingMode": inputs.get("billingMode", "PROVISIONED"),
                "Tags": aws_tags_list(tags),
            }
            if args["BillingMode"] == "PROVISIONED":
                args["ProvisionedThroughput"] = {
                    "ReadCapacityUnits": as_int(inputs.get("readCapacity"), 1),
                    "WriteCapacityUnits": as_int(inputs.get("writeCapacity"), 1),
                }
            sse = inputs.get("serverSideEncryption") or {}
            if sse.get("enabled"):
                args["SSESpecification"] = {"Enabled": True}
            desc = ddb.create_table(**args)["TableDescription"]
        else:
            ddb.tag_resource(ResourceArn=desc["TableArn"], Tags=aws_tags_list(tags))
        arn = desc["TableArn"]
        pitr = bool((inputs.get("pointInTimeRecovery") or {}).get("enabled"))
        ddb.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": pitr}
        )
        ttl = inputs.get("ttl") or {}
        if ttl.get("attributeName"):
            current = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            wanted = bool(ttl.get("enabled"))
            if (current.get("TimeToLiveStatus") == "ENABLED") != wanted:
                ddb.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={
                        "Enabled": wanted,
                        "AttributeName": ttl["attributeName"],
                    },
                )
        return Applied(
            id=name,
            outputs={**inputs, "arn": arn, "id": name, "streamArn": desc.get("LatestStreamArn")},
        )

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> None:
        ignore_missing(("ResourceNotFoundException",))(
            lambda: ctx.client("dynamodb").delete_table(TableName=id)
        )

    def exists(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        return answers(lambda: ctx.client("dynamodb").describe_table(TableName=id))


_QUEUE_ATTRS = {
    "delaySeconds": "DelaySeconds",
    "maxMessageSize": "MaximumMessageSize",
    "messageRetentionSeconds": "MessageRetentionPeriod",
    "receiveWaitTimeSeconds": "ReceiveMessageWaitTimeSeconds",
    "visibilityTimeoutSeconds": "VisibilityTimeout",
    "redrivePolicy": "RedrivePolicy",
    "policy": "Policy",
    "sqsManagedSseEnabled": "SqsManagedSseEnabled",
    "kmsMasterKeyId": "KmsMasterKeyId",
    "fifoQueue": "FifoQueue",
}


@register
class SQSQueue(Materializer):
    """aws.sqs.Queue: attributes (redrive policy, retention, SSE, ...) and tags."""

    type_token = "aws:sqs/queue:Queue"
    name_max_len = 80

    def apply(
        self,
        ctx: Context,
        *,
        inputs: dict[str, Any],
        tags: dict[str, str],
        existing: Applied | None,
    ) -> Applied:
        from botocore.exceptions import ClientError

        sqs = ctx.client("sqs")
        name = inputs["name"]
        attrs: dict[str, str] = {}
        for key, attr in _QUEUE_ATTRS.items():
            value = inputs.get(key)
            if value is None or value == "":
                continue
            if isinstance(value, bool):
                attrs[attr] = "true" if value else "false"
            elif isinstance(value, float):
                attrs[attr] = str(int(value))
            elif isinstance(value, dict):
                attrs[attr] = json.dumps(value)
            else:
                attrs[attr] = str(value)
        try:
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except ClientError as exc:
            if error_code(exc) not in (
                "AWS.SimpleQueueService.NonExistentQueue",
                "QueueDoesNotExist",
            ):
                raise
            url = sqs.create_queue(QueueName=name, Attributes=attrs, tags=tags)["QueueUrl"]
        else:
            settable = {k: v for k, v in attrs.items() if k != "FifoQueue"}
            if settable:
                sqs.set_queue_attributes(QueueUrl=url, Attributes=settable)
            sqs.tag_queue(QueueUrl=url, Tags=tags)
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        return Applied(id=url, outputs={**inputs, "arn": arn, "url": url, "id": url})

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> None:
        ignore_missing(("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"))(
            lambda: ctx.client("sqs").delete_queue(QueueUrl=id)
        )

    def exists(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        return answers(
            lambda: ctx.client("sqs").get_queue_attributes(QueueUrl=id, AttributeNames=["QueueArn"])
        )


_S3_MISSING = ("NoSuchBucket", "404", "NotFound")


@register
class S3Bucket(Materializer):
    """aws.s3.Bucket (pulumi-aws v7): the bucket and its tags; force_destroy empties it,
    every object version included, on delete."""

    type_token = "aws:s3/bucket:Bucket"
    name_property = "bucket"
    name_max_len = 63

    def apply(
        self,
        ctx: Context,
        *,
        inputs: dict[str, Any],
        tags: dict[str, str],
        existing: Applied | None,
    ) -> Applied:
        from botocore.exceptions import ClientError

        s3 = ctx.client("s3")
        name = inputs["bucket"]
        try:
            s3.head_bucket(Bucket=name)
        except ClientError as exc:
            if error_code(exc) not in _S3_MISSING:
                raise
            args: dict[str, Any] = {"Bucket": name}
            if ctx.region != "us-east-1":
                args["CreateBucketConfiguration"] = {"LocationConstraint": ctx.region}
            s3.create_bucket(**args)
        if tags:
            s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": aws_tags_list(tags)})
        return Applied(
            id=name,
            outputs={
                **inputs,
                "id": name,
                "arn": f"arn:aws:s3:::{name}",
                "bucketDomainName": f"{name}.s3.amazonaws.com",
                "bucketRegionalDomainName": f"{name}.s3.{ctx.region}.amazonaws.com",
                "region": ctx.region,
            },
        )

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> None:
        from botocore.exceptions import ClientError

        s3 = ctx.client("s3")
        try:
            empty_bucket(s3, id)
            s3.delete_bucket(Bucket=id)
        except ClientError as exc:
            if error_code(exc) not in _S3_MISSING:
                raise

    def exists(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        return answers(lambda: ctx.client("s3").head_bucket(Bucket=id))


def empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every object version and delete marker of ``bucket``; returns how many."""
    deleted = 0
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket):
        keys = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        for i in range(0, len(keys), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys[i : i + 1000], "Quiet": True})
            deleted += len(keys[i : i + 1000])
    return deleted


class _BucketSetting(Materializer):
    """A bucket sub-resource: not taggable, not named, id = bucket name."""

    name_property = None
    taggable = False

    def put(self, s3: Any, bucket: str, inputs: dict[str, Any]) -> None:
        raise NotImplementedError

    def remove(self, s3: Any, bucket: str) -> None:
        raise NotImplementedError

    def apply(
        self,
        ctx: Context,
        *,
        inputs: dict[str, Any],
        tags: dict[str, str],
        existing: Applied | None,
    ) -> Applied:
        bucket = inputs["bucket"]
        self.put(ctx.client("s3"), bucket, inputs)
        return Applied(id=bucket, outputs={**inputs, "id": bucket})

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> None:
        from botocore.exceptions import ClientError

        try:
            self.remove(ctx.client("s3"), id)
        except ClientError as exc:
            if error_code(exc) not in (
                *_S3_MISSING,
                "NoSuchPublicAccessBlockConfiguration",
                "ServerSideEncryptionConfigurationNotFoundError",
            ):
                raise


@register
class S3BucketVersioning(_BucketSetting):
    """aws.s3.BucketVersioning: the bucket's versioning status."""

    type_token = "aws:s3/bucketVersioning:BucketVersioning"

    def put(self, s3: Any, bucket: str, inputs: dict[str, Any]) -> None:
        status = (inputs.get("versioningConfiguration") or {}).get("status", "Enabled")
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})

    def remove(self, s3: Any, bucket: str) -> None:
        # A versioned bucket cannot go back to unversioned; AWS (and Pulumi) suspend it.
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})


@register
class S3BucketEncryption(_BucketSetting):
    """aws.s3.BucketServerSideEncryptionConfiguration: default encryption rules."""

    type_token = (
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    )

    def put(self, s3: Any, bucket: str, inputs: dict[str, Any]) -> None:
        rules = []
        for rule in inputs.get("rules", []):
            default = rule.get("applyServerSideEncryptionByDefault") or {}
            entry: dict[str, Any] = {
                "ApplyServerSideEncryptionByDefault": {
                    "SSEAlgorithm": default.get("sseAlgorithm", "AES256")
                }
            }
            if default.get("kmsMasterKeyId"):
                entry["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] = default[
                    "kmsMasterKeyId"
                ]
            if rule.get("bucketKeyEnabled") is not None:
                entry["BucketKeyEnabled"] = bool(rule["bucketKeyEnabled"])
            rules.append(entry)
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": rules})

    def remove(self, s3: Any, bucket: str) -> None:
        s3.delete_bucket_encryption(Bucket=bucket)


@register
class S3BucketPublicAccessBlock(_BucketSetting):
    """aws.s3.BucketPublicAccessBlock: the four public-access switches."""

    type_token = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"

    def put(self, s3: Any, bucket: str, inputs: dict[str, Any]) -> None:
        s3.put_public_access_block(
            Bucket=bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": bool(inputs.get("blockPublicAcls")),
                "IgnorePublicAcls": bool(inputs.get("ignorePublicAcls")),
                "BlockPublicPolicy": bool(inputs.get("blockPublicPolicy")),
                "RestrictPublicBuckets": bool(inputs.get("restrictPublicBuckets")),
            },
        )

    def remove(self, s3: Any, bucket: str) -> None:
        s3.delete_public_access_block(Bucket=bucket)
