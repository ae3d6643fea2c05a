"""Materializers for compute and access: IAM roles and inline policies, log groups, Lambda
functions and permissions, API Gateway v2 HTTP APIs with their integrations, routes, stages."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from branchenv.engines.inprocess.materializers.base import (
    Applied,
    Context,
    Materializer,
    Prior,
    as_int,
    aws_tags_list,
    error_code,
    found,
    ignore_missing,
    register,
    require,
    tag_changes,
)
from branchenv.metadata import KEY_STACK


def _policy_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


_IAM_MISSING = ("NoSuchEntity",)


@register
class IAMRole(Materializer):
    """aws.iam.Role: the role, its trust policy, description, session duration and tags."""

    type_token = "aws:iam/role:Role"
    replace_on_change = frozenset({"name", "namePrefix", "path"})
    honours = frozenset({"assumeRolePolicy", "description", "maxSessionDuration", "path"})

    def lookup(self, ctx: Context, *, inputs: dict[str, Any]) -> str | None:
        name = inputs["name"]
        if found(_IAM_MISSING, lambda: ctx.client("iam").get_role(RoleName=name)):
            return str(name)
        return None

    def create(self, ctx: Context, *, inputs: dict[str, Any], tags: dict[str, str]) -> Applied:
        self.fail_if_exists(ctx, inputs)
        args: dict[str, Any] = {
            "RoleName": inputs["name"],
            "AssumeRolePolicyDocument": _policy_text(inputs["assumeRolePolicy"]),
            "Path": inputs.get("path") or "/",
        }
        if tags:
            args["Tags"] = aws_tags_list(tags)
        if inputs.get("description"):
            args["Description"] = inputs["description"]
        if inputs.get("maxSessionDuration"):
            args["MaxSessionDuration"] = as_int(inputs["maxSessionDuration"])
        role = ctx.client("iam").create_role(**args)["Role"]
        return self._applied(inputs, role)

    def update(
        self,
        ctx: Context,
        *,
        prior: Prior,
        inputs: dict[str, Any],
        tags: dict[str, str],
        changed: frozenset[str],
    ) -> Applied:
        iam = ctx.client("iam")
        name = prior.id
        if "assumeRolePolicy" in changed:
            iam.update_assume_role_policy(
                RoleName=name, PolicyDocument=_policy_text(inputs["assumeRolePolicy"])
            )
        if changed & {"description", "maxSessionDuration"}:
            args: dict[str, Any] = {"Description": inputs.get("description") or ""}
            args["MaxSessionDuration"] = as_int(inputs.get("maxSessionDuration"), 3600)
            iam.update_role(RoleName=name, **args)
        if "tags" in changed:
            to_set, to_remove = tag_changes(prior.tags, tags)
            if to_set:
                iam.tag_role(RoleName=name, Tags=aws_tags_list(to_set))
            if to_remove:
                iam.untag_role(RoleName=name, TagKeys=to_remove)
        return self._applied(inputs, iam.get_role(RoleName=name)["Role"])

    @staticmethod
    def _applied(inputs: dict[str, Any], role: dict[str, Any]) -> Applied:
        name = role["RoleName"]
        return Applied(
            id=name,
            outputs={**inputs, "id": name, "arn": role["Arn"], "uniqueId": role["RoleId"]},
        )

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        from botocore.exceptions import ClientError

        iam = ctx.client("iam")
        try:
            # IAM refuses to delete a role that still has policies: detach them first.
            for pname in iam.list_role_policies(RoleName=id)["PolicyNames"]:
                iam.delete_role_policy(RoleName=id, PolicyName=pname)
            for att in iam.list_attached_role_policies(RoleName=id)["AttachedPolicies"]:
                iam.detach_role_policy(RoleName=id, PolicyArn=att["PolicyArn"])
            iam.delete_role(RoleName=id)
        except ClientError as exc:
            if error_code(exc) not in _IAM_MISSING:
                raise
            return False
        return True

    def exists(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        return found(_IAM_MISSING, lambda: ctx.client("iam").get_role(RoleName=id))


@register
class IAMRolePolicy(Materializer):
    """aws.iam.RolePolicy: an inline policy on a role; id is ``role:policy``."""

    type_token = "aws:iam/rolePolicy:RolePolicy"
    recovered_by = "its role and name"
    taggable = False
    unique_name = False  # unique per role only
    replace_on_change = frozenset({"role", "name", "namePrefix"})
    honours = frozenset({"role", "policy"})

    def lookup(self, ctx: Context, *, inputs: dict[str, Any]) -> str | None:
        role, name = inputs["role"], inputs["name"]
        get = ctx.client("iam").get_role_policy
        if found(_IAM_MISSING, lambda: get(RoleName=role, PolicyName=name)):
            return f"{role}:{name}"
        return None

    def create(self, ctx: Context, *, inputs: dict[str, Any], tags: dict[str, str]) -> Applied:
        self.fail_if_exists(ctx, inputs)
        return self._put(ctx, inputs)

    def update(
        self,
        ctx: Context,
        *,
        prior: Prior,
        inputs: dict[str, Any],
        tags: dict[str, str],
        changed: frozenset[str],
    ) -> Applied:
        return self._put(ctx, inputs) if "policy" in changed else self._applied(inputs)

    def _put(self, ctx: Context, inputs: dict[str, Any]) -> Applied:
        ctx.client("iam").put_role_policy(
            RoleName=inputs["role"],
            PolicyName=inputs["name"],
            PolicyDocument=_policy_text(inputs["policy"]),
        )
        return self._applied(inputs)

    @staticmethod
    def _applied(inputs: dict[str, Any]) -> Applied:
        pid = f"{inputs['role']}:{inputs['name']}"
        return Applied(id=pid, outputs={**inputs, "id": pid})

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        role, _, name = id.partition(":")
        return ignore_missing(_IAM_MISSING)(
            lambda: ctx.client("iam").delete_role_policy(RoleName=role, PolicyName=name)
        )

    def exists(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        role, _, name = id.partition(":")
        get = ctx.client("iam").get_role_policy
        return found(_IAM_MISSING, lambda: get(RoleName=role, PolicyName=name))


_LOGS_MISSING = ("ResourceNotFoundException",)


@register
class LogGroup(Materializer):
    """aws.cloudwatch.LogGroup: the group, its retention and tags."""

    type_token = "aws:cloudwatch/logGroup:LogGroup"
    name_max_len = 512
    replace_on_change = frozenset({"name", "namePrefix", "logGroupClass"})
    honours = frozenset({"retentionInDays"})

    def _arn(self, ctx: Context, name: str) -> str | None:
        groups = ctx.client("logs").describe_log_groups(logGroupNamePrefix=name)["logGroups"]
        arn = next((g["arn"] for g in groups if g["logGroupName"] == name), None)
        if arn is None:
            return None
        return str(arn[:-2] if arn.endswith(":*") else arn)

    def lookup(self, ctx: Context, *, inputs: dict[str, Any]) -> str | None:
        name = inputs["name"]
        return str(name) if self._arn(ctx, name) else None

    def create(self, ctx: Context, *, inputs: dict[str, Any], tags: dict[str, str]) -> Applied:
        self.fail_if_exists(ctx, inputs)
        logs = ctx.client("logs")
        name = inputs["name"]
        args: dict[str, Any] = {"logGroupName": name}
        if tags:
            args["tags"] = tags
        logs.create_log_group(**args)
        retention = as_int(inputs.get("retentionInDays"))
        if retention:
            logs.put_retention_policy(logGroupName=name, retentionInDays=retention)
        return self._applied(inputs, self._arn(ctx, name))

    def update(
        self,
        ctx: Context,
        *,
        prior: Prior,
        inputs: dict[str, Any],
        tags: dict[str, str],
        changed: frozenset[str],
    ) -> Applied:
        logs = ctx.client("logs")
        name = prior.id
        arn = prior.outputs.get("arn") or self._arn(ctx, name)
        if "retentionInDays" in changed:
            retention = as_int(inputs.get("retentionInDays"))
            if retention:
                logs.put_retention_policy(logGroupName=name, retentionInDays=retention)
            else:
                logs.delete_retention_policy(logGroupName=name)
        if "tags" in changed:
            to_set, to_remove = tag_changes(prior.tags, tags)
            if to_set:
                logs.tag_resource(resourceArn=arn, tags=to_set)
            if to_remove:
                logs.untag_resource(resourceArn=arn, tagKeys=to_remove)
        return self._applied(inputs, arn)

    @staticmethod
    def _applied(inputs: dict[str, Any], arn: str | None) -> Applied:
        name = inputs["name"]
        return Applied(id=name, outputs={**inputs, "id": name, "arn": arn})

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        return ignore_missing(_LOGS_MISSING)(
            lambda: ctx.client("logs").delete_log_group(logGroupName=id)
        )

    def exists(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        return found(_LOGS_MISSING, lambda: require(self._arn(ctx, id)))


def archive_bytes(archive: Any) -> bytes:
    """Zip a Pulumi archive (FileArchive of a directory or a .zip, AssetArchive) as Lambda
    expects it. Entries are written in sorted order with fixed timestamps, so the same sources
    always give the same bytes (and the same CodeSha256)."""
    import pulumi

    buf = io.BytesIO()
    if isinstance(archive, pulumi.FileArchive):
        path = Path(archive.path)
        if path.is_file() and path.suffix in (".zip", ".jar"):
            return path.read_bytes()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            _zip_dir(zf, path, "")
        return buf.getvalue()
    if isinstance(archive, pulumi.AssetArchive):
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, asset in sorted(archive.assets.items()):
                if isinstance(asset, pulumi.FileArchive):
                    _zip_dir(zf, Path(asset.path), name.rstrip("/") + "/" if name != "." else "")
                elif isinstance(asset, pulumi.FileAsset):
                    _zip_write(zf, name, Path(asset.path).read_bytes())
                elif isinstance(asset, pulumi.StringAsset):
                    _zip_write(zf, name, asset.text.encode())
                else:
                    raise ValueError(f"unsupported asset in archive: {type(asset).__name__}")
        return buf.getvalue()
    raise ValueError(
        f"the inprocess engine supports FileArchive and AssetArchive code, not "
        f"{type(archive).__name__}"
    )


def _zip_write(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def _zip_dir(zf: zipfile.ZipFile, root: Path, prefix: str) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for fname in sorted(filenames):
            if fname.endswith(".pyc"):
                continue
            full = Path(dirpath) / fname
            _zip_write(zf, prefix + str(full.relative_to(root)), full.read_bytes())


_LAMBDA_MISSING = ("ResourceNotFoundException",)
_LAMBDA_CONFIG = frozenset(
    {"role", "handler", "runtime", "timeout", "memorySize", "environment", "description"}
)


def code_sha256(code: bytes) -> str:
    """Lambda's CodeSha256 of a package: base64 of its SHA-256."""
    return base64.b64encode(hashlib.sha256(code).digest()).decode()


@register
class LambdaFunction(Materializer):
    """aws.lambda_.Function (zip package): code, handler, runtime, role, environment, timeout,
    memory, description, reserved concurrency and tags."""

    type_token = "aws:lambda/function:Function"
    replace_on_change = frozenset({"name", "packageType"})
    honours = _LAMBDA_CONFIG | {"code", "reservedConcurrentExecutions"}

    def lookup(self, ctx: Context, *, inputs: dict[str, Any]) -> str | None:
        name = inputs["name"]
        if found(_LAMBDA_MISSING, lambda: ctx.client("lambda").get_function(FunctionName=name)):
            return str(name)
        return None

    @staticmethod
    def _config(inputs: dict[str, Any]) -> dict[str, Any]:
        config: dict[str, Any] = {
            "Role": inputs["role"],
            "Handler": inputs.get("handler"),
            "Runtime": inputs.get("runtime"),
            "Timeout": as_int(inputs.get("timeout"), 3),
            "MemorySize": as_int(inputs.get("memorySize"), 128),
            "Environment": {
                "Variables": {
                    str(k): str(v)
                    for k, v in ((inputs.get("environment") or {}).get("variables") or {}).items()
                }
            },
            "Description": inputs.get("description") or "",
        }
        return config

    def create(self, ctx: Context, *, inputs: dict[str, Any], tags: dict[str, str]) -> Applied:
        self.fail_if_exists(ctx, inputs)
        lam = ctx.client("lambda")
        args: dict[str, Any] = {
            "FunctionName": inputs["name"],
            "Code": {"ZipFile": archive_bytes(inputs["code"])},
            **self._config(inputs),
        }
        if tags:
            args["Tags"] = tags
        current = lam.create_function(**args)
        self._set_concurrency(lam, inputs)
        return self._applied(ctx, inputs, current)

    def update(
        self,
        ctx: Context,
        *,
        prior: Prior,
        inputs: dict[str, Any],
        tags: dict[str, str],
        changed: frozenset[str],
    ) -> Applied:
        lam = ctx.client("lambda")
        name = prior.id
        current: dict[str, Any] | None = None
        if "code" in changed:
            current = lam.update_function_code(
                FunctionName=name, ZipFile=archive_bytes(inputs["code"])
            )
        if changed & _LAMBDA_CONFIG:
            current = lam.update_function_configuration(FunctionName=name, **self._config(inputs))
        if "reservedConcurrentExecutions" in changed:
            self._set_concurrency(lam, inputs, clear=True)
        if current is None:
            current = lam.get_function(FunctionName=name)["Configuration"]
        if "tags" in changed:
            to_set, to_remove = tag_changes(prior.tags, tags)
            if to_set:
                lam.tag_resource(Resource=current["FunctionArn"], Tags=to_set)
            if to_remove:
                lam.untag_resource(Resource=current["FunctionArn"], TagKeys=to_remove)
        return self._applied(ctx, inputs, current)

    @staticmethod
    def _set_concurrency(lam: Any, inputs: dict[str, Any], *, clear: bool = False) -> None:
        reserved = inputs.get("reservedConcurrentExecutions")
        if reserved is not None and int(reserved) >= 0:
            lam.put_function_concurrency(
                FunctionName=inputs["name"], ReservedConcurrentExecutions=int(reserved)
            )
        elif clear:
            lam.delete_function_concurrency(FunctionName=inputs["name"])

    @staticmethod
    def _applied(ctx: Context, inputs: dict[str, Any], current: dict[str, Any]) -> Applied:
        name = inputs["name"]
        arn = current["FunctionArn"]
        invoke_arn = (
            f"arn:aws:apigateway:{ctx.region}:lambda:path/2015-03-31/functions/{arn}/invocations"
        )
        return Applied(
            id=name,
            outputs={
                **inputs,
                "code": None,
                "id": name,
                "arn": arn,
                "invokeArn": invoke_arn,
                "qualifiedArn": f"{arn}:$LATEST",
                "version": "$LATEST",
                "sourceCodeHash": current.get("CodeSha256"),
            },
        )

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        return ignore_missing(_LAMBDA_MISSING)(
            lambda: ctx.client("lambda").delete_function(FunctionName=id)
        )

    def exists(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        return found(_LAMBDA_MISSING, lambda: ctx.client("lambda").get_function(FunctionName=id))


_PERMISSION_INPUTS = frozenset(
    {
        "action",
        "function",
        "principal",
        "sourceArn",
        "sourceAccount",
        "qualifier",
        "statementId",
        "statementIdPrefix",
        "eventSourceToken",
        "principalOrgId",
        "functionUrlAuthType",
    }
)


@register
class LambdaPermission(Materializer):
    """aws.lambda_.Permission: a statement in the function's resource policy (every input
    forces a replacement, as in the provider: a statement cannot be edited)."""

    type_token = "aws:lambda/permission:Permission"
    recovered_by = "its function and statement id"
    name_property = "statementId"
    name_max_len = 100
    taggable = False
    unique_name = False  # unique per function only
    replace_on_change = _PERMISSION_INPUTS
    honours = frozenset(
        {"action", "function", "principal", "sourceArn", "sourceAccount", "qualifier"}
    )

    @staticmethod
    def _statements(ctx: Context, function: str) -> list[dict[str, Any]] | None:
        from botocore.exceptions import ClientError

        try:
            policy = ctx.client("lambda").get_policy(FunctionName=function)["Policy"]
        except ClientError as exc:
            if error_code(exc) in _LAMBDA_MISSING:
                return None
            raise
        statements: list[dict[str, Any]] = json.loads(policy).get("Statement", [])
        return statements

    def lookup(self, ctx: Context, *, inputs: dict[str, Any]) -> str | None:
        sid = inputs["statementId"]
        statements = self._statements(ctx, _function_name(inputs["function"])) or []
        return str(sid) if any(s.get("Sid") == sid for s in statements) else None

    def create(self, ctx: Context, *, inputs: dict[str, Any], tags: dict[str, str]) -> Applied:
        self.fail_if_exists(ctx, inputs)
        function = _function_name(inputs["function"])
        args: dict[str, Any] = {
            "FunctionName": function,
            "StatementId": inputs["statementId"],
            "Action": inputs.get("action") or "lambda:InvokeFunction",
            "Principal": inputs["principal"],
        }
        for key, arg in (
            ("sourceArn", "SourceArn"),
            ("sourceAccount", "SourceAccount"),
            ("qualifier", "Qualifier"),
        ):
            if inputs.get(key):
                args[arg] = inputs[key]
        ctx.client("lambda").add_permission(**args)
        sid = inputs["statementId"]
        return Applied(id=sid, outputs={**inputs, "id": sid, "function": function})

    def update(
        self,
        ctx: Context,
        *,
        prior: Prior,
        inputs: dict[str, Any],
        tags: dict[str, str],
        changed: frozenset[str],
    ) -> Applied:
        # Every input the statement holds forces a replacement; nothing to do in place.
        return Applied(
            id=prior.id,
            outputs={**prior.outputs, **inputs, "function": prior.outputs.get("function")},
        )

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        function = _function_name(outputs.get("function", ""))
        return ignore_missing(_LAMBDA_MISSING)(
            lambda: ctx.client("lambda").remove_permission(FunctionName=function, StatementId=id)
        )

    def exists(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        function = _function_name(outputs.get("function", ""))

        def statement() -> Any:
            statements = self._statements(ctx, function) or []
            return require([s for s in statements if s.get("Sid") == id])

        return found(_LAMBDA_MISSING, statement)


def _function_name(ref: str) -> str:
    return ref.split(":function:", 1)[1].split(":")[0] if ":function:" in ref else ref


_APIGW_MISSING = ("NotFoundException",)


def _api_arn(ctx: Context, api_id: str) -> str:
    return f"arn:aws:apigateway:{ctx.region}::/apis/{api_id}"


@register
class HttpApi(Materializer):
    """aws.apigatewayv2.Api: an HTTP (or WebSocket) API, its name, description and tags."""

    type_token = "aws:apigatewayv2/api:Api"
    recovered_by = "the stack's identity tags and its name"
    name_max_len = 128
    unique_name = False  # API names need not be unique; the cloud assigns the id
    replace_on_change = frozenset({"protocolType"})
    honours = frozenset({"protocolType", "description"})

    def create(self, ctx: Context, *, inputs: dict[str, Any], tags: dict[str, str]) -> Applied:
        args: dict[str, Any] = {
            "Name": inputs["name"],
            "ProtocolType": inputs.get("protocolType") or "HTTP",
        }
        if inputs.get("description"):
            args["Description"] = inputs["description"]
        if tags:
            args["Tags"] = tags
        return self._applied(ctx, inputs, ctx.client("apigatewayv2").create_api(**args))

    def update(
        self,
        ctx: Context,
        *,
        prior: Prior,
        inputs: dict[str, Any],
        tags: dict[str, str],
        changed: frozenset[str],
    ) -> Applied:
        apigw = ctx.client("apigatewayv2")
        if changed & {"name", "description"}:
            apigw.update_api(
                ApiId=prior.id, Name=inputs["name"], Description=inputs.get("description") or ""
            )
        if "tags" in changed:
            to_set, to_remove = tag_changes(prior.tags, tags)
            if to_set:
                apigw.tag_resource(ResourceArn=_api_arn(ctx, prior.id), Tags=to_set)
            if to_remove:
                apigw.untag_resource(ResourceArn=_api_arn(ctx, prior.id), TagKeys=to_remove)
        return self._applied(ctx, inputs, apigw.get_api(ApiId=prior.id))

    @staticmethod
    def _applied(ctx: Context, inputs: dict[str, Any], api: dict[str, Any]) -> Applied:
        api_id = api["ApiId"]
        return Applied(
            id=api_id,
            outputs={
                **inputs,
                "id": api_id,
                "apiEndpoint": api.get("ApiEndpoint"),
                "arn": _api_arn(ctx, api_id),
                "executionArn": f"arn:aws:execute-api:{ctx.region}:123456789012:{api_id}",
            },
        )

    def leftovers(
        self,
        ctx: Context,
        *,
        inputs: dict[str, Any],
        stack_tags: Mapping[str, str],
        known_ids: frozenset[str],
    ) -> list[str]:
        stack = stack_tags.get(KEY_STACK)
        if not stack:
            return []
        items = ctx.client("apigatewayv2").get_apis().get("Items", [])
        return [
            a["ApiId"]
            for a in items
            if (a.get("Tags") or {}).get(KEY_STACK) == stack
            and a.get("Name") == inputs.get("name")
            and a["ApiId"] not in known_ids
        ]

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        return ignore_missing(_APIGW_MISSING)(
            lambda: ctx.client("apigatewayv2").delete_api(ApiId=id)
        )

    def exists(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        return found(_APIGW_MISSING, lambda: ctx.client("apigatewayv2").get_api(ApiId=id))


class _ApiChild(Materializer):
    """A child of an HTTP API, identified by the API id and its own id."""

    name_property: ClassVar[str | None] = None
    taggable = False
    unique_name = False
    kind = ""

    def _id_arg(self) -> str:
        return {"integration": "IntegrationId", "route": "RouteId", "stage": "StageName"}[self.kind]

    def exists(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        apigw = ctx.client("apigatewayv2")
        get = getattr(apigw, f"get_{self.kind}")
        return found(_APIGW_MISSING, lambda: get(ApiId=outputs["apiId"], **{self._id_arg(): id}))

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        apigw = ctx.client("apigatewayv2")
        return ignore_missing(_APIGW_MISSING)(
            lambda: getattr(apigw, f"delete_{self.kind}")(
                ApiId=outputs["apiId"], **{self._id_arg(): id}
            )
        )

    def arguments(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """The create/update call's arguments (besides the API id) from the inputs."""
        raise NotImplementedError

    def _items(self, ctx: Context, api_id: str) -> list[dict[str, Any]]:
        """The API's children of this kind (empty when the API itself is gone)."""
        from botocore.exceptions import ClientError

        try:
            got = getattr(ctx.client("apigatewayv2"), f"get_{self.kind}s")(ApiId=api_id)
        except ClientError as exc:
            if error_code(exc) in _APIGW_MISSING:
                return []
            raise
        items: list[dict[str, Any]] = got.get("Items", [])
        return items

    def create(self, ctx: Context, *, inputs: dict[str, Any], tags: dict[str, str]) -> Applied:
        self.fail_if_exists(ctx, inputs)
        result = getattr(ctx.client("apigatewayv2"), f"create_{self.kind}")(
            ApiId=inputs["apiId"], **self.arguments(inputs)
        )
        child_id = str(result[self._id_arg()])
        return Applied(id=child_id, outputs={**inputs, "id": child_id})

    def update(
        self,
        ctx: Context,
        *,
        prior: Prior,
        inputs: dict[str, Any],
        tags: dict[str, str],
        changed: frozenset[str],
    ) -> Applied:
        getattr(ctx.client("apigatewayv2"), f"update_{self.kind}")(
            ApiId=inputs["apiId"], **{self._id_arg(): prior.id}, **self.arguments(inputs)
        )
        return Applied(id=prior.id, outputs={**inputs, "id": prior.id})


@register
class HttpApiIntegration(_ApiChild):
    """aws.apigatewayv2.Integration: how a route reaches its backend (a Lambda proxy): type,
    URI, method, payload format version, timeout."""

    type_token = "aws:apigatewayv2/integration:Integration"
    recovered_by = "its API (tagged for the stack) and its URI"
    kind = "integration"
    replace_on_change = frozenset({"apiId", "integrationType"})
    honours = frozenset(
        {
            "apiId",
            "integrationType",
            "integrationUri",
            "integrationMethod",
            "payloadFormatVersion",
            "timeoutMilliseconds",
        }
    )

    def arguments(self, inputs: dict[str, Any]) -> dict[str, Any]:
        args: dict[str, Any] = {
            "IntegrationType": inputs["integrationType"],
            "IntegrationUri": inputs.get("integrationUri"),
            "PayloadFormatVersion": inputs.get("payloadFormatVersion", "1.0"),
        }
        if inputs.get("integrationMethod"):
            args["IntegrationMethod"] = inputs["integrationMethod"]
        if inputs.get("timeoutMilliseconds"):
            args["TimeoutInMillis"] = as_int(inputs["timeoutMilliseconds"])
        return args

    def leftovers(
        self,
        ctx: Context,
        *,
        inputs: dict[str, Any],
        stack_tags: Mapping[str, str],
        known_ids: frozenset[str],
    ) -> list[str]:
        # An integration has no name: one the stack does not know, in an API the stack owns
        # (tagged with its name), is what an interrupted create left.
        stack = stack_tags.get(KEY_STACK)
        api_id = inputs.get("apiId")
        if not stack or not api_id:
            return []
        try:
            api = ctx.client("apigatewayv2").get_api(ApiId=api_id)
        except Exception as exc:
            if error_code(exc) in _APIGW_MISSING:
                return []
            raise
        if (api.get("Tags") or {}).get(KEY_STACK) != stack:
            return []
        return [
            i["IntegrationId"]
            for i in self._items(ctx, api_id)
            if i["IntegrationId"] not in known_ids
            and i.get("IntegrationUri") == inputs.get("integrationUri")
        ]


@register
class HttpApiRoute(_ApiChild):
    """aws.apigatewayv2.Route: a route key (``METHOD /path``) and its target integration."""

    type_token = "aws:apigatewayv2/route:Route"
    recovered_by = "its API and route key"
    kind = "route"
    replace_on_change = frozenset({"apiId"})
    honours = frozenset({"apiId", "routeKey", "target"})

    def arguments(self, inputs: dict[str, Any]) -> dict[str, Any]:
        args: dict[str, Any] = {"RouteKey": inputs["routeKey"]}
        if inputs.get("target"):
            args["Target"] = inputs["target"]
        return args

    def lookup(self, ctx: Context, *, inputs: dict[str, Any]) -> str | None:
        # A route key is unique within its API: a second one is a conflict, never adopted.
        for route in self._items(ctx, inputs["apiId"]):
            if route.get("RouteKey") == inputs["routeKey"]:
                return str(route["RouteId"])
        return None


@register
class HttpApiStage(_ApiChild):
    """aws.apigatewayv2.Stage: a deployment stage (``$default`` with auto-deploy) and tags."""

    type_token = "aws:apigatewayv2/stage:Stage"
    recovered_by = "its API and name"
    kind = "stage"
    name_property = "name"
    taggable = True
    replace_on_change = frozenset({"apiId", "name"})
    honours = frozenset({"apiId", "autoDeploy"})

    def lookup(self, ctx: Context, *, inputs: dict[str, Any]) -> str | None:
        name = inputs["name"]
        if self.exists(ctx, id=name, outputs={"apiId": inputs["apiId"]}):
            return str(name)
        return None

    def _make(self, ctx: Context, inputs: dict[str, Any], tags: dict[str, str]) -> Applied:
        apigw = ctx.client("apigatewayv2")
        api_id, name = inputs["apiId"], inputs["name"]
        args: dict[str, Any] = {
            "ApiId": api_id,
            "StageName": name,
            "AutoDeploy": bool(inputs.get("autoDeploy")),
        }
        if tags:
            args["Tags"] = tags
        apigw.create_stage(**args)
        base = apigw.get_api(ApiId=api_id).get("ApiEndpoint", "")
        invoke_url = base if name == "$default" else f"{base}/{name}"
        return Applied(
            id=name,
            outputs={
                **inputs,
                "id": name,
                "invokeUrl": invoke_url,
                "arn": f"arn:aws:apigateway:{ctx.region}::/apis/{api_id}/stages/{name}",
            },
        )

    def create(self, ctx: Context, *, inputs: dict[str, Any], tags: dict[str, str]) -> Applied:
        self.fail_if_exists(ctx, inputs)
        return self._make(ctx, inputs, tags)

    def update(
        self,
        ctx: Context,
        *,
        prior: Prior,
        inputs: dict[str, Any],
        tags: dict[str, str],
        changed: frozenset[str],
    ) -> Applied:
        if not changed & {"autoDeploy", "tags"}:
            return Applied(id=prior.id, outputs={**prior.outputs, **inputs})
        # The local cloud has neither UpdateStage nor tagging of stage ARNs: re-create the stage
        # under the same name (it holds no state of its own) to change either.
        ctx.client("apigatewayv2").delete_stage(ApiId=inputs["apiId"], StageName=prior.id)
        return self._make(ctx, inputs, tags)
