"""What a Pulumi plan says about physical names: the input holding each type's name.

A resource's physical name is fixed by the program when its name input is set, and chosen by
the engine when it is not: the provider then fills it in during Check (auto-naming) and lists it
in the inputs' ``__defaults`` (pulumi-terraform-bridge records defaulted properties there), so a
planned step's inputs tell the two apart. Only types whose names share one namespace per
account and region (or per account, or the world) are listed: a name scoped to a parent (an API
stage, an inline role policy, a route) cannot collide across stacks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NAME_PROPERTIES: Mapping[str, str] = {
    # S3 bucket names are global across every account.
    "aws:s3/bucket:Bucket": "bucket",
    "aws:s3/bucketV2:BucketV2": "bucket",
    "aws:s3/directoryBucket:DirectoryBucket": "bucket",
    # Unique per account and region.
    "aws:sqs/queue:Queue": "name",
    "aws:dynamodb/table:Table": "name",
    "aws:lambda/function:Function": "name",
    "aws:cloudwatch/logGroup:LogGroup": "name",
    "aws:cloudwatch/metricAlarm:MetricAlarm": "name",
    "aws:cloudwatch/eventBus:EventBus": "name",
    "aws:cloudwatch/eventRule:EventRule": "name",
    "aws:sns/topic:Topic": "name",
    "aws:ssm/parameter:Parameter": "name",
    "aws:secretsmanager/secret:Secret": "name",
    "aws:sfn/stateMachine:StateMachine": "name",
    "aws:ecr/repository:Repository": "name",
    "aws:kinesis/stream:Stream": "name",
    "aws:kms/alias:Alias": "name",
    "aws:rds/instance:Instance": "identifier",
    "aws:rds/cluster:Cluster": "clusterIdentifier",
    "aws:elasticache/cluster:Cluster": "clusterId",
    # IAM names are unique per account.
    "aws:iam/role:Role": "name",
    "aws:iam/policy:Policy": "name",
    "aws:iam/user:User": "name",
    "aws:iam/group:Group": "name",
    "aws:iam/instanceProfile:InstanceProfile": "name",
}
"""Resource type -> the input holding its physical name, for types whose names can collide
across stacks."""

DEFAULTS_KEY = "__defaults"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""How the engine shows a value not known until apply (sdk/go/common/resource/plugin
UnknownStringValue)."""


def planned_name(type_: str, inputs: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    """``(physical name, name property)`` of a planned resource: the name when the program
    fixes it, None when the engine auto-names it, the type is not listed, or the name is not
    known yet (an unknown output at preview time)."""
    prop = NAME_PROPERTIES.get(type_)
    if prop is None or not inputs:
        return None, prop
    defaulted = inputs.get(DEFAULTS_KEY) or []
    value = inputs.get(prop)
    if not isinstance(value, str) or not value or prop in defaulted or UNKNOWN in value:
        return None, prop
    return value, prop
