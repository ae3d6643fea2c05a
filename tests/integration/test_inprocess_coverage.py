"""Every type issue 13 added, proven through the engine on the local cloud: created, updated in
place, replaced (a replace-on-change property changed), deleted. One program in three phases,
the same resources each time, so each phase's change kinds are exact."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from branchenv.targets import Target
from tests.integration.inprocess_harness import Stack

PROGRAM = """
import json
phase = int(cfg.get("phase") or 1)
cidr = "10.20" if phase < 3 else "10.21"

sink = aws.sqs.Queue("sink")
sink2 = aws.sqs.Queue("sink2")
topic = aws.sns.Topic("events", display_name=f"events v{min(phase, 2)}", fifo_topic=phase == 3)
aws.sns.TopicSubscription("sub", topic=topic.arn, protocol="sqs",
                          endpoint=(sink2 if phase == 3 else sink).arn,
                          raw_message_delivery=phase >= 2)
rule = aws.cloudwatch.EventRule("tick", name=f"tick-{cfg.require('n')}" if phase == 3 else None,
                                schedule_expression="rate(5 minutes)" if phase == 1
                                else "rate(10 minutes)")
aws.cloudwatch.EventTarget("tick-target", rule=rule.name, arn=sink.arn,
                           target_id="t3" if phase == 3 else "t1",
                           input=json.dumps({"phase": min(phase, 2)}))
aws.ssm.Parameter("flag", name=f"/cov/{cfg.require('n')}/flag" if phase == 3 else None,
                  type="String", value="one" if phase == 1 else "two")
secret = aws.secretsmanager.Secret("api", name=f"cov-{cfg.require('n')}" if phase == 3 else None,
                                   recovery_window_in_days=0,
                                   description="v1" if phase == 1 else "v2")
aws.secretsmanager.SecretVersion("api-v", secret_id=secret.id,
                                 secret_string="s3" if phase == 3 else "s1")
aws.cloudwatch.MetricAlarm("errors", name=f"errors-{cfg.require('n')}" if phase == 3 else None,
                           comparison_operator="GreaterThanThreshold", evaluation_periods=1,
                           metric_name="Errors", namespace="AWS/Lambda", period=60,
                           statistic="Sum", threshold=1 if phase == 1 else 5)
role = aws.iam.Role("sfn", assume_role_policy=json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                   "Principal": {"Service": "states.amazonaws.com"}}]}))
aws.sfn.StateMachine("flow", role_arn=role.arn, type="EXPRESS" if phase == 3 else "STANDARD",
                     definition=json.dumps({"StartAt": "S" if phase == 1 else "T", "States": {
                         ("S" if phase == 1 else "T"): {"Type": "Pass", "End": True}}}))
vpc = aws.ec2.Vpc("net", cidr_block=f"{cidr}.0.0/16", enable_dns_hostnames=phase >= 2)
aws.ec2.Subnet("a", vpc_id=vpc.id, cidr_block=f"{cidr}.1.0/24",
               map_public_ip_on_launch=phase >= 2)
port = 443 if phase == 1 else 8443
aws.ec2.SecurityGroup("web", vpc_id=vpc.id, ingress=[
    {"protocol": "tcp", "from_port": port, "to_port": port, "cidr_blocks": [f"{cidr}.0.0/16"]}])
"""

NEW_TYPES = {
    "aws:sns/topic:Topic",
    "aws:sns/topicSubscription:TopicSubscription",
    "aws:cloudwatch/eventRule:EventRule",
    "aws:cloudwatch/eventTarget:EventTarget",
    "aws:ssm/parameter:Parameter",
    "aws:secretsmanager/secret:Secret",
    "aws:secretsmanager/secretVersion:SecretVersion",
    "aws:cloudwatch/metricAlarm:MetricAlarm",
    "aws:sfn/stateMachine:StateMachine",
    "aws:ec2/vpc:Vpc",
    "aws:ec2/subnet:Subnet",
    "aws:ec2/securityGroup:SecurityGroup",
}


@pytest.fixture
def stack(tmp_path: Path, local_cloud: Target) -> Iterator[Stack]:
    s = Stack(root=tmp_path, target=local_cloud)
    try:
        yield s
    finally:
        s.cleanup()


def kinds(stack: Stack, verb: str) -> set[str]:
    """The types a phase's progress lines report with ``verb``."""
    return {line.split()[1] for line in stack.lines if line.strip().startswith(verb)}


def test_every_new_type_is_created_updated_replaced_and_deleted(stack: Stack) -> None:
    n = stack.stack
    stack.write(PROGRAM)
    created = stack.up(phase="1", n=n)
    assert created.changes["create"] == 15, created.changes  # 12 new types, 2 queues, a role
    assert kinds(stack, "created") >= NEW_TYPES

    updated = stack.up(phase="2", n=n)
    # The version's value did not change; every other new type changed in place.
    assert kinds(stack, "updated") == NEW_TYPES - {"aws:secretsmanager/secretVersion:SecretVersion"}
    assert updated.changes["replace"] == 0 and updated.changes["create"] == 0

    replaced = stack.up(phase="3", n=n)
    assert kinds(stack, "replaced") == NEW_TYPES, stack.lines
    # A replacement counts once, as a replace (its old half's delete is part of it).
    assert replaced.changes["create"] == 0 and replaced.changes["delete"] == 0
    assert replaced.changes["replace"] == len(NEW_TYPES)
    ec2 = stack.target.client("ec2")
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:branchenv:stack", "Values": [n]}])["Vpcs"]
    assert [v["CidrBlock"] for v in vpcs] == ["10.21.0.0/16"]  # the old one is gone
    param = stack.target.client("ssm").get_parameter(Name=f"/cov/{n}/flag")["Parameter"]
    assert param["Value"] == "two"

    result = stack.destroy()
    assert result.deleted == 15 - 1  # the secret's current version goes with its secret
    left = ec2.describe_vpcs(Filters=[{"Name": "tag:branchenv:stack", "Values": [n]}])["Vpcs"]
    assert left == []
    assert json.dumps(stack.lines).count("FAILED") == 0
