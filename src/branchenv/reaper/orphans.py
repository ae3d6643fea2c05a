"""The orphan sweep: resources tagged for a stack that no engine knows any more (leaked by a
crash midway through ``up`` or ``down``), found by tag and deleted per service.

Finding is split in two: :func:`classify` is pure (tagged resources + known stacks -> orphans
and the resources skipped for safety, each with why); :func:`find_orphans` feeds it from
:func:`branchenv.inventory.find_tagged`. Deleting goes through :data:`DELETERS`, a registry of one
function per resource type (``@register("s3")``); a resource of a type without a deleter is
skipped and reported, never guessed at. Safety: a resource is only ever deleted when it carries
``branchenv:managed-by = branchenv``, its stack matches no protected pattern, and its
``branchenv:project`` tag (when present) names this project.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

from branchenv.metadata import (
    KEY_BRANCH,
    KEY_CREATED_AT,
    KEY_PROJECT,
    KEY_STACK,
    MANAGED_BY_KEY,
    MANAGED_BY_VALUE,
    decode_tag_value,
    format_duration,
    parse_timestamp,
)
from branchenv.safety import protected_match

if TYPE_CHECKING:
    from branchenv.engines.base import OutputSink
    from branchenv.inventory import TaggedResource
    from branchenv.targets import Target

ClientFactory = Callable[[str, str], Any]
"""``(service, region) -> boto3 client``; each thread gets its own from :func:`clients_for`."""

Deleter = Callable[[ClientFactory, "Arn"], None]


@dataclasses.dataclass(frozen=True)
class Arn:
    """The parts of an ARN a deleter needs."""

    text: str
    service: str
    region: str
    account: str
    resource: str

    @classmethod
    def parse(cls, arn: str) -> Arn:
        parts = arn.split(":", 5)
        if len(parts) < 6 or parts[0] != "arn":
            raise ValueError(f"{arn!r} is not an ARN")
        return cls(arn, parts[2], parts[3], parts[4], parts[5])


DELETERS: dict[str, Deleter] = {}
"""Resource type (as :func:`branchenv.inventory.resource_type` names it) -> its deleter."""


def register(resource_type: str) -> Callable[[Deleter], Deleter]:
    """Decorator: register a deleter for ``resource_type``; its docstring says what it covers."""

    def add(func: Deleter) -> Deleter:
        if resource_type in DELETERS:
            raise ValueError(f"a deleter for {resource_type!r} is already registered")
        if not (func.__doc__ or "").strip():
            raise ValueError(f"the deleter for {resource_type!r} needs a one-line docstring")
        DELETERS[resource_type] = func
        return func

    return add


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _gone(exc: BaseException, *codes: str) -> bool:
    return _error_code(exc) in codes


@contextmanager
def _already_gone(*codes: str) -> Iterator[None]:
    """Swallow only the error saying the resource is gone already (``codes``): deleting
    what is not there is done, every other failure propagates."""
    try:
        yield
    except Exception as exc:
        if not _gone(exc, *codes):
            raise


# --- the deleters --------------------------------------------------------------------------


@register("s3")
def delete_bucket(clients: ClientFactory, arn: Arn) -> None:
    """S3 bucket: aborts multipart uploads, deletes every object version and delete marker,
    then the bucket."""
    bucket = arn.resource
    s3 = clients("s3", arn.region)
    with _already_gone("NoSuchBucket"):
        for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
            for upload in page.get("Uploads", []):
                s3.abort_multipart_upload(
                    Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            keys = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
            ]
            for start in range(0, len(keys), 1000):
                s3.delete_objects(
                    Bucket=bucket, Delete={"Objects": keys[start : start + 1000], "Quiet": True}
                )
        s3.delete_bucket(Bucket=bucket)


@register("sqs")
def delete_queue(clients: ClientFactory, arn: Arn) -> None:
    """SQS queue (standard or FIFO), found by name and owner account."""
    sqs = clients("sqs", arn.region)
    with _already_gone("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
        url = sqs.get_queue_url(QueueName=arn.resource, QueueOwnerAWSAccountId=arn.account)[
            "QueueUrl"
        ]
        sqs.delete_queue(QueueUrl=url)


@register("sns")
def delete_topic(clients: ClientFactory, arn: Arn) -> None:
    """SNS topic with its subscriptions (deleting a topic is idempotent)."""
    clients("sns", arn.region).delete_topic(TopicArn=arn.text)


@register("dynamodb:table")
def delete_table(clients: ClientFactory, arn: Arn) -> None:
    """DynamoDB table (a table with deletion protection fails, and is reported)."""
    with _already_gone("ResourceNotFoundException"):
        clients("dynamodb", arn.region).delete_table(TableName=arn.resource.split("/", 1)[1])


@register("lambda:function")
def delete_function(clients: ClientFactory, arn: Arn) -> None:
    """Lambda function, every version and alias with it."""
    name = arn.resource.split(":")[1]
    with _already_gone("ResourceNotFoundException"):
        clients("lambda", arn.region).delete_function(FunctionName=name)


@register("iam:role")
def delete_role(clients: ClientFactory, arn: Arn) -> None:
    """IAM role: detaches managed policies, deletes inline policies, leaves instance
    profiles, then deletes the role."""
    iam = clients("iam", arn.region)
    name = arn.resource.rsplit("/", 1)[-1]
    with _already_gone("NoSuchEntity"):
        for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=name):
            for policy in page.get("AttachedPolicies", []):
                iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
        for page in iam.get_paginator("list_role_policies").paginate(RoleName=name):
            for policy_name in page.get("PolicyNames", []):
                iam.delete_role_policy(RoleName=name, PolicyName=policy_name)
        for page in iam.get_paginator("list_instance_profiles_for_role").paginate(RoleName=name):
            for profile in page.get("InstanceProfiles", []):
                iam.remove_role_from_instance_profile(
                    InstanceProfileName=profile["InstanceProfileName"], RoleName=name
                )
        iam.delete_role(RoleName=name)


@register("logs:log-group")
def delete_log_group(clients: ClientFactory, arn: Arn) -> None:
    """CloudWatch Logs log group with its streams."""
    name = arn.resource.removeprefix("log-group:").removesuffix(":*")
    with _already_gone("ResourceNotFoundException"):
        clients("logs", arn.region).delete_log_group(logGroupName=name)


@register("apigateway:apis")
def delete_http_api(clients: ClientFactory, arn: Arn) -> None:
    """API Gateway v2 (HTTP/WebSocket) API with its routes, integrations and stages."""
    with _already_gone("NotFoundException"):
        clients("apigatewayv2", arn.region).delete_api(ApiId=arn.resource.rsplit("/", 1)[-1])


@register("apigateway:stages")
def delete_http_api_stage(clients: ClientFactory, arn: Arn) -> None:
    """API Gateway v2 stage (of an API that may be gone already: then so is the stage)."""
    parts = arn.resource.strip("/").split("/")  # apis/<id>/stages/<name>
    with _already_gone("NotFoundException"):
        clients("apigatewayv2", arn.region).delete_stage(ApiId=parts[1], StageName=parts[3])


@register("events:rule")
def delete_event_rule(clients: ClientFactory, arn: Arn) -> None:
    """EventBridge rule: removes its targets, then the rule (on its own bus)."""
    parts = arn.resource.split("/")  # rule/<name> or rule/<bus>/<name>
    bus, name = (parts[1], parts[2]) if len(parts) == 3 else ("default", parts[-1])
    events = clients("events", arn.region)
    with _already_gone("ResourceNotFoundException"):
        ids = [t["Id"] for t in events.list_targets_by_rule(Rule=name, EventBusName=bus)["Targets"]]
        if ids:
            events.remove_targets(Rule=name, EventBusName=bus, Ids=ids, Force=True)
        events.delete_rule(Name=name, EventBusName=bus, Force=True)


@register("ssm:parameter")
def delete_parameter(clients: ClientFactory, arn: Arn) -> None:
    """SSM parameter (every version)."""
    name = arn.resource.removeprefix("parameter")
    with _already_gone("ParameterNotFound"):
        clients("ssm", arn.region).delete_parameter(Name=name)


@register("secretsmanager:secret")
def delete_secret(clients: ClientFactory, arn: Arn) -> None:
    """Secrets Manager secret with every version, at once (no recovery window)."""
    with _already_gone("ResourceNotFoundException"):
        clients("secretsmanager", arn.region).delete_secret(
            SecretId=arn.text, ForceDeleteWithoutRecovery=True
        )


@register("cloudwatch:alarm")
def delete_alarm(clients: ClientFactory, arn: Arn) -> None:
    """CloudWatch metric alarm (deleting alarms is idempotent)."""
    clients("cloudwatch", arn.region).delete_alarms(AlarmNames=[arn.resource.split(":", 1)[1]])


@register("states:stateMachine")
def delete_state_machine(clients: ClientFactory, arn: Arn) -> None:
    """Step Functions state machine (idempotent)."""
    clients("stepfunctions", arn.region).delete_state_machine(stateMachineArn=arn.text)


@register("ec2:security-group")
def delete_security_group(clients: ClientFactory, arn: Arn) -> None:
    """EC2 security group."""
    with _already_gone("InvalidGroup.NotFound"):
        clients("ec2", arn.region).delete_security_group(GroupId=arn.resource.split("/", 1)[1])


@register("ec2:subnet")
def delete_subnet(clients: ClientFactory, arn: Arn) -> None:
    """EC2 subnet."""
    with _already_gone("InvalidSubnetID.NotFound"):
        clients("ec2", arn.region).delete_subnet(SubnetId=arn.resource.split("/", 1)[1])


@register("ec2:vpc")
def delete_vpc(clients: ClientFactory, arn: Arn) -> None:
    """EC2 VPC: first its subnets and security groups tagged for the same (dead) stack, which
    would otherwise block it, then the VPC."""
    ec2 = clients("ec2", arn.region)
    vpc_id = arn.resource.split("/", 1)[1]
    try:
        vpcs = ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"]
    except Exception as exc:
        if _gone(exc, "InvalidVpcID.NotFound"):
            return
        raise
    stack = {t["Key"]: t["Value"] for t in (vpcs[0].get("Tags") or []) if vpcs}.get(
        "branchenv:stack"
    )
    if stack:
        same = [
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "tag:branchenv:stack", "Values": [stack]},
        ]
        for group in ec2.describe_security_groups(Filters=same)["SecurityGroups"]:
            delete_security_group(
                clients,
                Arn.parse(f"{arn.text.split(':vpc/')[0]}:security-group/{group['GroupId']}"),
            )
        for subnet in ec2.describe_subnets(Filters=same)["Subnets"]:
            delete_subnet(
                clients, Arn.parse(f"{arn.text.split(':vpc/')[0]}:subnet/{subnet['SubnetId']}")
            )
    with _already_gone("InvalidVpcID.NotFound"):
        ec2.delete_vpc(VpcId=vpc_id)


# --- finding -------------------------------------------------------------------------------


class SkipReason(enum.StrEnum):
    UNMANAGED = "unmanaged"
    PROTECTED = "protected"
    OTHER_PROJECT = "other-project"
    NO_DELETER = "no-deleter"
    TOO_NEW = "too-new"


@dataclasses.dataclass(frozen=True)
class Orphan:
    """A managed resource whose stack no engine knows."""

    arn: str
    type: str
    stack: str
    branch: str | None


@dataclasses.dataclass(frozen=True)
class SkippedResource:
    """A resource tagged for an unknown stack that the sweep leaves alone, and why."""

    arn: str
    type: str
    stack: str
    reason: SkipReason
    detail: str


@dataclasses.dataclass(frozen=True)
class OrphanPlan:
    """The orphans to delete, the resources skipped for safety, and how many tagged resources
    belong to known stacks (not orphans)."""

    orphans: tuple[Orphan, ...]
    skipped: tuple[SkippedResource, ...]
    owned: int


def _decoded(tags: dict[str, str], key: str) -> str | None:
    raw = tags.get(key)
    if raw is None:
        return None
    try:
        return decode_tag_value(raw)[0]
    except ValueError:
        return raw


def _age(tags: dict[str, str], now: dt.datetime | None) -> dt.timedelta | None:
    raw = _decoded(tags, KEY_CREATED_AT)
    if now is None or raw is None:
        return None
    try:
        return now - parse_timestamp(raw)
    except ValueError:
        return None


def classify(
    resources: Iterable[TaggedResource],
    *,
    known_stacks: set[str] | frozenset[str],
    protected_patterns: Sequence[str],
    project: str | frozenset[str] | None,
    now: dt.datetime | None = None,
    grace: dt.timedelta = dt.timedelta(0),
) -> OrphanPlan:
    """Split tagged resources into orphans and skipped ones (pure).

    ``project``: the project (or projects, one per configured program) whose resources may be
    orphans; a resource tagged for another project is skipped.

    A resource whose ``branchenv:created-at`` tag is younger than ``grace`` is skipped: it may
    belong to a stack whose ``up`` is still running and not yet recorded by its engine."""
    projects = frozenset({project}) if isinstance(project, str) else project
    orphans: list[Orphan] = []
    skipped: list[SkippedResource] = []
    owned = 0
    for res in resources:
        stack = _decoded(res.tags, KEY_STACK)
        if stack is None:
            continue
        if stack in known_stacks:
            owned += 1
            continue
        branch = _decoded(res.tags, KEY_BRANCH)

        def skip(
            reason: SkipReason, detail: str, res: TaggedResource = res, stack: str = stack
        ) -> None:
            skipped.append(SkippedResource(res.arn, res.type, stack, reason, detail))

        res_project = _decoded(res.tags, KEY_PROJECT)
        pattern = protected_match(protected_patterns, stack, branch)
        if res.tags.get(MANAGED_BY_KEY) != MANAGED_BY_VALUE:
            skip(SkipReason.UNMANAGED, f"no {MANAGED_BY_KEY}={MANAGED_BY_VALUE} tag")
        elif pattern is not None:
            skip(SkipReason.PROTECTED, f"stack or branch matches protected pattern {pattern!r}")
        elif projects is not None and res_project is not None and res_project not in projects:
            skip(SkipReason.OTHER_PROJECT, f"belongs to project {res_project!r}")
        elif (age := _age(res.tags, now)) is not None and age < grace:
            skip(
                SkipReason.TOO_NEW,
                f"created {format_duration(age)} ago, within the {format_duration(grace)} grace "
                "period (its stack may still be provisioning)",
            )
        elif res.type not in DELETERS:
            skip(
                SkipReason.NO_DELETER,
                f"no deleter for type {res.type!r}; delete it by hand or register one in "
                "branchenv.reaper.orphans",
            )
        else:
            orphans.append(Orphan(res.arn, res.type, stack, branch))
    return OrphanPlan(tuple(orphans), tuple(skipped), owned)


def find_orphans(
    target: Target,
    *,
    known_stacks: set[str] | frozenset[str],
    protected_patterns: Sequence[str],
    project: str | frozenset[str] | None,
    now: dt.datetime | None = None,
    grace: dt.timedelta = dt.timedelta(0),
) -> OrphanPlan:
    """Orphans on ``target``: every resource with a ``branchenv:stack`` tag, classified."""
    from branchenv.inventory import find_tagged

    return classify(
        find_tagged(target, key=KEY_STACK),
        known_stacks=known_stacks,
        protected_patterns=protected_patterns,
        project=project,
        now=now,
        grace=grace,
    )


# --- deleting ------------------------------------------------------------------------------


class SweepStatus(enum.StrEnum):
    DELETED = "deleted"
    FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class SweepOutcome:
    arn: str
    type: str
    stack: str
    status: SweepStatus
    error: str | None = None


def clients_for(target: Target) -> ClientFactory:
    """A client factory for ``target``: one client per (service, region), shared by the
    sweep's threads (boto3 clients are thread-safe; creating them is what costs)."""
    cache: dict[tuple[str, str], Any] = {}
    lock = threading.Lock()

    def factory(service: str, region: str) -> Any:
        key = (service, region or target.region)
        with lock:
            if key not in cache:
                cache[key] = dataclasses.replace(target, region=key[1]).client(service)
            return cache[key]

    return factory


def sweep(
    orphans: Sequence[Orphan],
    *,
    clients: ClientFactory,
    concurrency: int = 8,
    attempts: int = 3,
    deadline_s: float = 120.0,
    sleep: Callable[[float], None] = time.sleep,
    on_output: OutputSink | None = None,
    gate: Callable[[], AbstractContextManager[None]] | None = None,
) -> list[SweepOutcome]:
    """Delete each orphan through its type's deleter, ``concurrency`` at a time (each delete
    inside ``gate``, when given: an account's concurrency bound shared by its regions),
    retrying transient errors; outcomes in the orphans' order. Failures never stop the
    others."""
    from tenacity import (
        Retrying,
        retry_if_exception,
        stop_after_attempt,
        stop_after_delay,
        wait_exponential,
    )

    from branchenv.aws_errors import translate
    from branchenv.harness.teardown import is_transient

    lock = threading.Lock()

    def say(line: str) -> None:
        if on_output is not None:
            with lock:
                on_output(line)

    def one(orphan: Orphan) -> SweepOutcome:
        deleter = DELETERS.get(orphan.type)
        if deleter is None:
            return SweepOutcome(
                orphan.arn, orphan.type, orphan.stack, SweepStatus.FAILED, "no deleter"
            )
        retrying = Retrying(
            stop=stop_after_attempt(attempts) | stop_after_delay(deadline_s),
            wait=wait_exponential(multiplier=1, max=10),
            retry=retry_if_exception(is_transient),
            sleep=sleep,
            reraise=True,
        )

        def delete() -> None:
            try:
                if gate is None:
                    deleter(clients, Arn.parse(orphan.arn))
                else:
                    with gate():
                        deleter(clients, Arn.parse(orphan.arn))
            except Exception as exc:
                # Typed at the boundary: throttling and dropped connections become
                # TransientError (retried), anything else an EngineError (not).
                raise translate(exc, f"deleting {orphan.arn}") from exc

        try:
            retrying(delete)
        except Exception as exc:
            lines = str(exc).strip().splitlines()
            error = f"{type(exc).__name__}: {lines[0] if lines else ''}"
            say(f"failed to delete {orphan.arn}: {error}")
            return SweepOutcome(orphan.arn, orphan.type, orphan.stack, SweepStatus.FAILED, error)
        say(f"deleted {orphan.type} {orphan.arn}")
        return SweepOutcome(orphan.arn, orphan.type, orphan.stack, SweepStatus.DELETED)

    if not orphans:
        return []
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="sweep") as pool:
        return list(pool.map(one, orphans))
