"""The AWS program (infra/aws/__main__.py) on the Pulumi SDK's mock runtime: the resources it
declares, their safety settings, names valid for awkward branches, both profiles, config errors.

The mock runtime is process-global (settings, root stack, config are context variables), so each
run resets it first (`reset_options`, `set_all_config`) and the fixture resets it after.
"""

from __future__ import annotations

import json
import runpy
import sys
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from branchenv.naming import MAX_SUFFIX_LEN, RULES, global_resource_name, names_for

PROGRAM_DIR = Path(__file__).resolve().parents[2] / "infra" / "aws"
PROGRAM = PROGRAM_DIR / "__main__.py"
ACCOUNT = "123456789012"
REGION = "us-east-1"
TAGS = {
    "branchenv:managed-by": "branchenv",
    "branchenv:branch": "feature/ABC-123_fix.v2",
    "branchenv:owner": "ada@example.com",
    "branchenv:expires-at": "2030-01-01T00:00:00Z",
}

# The contract with the in-process engine: exactly these types, this many of each.
EXPECTED_TYPES = Counter(
    {
        "aws:dynamodb/table:Table": 1,
        "aws:sqs/queue:Queue": 2,
        "aws:s3/bucket:Bucket": 1,
        "aws:s3/bucketVersioning:BucketVersioning": 1,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": 1,
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": 1,
        "aws:iam/role:Role": 1,
        "aws:iam/rolePolicy:RolePolicy": 1,
        "aws:cloudwatch/logGroup:LogGroup": 1,
        "aws:lambda/function:Function": 1,
        "aws:apigatewayv2/api:Api": 1,
        "aws:apigatewayv2/integration:Integration": 1,
        "aws:apigatewayv2/route:Route": 3,
        "aws:apigatewayv2/stage:Stage": 1,
        "aws:lambda/permission:Permission": 1,
    }
)
EXPECTED_OUTPUTS = {
    "endpoint",
    "api_id",
    "function_name",
    "table_name",
    "queue_url",
    "queue_name",
    "queue_arn",
    "dlq_url",
    "dlq_name",
    "dlq_arn",
    "bucket_name",
    "role_name",
    "role_arn",
    "log_group_name",
    "region",
    "prefix",
    "profile",
    "max_receive_count",
}
PROVIDER_TYPE = "pulumi:providers:aws"

# As the in-process engine runs it: the program's directory on sys.path for its sibling modules.
if str(PROGRAM_DIR) not in sys.path:
    sys.path.insert(0, str(PROGRAM_DIR))
import orders_stack_spec as spec  # noqa: E402


@dataclass(frozen=True)
class Registered:
    type: str
    name: str
    inputs: dict[str, Any]
    provider: str | None
    id: str
    state: dict[str, Any]


class RecordingMocks(pulumi.runtime.Mocks):
    """Records every resource and answers with the outputs AWS would compute (ARNs, URLs)."""

    def __init__(self) -> None:
        self.resources: list[Registered] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = dict(args.inputs)
        physical = inputs.get("name") or inputs.get("bucket") or f"{args.name}-id"
        if args.typ in ("aws:apigatewayv2/api:Api", "aws:apigatewayv2/integration:Integration"):
            physical = f"{args.name}-id"
        state = dict(inputs)
        service = args.typ.split(":")[1].split("/")[0]
        state["arn"] = f"arn:aws:{service}:{REGION}:{ACCOUNT}:{physical}"
        if args.typ == "aws:sqs/queue:Queue":
            state["url"] = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{physical}"
        elif args.typ == "aws:apigatewayv2/api:Api":
            state["api_endpoint"] = f"https://{physical}.execute-api.{REGION}.amazonaws.com"
            state["execution_arn"] = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{physical}"
        elif args.typ == "aws:lambda/function:Function":
            state["invoke_arn"] = f"arn:aws:apigateway:{REGION}:lambda:path/{state['arn']}"
        self.resources.append(
            Registered(args.typ, args.name, inputs, args.provider, physical, state)
        )
        return physical, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        # The one lookup the program makes: the account id its bucket name carries.
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/ci", "userId": "x"}
        raise AssertionError(f"the program must not invoke other provider functions ({args.token})")


@dataclass(frozen=True)
class ProgramRun:
    resources: list[Registered]
    outputs: dict[str, Any]

    def of_type(self, suffix: str) -> list[Registered]:
        return [r for r in self.resources if r.type.endswith(suffix)]

    def one(self, suffix: str) -> Registered:
        (found,) = self.of_type(suffix)
        return found

    def named(self, logical: str) -> Registered:
        (found,) = [r for r in self.resources if r.name == logical]
        return found


SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # pulumi.runtime.rpc's secret signature


def unsecret(value: Any) -> Any:
    """The value inside a secret as the mock monitor hands it over; fails if not a secret."""
    assert isinstance(value, dict) and SECRET_SIG in value.values(), value
    return value["value"]


def config_for(prefix: str, **extra: str) -> dict[str, str]:
    return {
        "branchenv:prefix": prefix,
        "branchenv:tags": json.dumps(TAGS),
        "aws:region": REGION,
        **extra,
    }


def run_program(config: dict[str, str]) -> ProgramRun:
    """Run infra/aws/__main__.py as the in-process engine does: runpy, its dir on sys.path."""
    pulumi.runtime.reset_options(project="branchenv-demo", stack="unit", preview=False)
    pulumi.runtime.set_all_config(config)
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="branchenv-demo", stack="unit", preview=False)

    def program() -> None:
        runpy.run_path(str(PROGRAM), run_name="__main__")

    _sync_await(run_pulumi_func(program))
    root = pulumi_settings.get_root_resource()
    assert root is not None
    outputs = {
        name: _sync_await(pulumi.Output.from_input(value).future())
        for name, value in root.outputs.items()  # type: ignore[attr-defined]
    }
    return ProgramRun(resources=mocks.resources, outputs=outputs)


@pytest.fixture(autouse=True)
def reset_pulumi_runtime() -> Iterator[None]:
    yield
    pulumi.runtime.set_all_config({})
    pulumi.runtime.reset_options()


@pytest.fixture(scope="module")
def awkward() -> str:
    return names_for("feature/ABC-123_fix.v2").prefix


# --- shape, provider, tags ---------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["ephemeral", "prodlike"])
def test_exactly_the_contracted_resource_types(awkward: str, profile: str) -> None:
    run = run_program(config_for(awkward, **{"branchenv:profile": profile}))
    resources = [r for r in run.resources if r.type != PROVIDER_TYPE]
    assert Counter(r.type for r in resources) == EXPECTED_TYPES
    assert set(run.outputs) == EXPECTED_OUTPUTS
    assert run.outputs["profile"] == profile
    assert run.outputs["prefix"] == awkward


def test_every_resource_uses_the_one_provider_which_carries_the_tags(awkward: str) -> None:
    run = run_program(config_for(awkward))
    providers = run.of_type(PROVIDER_TYPE)
    assert len(providers) == 1
    provider = providers[0]
    assert json.loads(provider.inputs["defaultTags"]) == {"tags": TAGS}
    assert provider.inputs["region"] == REGION
    (ref,) = {r.provider for r in run.resources if r.type != PROVIDER_TYPE}  # one for all
    assert ref is not None
    assert ref.endswith(f"{PROVIDER_TYPE}::aws::{provider.id}")


def test_the_standard_default_tags_config_wins_over_branchenv_tags(awkward: str) -> None:
    """aws:defaultTags (the identity tags branchenv's engines set) is what the provider puts on
    every resource; branchenv:tags (the whole stack metadata) is only the fallback."""
    identity = {"branchenv:managed-by": "branchenv", "branchenv:stack": "s"}
    run = run_program(config_for(awkward, **{"aws:defaultTags": json.dumps({"tags": identity})}))
    (provider,) = run.of_type(PROVIDER_TYPE)
    assert json.loads(provider.inputs["defaultTags"]) == {"tags": identity}


def test_local_provider_settings_come_from_aws_config(awkward: str) -> None:
    endpoints = [{svc: "http://127.0.0.1:4566" for svc in ("lambda", "s3", "sqs", "dynamodb")}]
    run = run_program(
        config_for(
            awkward,
            **{
                "aws:endpoints": json.dumps(endpoints),
                "aws:s3UsePathStyle": "true",
                "aws:skipCredentialsValidation": "true",
                "aws:skipRequestingAccountId": "true",
                "aws:skipMetadataApiCheck": "true",
                "aws:accessKey": "branchenv-local",
                "aws:secretKey": "branchenv-local-secret",
            },
        )
    )
    inputs = run.one(PROVIDER_TYPE).inputs
    assert json.loads(inputs["endpoints"]) == endpoints  # "lambda", not the SDK's "lambda_"
    for key in (
        "s3UsePathStyle",
        "skipCredentialsValidation",
        "skipRequestingAccountId",
        "skipMetadataApiCheck",
    ):
        assert json.loads(inputs[key]) is True, key
    # both reach the provider, marked secret (pulumi-aws treats the keys as secrets)
    assert unsecret(inputs["accessKey"]) == "branchenv-local"
    assert unsecret(inputs["secretKey"]) == "branchenv-local-secret"


def test_real_aws_provider_has_no_local_overrides(awkward: str) -> None:
    inputs = run_program(config_for(awkward)).one(PROVIDER_TYPE).inputs
    for key in ("endpoints", "s3UsePathStyle", "accessKey", "secretKey"):
        assert key not in inputs


# --- safety settings ---------------------------------------------------------------------------


def test_bucket_is_private_encrypted_versioned(awkward: str) -> None:
    run = run_program(config_for(awkward))
    bucket = run.one("bucket:Bucket")
    block = run.one("BucketPublicAccessBlock")
    assert block.inputs["bucket"] == bucket.id
    for flag in (
        "blockPublicAcls",
        "blockPublicPolicy",
        "ignorePublicAcls",
        "restrictPublicBuckets",
    ):
        assert block.inputs[flag] is True, flag
    sse = run.one("BucketServerSideEncryptionConfiguration")
    assert sse.inputs["bucket"] == bucket.id
    assert [
        r["applyServerSideEncryptionByDefault"]["sseAlgorithm"] for r in sse.inputs["rules"]
    ] == ["AES256"]
    versioning = run.one("BucketVersioning")
    assert versioning.inputs == {
        "bucket": bucket.id,
        "versioningConfiguration": {"status": "Enabled"},
    }
    assert bucket.inputs["forceDestroy"] is True
    assert "acl" not in bucket.inputs and "policy" not in bucket.inputs


def test_table_is_encrypted_with_pitr_and_ttl(awkward: str) -> None:
    table = run_program(config_for(awkward)).one("table:Table").inputs
    assert table["billingMode"] == "PAY_PER_REQUEST"
    assert table["hashKey"] == "id"
    assert table["attributes"] == [{"name": "id", "type": "S"}]
    assert table["serverSideEncryption"] == {"enabled": True}
    assert table["pointInTimeRecovery"] == {"enabled": True}
    assert table["ttl"] == {"attributeName": "expires_at", "enabled": True}


def test_queues_are_encrypted_and_the_dlq_is_wired(awkward: str) -> None:
    run = run_program(config_for(awkward))
    dlq = run.named("orders-dlq")
    queue = run.named("orders-queue")
    for q in (dlq, queue):
        assert q.inputs["sqsManagedSseEnabled"] is True
    assert "redrivePolicy" not in dlq.inputs
    redrive = json.loads(queue.inputs["redrivePolicy"])
    assert redrive == {"deadLetterTargetArn": dlq.state["arn"], "maxReceiveCount": 3}
    assert run.outputs["max_receive_count"] == 3
    assert run.outputs["dlq_arn"] == dlq.state["arn"]
    assert run.outputs["queue_url"] == queue.state["url"]


def test_iam_policy_is_least_privilege(awkward: str) -> None:
    run = run_program(config_for(awkward))
    role = run.one("role:Role")
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert [s["Principal"] for s in trust["Statement"]] == [{"Service": "lambda.amazonaws.com"}]
    role_policy = run.one("rolePolicy:RolePolicy")
    assert role_policy.inputs["role"] == role.inputs["name"]
    policy = json.loads(role_policy.inputs["policy"])
    arns = {
        "dynamodb": run.one("table:Table").state["arn"],
        "sqs": run.named("orders-queue").state["arn"],
        "s3": run.one("bucket:Bucket").state["arn"],
        "logs": run.one("logGroup:LogGroup").state["arn"],
    }
    granted: dict[str, set[str]] = {}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        resources = (
            statement["Resource"]
            if isinstance(statement["Resource"], list)
            else [statement["Resource"]]
        )
        services = {a.split(":")[0] for a in actions}
        assert len(services) == 1, statement
        (service,) = services
        for action in actions:
            assert "*" not in action, action
            granted.setdefault(service, set()).add(action.split(":")[1])
        for resource in resources:
            assert resource != "*"
            # each resource is the stack's own resource of that service, or a child of it
            assert resource == arns[service] or resource.startswith(
                arns[service] + (":" if service == "logs" else "/")
            ), resource
    assert granted == {
        "dynamodb": {"PutItem", "GetItem", "DescribeTable"},
        "sqs": {"SendMessage", "GetQueueAttributes"},
        "s3": {"PutObject", "GetObject"},
        "logs": {"CreateLogStream", "PutLogEvents"},
    }
    # the queue grant is for the main queue, never the DLQ
    assert run.named("orders-dlq").state["arn"] not in role_policy.inputs["policy"]


# --- the function and the API ------------------------------------------------------------------


def test_function_runs_the_service_with_its_environment(awkward: str) -> None:
    run = run_program(config_for(awkward))
    function = run.one("function:Function").inputs
    assert function["runtime"] == "python3.12"
    assert function["handler"] == "orders.handler"
    assert function["role"] == run.one("role:Role").state["arn"]
    code = function["code"]
    assert isinstance(code, pulumi.FileArchive)
    service_dir = Path(code.path)
    assert service_dir.is_absolute() and service_dir == PROGRAM_DIR / "service"
    assert "def handler(" in (service_dir / "orders.py").read_text()
    assert function["environment"]["variables"] == {
        "TABLE_NAME": run.one("table:Table").inputs["name"],
        "QUEUE_URL": run.named("orders-queue").state["url"],
        "BUCKET_NAME": run.one("bucket:Bucket").inputs["bucket"],
        "SERVICE_TIMEOUT_S": "2",
    }
    log_group = run.one("logGroup:LogGroup").inputs
    assert log_group["name"] == f"/aws/lambda/{function['name']}"


def test_api_routes_to_the_function(awkward: str) -> None:
    run = run_program(config_for(awkward))
    api = run.one("api:Api")
    assert api.inputs["protocolType"] == "HTTP"
    function = run.one("function:Function")
    integration = run.one("integration:Integration")
    assert integration.inputs["apiId"] == api.id
    assert integration.inputs["integrationType"] == "AWS_PROXY"
    assert integration.inputs["integrationUri"] == function.state["invoke_arn"]
    assert integration.inputs["payloadFormatVersion"] == "2.0"
    routes = run.of_type("route:Route")
    assert sorted(r.inputs["routeKey"] for r in routes) == [
        "GET /health",
        "GET /orders/{id}",
        "POST /orders",
    ]
    for route in routes:
        assert route.inputs["apiId"] == api.id
        assert route.inputs["target"] == f"integrations/{integration.id}"
    stage = run.one("stage:Stage").inputs
    assert (stage["name"], stage["autoDeploy"], stage["apiId"]) == ("$default", True, api.id)
    permission = run.one("permission:Permission").inputs
    assert permission["principal"] == "apigateway.amazonaws.com"
    assert permission["action"] == "lambda:InvokeFunction"
    assert permission["function"] == function.inputs["name"]
    assert permission["sourceArn"] == f"{api.state['execution_arn']}/*/*"
    assert run.outputs["endpoint"] == api.state["api_endpoint"]
    assert run.outputs["api_id"] == api.id


def test_local_endpoint_points_at_the_function_runner(awkward: str) -> None:
    run = run_program(
        config_for(awkward, **{"branchenv:localFunctionsUrl": "http://127.0.0.1:9001/"})
    )
    api_id = run.one("api:Api").id
    assert run.outputs["endpoint"] == f"http://127.0.0.1:9001/api/{api_id}"


# --- profiles ----------------------------------------------------------------------------------


PROFILE_SIZES = {
    # profile: (log retention days, memory MB, reserved concurrency present)
    "ephemeral": (3, 256, False),
    "prodlike": (30, 1024, True),
}


@pytest.mark.parametrize("profile", [None, "ephemeral", "prodlike"])
def test_profile_sizes(awkward: str, profile: str | None) -> None:
    extra = {} if profile is None else {"branchenv:profile": profile}
    run = run_program(config_for(awkward, **extra))
    retention, memory, reserved = PROFILE_SIZES[profile or "ephemeral"]
    assert run.one("logGroup:LogGroup").inputs["retentionInDays"] == retention
    function = run.one("function:Function").inputs
    assert function["memorySize"] == memory
    assert ("reservedConcurrentExecutions" in function) is reserved
    assert 1 <= function["timeout"] <= 30  # within API Gateway's integration limit
    queue = run.named("orders-queue").inputs
    assert queue["visibilityTimeoutSeconds"] >= function["timeout"]
    assert run.outputs["profile"] == (profile or "ephemeral")


def test_profiles_differ_in_size_not_shape(awkward: str) -> None:
    small = run_program(config_for(awkward, **{"branchenv:profile": "ephemeral"}))
    large = run_program(config_for(awkward, **{"branchenv:profile": "prodlike"}))
    assert sorted((r.type, r.name) for r in small.resources) == sorted(
        (r.type, r.name) for r in large.resources
    )
    assert (
        small.named("orders-queue").inputs["messageRetentionSeconds"]
        < large.named("orders-queue").inputs["messageRetentionSeconds"]
    )


def test_unknown_profile_is_a_clear_error(awkward: str) -> None:
    with pytest.raises(pulumi.RunError) as caught:
        run_program(config_for(awkward, **{"branchenv:profile": "huge"}))
    message = str(caught.value)
    assert "branchenv:profile" in message and "'huge'" in message
    assert "ephemeral, prodlike" in message


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ({"branchenv:tags": "[1, 2]"}, "branchenv:tags"),
        ({"branchenv:tags": json.dumps({"k": 1})}, "branchenv:tags"),
        ({"aws:defaultTags": json.dumps({"tags": {"k": 1}})}, "aws:defaultTags"),
        ({"aws:defaultTags": json.dumps(["k"])}, "aws:defaultTags"),
        ({"branchenv:prefix": "Not_A_Prefix"}, "branchenv:prefix"),
        ({"aws:endpoints": json.dumps({"s3": "http://x"})}, "aws:endpoints"),
        ({"aws:endpoints": json.dumps([{"nosuchservice": "http://x"}])}, "aws:endpoints"),
    ],
)
def test_bad_config_is_a_clear_error(awkward: str, config: dict[str, str], needle: str) -> None:
    with pytest.raises(pulumi.RunError, match=needle):
        run_program({**config_for(awkward), **config})


def test_missing_required_config_names_the_key(awkward: str) -> None:
    config = config_for(awkward)
    del config["branchenv:tags"]
    with pytest.raises(pulumi.ConfigMissingError, match="branchenv:tags"):
        run_program(config)


# --- names ---------------------------------------------------------------------------------------

NAME_RULES = {
    # (type suffix, input holding the physical name): rule kind
    ("table:Table", "name"): "dynamodb_table",
    ("queue:Queue", "name"): "sqs_queue",
    ("bucket:Bucket", "bucket"): "s3_bucket",
    ("role:Role", "name"): "iam_role",
    ("rolePolicy:RolePolicy", "name"): "iam_role",
    ("function:Function", "name"): "lambda_function",
    ("logGroup:LogGroup", "name"): "log_group",
}

AWKWARD_BRANCHES = [
    "feature/ABC-123_fix.v2",
    "fix/Überprüfung-der-Größe-日本語-🚀",
    "a" * 120 + "/" + "B-" * 90,  # 300 characters
    "main",
]


@pytest.mark.parametrize(
    "branch", AWKWARD_BRANCHES, ids=["slashes", "unicode", "300-chars", "main"]
)
def test_every_physical_name_is_valid(branch: str) -> None:
    prefix = names_for(branch).prefix
    run = run_program(config_for(prefix))
    checked = 0
    for (suffix, key), kind in NAME_RULES.items():
        for resource in run.of_type(suffix):
            name = resource.inputs[key]
            assert RULES[kind](name) is None, (kind, name, RULES[kind](name))
            bare = name.removeprefix("/aws/lambda/")
            assert bare.startswith(prefix + "-")
            assert len(bare) - len(prefix) <= MAX_SUFFIX_LEN, name
            checked += 1
    assert checked == 8
    names = [r.inputs.get("name") or r.inputs.get("bucket") for r in run.resources]
    assert all(
        n is None or n.startswith((prefix, "/aws/lambda/" + prefix, "$default")) for n in names
    )


@given(
    st.text(min_size=1, max_size=300).filter(
        lambda b: any(unicodedata.category(c)[0] in "LN" for c in b)
    )
)
def test_spec_names_are_valid_for_any_branch(branch: str) -> None:
    # the pure half of the program: every name it would use, for any nameable branch
    names = spec.physical_names(names_for(branch).prefix)
    for field, kind in (
        ("table", "dynamodb_table"),
        ("queue", "sqs_queue"),
        ("dlq", "sqs_queue"),
        ("role", "iam_role"),
        ("role_policy", "iam_role"),
        ("function", "lambda_function"),
        ("log_group", "log_group"),
    ):
        value = getattr(names, field)
        assert RULES[kind](value) is None, (field, value)
        assert len(value.removeprefix("/aws/lambda/")) - len(names.prefix) <= MAX_SUFFIX_LEN
    bucket = spec.bucket_name(names.prefix, ACCOUNT)
    assert bucket == global_resource_name(names.prefix, "artifacts", ACCOUNT)
    assert RULES["s3_bucket"](bucket) is None, bucket


def test_the_bucket_name_carries_the_account_id() -> None:
    run = run_program(config_for(names_for("dev").prefix))
    assert run.one("bucket:Bucket").inputs["bucket"] == f"dev-artifacts-{ACCOUNT}"
    with pytest.raises(spec.StackConfigError, match="12 digits"):
        spec.bucket_name("dev", "not-an-account")


# --- stack templates -----------------------------------------------------------------------------

STACKS_DIR = PROGRAM_DIR.parent.parent / "stacks"
PLACEHOLDER = "${BRANCHENV_LOCAL_ENDPOINT}"
SERVICES_USED = {"apigatewayv2", "cloudwatchlogs", "dynamodb", "iam", "lambda", "s3", "sqs", "sts"}


def template_config(name: str, endpoint: str = "http://127.0.0.1:5999") -> dict[str, str]:
    """A stack template as the program sees it: placeholder filled, values as the CLI passes
    them (strings verbatim, everything else JSON)."""
    import yaml

    text = (STACKS_DIR / f"Pulumi.{name}.yaml").read_text()
    config = yaml.safe_load(text.replace(PLACEHOLDER, endpoint))["config"]
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}


def test_on_the_local_cloud_every_service_used_points_at_it(awkward: str) -> None:
    """The program's provider, with the stack config the engines give it on the local target
    (the template plus the wiring defined once in engines/pulumi_program.py), reaches every
    service the program uses at the local cloud, and nothing else."""
    from branchenv.engines.base import ProgramInputs
    from branchenv.engines.pulumi_program import stack_config
    from branchenv.targets import Target

    local = Target("local", REGION, endpoint_url="http://127.0.0.1:5999")
    inputs = ProgramInputs(
        prefix=awkward,
        profile="ephemeral",
        tags=TAGS,
        region=REGION,
        template=template_config("local"),
    )
    run = run_program(stack_config(inputs, local))
    inputs_seen = run.one(PROVIDER_TYPE).inputs
    endpoints: dict[str, str] = {}
    for entry in json.loads(inputs_seen["endpoints"]):
        endpoints.update(entry)
    assert set(endpoints) >= SERVICES_USED
    assert set(endpoints.values()) == {"http://127.0.0.1:5999"}
    for key in (
        "s3UsePathStyle",
        "skipCredentialsValidation",
        "skipRequestingAccountId",
        "skipMetadataApiCheck",
        "skipRegionValidation",
    ):
        assert json.loads(inputs_seen[key]) is True, key
    assert unsecret(inputs_seen["accessKey"]) == "branchenv-local"
    assert run.outputs["profile"] == "ephemeral"


def test_aws_template_has_region_and_profile_and_no_credentials() -> None:
    config = template_config("aws")
    assert set(config) == {"aws:region", "branchenv:profile"}
    assert config["branchenv:profile"] in spec.PROFILES
