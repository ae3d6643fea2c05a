"""The pure pieces of the orders stack: sizes per profile, physical names, the handler's IAM
policy and the provider settings read from config.

No Pulumi resources here (``__main__.py`` declares them), so all of it is plain data that the
program's tests check directly. Kept free of ``branchenv`` imports: the program runs wherever the
Pulumi project's virtualenv is, and only needs pulumi and pulumi-aws.
"""

from __future__ import annotations

import json
import keyword
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_RECEIVE_COUNT = 3
"""Deliveries of one message before SQS moves it to the dead-letter queue."""

SERVICE_TIMEOUT_S = 2
"""Connect and read timeout (seconds) of the service's AWS clients: fail fast, never hang."""

_PREFIX = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
_MAX_PREFIX_LEN = 39  # branchenv.naming.MAX_PREFIX_LEN: 63 minus the 24-character suffix budget


class StackConfigError(ValueError):
    """Config the program cannot run with; the message names the key and how to fix it."""


@dataclass(frozen=True)
class Profile:
    """Sizes of one stack shape. Every profile creates the same resources."""

    name: str
    log_retention_days: int
    lambda_memory_mb: int
    lambda_timeout_s: int
    reserved_concurrency: int | None
    queue_retention_s: int
    dlq_retention_s: int
    queue_visibility_timeout_s: int


PROFILES: Mapping[str, Profile] = {
    # Short-lived branch stacks: smallest sizes, nothing reserved, logs gone in days.
    "ephemeral": Profile(
        name="ephemeral",
        log_retention_days=3,
        lambda_memory_mb=256,
        lambda_timeout_s=10,
        reserved_concurrency=None,
        queue_retention_s=24 * 3600,
        dlq_retention_s=4 * 24 * 3600,
        queue_visibility_timeout_s=30,
    ),
    # Production sizes, for the stacks that rehearse a release.
    "prodlike": Profile(
        name="prodlike",
        log_retention_days=30,
        lambda_memory_mb=1024,
        lambda_timeout_s=15,
        reserved_concurrency=20,
        queue_retention_s=4 * 24 * 3600,
        dlq_retention_s=14 * 24 * 3600,
        queue_visibility_timeout_s=90,
    ),
}
DEFAULT_PROFILE = "ephemeral"


def profile_named(name: str | None) -> Profile:
    """The profile called ``name`` (``ephemeral`` when None); an unknown one names the valid."""
    chosen = DEFAULT_PROFILE if name is None else name
    try:
        return PROFILES[chosen]
    except KeyError:
        raise StackConfigError(
            f"unknown branchenv:profile {chosen!r}. Valid profiles: {', '.join(PROFILES)} "
            "(set it with `pulumi config set branchenv:profile ephemeral`)"
        ) from None


@dataclass(frozen=True)
class PhysicalNames:
    """Every physical name of the stack: the prefix plus a suffix of at most 24 characters."""

    prefix: str
    table: str
    queue: str
    dlq: str
    role: str
    role_policy: str
    function: str
    log_group: str
    api: str


def physical_names(prefix: str) -> PhysicalNames:
    """Names for ``prefix`` (a branchenv prefix, see branchenv.naming.names_for)."""
    if not (3 <= len(prefix) <= _MAX_PREFIX_LEN and _PREFIX.fullmatch(prefix)):
        raise StackConfigError(
            f"branchenv:prefix {prefix!r} is not a branchenv prefix (3-{_MAX_PREFIX_LEN} of "
            "lowercase letters, digits and single hyphens, starting with a letter); "
            "let branchenv set it (`branchenv up`) or derive it with branchenv.naming.names_for"
        )
    function = f"{prefix}-orders-api"
    return PhysicalNames(
        prefix=prefix,
        table=f"{prefix}-orders",
        queue=f"{prefix}-orders",
        dlq=f"{prefix}-orders-dlq",
        role=f"{prefix}-handler-role",
        role_policy=f"{prefix}-handler-policy",
        function=function,
        log_group=f"/aws/lambda/{function}",
        api=f"{prefix}-orders-api",
    )


_ACCOUNT_ID = re.compile(r"[0-9]{12}")


def bucket_name(prefix: str, account_id: str) -> str:
    """The artifacts bucket's name, ``<prefix>-artifacts-<account id>``.

    S3 bucket names are one namespace across every AWS account: ``dev-artifacts`` would collide
    with someone else's bucket on the first real ``up``. The account id makes it this account's
    (branchenv.naming.global_resource_name; the suffix stays within its 24-character budget)."""
    if not _ACCOUNT_ID.fullmatch(account_id):
        raise StackConfigError(
            f"the AWS account id {account_id!r} is not 12 digits; check the provider's "
            "credentials (`aws sts get-caller-identity`)"
        )
    return f"{prefix}-artifacts-{account_id}"


def parse_tags(raw: Any) -> dict[str, str]:
    """``branchenv:tags`` as a str->str dict (already JSON-decoded by pulumi.Config)."""
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise StackConfigError(
            "branchenv:tags must be a JSON object of string keys to string values "
            "(branchenv sets it from the stack metadata; see `branchenv up`)"
        )
    return dict(raw)


def parse_default_tags(raw: Any) -> dict[str, str]:
    """``aws:defaultTags`` (``{"tags": {...}}``, the standard stack config every resource of
    the default provider gets) as a str->str dict."""
    tags = raw.get("tags") if isinstance(raw, dict) else None
    if not isinstance(tags, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
    ):
        raise StackConfigError(
            'aws:defaultTags must be {"tags": {...}} with string keys and values '
            "(branchenv sets it to the stack's identity tags; see `branchenv up`)"
        )
    return dict(tags)


def endpoint_overrides(raw: Any) -> list[dict[str, str]]:
    """``aws:endpoints`` (a list of {service: url} maps) as keyword arguments for
    ``aws.ProviderEndpointArgs``: a service that is a Python keyword gets a trailing ``_``
    (``lambda`` -> ``lambda_``), as the SDK spells it."""
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(
        isinstance(entry, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in entry.items())
        for entry in raw
    ):
        raise StackConfigError(
            "aws:endpoints must be a list of {service: url} maps, "
            'e.g. [{"dynamodb": "http://127.0.0.1:5000"}]'
        )
    return [
        {(f"{svc}_" if keyword.iskeyword(svc) else svc): url for svc, url in entry.items()}
        for entry in raw
    ]


def handler_policy(
    *, table_arn: str, queue_arn: str, bucket_arn: str, log_group_arn: str
) -> dict[str, Any]:
    """The handler role's inline policy: named actions on this stack's resources only."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "OrdersTable",
                "Effect": "Allow",
                "Action": ["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:DescribeTable"],
                "Resource": [table_arn],
            },
            {
                "Sid": "OrdersQueue",
                "Effect": "Allow",
                "Action": ["sqs:SendMessage", "sqs:GetQueueAttributes"],
                "Resource": [queue_arn],
            },
            {
                "Sid": "ArtifactsObjects",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:GetObject"],
                "Resource": [f"{bucket_arn}/*"],
            },
            {
                # Streams are sub-resources of the group: "<group arn>:log-stream:<name>".
                "Sid": "FunctionLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": [log_group_arn, f"{log_group_arn}:log-stream:*"],
            },
        ],
    }


LAMBDA_ASSUME_ROLE_POLICY = json.dumps(
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
