"""Configuration: what the program promises about its resources holds in the target."""

from __future__ import annotations

import json
from typing import Any

import orders_stack_spec as spec


def test_bucket_is_encrypted_versioned_and_private(
    branchenv_boto3_session: Any, branchenv_outputs: dict[str, Any]
) -> None:
    s3 = branchenv_boto3_session.client("s3")
    bucket = branchenv_outputs["bucket_name"]
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    algorithms = {r["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] for r in rules}
    assert algorithms <= {"AES256", "aws:kms"} and algorithms
    assert s3.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }


def test_table_has_point_in_time_recovery(
    branchenv_boto3_session: Any, branchenv_outputs: dict[str, Any]
) -> None:
    backups = branchenv_boto3_session.client("dynamodb").describe_continuous_backups(
        TableName=branchenv_outputs["table_name"]
    )["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"


def test_log_group_retention_matches_profile(
    branchenv_boto3_session: Any, branchenv_outputs: dict[str, Any]
) -> None:
    name = branchenv_outputs["log_group_name"]
    groups = branchenv_boto3_session.client("logs").describe_log_groups(logGroupNamePrefix=name)
    group = next(g for g in groups["logGroups"] if g["logGroupName"] == name)
    expected = spec.profile_named(branchenv_outputs["profile"]).log_retention_days
    assert group.get("retentionInDays") == expected


def test_queues_redrive_and_function_fails_fast(
    branchenv_boto3_session: Any, branchenv_outputs: dict[str, Any]
) -> None:
    sqs = branchenv_boto3_session.client("sqs")
    attrs = sqs.get_queue_attributes(
        QueueUrl=branchenv_outputs["queue_url"], AttributeNames=["RedrivePolicy"]
    )["Attributes"]
    assert json.loads(attrs["RedrivePolicy"])["deadLetterTargetArn"] == branchenv_outputs["dlq_arn"]
    config = branchenv_boto3_session.client("lambda").get_function_configuration(
        FunctionName=branchenv_outputs["function_name"]
    )
    env = config["Environment"]["Variables"]
    assert env["TABLE_NAME"] == branchenv_outputs["table_name"]
    assert float(env["SERVICE_TIMEOUT_S"]) < config["Timeout"] / 2
