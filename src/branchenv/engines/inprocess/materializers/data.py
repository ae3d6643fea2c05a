"""Materializers for data services: DynamoDB tables, SQS queues, S3 buckets and their settings."""

from __future__ import annotations

import json
from typing import Any

from branchenv.engines.inprocess.materializers.base import (
    Applied,
    Context,
    Materializer,
    Prior,
    as_int,
    aws_tags_list,
    error_code,
    found,
    ignore_missing,
    register,
    tag_changes,
)

_DDB_MISSING = ("ResourceNotFoundException",)


@register
class DynamoDBTable(Materializer):
    """aws.dynamodb.Table: key schema, billing mode and capacity, PITR, TTL, SSE, tags."""

    type_token = "aws:dynamodb/table:Table"
    name_max_len = 255
    replace_on_change = frozenset({"name", "hashKey", "rangeKey", "localSecondaryIndexes"})
    honours = frozenset(
        {
            "hashKey",
            "rangeKey",
            "attributes",
            "billingMode",
            "readCapacity",
            "writeCapacity",
            "pointInTimeRecovery",
            "ttl",
            "serverSideEncryption",
            "deletionProtectionEnabled",
        }
    )

    def lookup(self, ctx: Context, *, inputs: dict[str, Any]) -> str | None:
        name = inputs["name"]
        if found(_DDB_MISSING, lambda: ctx.client("dynamodb").describe_table(TableName=name)):
            return str(name)
        return None

    def create(self, ctx: Context, *, inputs: dict[str, Any], tags: dict[str, str]) -> Applied:
        self.fail_if_exists(ctx, inputs)
        ddb = ctx.client("dynamodb")
        name = inputs["name"]
        schema = [{"AttributeName": inputs["hashKey"], "KeyType": "HASH"}]
        if inputs.get("rangeKey"):
            schema.append({"AttributeName": inputs["rangeKey"], "KeyType": "RANGE"})
        args: dict[str, Any] = {
            "TableName": name,
            "KeySchema": schema,
            "AttributeDefinitions": _attributes(inputs),
            "BillingMode": inputs.get("billingMode") or "PROVISIONED",
        }
        if tags:
            args["Tags"] = aws_tags_list(tags)
        if args["BillingMode"] == "PROVISIONED":
            args["ProvisionedThroughput"] = _throughput(inputs)
        if (inputs.get("serverSideEncryption") or {}).get("enabled"):
            args["SSESpecification"] = {"Enabled": True}
        if inputs.get("deletionProtectionEnabled") is not None:
            args["DeletionProtectionEnabled"] = bool(inputs["deletionProtectionEnabled"])
        desc = ddb.create_table(**args)["TableDescription"]
        if (inputs.get("pointInTimeRecovery") or {}).get("enabled"):
            self._set_pitr(ddb, name, True)
        self._set_ttl(ddb, name, inputs.get("ttl") or {})
        return self._applied(inputs, desc)

    def update(
        self,
        ctx: Context,
        *,
        prior: Prior,
        inputs: dict[str, Any],
        tags: dict[str, str],
        changed: frozenset[str],
    ) -> Applied:
        ddb = ctx.client("dynamodb")
        name = inputs["name"]
        args: dict[str, Any] = {}
        if changed & {"billingMode", "readCapacity", "writeCapacity"}:
            args["BillingMode"] = inputs.get("billingMode") or "PROVISIONED"
            if args["BillingMode"] == "PROVISIONED":
                args["ProvisionedThroughput"] = _throughput(inputs)
        if "attributes" in changed:
            args["AttributeDefinitions"] = _attributes(inputs)
        if "serverSideEncryption" in changed:
            enabled = bool((inputs.get("serverSideEncryption") or {}).get("enabled"))
            args["SSESpecification"] = {"Enabled": enabled}
        if "deletionProtectionEnabled" in changed:
            args["DeletionProtectionEnabled"] = bool(inputs.get("deletionProtectionEnabled"))
        if args:
            ddb.update_table(TableName=name, **args)
        if "pointInTimeRecovery" in changed:
            enabled = bool((inputs.get("pointInTimeRecovery") or {}).get("enabled"))
            self._set_pitr(ddb, name, enabled)
        if "ttl" in changed:
            self._set_ttl(ddb, name, inputs.get("ttl") or {}, prior.inputs.get("ttl") or {})
        desc = ddb.describe_table(TableName=name)["Table"]
        if "tags" in changed:
            to_set, to_remove = tag_changes(prior.tags, tags)
            if to_set:
                ddb.tag_resource(ResourceArn=desc["TableArn"], Tags=aws_tags_list(to_set))
            if to_remove:
                ddb.untag_resource(ResourceArn=desc["TableArn"], TagKeys=to_remove)
        return self._applied(inputs, desc)

    @staticmethod
    def _applied(inputs: dict[str, Any], desc: dict[str, Any]) -> Applied:
        name = inputs["name"]
        return Applied(
            id=name,
            outputs={
                **inputs,
                "arn": desc["TableArn"],
                "id": name,
                "streamArn": desc.get("LatestStreamArn"),
            },
        )

    @staticmethod
    def _set_pitr(ddb: Any, name: str, enabled: bool) -> None:
        ddb.update_continuous_backups(
            TableName=name,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": enabled},
        )

    @staticmethod
    def _set_ttl(
        ddb: Any, name: str, ttl: dict[str, Any], old: dict[str, Any] | None = None
    ) -> None:
        if ttl.get("attributeName") and ttl.get("enabled"):
            spec = {"Enabled": True, "AttributeName": ttl["attributeName"]}
        elif old and old.get("attributeName") and old.get("enabled"):
            spec = {"Enabled": False, "AttributeName": old["attributeName"]}
        else:
            return
        ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=spec)

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        return ignore_missing(_DDB_MISSING)(
            lambda: ctx.client("dynamodb").delete_table(TableName=id)
        )

    def exists(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        return found(_DDB_MISSING, lambda: ctx.client("dynamodb").describe_table(TableName=id))


def _attributes(inputs: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {"AttributeName": a["name"], "AttributeType": a["type"]}
        for a in inputs.get("attributes") or []
    ]


def _throughput(inputs: dict[str, Any]) -> dict[str, int | None]:
    return {
        "ReadCapacityUnits": as_int(inputs.get("readCapacity"), 1),
        "WriteCapacityUnits": as_int(inputs.get("writeCapacity"), 1),
    }


_QUEUE_ATTRS = {
    "delaySeconds": ("DelaySeconds", "0"),
    "maxMessageSize": ("MaximumMessageSize", "262144"),
    "messageRetentionSeconds": ("MessageRetentionPeriod", "345600"),
    "receiveWaitTimeSeconds": ("ReceiveMessageWaitTimeSeconds", "0"),
    "visibilityTimeoutSeconds": ("VisibilityTimeout", "30"),
    "redrivePolicy": ("RedrivePolicy", ""),
    "policy": ("Policy", ""),
    "sqsManagedSseEnabled": ("SqsManagedSseEnabled", "false"),
    "kmsMasterKeyId": ("KmsMasterKeyId", ""),
    "fifoQueue": ("FifoQueue", "false"),
    "contentBasedDeduplication": ("ContentBasedDeduplication", "false"),
}
"""Pulumi input -> (SQS attribute, the value AWS resets it to when the input is removed)."""
_SQS_MISSING = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


def _queue_attr(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


@register
class SQSQueue(Materializer):
    """aws.sqs.Queue: attributes (redrive policy, retention, visibility, SSE, FIFO) and tags."""

    type_token = "aws:sqs/queue:Queue"
    name_max_len = 80
    replace_on_change = frozenset({"name", "namePrefix", "fifoQueue"})
    honours = frozenset(_QUEUE_ATTRS)

    def lookup(self, ctx: Context, *, inputs: dict[str, Any]) -> str | None:
        from botocore.exceptions import ClientError

        try:
            url = ctx.client("sqs").get_queue_url(QueueName=inputs["name"])["QueueUrl"]
        except ClientError as exc:
            if error_code(exc) in _SQS_MISSING:
                return None
            raise
        return str(url)

    def create(self, ctx: Context, *, inputs: dict[str, Any], tags: dict[str, str]) -> Applied:
        self.fail_if_exists(ctx, inputs)
        sqs = ctx.client("sqs")
        attrs = {
            attr: text
            for key, (attr, _default) in _QUEUE_ATTRS.items()
            if (text := _queue_attr(inputs.get(key))) is not None
        }
        args: dict[str, Any] = {"QueueName": inputs["name"], "Attributes": attrs}
        if tags:
            args["tags"] = tags
        url = sqs.create_queue(**args)["QueueUrl"]
        return self._applied(sqs, inputs, url)

    def update(
        self,
        ctx: Context,
        *,
        prior: Prior,
        inputs: dict[str, Any],
        tags: dict[str, str],
        changed: frozenset[str],
    ) -> Applied:
        sqs = ctx.client("sqs")
        url = prior.id
        attrs: dict[str, str] = {}
        for key in changed & set(_QUEUE_ATTRS):
            attr, default = _QUEUE_ATTRS[key]
            text = _queue_attr(inputs.get(key))
            attrs[attr] = default if text is None else text
        if attrs:
            sqs.set_queue_attributes(QueueUrl=url, Attributes=attrs)
        if "tags" in changed:
            to_set, to_remove = tag_changes(prior.tags, tags)
            if to_set:
                sqs.tag_queue(QueueUrl=url, Tags=to_set)
            if to_remove:
                sqs.untag_queue(QueueUrl=url, TagKeys=to_remove)
        return self._applied(sqs, inputs, url, arn=prior.outputs.get("arn"))

    @staticmethod
    def _applied(sqs: Any, inputs: dict[str, Any], url: str, arn: str | None = None) -> Applied:
        if not arn:
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
        return Applied(id=url, outputs={**inputs, "arn": arn, "url": url, "id": url})

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        return ignore_missing(_SQS_MISSING)(lambda: ctx.client("sqs").delete_queue(QueueUrl=id))

    def exists(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        return found(
            _SQS_MISSING,
            lambda: ctx.client("sqs").get_queue_attributes(
                QueueUrl=id, AttributeNames=["QueueArn"]
            ),
        )


_S3_MISSING = ("NoSuchBucket", "404", "NotFound")


@register
class S3Bucket(Materializer):
    """aws.s3.Bucket (pulumi-aws v7): the bucket and its tags; ``forceDestroy`` lets a delete
    empty it first, every object version included (without it, a non-empty bucket's delete
    fails, as with the real provider)."""

    type_token = "aws:s3/bucket:Bucket"
    name_property = "bucket"
    name_max_len = 63
    replace_on_change = frozenset({"bucket", "bucketPrefix", "objectLockEnabled"})
    honours = frozenset({"forceDestroy"})

    def lookup(self, ctx: Context, *, inputs: dict[str, Any]) -> str | None:
        name = inputs["bucket"]
        return str(name) if self._head(ctx, name) else None

    @staticmethod
    def _head(ctx: Context, name: str) -> bool:
        return found(_S3_MISSING, lambda: ctx.client("s3").head_bucket(Bucket=name))

    def create(self, ctx: Context, *, inputs: dict[str, Any], tags: dict[str, str]) -> Applied:
        self.fail_if_exists(ctx, inputs)
        s3 = ctx.client("s3")
        name = inputs["bucket"]
        args: dict[str, Any] = {"Bucket": name}
        if ctx.region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": ctx.region}
        s3.create_bucket(**args)
        if tags:
            s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": aws_tags_list(tags)})
        return self._applied(ctx, inputs)

    def update(
        self,
        ctx: Context,
        *,
        prior: Prior,
        inputs: dict[str, Any],
        tags: dict[str, str],
        changed: frozenset[str],
    ) -> Applied:
        if "tags" in changed:
            s3 = ctx.client("s3")
            if tags:  # S3 replaces the whole tag set at once
                s3.put_bucket_tagging(Bucket=prior.id, Tagging={"TagSet": aws_tags_list(tags)})
            else:
                s3.delete_bucket_tagging(Bucket=prior.id)
        return self._applied(ctx, inputs)

    @staticmethod
    def _applied(ctx: Context, inputs: dict[str, Any]) -> Applied:
        name = inputs["bucket"]
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

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        from botocore.exceptions import ClientError

        s3 = ctx.client("s3")
        try:
            if outputs.get("forceDestroy"):
                empty_bucket(s3, id)
            s3.delete_bucket(Bucket=id)
        except ClientError as exc:
            if error_code(exc) not in _S3_MISSING:
                raise
            return False
        return True

    def exists(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        return self._head(ctx, id)


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
    """A bucket sub-resource: not taggable, not named, id = bucket name. Create and update both
    put the configuration (the provider does the same; there is nothing to collide with)."""

    name_property = None
    taggable = False
    replace_on_change = frozenset({"bucket", "expectedBucketOwner"})
    recovered_by = "nothing to find: a setting of its bucket, put again or removed with it"
    _missing: tuple[str, ...] = _S3_MISSING

    def put(self, s3: Any, bucket: str, inputs: dict[str, Any]) -> None:
        raise NotImplementedError

    def remove(self, s3: Any, bucket: str) -> None:
        raise NotImplementedError

    def create(self, ctx: Context, *, inputs: dict[str, Any], tags: dict[str, str]) -> Applied:
        bucket = inputs["bucket"]
        self.put(ctx.client("s3"), bucket, inputs)
        return Applied(id=bucket, outputs={**inputs, "id": bucket})

    def update(
        self,
        ctx: Context,
        *,
        prior: Prior,
        inputs: dict[str, Any],
        tags: dict[str, str],
        changed: frozenset[str],
    ) -> Applied:
        return self.create(ctx, inputs=inputs, tags=tags)

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.remove(ctx.client("s3"), id)
        except ClientError as exc:
            if error_code(exc) not in self._missing:
                raise
            return False
        return True

    def exists(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        # The setting lives as long as its bucket does.
        return found(_S3_MISSING, lambda: ctx.client("s3").head_bucket(Bucket=id))


@register
class S3BucketVersioning(_BucketSetting):
    """aws.s3.BucketVersioning: the bucket's versioning status (Enabled | Suspended)."""

    type_token = "aws:s3/bucketVersioning:BucketVersioning"
    honours = frozenset({"versioningConfiguration"})

    def put(self, s3: Any, bucket: str, inputs: dict[str, Any]) -> None:
        status = (inputs.get("versioningConfiguration") or {}).get("status", "Enabled")
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})

    def remove(self, s3: Any, bucket: str) -> None:
        # A versioned bucket cannot go back to unversioned; AWS (and Pulumi) suspend it.
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})


@register
class S3BucketEncryption(_BucketSetting):
    """aws.s3.BucketServerSideEncryptionConfiguration: default encryption rules (SSE-S3 or
    SSE-KMS with a key id, bucket keys)."""

    type_token = (
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    )
    honours = frozenset({"rules"})
    _missing = (*_S3_MISSING, "ServerSideEncryptionConfigurationNotFoundError")

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
    replace_on_change = frozenset({"bucket"})
    honours = frozenset(
        {"blockPublicAcls", "ignorePublicAcls", "blockPublicPolicy", "restrictPublicBuckets"}
    )
    _missing = (*_S3_MISSING, "NoSuchPublicAccessBlockConfiguration")

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
