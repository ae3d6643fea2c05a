"""Every registered orphan deleter, on the local cloud: create one such resource tagged for a
stack that does not exist, sweep it, prove it is gone. Plus the AWS account safety rail."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Callable
from typing import Any

import pytest

from branchenv.errors import SafetyRefusal
from branchenv.inventory import find_tagged
from branchenv.reaper.orphans import DELETERS, SweepStatus, clients_for, find_orphans, sweep
from branchenv.safety import check_account
from branchenv.targets import LOCAL_ACCOUNT_ID, Target

Exists = Callable[[], bool]
Creator = Callable[[Target, str, dict[str, str]], tuple[str, Exists]]
CREATORS: dict[str, Creator] = {}


def creates(kind: str) -> Callable[[Creator], Creator]:
    def add(func: Creator) -> Creator:
        CREATORS[kind] = func
        return func

    return add


def _raises(call: Callable[[], Any]) -> bool:
    try:
        call()
    except Exception:
        return True
    return False


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


@creates("s3")
def _bucket(t: Target, name: str, tags: dict[str, str]) -> tuple[str, Exists]:
    s3 = t.client("s3")
    s3.create_bucket(Bucket=name)
    s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": tag_list(tags)})
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    for body in (b"one", b"two"):
        s3.put_object(Bucket=name, Key="k", Body=body)  # two versions
    s3.delete_object(Bucket=name, Key="k")  # plus a delete marker
    s3.create_multipart_upload(Bucket=name, Key="big")
    return f"arn:aws:s3:::{name}", lambda: not _raises(lambda: s3.head_bucket(Bucket=name))


@creates("sqs")
def _queue(t: Target, name: str, tags: dict[str, str]) -> tuple[str, Exists]:
    sqs = t.client("sqs")
    sqs.create_queue(QueueName=name, tags=tags)
    arn = f"arn:aws:sqs:{t.region}:{LOCAL_ACCOUNT_ID}:{name}"
    return arn, lambda: not _raises(lambda: sqs.get_queue_url(QueueName=name))


@creates("sns")
def _topic(t: Target, name: str, tags: dict[str, str]) -> tuple[str, Exists]:
    sns = t.client("sns")
    arn = sns.create_topic(Name=name, Tags=tag_list(tags))["TopicArn"]
    return arn, lambda: not _raises(lambda: sns.get_topic_attributes(TopicArn=arn))


@creates("dynamodb:table")
def _table(t: Target, name: str, tags: dict[str, str]) -> tuple[str, Exists]:
    ddb = t.client("dynamodb")
    arn = ddb.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
        Tags=tag_list(tags),
    )["TableDescription"]["TableArn"]
    return arn, lambda: not _raises(lambda: ddb.describe_table(TableName=name))


def _role(t: Target, name: str, tags: dict[str, str]) -> str:
    iam = t.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    arn: str = iam.create_role(
        RoleName=name, AssumeRolePolicyDocument=json.dumps(trust), Tags=tag_list(tags)
    )["Role"]["Arn"]
    return arn


@creates("iam:role")
def _iam_role(t: Target, name: str, tags: dict[str, str]) -> tuple[str, Exists]:
    iam = t.client("iam")
    arn = _role(t, name, tags)
    doc = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }
    iam.put_role_policy(RoleName=name, PolicyName="inline", PolicyDocument=json.dumps(doc))
    policy = iam.create_policy(PolicyName=f"{name}-p", PolicyDocument=json.dumps(doc))
    iam.attach_role_policy(RoleName=name, PolicyArn=policy["Policy"]["Arn"])
    iam.create_instance_profile(InstanceProfileName=f"{name}-ip")
    iam.add_role_to_instance_profile(InstanceProfileName=f"{name}-ip", RoleName=name)
    return arn, lambda: not _raises(lambda: iam.get_role(RoleName=name))


@creates("lambda:function")
def _function(t: Target, name: str, tags: dict[str, str]) -> tuple[str, Exists]:
    role_arn = _role(t, f"{name}-role", {})  # untagged: not part of the sweep
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("index.py", "def handler(event, context):\n    return 1\n")
    fn = t.client("lambda")
    arn = fn.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=role_arn,
        Handler="index.handler",
        Code={"ZipFile": buf.getvalue()},
        Tags=tags,
    )["FunctionArn"]
    return arn, lambda: not _raises(lambda: fn.get_function(FunctionName=name))


@creates("logs:log-group")
def _log_group(t: Target, name: str, tags: dict[str, str]) -> tuple[str, Exists]:
    logs = t.client("logs")
    group = f"/branchenv/{name}"
    logs.create_log_group(logGroupName=group, tags=tags)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    arn = f"arn:aws:logs:{t.region}:{LOCAL_ACCOUNT_ID}:log-group:{group}"

    def exists() -> bool:
        found = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
        return any(g["logGroupName"] == group for g in found)

    return arn, exists


@creates("apigateway:apis")
def _http_api(t: Target, name: str, tags: dict[str, str]) -> tuple[str, Exists]:
    api = t.client("apigatewayv2")
    api_id = api.create_api(Name=name, ProtocolType="HTTP", Tags=tags)["ApiId"]
    api.create_route(ApiId=api_id, RouteKey="GET /x")
    arn = f"arn:aws:apigateway:{t.region}::/apis/{api_id}"
    return arn, lambda: not _raises(lambda: api.get_api(ApiId=api_id))


@creates("apigateway:stages")
def _http_api_stage(t: Target, name: str, tags: dict[str, str]) -> tuple[str, Exists]:
    api = t.client("apigatewayv2")
    api_id = api.create_api(Name=name, ProtocolType="HTTP")["ApiId"]  # the API is untagged
    api.create_stage(ApiId=api_id, StageName="live", Tags=tags)
    arn = f"arn:aws:apigateway:{t.region}::/apis/{api_id}/stages/live"
    return arn, lambda: not _raises(lambda: api.get_stage(ApiId=api_id, StageName="live"))


@creates("events:rule")
def _event_rule(t: Target, name: str, tags: dict[str, str]) -> tuple[str, Exists]:
    events = t.client("events")
    arn = events.put_rule(Name=name, ScheduleExpression="rate(5 minutes)", Tags=tag_list(tags))[
        "RuleArn"
    ]
    queue = _queue(t, f"{name}-target", {})[0]  # untagged: not part of the sweep
    events.put_targets(Rule=name, Targets=[{"Id": "t", "Arn": queue}])
    return arn, lambda: not _raises(lambda: events.describe_rule(Name=name))


@creates("ssm:parameter")
def _parameter(t: Target, name: str, tags: dict[str, str]) -> tuple[str, Exists]:
    ssm = t.client("ssm")
    path = f"/branchenv/{name}"
    ssm.put_parameter(Name=path, Value="v", Type="String", Tags=tag_list(tags))
    arn = f"arn:aws:ssm:{t.region}:{LOCAL_ACCOUNT_ID}:parameter{path}"
    return arn, lambda: not _raises(lambda: ssm.get_parameter(Name=path))


@creates("secretsmanager:secret")
def _secret(t: Target, name: str, tags: dict[str, str]) -> tuple[str, Exists]:
    sm = t.client("secretsmanager")
    arn = sm.create_secret(Name=name, SecretString="s", Tags=tag_list(tags))["ARN"]

    def exists() -> bool:
        try:
            return not sm.describe_secret(SecretId=arn).get("DeletedDate")
        except Exception:
            return False

    return arn, exists


@creates("cloudwatch:alarm")
def _alarm(t: Target, name: str, tags: dict[str, str]) -> tuple[str, Exists]:
    cw = t.client("cloudwatch")
    cw.put_metric_alarm(
        AlarmName=name,
        ComparisonOperator="GreaterThanThreshold",
        EvaluationPeriods=1,
        MetricName="Errors",
        Namespace="AWS/Lambda",
        Period=60,
        Statistic="Sum",
        Threshold=1.0,
        Tags=tag_list(tags),
    )
    arn = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["AlarmArn"]
    return arn, lambda: bool(cw.describe_alarms(AlarmNames=[name])["MetricAlarms"])


@creates("states:stateMachine")
def _state_machine(t: Target, name: str, tags: dict[str, str]) -> tuple[str, Exists]:
    sfn = t.client("stepfunctions")
    role = _role(t, f"{name}-role", {})  # untagged: not part of the sweep
    arn = sfn.create_state_machine(
        name=name,
        definition=json.dumps({"StartAt": "a", "States": {"a": {"Type": "Pass", "End": True}}}),
        roleArn=role,
        tags=[{"key": k, "value": v} for k, v in tags.items()],
    )["stateMachineArn"]
    return arn, lambda: not _raises(lambda: sfn.describe_state_machine(stateMachineArn=arn))


def _ec2_arn(t: Target, kind: str, rid: str) -> str:
    return f"arn:aws:ec2:{t.region}:{LOCAL_ACCOUNT_ID}:{kind}/{rid}"


@creates("ec2:vpc")
def _vpc(t: Target, name: str, tags: dict[str, str]) -> tuple[str, Exists]:
    ec2 = t.client("ec2")
    spec = [{"ResourceType": "vpc", "Tags": tag_list(tags)}]
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16", TagSpecifications=spec)["Vpc"]["VpcId"]
    return _ec2_arn(t, "vpc", vpc), lambda: not _raises(lambda: ec2.describe_vpcs(VpcIds=[vpc]))


@creates("ec2:subnet")
def _subnet(t: Target, name: str, tags: dict[str, str]) -> tuple[str, Exists]:
    ec2 = t.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.78.0.0/16")["Vpc"]["VpcId"]  # untagged
    spec = [{"ResourceType": "subnet", "Tags": tag_list(tags)}]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.78.1.0/24", TagSpecifications=spec)[
        "Subnet"
    ]["SubnetId"]
    return _ec2_arn(
        t, "subnet", subnet
    ), lambda: not _raises(lambda: ec2.describe_subnets(SubnetIds=[subnet]))


@creates("ec2:security-group")
def _security_group(t: Target, name: str, tags: dict[str, str]) -> tuple[str, Exists]:
    ec2 = t.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.79.0.0/16")["Vpc"]["VpcId"]  # untagged
    spec = [{"ResourceType": "security-group", "Tags": tag_list(tags)}]
    group = ec2.create_security_group(
        GroupName=name, Description="d", VpcId=vpc, TagSpecifications=spec
    )["GroupId"]
    return _ec2_arn(
        t, "security-group", group
    ), lambda: not _raises(lambda: ec2.describe_security_groups(GroupIds=[group]))


def test_every_deleter_has_a_creator_here() -> None:
    assert set(CREATORS) == set(DELETERS), "add a creator for each new deleter to this meta-test"


@pytest.mark.parametrize("kind", sorted(DELETERS))
def test_deleter_sweeps_its_type(local_cloud: Target, kind: str) -> None:
    ghost = f"ghost-{uuid.uuid4().hex[:8]}"
    tags = {"branchenv:managed-by": "branchenv", "branchenv:stack": ghost}
    arn, exists = CREATORS[kind](local_cloud, f"orph-{uuid.uuid4().hex[:8]}", tags)
    assert exists()

    plan = find_orphans(local_cloud, known_stacks=set(), protected_patterns=(), project=None)
    mine = [o for o in plan.orphans if o.stack == ghost]
    assert [(o.arn, o.type) for o in mine] == [(arn, kind)]

    [outcome] = sweep(mine, clients=clients_for(local_cloud), sleep=lambda _s: None)
    assert outcome.status is SweepStatus.DELETED, outcome.error
    assert not exists()
    assert find_tagged(local_cloud, key="branchenv:stack", values={ghost}) == []
    # sweeping again is not an error: a resource already gone counts as deleted
    [again] = sweep(mine, clients=clients_for(local_cloud), sleep=lambda _s: None)
    assert again.status is SweepStatus.DELETED, again.error


def test_account_rail_against_sts(local_cloud: Target) -> None:
    sts = local_cloud.client("sts")
    assert check_account(sts, [LOCAL_ACCOUNT_ID]) == LOCAL_ACCOUNT_ID
    with pytest.raises(SafetyRefusal, match="not in allowed_account_ids"):
        check_account(sts, ["000000000000"])
    with pytest.raises(SafetyRefusal, match="no allowed_account_ids are configured"):
        check_account(sts, [])
