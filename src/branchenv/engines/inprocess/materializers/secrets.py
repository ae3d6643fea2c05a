"""Materializers for configuration and secrets: SSM parameters, Secrets Manager secrets and
their versions. Values the provider schema marks sensitive are declared in
``secret_properties``: the engine keeps them out of the state file and out of every log line."""

from __future__ import annotations

import base64
import uuid
from typing import Any

from branchenv.engines.inprocess.materializers.base import (
    Applied,
    Context,
    Materializer,
    Prior,
    aws_tags_list,
    error_code,
    found,
    ignore_missing,
    register,
    require,
    tag_changes,
)

_SSM_MISSING = ("ParameterNotFound",)
_SSM_VALUE_INPUTS = frozenset(
    {"type", "value", "insecureValue", "description", "allowedPattern", "tier", "dataType", "keyId"}
)


@register
class SSMParameter(Materializer):
    """aws.ssm.Parameter: a String, StringList or SecureString parameter, its value (secret),
    description, allowed pattern, tier, data type, KMS key and tags."""

    type_token = "aws:ssm/parameter:Parameter"
    name_max_len = 2048
    replace_on_change = frozenset({"name", "dataType"})
    honours = _SSM_VALUE_INPUTS
    secret_properties = frozenset({"value"})

    def lookup(self, ctx: Context, *, inputs: dict[str, Any]) -> str | None:
        name = inputs["name"]
        if found(_SSM_MISSING, lambda: ctx.client("ssm").get_parameter(Name=name)):
            return str(name)
        return None

    @staticmethod
    def _put_args(inputs: dict[str, Any]) -> dict[str, Any]:
        value = inputs.get("value")
        if value is None:
            value = inputs.get("insecureValue")
        args: dict[str, Any] = {
            "Name": inputs["name"],
            "Type": inputs["type"],
            "Value": "" if value is None else str(value),
        }
        for key, arg in (
            ("description", "Description"),
            ("allowedPattern", "AllowedPattern"),
            ("tier", "Tier"),
            ("dataType", "DataType"),
        ):
            if inputs.get(key):
                args[arg] = inputs[key]
        if inputs.get("keyId") and inputs["type"] == "SecureString":
            args["KeyId"] = inputs["keyId"]
        return args

    def _applied(self, ctx: Context, inputs: dict[str, Any]) -> Applied:
        name = inputs["name"]
        param = ctx.client("ssm").get_parameter(Name=name)["Parameter"]
        return Applied(
            id=name,
            outputs={
                **inputs,
                "id": name,
                "arn": param.get("ARN"),
                "version": param.get("Version"),
            },
        )

    def create(self, ctx: Context, *, inputs: dict[str, Any], tags: dict[str, str]) -> Applied:
        self.fail_if_exists(ctx, inputs)
        args = self._put_args(inputs)
        if tags:
            args["Tags"] = aws_tags_list(tags)
        ctx.client("ssm").put_parameter(**args)
        return self._applied(ctx, inputs)

    def update(
        self,
        ctx: Context,
        *,
        prior: Prior,
        inputs: dict[str, Any],
        tags: dict[str, str],
        changed: frozenset[str],
    ) -> Applied:
        ssm = ctx.client("ssm")
        if changed & _SSM_VALUE_INPUTS:
            # An overwrite may not carry tags: those go through the tagging calls below.
            ssm.put_parameter(**self._put_args(inputs), Overwrite=True)
        if "tags" in changed:
            to_set, to_remove = tag_changes(prior.tags, tags)
            if to_set:
                ssm.add_tags_to_resource(
                    ResourceType="Parameter", ResourceId=prior.id, Tags=aws_tags_list(to_set)
                )
            if to_remove:
                ssm.remove_tags_from_resource(
                    ResourceType="Parameter", ResourceId=prior.id, TagKeys=to_remove
                )
        return self._applied(ctx, inputs)

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        return ignore_missing(_SSM_MISSING)(lambda: ctx.client("ssm").delete_parameter(Name=id))

    def exists(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        return found(_SSM_MISSING, lambda: ctx.client("ssm").get_parameter(Name=id))


_SM_MISSING = ("ResourceNotFoundException",)


def _secret_live(ctx: Context, secret_id: str) -> dict[str, Any] | None:
    """The secret's description, or None when it is gone or scheduled for deletion."""
    from botocore.exceptions import ClientError

    try:
        desc: dict[str, Any] = ctx.client("secretsmanager").describe_secret(SecretId=secret_id)
    except ClientError as exc:
        if error_code(exc) in _SM_MISSING:
            return None
        raise
    return None if desc.get("DeletedDate") else desc


@register
class SecretsManagerSecret(Materializer):
    """aws.secretsmanager.Secret: the secret's metadata (description, KMS key) and tags (its
    value is a SecretVersion). ``recoveryWindowInDays`` applies on delete: 0 deletes at once;
    otherwise, as on AWS, the name stays taken until the window ends."""

    type_token = "aws:secretsmanager/secret:Secret"
    name_max_len = 512
    replace_on_change = frozenset({"name", "namePrefix"})
    honours = frozenset({"description", "kmsKeyId", "recoveryWindowInDays"})

    def lookup(self, ctx: Context, *, inputs: dict[str, Any]) -> str | None:
        from botocore.exceptions import ClientError

        try:
            desc = ctx.client("secretsmanager").describe_secret(SecretId=inputs["name"])
        except ClientError as exc:
            if error_code(exc) in _SM_MISSING:
                return None
            raise
        # One scheduled for deletion still holds the name (a create fails on AWS too).
        return str(desc["ARN"])

    def create(self, ctx: Context, *, inputs: dict[str, Any], tags: dict[str, str]) -> Applied:
        self.fail_if_exists(ctx, inputs)
        args: dict[str, Any] = {"Name": inputs["name"]}
        if inputs.get("description"):
            args["Description"] = inputs["description"]
        if inputs.get("kmsKeyId"):
            args["KmsKeyId"] = inputs["kmsKeyId"]
        if tags:
            args["Tags"] = aws_tags_list(tags)
        arn = ctx.client("secretsmanager").create_secret(**args)["ARN"]
        return Applied(id=arn, outputs={**inputs, "id": arn, "arn": arn})

    def update(
        self,
        ctx: Context,
        *,
        prior: Prior,
        inputs: dict[str, Any],
        tags: dict[str, str],
        changed: frozenset[str],
    ) -> Applied:
        sm = ctx.client("secretsmanager")
        if changed & {"description", "kmsKeyId"}:
            args: dict[str, Any] = {
                "SecretId": prior.id,
                "Description": inputs.get("description") or "",
            }
            if inputs.get("kmsKeyId"):
                args["KmsKeyId"] = inputs["kmsKeyId"]
            sm.update_secret(**args)
        if "tags" in changed:
            to_set, to_remove = tag_changes(prior.tags, tags)
            if to_set:
                sm.tag_resource(SecretId=prior.id, Tags=aws_tags_list(to_set))
            if to_remove:
                sm.untag_resource(SecretId=prior.id, TagKeys=to_remove)
        return Applied(id=prior.id, outputs={**inputs, "id": prior.id, "arn": prior.id})

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        if _secret_live(ctx, id) is None:
            return False
        window = outputs.get("recoveryWindowInDays")
        args: dict[str, Any] = {"SecretId": id}
        if window is not None and int(window) == 0:
            args["ForceDeleteWithoutRecovery"] = True
        elif window is not None:
            args["RecoveryWindowInDays"] = int(window)
        ctx.client("secretsmanager").delete_secret(**args)
        return True

    def exists(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        return found(_SM_MISSING, lambda: require(_secret_live(ctx, id)))


@register
class SecretsManagerSecretVersion(Materializer):
    """aws.secretsmanager.SecretVersion: a value of a secret (string or binary, both secret;
    never in the state or a log line). A new value is a new version (a replacement), as in the
    provider; the version's id is a client token chosen before the call, so an interrupted
    create is always found again."""

    type_token = "aws:secretsmanager/secretVersion:SecretVersion"
    recovered_by = "the client token chosen before the call (its version id)"
    name_property = None
    taggable = False
    unique_name = False
    replace_on_change = frozenset({"secretId", "secretString", "secretBinary"})
    honours = frozenset({"secretId", "secretString", "secretBinary"})
    secret_properties = frozenset({"secretString", "secretBinary"})
    token_property = "__clientRequestToken"

    def prepare(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Choose the version's id before the call (it is journaled with the intent)."""
        return {**inputs, self.token_property: str(uuid.uuid4())}

    @staticmethod
    def _version(ctx: Context, secret_id: str, version_id: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            got: dict[str, Any] = ctx.client("secretsmanager").get_secret_value(
                SecretId=secret_id, VersionId=version_id
            )
        except ClientError as exc:
            if error_code(exc) in (*_SM_MISSING, "InvalidRequestException"):
                return None
            raise
        return got

    def leftovers(
        self,
        ctx: Context,
        *,
        inputs: dict[str, Any],
        stack_tags: Any,
        known_ids: frozenset[str],
    ) -> list[str]:
        token = inputs.get(self.token_property)
        if not token or self._version(ctx, inputs["secretId"], token) is None:
            return []
        vid = f"{inputs['secretId']}|{token}"
        return [] if vid in known_ids else [vid]

    def create(self, ctx: Context, *, inputs: dict[str, Any], tags: dict[str, str]) -> Applied:
        token = inputs.get(self.token_property) or str(uuid.uuid4())
        args: dict[str, Any] = {"SecretId": inputs["secretId"], "ClientRequestToken": token}
        if inputs.get("secretBinary") is not None:
            args["SecretBinary"] = base64.b64decode(inputs["secretBinary"])
        else:
            args["SecretString"] = inputs.get("secretString") or ""
        got = ctx.client("secretsmanager").put_secret_value(**args)
        vid = f"{inputs['secretId']}|{got['VersionId']}"
        return Applied(
            id=vid,
            outputs={**inputs, "id": vid, "arn": got["ARN"], "versionId": got["VersionId"]},
        )

    def update(
        self,
        ctx: Context,
        *,
        prior: Prior,
        inputs: dict[str, Any],
        tags: dict[str, str],
        changed: frozenset[str],
    ) -> Applied:
        # Every value input forces a new version; nothing else is honoured in place.
        return Applied(id=prior.id, outputs={**prior.outputs, **inputs})

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        # As the provider does: the version loses its staging labels. The current one cannot
        # lose AWSCURRENT; it goes with its secret, so nothing is deleted here (False).
        secret_id, _, version_id = id.partition("|")
        got = self._version(ctx, secret_id, version_id)
        if got is None:
            return False
        sm = ctx.client("secretsmanager")
        removed = False
        for stage in got.get("VersionStages", []):
            if stage != "AWSCURRENT":
                sm.update_secret_version_stage(
                    SecretId=secret_id, VersionStage=stage, RemoveFromVersionId=version_id
                )
                removed = True
        return removed

    def exists(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        secret_id, _, version_id = id.partition("|")
        return found(_SM_MISSING, lambda: require(self._version(ctx, secret_id, version_id)))
