"""branchenv's production-like AWS stack: an HTTP API in front of the "orders" Lambda service.

Config (``pulumi config`` / the stack file; branchenv sets the ``branchenv:`` keys):

- ``branchenv:prefix`` (required): starts every physical name (``<prefix>-orders``, ...).
- ``aws:defaultTags``: ``{"tags": {...}}``, the stack's identity tags (what never changes
  between updates), put on every resource through the provider's default tags; without it,
  ``branchenv:tags`` (a JSON object of tags) is used instead.
- ``branchenv:profile``: ``ephemeral`` (default) or ``prodlike`` — same resources, other sizes.
- ``branchenv:localFunctionsUrl``: set on the local cloud; the ``endpoint`` output then points at
  the local function runner instead of API Gateway.
- ``aws:region`` and, for the local cloud, ``aws:endpoints``, ``aws:accessKey``, ... (see
  stacks/Pulumi.local.yaml).

Every resource is created through one explicit provider, so the default tags reach all of them.
The file runs as a script (the Pulumi language host, or runpy in branchenv's in-process engine)
with this directory on sys.path: imports of sibling modules are plain, not relative.
"""

from __future__ import annotations

import json
import os
import sys

import pulumi
import pulumi_aws as aws

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import orders_stack_spec as spec  # noqa: E402 - needs _HERE on sys.path first

SERVICE_DIR = os.path.join(_HERE, "service")


def _read_config() -> tuple[spec.PhysicalNames, dict[str, str], spec.Profile, str | None]:
    cfg = pulumi.Config("branchenv")
    try:
        names = spec.physical_names(cfg.require("prefix"))
        default_tags = pulumi.Config("aws").get_object("defaultTags")
        tags = (
            spec.parse_default_tags(default_tags)
            if default_tags is not None
            else spec.parse_tags(cfg.require_object("tags"))
        )
        profile = spec.profile_named(cfg.get("profile"))
    except spec.StackConfigError as exc:
        raise pulumi.RunError(str(exc)) from exc
    return names, tags, profile, cfg.get("localFunctionsUrl")


def _provider(tags: dict[str, str]) -> tuple[aws.Provider, str]:
    """The one provider every resource uses; returns it and its region."""
    aws_cfg = pulumi.Config("aws")
    region = (
        aws_cfg.get("region")
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
    )
    if not region:
        raise pulumi.RunError(
            "no AWS region: set it with `pulumi config set aws:region us-east-1` "
            "(or the AWS_REGION environment variable)"
        )
    try:
        endpoints = [
            aws.ProviderEndpointArgs(**entry)
            for entry in spec.endpoint_overrides(aws_cfg.get_object("endpoints"))
        ]
    except TypeError as exc:
        raise pulumi.RunError(
            f"aws:endpoints names a service pulumi-aws does not know ({exc}); "
            "fix the service keys in the stack's aws:endpoints"
        ) from exc
    except spec.StackConfigError as exc:
        raise pulumi.RunError(str(exc)) from exc

    provider = aws.Provider(
        "aws",
        region=region,
        default_tags=aws.ProviderDefaultTagsArgs(tags=tags),
        endpoints=endpoints or None,
        s3_use_path_style=aws_cfg.get_bool("s3UsePathStyle"),
        skip_credentials_validation=aws_cfg.get_bool("skipCredentialsValidation"),
        skip_requesting_account_id=aws_cfg.get_bool("skipRequestingAccountId"),
        skip_metadata_api_check=aws_cfg.get_bool("skipMetadataApiCheck"),
        skip_region_validation=aws_cfg.get_bool("skipRegionValidation"),
        access_key=aws_cfg.get("accessKey") or None,
        secret_key=aws_cfg.get_secret("secretKey"),
    )
    return provider, region


names, tags, profile, local_functions_url = _read_config()
provider, region = _provider(tags)
opts = pulumi.ResourceOptions(provider=provider)
# S3 names are global across accounts: the bucket's carries the account id the provider runs as.
account_id = aws.get_caller_identity(opts=pulumi.InvokeOptions(provider=provider)).account_id
try:
    bucket_name = spec.bucket_name(names.prefix, account_id)
except spec.StackConfigError as exc:
    raise pulumi.RunError(str(exc)) from exc

# --- data ------------------------------------------------------------------------------------

table = aws.dynamodb.Table(
    "orders-table",
    name=names.table,
    billing_mode="PAY_PER_REQUEST",
    hash_key="id",
    attributes=[aws.dynamodb.TableAttributeArgs(name="id", type="S")],
    point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=True),
    ttl=aws.dynamodb.TableTtlArgs(attribute_name="expires_at", enabled=True),
    server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(enabled=True),
    opts=opts,
)

dlq = aws.sqs.Queue(
    "orders-dlq",
    name=names.dlq,
    message_retention_seconds=profile.dlq_retention_s,
    sqs_managed_sse_enabled=True,
    opts=opts,
)

queue = aws.sqs.Queue(
    "orders-queue",
    name=names.queue,
    message_retention_seconds=profile.queue_retention_s,
    visibility_timeout_seconds=profile.queue_visibility_timeout_s,
    sqs_managed_sse_enabled=True,
    redrive_policy=dlq.arn.apply(
        lambda arn: json.dumps(
            {"deadLetterTargetArn": arn, "maxReceiveCount": spec.MAX_RECEIVE_COUNT}
        )
    ),
    opts=opts,
)

bucket = aws.s3.Bucket(
    "artifacts",
    bucket=bucket_name,
    force_destroy=True,  # branch stacks are torn down with whatever they hold
    opts=opts,
)
aws.s3.BucketVersioning(
    "artifacts-versioning",
    bucket=bucket.id,
    versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
    opts=opts,
)
aws.s3.BucketServerSideEncryptionConfiguration(
    "artifacts-encryption",
    bucket=bucket.id,
    rules=[
        aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
            apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                sse_algorithm="AES256"
            )
        )
    ],
    opts=opts,
)
aws.s3.BucketPublicAccessBlock(
    "artifacts-public-access-block",
    bucket=bucket.id,
    block_public_acls=True,
    block_public_policy=True,
    ignore_public_acls=True,
    restrict_public_buckets=True,
    opts=opts,
)

# --- the function and its permissions ---------------------------------------------------------

log_group = aws.cloudwatch.LogGroup(
    "orders-api-logs",
    name=names.log_group,
    retention_in_days=profile.log_retention_days,
    opts=opts,
)

role = aws.iam.Role(
    "handler-role",
    name=names.role,
    assume_role_policy=spec.LAMBDA_ASSUME_ROLE_POLICY,
    opts=opts,
)
role_policy = aws.iam.RolePolicy(
    "handler-policy",
    name=names.role_policy,
    role=role.name,
    policy=pulumi.Output.all(table.arn, queue.arn, bucket.arn, log_group.arn).apply(
        lambda arns: json.dumps(
            spec.handler_policy(
                table_arn=arns[0], queue_arn=arns[1], bucket_arn=arns[2], log_group_arn=arns[3]
            )
        )
    ),
    opts=opts,
)

function = aws.lambda_.Function(
    "orders-api",
    name=names.function,
    runtime="python3.12",
    handler="orders.handler",
    code=pulumi.FileArchive(SERVICE_DIR),
    role=role.arn,
    memory_size=profile.lambda_memory_mb,
    timeout=profile.lambda_timeout_s,
    reserved_concurrent_executions=profile.reserved_concurrency,
    environment=aws.lambda_.FunctionEnvironmentArgs(
        variables={
            "TABLE_NAME": table.name,
            "QUEUE_URL": queue.url,
            "BUCKET_NAME": bucket.bucket,
            "SERVICE_TIMEOUT_S": str(spec.SERVICE_TIMEOUT_S),
        }
    ),
    opts=pulumi.ResourceOptions(provider=provider, depends_on=[log_group, role_policy]),
)

# --- the HTTP API ----------------------------------------------------------------------------

api = aws.apigatewayv2.Api(
    "orders-http-api",
    name=names.api,
    protocol_type="HTTP",
    opts=opts,
)
integration = aws.apigatewayv2.Integration(
    "orders-integration",
    api_id=api.id,
    integration_type="AWS_PROXY",
    integration_method="POST",
    integration_uri=function.invoke_arn,
    payload_format_version="2.0",
    opts=opts,
)
for logical, route_key in (
    ("route-create-order", "POST /orders"),
    ("route-get-order", "GET /orders/{id}"),
    ("route-health", "GET /health"),
):
    aws.apigatewayv2.Route(
        logical,
        api_id=api.id,
        route_key=route_key,
        target=integration.id.apply(lambda integration_id: f"integrations/{integration_id}"),
        opts=opts,
    )
aws.apigatewayv2.Stage(
    "default-stage",
    api_id=api.id,
    name="$default",
    auto_deploy=True,
    opts=opts,
)
aws.lambda_.Permission(
    "allow-apigateway-invoke",
    action="lambda:InvokeFunction",
    function=function.name,
    principal="apigateway.amazonaws.com",
    source_arn=api.execution_arn.apply(lambda arn: f"{arn}/*/*"),
    opts=opts,
)

# --- outputs ---------------------------------------------------------------------------------

if local_functions_url:
    base = local_functions_url.rstrip("/")
    endpoint: pulumi.Output[str] = api.id.apply(lambda api_id: f"{base}/api/{api_id}")
else:
    endpoint = api.api_endpoint

pulumi.export("endpoint", endpoint)
pulumi.export("api_id", api.id)
pulumi.export("function_name", function.name)
pulumi.export("table_name", table.name)
pulumi.export("queue_url", queue.url)
pulumi.export("queue_name", queue.name)
pulumi.export("queue_arn", queue.arn)
pulumi.export("dlq_url", dlq.url)
pulumi.export("dlq_name", dlq.name)
pulumi.export("dlq_arn", dlq.arn)
pulumi.export("bucket_name", bucket.bucket)
pulumi.export("role_name", role.name)
pulumi.export("role_arn", role.arn)
pulumi.export("log_group_name", log_group.name)
pulumi.export("region", region)
pulumi.export("prefix", names.prefix)
pulumi.export("profile", profile.name)
pulumi.export("max_receive_count", spec.MAX_RECEIVE_COUNT)
