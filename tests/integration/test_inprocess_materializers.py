"""Every materializer's CRUD on the session's local cloud, through the registry only: create,
a second create of the same thing refused (never adopted), an update that changes a property
and the tags, delete (True), delete again (False: nothing to delete), gone.

Replacement is the engine's (create-before-delete or delete-before-replace); those cases run
through the engine in test_inprocess_semantics.py.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from branchenv.engines.inprocess.materializers import REGISTRY, AlreadyExists, Context, Prior
from branchenv.targets import Target

ASSUME_LAMBDA = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)
SFN_DEFINITION = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})


@dataclass
class Case:
    """One type's CRUD: inputs to create with, the change to update with, and a check that
    reads the changed property back from the local cloud."""

    token: str
    inputs: Callable[[Target, str], dict[str, Any]]
    change: dict[str, Any]
    check: Callable[[Target, str, dict[str, Any]], Any]
    expect: Any
    collides: bool = True
    survives_delete: bool = False
    """A secret's current version: AWS keeps it (and the provider forgets it) until its
    secret goes."""


def _role(target: Target, n: str) -> str:
    iam = target.client("iam")
    name = f"mat-role-{n}"
    try:
        return str(iam.get_role(RoleName=name)["Role"]["Arn"])
    except Exception:
        return str(
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=ASSUME_LAMBDA)["Role"]["Arn"]
        )


def _topic(target: Target, n: str) -> str:
    return str(target.client("sns").create_topic(Name=f"mat-topic-{n}")["TopicArn"])


def _queue_arn(target: Target, n: str) -> str:
    sqs = target.client("sqs")
    url = sqs.create_queue(QueueName=f"mat-q-{n}")["QueueUrl"]
    return str(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
    )


def _rule(target: Target, n: str) -> str:
    name = f"mat-rule-{n}"
    target.client("events").put_rule(Name=name, ScheduleExpression="rate(1 hour)")
    return name


def _secret(target: Target, n: str) -> str:
    return str(target.client("secretsmanager").create_secret(Name=f"mat-secret-{n}")["ARN"])


def _vpc(target: Target, n: str) -> str:
    return str(target.client("ec2").create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"])


CASES = [
    Case(
        "aws:sns/topic:Topic",
        lambda t, n: {"name": f"topic-{n}"},
        {"displayName": "Orders"},
        lambda t, i, o: (
            t.client("sns").get_topic_attributes(TopicArn=i)["Attributes"].get("DisplayName")
        ),
        "Orders",
    ),
    Case(
        "aws:sns/topicSubscription:TopicSubscription",
        lambda t, n: {"topic": _topic(t, n), "protocol": "sqs", "endpoint": _queue_arn(t, n)},
        {"rawMessageDelivery": True},
        lambda t, i, o: (
            t.client("sns")
            .get_subscription_attributes(SubscriptionArn=i)["Attributes"]
            .get("RawMessageDelivery")
        ),
        "true",
    ),
    Case(
        "aws:cloudwatch/eventRule:EventRule",
        lambda t, n: {"name": f"rule-{n}", "scheduleExpression": "rate(5 minutes)"},
        {"scheduleExpression": "rate(10 minutes)"},
        lambda t, i, o: t.client("events").describe_rule(Name=o["name"])["ScheduleExpression"],
        "rate(10 minutes)",
    ),
    Case(
        "aws:cloudwatch/eventTarget:EventTarget",
        lambda t, n: {"rule": _rule(t, n), "targetId": f"tgt-{n}", "arn": _queue_arn(t, n)},
        {"input": '{"kind": "tick"}'},
        lambda t, i, o: (
            t.client("events").list_targets_by_rule(Rule=o["rule"])["Targets"][0].get("Input")
        ),
        '{"kind": "tick"}',
    ),
    Case(
        "aws:ssm/parameter:Parameter",
        lambda t, n: {"name": f"/mat/{n}/flag", "type": "String", "value": "one"},
        {"value": "two", "description": "a flag"},
        lambda t, i, o: t.client("ssm").get_parameter(Name=i)["Parameter"]["Value"],
        "two",
    ),
    Case(
        "aws:secretsmanager/secret:Secret",
        lambda t, n: {"name": f"mat-sec-{n}", "recoveryWindowInDays": 0},
        {"description": "db password"},
        lambda t, i, o: t.client("secretsmanager").describe_secret(SecretId=i).get("Description"),
        "db password",
    ),
    Case(
        "aws:secretsmanager/secretVersion:SecretVersion",
        lambda t, n: {"secretId": _secret(t, n), "secretString": "s3cr3t"},
        {},
        lambda t, i, o: t.client("secretsmanager").get_secret_value(
            SecretId=o["secretId"], VersionId=i.split("|")[1]
        )["SecretString"],
        "s3cr3t",
        collides=False,
        survives_delete=True,
    ),
    Case(
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        lambda t, n: {
            "name": f"alarm-{n}",
            "comparisonOperator": "GreaterThanThreshold",
            "evaluationPeriods": 1.0,
            "metricName": "Errors",
            "namespace": "AWS/Lambda",
            "period": 60.0,
            "statistic": "Sum",
            "threshold": 1.0,
        },
        {"threshold": 5.0},
        lambda t, i, o: t.client("cloudwatch").describe_alarms(AlarmNames=[i])["MetricAlarms"][0][
            "Threshold"
        ],
        5.0,
    ),
    Case(
        "aws:sfn/stateMachine:StateMachine",
        lambda t, n: {"name": f"sm-{n}", "roleArn": _role(t, n), "definition": SFN_DEFINITION},
        {"definition": SFN_DEFINITION.replace("Done", "Finished")},
        lambda t, i, o: json.loads(
            t.client("stepfunctions").describe_state_machine(stateMachineArn=i)["definition"]
        )["StartAt"],
        "Finished",
    ),
    Case(
        "aws:ec2/vpc:Vpc",
        lambda t, n: {"cidrBlock": "10.42.0.0/16"},
        {"enableDnsHostnames": True},
        lambda t, i, o: t.client("ec2").describe_vpc_attribute(
            VpcId=i, Attribute="enableDnsHostnames"
        )["EnableDnsHostnames"]["Value"],
        True,
        collides=False,
    ),
    Case(
        "aws:ec2/subnet:Subnet",
        lambda t, n: {"vpcId": _vpc(t, n), "cidrBlock": "10.9.1.0/24"},
        {"mapPublicIpOnLaunch": True},
        lambda t, i, o: t.client("ec2").describe_subnets(SubnetIds=[i])["Subnets"][0][
            "MapPublicIpOnLaunch"
        ],
        True,
        collides=False,
    ),
    Case(
        "aws:ec2/securityGroup:SecurityGroup",
        lambda t, n: {
            "name": f"sg-{n}",
            "vpcId": _vpc(t, n),
            "ingress": [
                {
                    "protocol": "tcp",
                    "fromPort": 443.0,
                    "toPort": 443.0,
                    "cidrBlocks": ["10.0.0.0/8"],
                }
            ],
        },
        {
            "ingress": [
                {
                    "protocol": "tcp",
                    "fromPort": 8443.0,
                    "toPort": 8443.0,
                    "cidrBlocks": ["10.0.0.0/8"],
                }
            ]
        },
        lambda t, i, o: [
            p.get("FromPort")
            for p in t.client("ec2").describe_security_groups(GroupIds=[i])["SecurityGroups"][0][
                "IpPermissions"
            ]
        ],
        [8443],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.token.split(":")[1] for c in CASES])
def test_crud_on_the_local_cloud(case: Case, local_cloud: Target) -> None:
    materializer = REGISTRY[case.token]
    ctx = Context(local_cloud, "us-east-1")
    n = uuid.uuid4().hex[:8]
    inputs = materializer.prepare(case.inputs(local_cloud, n))
    tags = {"branchenv:stack": f"mat-{n}", "team": "a"}
    applied = materializer.create(ctx, inputs=inputs, tags=tags if materializer.taggable else {})
    try:
        assert materializer.exists(ctx, id=applied.id, outputs=applied.outputs)
        if case.collides:
            with pytest.raises(AlreadyExists, match="already exists"):
                materializer.create(ctx, inputs=inputs, tags={})
        new_inputs = {**inputs, **case.change}
        new_tags = {"branchenv:stack": f"mat-{n}", "owner": "b"} if materializer.taggable else {}
        prior = Prior(id=applied.id, inputs=inputs, outputs=applied.outputs, tags=tags)
        changed = frozenset(case.change) | ({"tags"} if materializer.taggable else set())
        updated = materializer.update(
            ctx, prior=prior, inputs=new_inputs, tags=new_tags, changed=changed
        )
        assert updated.id == applied.id
        assert case.check(local_cloud, updated.id, updated.outputs) == case.expect
    finally:
        deleted = materializer.delete(ctx, id=applied.id, outputs=applied.outputs)
    if case.survives_delete:
        assert deleted is False
        local_cloud.client("secretsmanager").delete_secret(
            SecretId=inputs["secretId"], ForceDeleteWithoutRecovery=True
        )
    else:
        assert deleted is True
    assert not materializer.exists(ctx, id=applied.id, outputs=applied.outputs)
    assert materializer.delete(ctx, id=applied.id, outputs=applied.outputs) is False


def test_every_new_type_of_issue_13_has_a_crud_case() -> None:
    wanted = {
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
    assert wanted <= set(REGISTRY)
    assert wanted <= {c.token for c in CASES}


def test_every_context_of_a_target_shares_its_clients(
    local_cloud: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each engine call makes a new Context (a `ci` run: the existence checks of the claim or
    up, of the cost estimate, of the release); a client costs tens of milliseconds to make."""
    import dataclasses

    from branchenv.engines.inprocess.materializers import base

    monkeypatch.setattr(base, "_CLIENTS", {})
    made: list[str] = []
    real = Target.client

    def counted(self: Target, service: str, **kwargs: Any) -> Any:
        made.append(service)
        return real(self, service, **kwargs)

    monkeypatch.setattr(Target, "client", counted)
    first = Context(local_cloud, "us-east-1").client("sqs")
    assert Context(local_cloud, "us-east-1").client("sqs") is first
    assert made == ["sqs"]
    other = dataclasses.replace(local_cloud, region="eu-west-1")
    assert Context(other, "eu-west-1").client("sqs") is not first  # another target: its own
    assert made == ["sqs", "sqs"]
