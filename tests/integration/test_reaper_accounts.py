"""The local cloud serves several accounts and regions the way the org-wide reaper relies on:
a target assuming a role in another account acts in that account (moto attributes the assumed
credentials' requests to the role's account), each region is its own backend, and AssumeRole
is checked as AWS checks it (the role must exist; its trust policy may deny a region or
require an external id)."""

from __future__ import annotations

import uuid

import pytest

from branchenv.targets import AssumeRole, RoleNotAssumed, Target
from tests.integration.reaper_seed import ROLE_TEMPLATE, put_role

A, B = "111111111111", "222222222222"


def role(account: str, external_id: str | None = None) -> AssumeRole:
    # A session name of its own per call: targets' sessions are cached per target.
    session = f"t-{uuid.uuid4().hex[:8]}"
    return AssumeRole(ROLE_TEMPLATE.format(account=account), session, external_id)


def test_assumed_role_acts_in_its_account_and_regions_are_separate(local_cloud: Target) -> None:
    put_role(local_cloud, A)
    put_role(local_cloud, B)
    name = f"acct-{uuid.uuid4().hex[:8]}"
    a1 = local_cloud.with_role(role(A), region="us-east-1")
    a2 = local_cloud.with_role(role(A), region="eu-west-1")
    b1 = local_cloud.with_role(role(B), region="us-east-1")
    assert a1.account_id() == A
    assert b1.account_id() == B
    assert local_cloud.account_id() == "123456789012"
    url = a1.client("sqs").create_queue(QueueName=name)["QueueUrl"]
    assert A in url

    def names(target: Target) -> set[str]:
        urls = target.client("sqs").list_queues(QueueNamePrefix=name).get("QueueUrls", [])
        return {u.rsplit("/", 1)[1] for u in urls}

    assert names(a1) == {name}
    assert names(a2) == set()  # same account, other region
    assert names(b1) == set()  # same region, other account
    assert names(local_cloud) == set()  # the base credentials' own account
    a1.client("sqs").delete_queue(QueueUrl=url)


def test_assume_role_is_checked_like_aws(local_cloud: Target) -> None:
    put_role(local_cloud, A, deny_regions=("eu-west-1",))
    try:
        assert local_cloud.with_role(role(A), region="us-east-1").account_id() == A
        with pytest.raises(RoleNotAssumed, match=r"AccessDenied.*|cannot assume role"):
            local_cloud.with_role(role(A), region="eu-west-1").account_id()
        with pytest.raises(RoleNotAssumed, match="cannot assume role"):
            local_cloud.with_role(role("333333333333")).account_id()  # no such role
        put_role(local_cloud, A, external_id="s3cr3t-ext")
        with pytest.raises(RoleNotAssumed) as missing:
            local_cloud.with_role(role(A), region="ap-south-1").account_id()
        assert "s3cr3t-ext" not in str(missing.value)
        ok = local_cloud.with_role(role(A, "s3cr3t-ext"), region="ap-south-1")
        assert ok.account_id() == A
    finally:
        put_role(local_cloud, A)


def test_all_regions_are_the_enabled_regions_the_account_reports(local_cloud: Target) -> None:
    from branchenv.reaper.org import account_targets, parse_scope

    put_role(local_cloud, B)
    scope = parse_scope(accounts=B, regions="all", assume_role=ROLE_TEMPLATE)
    assert scope is not None
    [plan] = account_targets(scope, local_cloud, default_region="us-east-1", base_account=B)
    assert plan.error is None and plan.target.account_id() == B
    reported = local_cloud.client("ec2").describe_regions()["Regions"]
    # The local cloud lists every partition's regions; an aws-partition role reaps aws ones.
    expected = sorted(
        r["RegionName"] for r in reported if not r["RegionName"].startswith(("cn-", "us-gov-"))
    )
    assert list(plan.regions) == expected
    assert {"us-east-1", "eu-west-1"} < set(plan.regions)
