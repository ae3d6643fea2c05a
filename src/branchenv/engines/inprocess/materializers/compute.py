"""Materializers for compute and access: IAM roles and inline policies, log groups, Lambda
functions and permissions, API Gateway v2 HTTP APIs with their integrations, routes, stages."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any, ClassVar

from branchenv.engines.inprocess.materializers.base import (
    Applied,
    Context,
    Materializer,
    answers,
    as_int,
    aws_tags_list,
    error_code,
    ignore_missing,
    register,
)


def _policy_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@register
class IAMRole(Materializer):
    """aws.iam.Role: the role, its trust policy and tags."""

    type_token = "aws:iam/role:Role"

    def apply(
        self,
        ctx: Context,
        *,
        inputs: dict[str, Any],
        tags: dict[str, str],
        existing: Applied | None,
    ) -> Applied:
        from botocore.exceptions import ClientError

        iam = ctx.client("iam")
        name = inputs["name"]
        trust = _policy_text(inputs["assumeRolePolicy"])
        try:
            role = iam.get_role(RoleName=name)["Role"]
        except ClientError as exc:
            if error_code(exc) != "NoSuchEntity":
                raise
            args: dict[str, Any] = {
                "RoleName": name,
                "AssumeRolePolicyDocument": trust,
                "Path": inputs.get("path") or "/",
                "Tags": aws_tags_list(tags),
            }
            if inputs.get("description"):
                args["Description"] = inputs["description"]
            if inputs.get("maxSessionDuration"):
                args["MaxSessionDuration"] = as_int(inputs["maxSessionDuration"])
            role = iam.create_role(**args)["Role"]
        else:
            iam.update_assume_role_policy(RoleName=name, PolicyDocument=trust)
            if tags:
                iam.tag_role(RoleName=name, Tags=aws_tags_list(tags))
        return Applied(
            id=name,
            outputs={**inputs, "id": name, "arn": role["Arn"], "uniqueId": role["RoleId"]},
        )

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> None:
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
            if error_code(exc) != "NoSuchEntity":
                raise

    def exists(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        return answers(lambda: ctx.client("iam").get_role(RoleName=id))


@register
class IAMRolePolicy(Materializer):
    """aws.iam.RolePolicy: an inline policy on a role; id is ``role:policy``."""

    type_token = "aws:iam/rolePolicy:RolePolicy"
    taggable = False

    def apply(
        self,
        ctx: Context,
        *,
        inputs: dict[str, Any],
        tags: dict[str, str],
        existing: Applied | None,
    ) -> Applied:
        role, name = inputs["role"], inputs["name"]
        ctx.client("iam").put_role_policy(
            RoleName=role, PolicyName=name, PolicyDocument=_policy_text(inputs["policy"])
        )
        return Applied(id=f"{role}:{name}", outputs={**inputs, "id": f"{role}:{name}"})

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> None:
        role, _, name = id.partition(":")
        ignore_missing(("NoSuchEntity",))(
            lambda: ctx.client("iam").delete_role_policy(RoleName=role, PolicyName=name)
        )


@register
class LogGroup(Materializer):
    """aws.cloudwatch.LogGroup: the group, its retention and tags."""

    type_token = "aws:cloudwatch/logGroup:LogGroup"
    name_max_len = 512

    def apply(
        self,
        ctx: Context,
        *,
        inputs: dict[str, Any],
        tags: dict[str, str],
        existing: Applied | None,
    ) -> Applied:
        from botocore.exceptions import ClientError

        logs = ctx.client("logs")
        name = inputs["name"]
        try:
            logs.create_log_group(logGroupName=name, tags=tags)
        except ClientError as exc:
            if error_code(exc) != "ResourceAlreadyExistsException":
                raise
        groups = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
        arn = next(g["arn"] for g in groups if g["logGroupName"] == name)
        arn_no_star = arn[:-2] if arn.endswith(":*") else arn
        if tags:
            logs.tag_resource(resourceArn=arn_no_star, tags=tags)
        retention = as_int(inputs.get("retentionInDays"))
        if retention:
            logs.put_retention_policy(logGroupName=name, retentionInDays=retention)
        else:
            logs.delete_retention_policy(logGroupName=name)
        return Applied(id=name, outputs={**inputs, "id": name, "arn": arn_no_star})

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> None:
        ignore_missing(("ResourceNotFoundException",))(
            lambda: ctx.client("logs").delete_log_group(logGroupName=id)
        )


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


@register
class LambdaFunction(Materializer):
    """aws.lambda_.Function (zip package): code, handler, runtime, environment, sizes, tags."""

    type_token = "aws:lambda/function:Function"

    def apply(
        self,
        ctx: Context,
        *,
        inputs: dict[str, Any],
        tags: dict[str, str],
        existing: Applied | None,
    ) -> Applied:
        from botocore.exceptions import ClientError

        lam = ctx.client("lambda")
        name = inputs["name"]
        code = archive_bytes(inputs["code"])
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
        }
        if inputs.get("description"):
            config["Description"] = inputs["description"]
        try:
            current = lam.get_function(FunctionName=name)["Configuration"]
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
            current = lam.create_function(
                FunctionName=name, Code={"ZipFile": code}, Tags=tags, **config
            )
        else:
            import base64

            sha = base64.b64encode(hashlib.sha256(code).digest()).decode()
            if current.get("CodeSha256") != sha:
                lam.update_function_code(FunctionName=name, ZipFile=code)
            current = lam.update_function_configuration(FunctionName=name, **config)
            if tags:
                lam.tag_resource(Resource=current["FunctionArn"], Tags=tags)
        reserved = inputs.get("reservedConcurrentExecutions")
        if reserved is not None and int(reserved) >= 0:
            lam.put_function_concurrency(
                FunctionName=name, ReservedConcurrentExecutions=int(reserved)
            )
        arn = current["FunctionArn"]
        invoke_arn = (
            f"arn:aws:apigateway:{ctx.region}:lambda:path/2015-03-31/functions/{arn}/invocations"
        )
        outputs = {
            **inputs,
            "code": None,
            "id": name,
            "arn": arn,
            "invokeArn": invoke_arn,
            "qualifiedArn": f"{arn}:$LATEST",
            "version": "$LATEST",
            "sourceCodeHash": current.get("CodeSha256"),
        }
        return Applied(id=name, outputs=outputs)

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> None:
        ignore_missing(("ResourceNotFoundException",))(
            lambda: ctx.client("lambda").delete_function(FunctionName=id)
        )

    def exists(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        return answers(lambda: ctx.client("lambda").get_function(FunctionName=id))


@register
class LambdaPermission(Materializer):
    """aws.lambda_.Permission: a statement in the function's resource policy."""

    type_token = "aws:lambda/permission:Permission"
    name_property = "statementId"
    name_max_len = 100
    taggable = False

    def apply(
        self,
        ctx: Context,
        *,
        inputs: dict[str, Any],
        tags: dict[str, str],
        existing: Applied | None,
    ) -> Applied:
        from botocore.exceptions import ClientError

        lam = ctx.client("lambda")
        function = _function_name(inputs["function"])
        sid = inputs["statementId"]
        args: dict[str, Any] = {
            "FunctionName": function,
            "StatementId": sid,
            "Action": inputs.get("action", "lambda:InvokeFunction"),
            "Principal": inputs["principal"],
        }
        if inputs.get("sourceArn"):
            args["SourceArn"] = inputs["sourceArn"]
        try:
            lam.add_permission(**args)
        except ClientError as exc:
            if error_code(exc) != "ResourceConflictException":
                raise
            lam.remove_permission(FunctionName=function, StatementId=sid)
            lam.add_permission(**args)
        return Applied(id=sid, outputs={**inputs, "id": sid, "function": function})

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> None:
        function = _function_name(outputs.get("function", ""))
        ignore_missing(("ResourceNotFoundException",))(
            lambda: ctx.client("lambda").remove_permission(FunctionName=function, StatementId=id)
        )


def _function_name(ref: str) -> str:
    return ref.split(":function:", 1)[1].split(":")[0] if ":function:" in ref else ref


@register
class HttpApi(Materializer):
    """aws.apigatewayv2.Api: an HTTP (or WebSocket) API and its tags."""

    type_token = "aws:apigatewayv2/api:Api"
    name_max_len = 128

    def apply(
        self,
        ctx: Context,
        *,
        inputs: dict[str, Any],
        tags: dict[str, str],
        existing: Applied | None,
    ) -> Applied:
        apigw = ctx.client("apigatewayv2")
        args: dict[str, Any] = {"Name": inputs["name"]}
        if inputs.get("description"):
            args["Description"] = inputs["description"]
        api = None
        if existing is not None and self.exists(ctx, id=existing.id, outputs=existing.outputs):
            api = apigw.update_api(ApiId=existing.id, **args)
            if tags:
                apigw.tag_resource(ResourceArn=_api_arn(ctx, existing.id), Tags=tags)
        else:
            api = apigw.create_api(
                ProtocolType=inputs.get("protocolType", "HTTP"), Tags=tags, **args
            )
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

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> None:
        ignore_missing(("NotFoundException",))(
            lambda: ctx.client("apigatewayv2").delete_api(ApiId=id)
        )

    def exists(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        return answers(lambda: ctx.client("apigatewayv2").get_api(ApiId=id))


def _api_arn(ctx: Context, api_id: str) -> str:
    return f"arn:aws:apigateway:{ctx.region}::/apis/{api_id}"


class _ApiChild(Materializer):
    """A child of an HTTP API, identified by the API id and its own id."""

    name_property: ClassVar[str | None] = None
    taggable = False
    kind = ""

    def _get(self, apigw: Any, api_id: str, child_id: str) -> Any:
        return getattr(apigw, f"get_{self.kind}")(ApiId=api_id, **{self._id_arg(): child_id})

    def _id_arg(self) -> str:
        return {"integration": "IntegrationId", "route": "RouteId", "stage": "StageName"}[self.kind]

    def exists(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        return answers(lambda: self._get(ctx.client("apigatewayv2"), outputs["apiId"], id))

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> None:
        apigw = ctx.client("apigatewayv2")
        ignore_missing(("NotFoundException",))(
            lambda: getattr(apigw, f"delete_{self.kind}")(
                ApiId=outputs["apiId"], **{self._id_arg(): id}
            )
        )

    def _reuse(self, ctx: Context, existing: Applied | None, api_id: str) -> str | None:
        if existing is None or existing.outputs.get("apiId") != api_id:
            return None
        return existing.id if self.exists(ctx, id=existing.id, outputs=existing.outputs) else None

    def arguments(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """The create/update call's arguments (besides the API id) from the inputs."""
        raise NotImplementedError

    def apply(
        self,
        ctx: Context,
        *,
        inputs: dict[str, Any],
        tags: dict[str, str],
        existing: Applied | None,
    ) -> Applied:
        """Update the child the state knows (when it still exists), else create it."""
        apigw = ctx.client("apigatewayv2")
        api_id = inputs["apiId"]
        args = self.arguments(inputs)
        id_arg = self._id_arg()
        reuse = self._reuse(ctx, existing, api_id)
        if reuse:
            result = getattr(apigw, f"update_{self.kind}")(ApiId=api_id, **{id_arg: reuse}, **args)
        else:
            result = getattr(apigw, f"create_{self.kind}")(ApiId=api_id, **args)
        child_id = str(result[id_arg])
        return Applied(id=child_id, outputs={**inputs, "id": child_id})


@register
class HttpApiIntegration(_ApiChild):
    """aws.apigatewayv2.Integration: how a route reaches its backend (a Lambda proxy)."""

    type_token = "aws:apigatewayv2/integration:Integration"
    kind = "integration"

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


@register
class HttpApiRoute(_ApiChild):
    """aws.apigatewayv2.Route: a route key (``METHOD /path``) and its target integration."""

    type_token = "aws:apigatewayv2/route:Route"
    kind = "route"

    def arguments(self, inputs: dict[str, Any]) -> dict[str, Any]:
        args: dict[str, Any] = {"RouteKey": inputs["routeKey"]}
        if inputs.get("target"):
            args["Target"] = inputs["target"]
        return args


@register
class HttpApiStage(_ApiChild):
    """aws.apigatewayv2.Stage: a deployment stage (``$default`` with auto-deploy) and tags."""

    type_token = "aws:apigatewayv2/stage:Stage"
    kind = "stage"
    name_property = "name"
    taggable = True

    def apply(
        self,
        ctx: Context,
        *,
        inputs: dict[str, Any],
        tags: dict[str, str],
        existing: Applied | None,
    ) -> Applied:
        apigw = ctx.client("apigatewayv2")
        api_id, name = inputs["apiId"], inputs["name"]
        auto_deploy = bool(inputs.get("autoDeploy"))
        current = None
        if self.exists(ctx, id=name, outputs={"apiId": api_id}):
            current = apigw.get_stage(ApiId=api_id, StageName=name)
            if bool(current.get("AutoDeploy")) != auto_deploy or current.get("Tags", {}) != tags:
                # The local cloud has neither UpdateStage nor tagging of stage ARNs: replace the
                # stage instead (it holds no state of its own).
                apigw.delete_stage(ApiId=api_id, StageName=name)
                current = None
        if current is None:
            apigw.create_stage(ApiId=api_id, StageName=name, AutoDeploy=auto_deploy, Tags=tags)
        api = apigw.get_api(ApiId=api_id)
        base = api.get("ApiEndpoint", "")
        invoke_url = base if name == "$default" else f"{base}/{name}"
        return Applied(
            id=name,
            outputs={
                **inputs,
                "id": name,
                "invokeUrl": invoke_url,
                "arn": self._arn(ctx, api_id, name),
            },
        )

    @staticmethod
    def _arn(ctx: Context, api_id: str, name: str) -> str:
        return f"arn:aws:apigateway:{ctx.region}::/apis/{api_id}/stages/{name}"
