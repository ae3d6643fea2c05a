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
