"""Seeding a reaper scenario on a local cloud: real inprocess stacks with crafted metadata, a
real bare git remote, and orphaned resources made with boto3. Shared by the integration and
e2e reaper tests."""

from __future__ import annotations

import dataclasses
import datetime as dt
import subprocess
import uuid
from pathlib import Path

from branchenv.config import Settings
from branchenv.engines.base import Engine, Program
from branchenv.inventory import find_tagged
from branchenv.metadata import StackMetadata, format_timestamp
from branchenv.naming import names_for
from branchenv.programs import default_program, read_template
from branchenv.targets import LOCAL_ACCOUNT_ID, AssumeRole, Target
from tests.conftest import inputs_for

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
    "PATH": "/usr/bin:/bin:/usr/local/bin",
}


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True)


def make_remote(root: Path, *, pushed: list[str], deleted: list[str]) -> Path:
    """A bare repository with ``pushed`` branches, then ``deleted`` ones removed from it."""
    bare = root / "remote.git"
    work = root / "work"
    git("init", "--bare", "-q", str(bare), cwd=root)
    git("init", "-q", "-b", "main", str(work), cwd=root)
    (work / "README").write_text("x\n")
    git("add", "README", cwd=work)
    git("commit", "-q", "-m", "init", cwd=work)
    git("remote", "add", "origin", str(bare), cwd=work)
    for branch in ["main", *pushed]:
        git("push", "-q", "origin", f"HEAD:refs/heads/{branch}", cwd=work)
    for branch in deleted:
        git("push", "-q", "origin", "--delete", branch, cwd=work)
    return bare


def up_stack(
    engine: Engine,
    *,
    project: Path,
    program: Program,
    target: Target,
    branch: str,
    now: dt.datetime,
    age: dt.timedelta,
    ttl: dt.timedelta,
    managed: bool = True,
    reap_pending: bool = False,
) -> str:
    """Create the branch's stack with the real engine, its metadata crafted (created ``age``
    before ``now``); returns the stack name."""
    names = names_for(branch)
    md = StackMetadata.create(
        stack=names.stack,
        branch=branch,
        owner="dev@example.com",
        commit="abc1234",
        ttl=ttl,
        now=now - age,
        target="local",
        engine="inprocess",
    )
    md = dataclasses.replace(md, managed=managed, reap_pending=reap_pending)
    config = read_template(program, target)
    config["branchenv:prefix"] = names.prefix
    config["branchenv:profile"] = "ephemeral"
    engine.up(
        stack=names.stack,
        program=program,
        target=target,
        metadata=md,
        inputs=inputs_for(md, config, target=target),
    )
    return names.stack


@dataclasses.dataclass(frozen=True)
class Orphans:
    ghost: str
    doomed: frozenset[str]
    """ARNs the sweep must delete."""
    skipped: frozenset[str]
    """Tagged for the ghost stack but unmanaged or protected: must survive."""
    untagged_bucket: str


def seed_orphans(target: Target) -> Orphans:
    """Resources of a stack no engine knows, plus ones the sweep must leave alone."""
    suffix = uuid.uuid4().hex[:8]
    ghost = f"ghost-{suffix}"
    managed = [
        {"Key": "branchenv:managed-by", "Value": "branchenv"},
        {"Key": "branchenv:stack", "Value": ghost},
    ]
    tags = {t["Key"]: t["Value"] for t in managed}
    sqs, s3, ddb = target.client("sqs"), target.client("s3"), target.client("dynamodb")
    acct = f"{target.region}:{LOCAL_ACCOUNT_ID}"

    sqs.create_queue(QueueName=f"orph-q-{suffix}", tags=tags)
    s3.create_bucket(Bucket=f"orph-b-{suffix}")
    s3.put_bucket_tagging(Bucket=f"orph-b-{suffix}", Tagging={"TagSet": managed})
    s3.put_object(Bucket=f"orph-b-{suffix}", Key="k", Body=b"x")
    table = ddb.create_table(
        TableName=f"orph-t-{suffix}",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
        Tags=managed,
    )["TableDescription"]["TableArn"]
    # Tagged for the ghost stack but without the managed-by marker: never touched.
    sqs.create_queue(QueueName=f"orph-unmanaged-{suffix}", tags={"branchenv:stack": ghost})
    # Managed, but its stack matches a protected pattern: never touched.
    sqs.create_queue(
        QueueName=f"orph-prod-{suffix}",
        tags={"branchenv:managed-by": "branchenv", "branchenv:stack": f"prod-{suffix}"},
    )
    # Managed and of the ghost stack, but created moments ago: its stack may still be
    # provisioning, so the sweep's grace period leaves it alone.
    sqs.create_queue(
        QueueName=f"orph-new-{suffix}",
        tags={**tags, "branchenv:created-at": format_timestamp(dt.datetime.now(dt.UTC))},
    )
    s3.create_bucket(Bucket=f"untagged-{suffix}")
    return Orphans(
        ghost=ghost,
        doomed=frozenset(
            {f"arn:aws:sqs:{acct}:orph-q-{suffix}", f"arn:aws:s3:::orph-b-{suffix}", table}
        ),
        skipped=frozenset(
            {
                f"arn:aws:sqs:{acct}:orph-unmanaged-{suffix}",
                f"arn:aws:sqs:{acct}:orph-prod-{suffix}",
                f"arn:aws:sqs:{acct}:orph-new-{suffix}",
            }
        ),
        untagged_bucket=f"untagged-{suffix}",
    )


def inventory(target: Target, engine: Engine, program: Program) -> tuple[dict[str, str], set[str]]:
    """Every tagged resource (ARN -> its sorted tags as text) and every stack the engine knows."""
    resources = {
        r.arn: repr(sorted(r.tags.items())) for r in find_tagged(target, key="branchenv:stack")
    }
    stacks = {s.stack for s in engine.list_stacks(program=program)}
    return resources, stacks


# --- several accounts on the local cloud ------------------------------------------------------

ROLE_NAME = "branchenv-reaper"
ROLE_TEMPLATE = "arn:aws:iam::{account}:role/" + ROLE_NAME


def trust_policy(*, deny_regions: tuple[str, ...] = (), external_id: str | None = None) -> str:
    """A trust policy letting anyone on the local cloud assume the role (with ``external_id``
    when given), denied through the STS endpoints of ``deny_regions``."""
    import json

    allow: dict[str, object] = {"Effect": "Allow", "Principal": {"AWS": "*"}}
    allow["Action"] = "sts:AssumeRole"
    if external_id:
        allow["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    statements: list[dict[str, object]] = [allow]
    if deny_regions:
        statements.append(
            {
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:RequestedRegion": list(deny_regions)}},
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def admin_client(target: Target, service: str, account: str) -> object:
    """A client acting in ``account`` through moto's server-mode account header: how a test
    sets up an account's roles before anything could assume them."""
    client = target.client(service)

    def add_header(request: object, **_kwargs: object) -> None:
        request.headers["x-moto-account-id"] = account  # type: ignore[attr-defined]

    client.meta.events.register("before-sign.*.*", add_header)
    return client


def put_role(
    target: Target,
    account: str,
    *,
    deny_regions: tuple[str, ...] = (),
    external_id: str | None = None,
) -> str:
    """Create (or re-write the trust policy of) the reaper's role in ``account``."""
    iam = admin_client(target, "iam", account)
    policy = trust_policy(deny_regions=deny_regions, external_id=external_id)
    try:
        arn = iam.create_role(  # type: ignore[attr-defined]
            RoleName=ROLE_NAME, AssumeRolePolicyDocument=policy
        )["Role"]["Arn"]
    except Exception as exc:
        if "EntityAlreadyExists" not in str(exc):
            raise
        iam.update_assume_role_policy(  # type: ignore[attr-defined]
            RoleName=ROLE_NAME, PolicyDocument=policy
        )
        arn = ROLE_TEMPLATE.format(account=account)
    return str(arn)


ORG_PROGRAM = """
import pulumi
import pulumi_aws as aws

prefix = pulumi.Config("branchenv").require("prefix")
queue = aws.sqs.Queue("q", name=f"{prefix}-q")
pulumi.export("url", queue.url)
"""


def pair_target(base: Target, account: str, region: str) -> Target:
    """``base`` acting in ``account`` (through the reaper's role) and ``region``."""
    role = AssumeRole(ROLE_TEMPLATE.format(account=account), "org-seed")
    return base.with_role(role, region=region)


def org_stack(
    org_engine: Engine, settings: Settings, target: Target, branch: str, **kw: object
) -> str:
    """A real stack of ``settings``' program on ``target`` (its account and region recorded),
    created ``age`` ago (default 3h) with ``ttl`` (default 1h: expired)."""
    names = names_for(f"{branch}-{uuid.uuid4().hex[:6]}")
    now = dt.datetime.now(dt.UTC)
    md = StackMetadata.create(
        stack=names.stack,
        branch=names.stack,
        owner="dev@example.com",
        commit="abc1234",
        ttl=kw.get("ttl", dt.timedelta(hours=1)),  # type: ignore[arg-type]
        now=now - kw.get("age", dt.timedelta(hours=3)),  # type: ignore[operator]
        target="local",
        engine="inprocess",
        region=target.region,
        account=target.known_account(),
    )
    org_engine.up(
        stack=names.stack,
        program=default_program(settings),
        target=target,
        metadata=md,
        inputs=inputs_for(md, {"branchenv:prefix": names.prefix}, target=target),
    )
    return names.stack


def orphan_queue(target: Target, *, managed: bool) -> str:
    """A queue tagged for a stack no engine knows (with the managed marker or not)."""
    name = f"orph-{uuid.uuid4().hex[:8]}"
    tags = {"branchenv:stack": f"ghost-{uuid.uuid4().hex[:6]}"}
    if managed:
        tags["branchenv:managed-by"] = "branchenv"
    target.client("sqs").create_queue(QueueName=name, tags=tags)
    return f"arn:aws:sqs:{target.region}:{target.known_account()}:{name}"
