"""The neutral program inputs as a Pulumi program's stack config: one mapping shared by the two
engines that run Pulumi programs (``pulumi`` and ``inprocess``).

The provider config for a target lives here too: on the local cloud, the AWS provider is
pointed at it (endpoints, dummy credentials, skip flags: what pulumilocal sets for LocalStack
users).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from branchenv.targets import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY

if TYPE_CHECKING:
    from branchenv.engines.base import ProgramInputs
    from branchenv.targets import Target

TAGS_CONFIG_KEY = "branchenv:tags"
"""Stack config key holding the JSON of the stack's metadata tags (``ProgramInputs.metadata``):
what a program records on the stack's own object (the Kubernetes program's namespace
annotations); a program that tags resources from it should prefer ``aws:defaultTags``."""

DEFAULT_TAGS_KEY = "aws:defaultTags"
"""The AWS provider's own default tags (structured config ``{"tags": {...}}``): what the
default provider of a program that knows nothing of branchenv puts on every taggable
resource."""

LOCAL_ENDPOINT_SERVICES = (
    "apigateway",
    "apigatewayv2",
    "cloudwatch",
    "cloudwatchlogs",
    "dynamodb",
    "iam",
    "lambda",
    "resourcegroupstaggingapi",
    "s3",
    "sns",
    "sqs",
    "sts",
)
"""The services whose ``aws:endpoints`` entry points at the local cloud."""


def provider_config(target: Target) -> dict[str, str]:
    """The AWS provider config for ``target``: its region, and on the local cloud the endpoints,
    dummy credentials and skip flags."""
    cfg = {"aws:region": target.region}
    if target.is_local:
        endpoint = target.local_endpoint()
        cfg.update(
            {
                "aws:accessKey": LOCAL_ACCESS_KEY,
                "aws:secretKey": LOCAL_SECRET_KEY,
                "aws:s3UsePathStyle": "true",
                "aws:skipCredentialsValidation": "true",
                "aws:skipRequestingAccountId": "true",
                "aws:skipMetadataApiCheck": "true",
                "aws:skipRegionValidation": "true",
                "aws:endpoints": json.dumps([dict.fromkeys(LOCAL_ENDPOINT_SERVICES, endpoint)]),
            }
        )
        if target.functions_url:
            cfg["branchenv:localFunctionsUrl"] = target.functions_url
    return cfg


def stack_config(inputs: ProgramInputs, target: Target) -> dict[str, str]:
    """Every stack config key a Pulumi program gets for one stack: the target template's keys,
    then the provider config (on the local cloud its wiring always wins over a template, so the
    endpoint set is the one defined here), then branchenv's own (``branchenv:prefix``,
    ``branchenv:profile``, ``branchenv:localFunctionsUrl``, ``branchenv:tags``: the stack's
    metadata) and the resource tags (the identity tags) as ``aws:defaultTags``; the region is
    always the target's."""
    config = dict(inputs.template)
    config.update(provider_config(target))
    config["aws:region"] = inputs.region
    config["branchenv:prefix"] = inputs.prefix
    config["branchenv:profile"] = inputs.profile
    if inputs.functions_url:
        config["branchenv:localFunctionsUrl"] = inputs.functions_url
    config[TAGS_CONFIG_KEY] = json.dumps(dict(inputs.metadata or inputs.tags), sort_keys=True)
    config[DEFAULT_TAGS_KEY] = json.dumps({"tags": dict(inputs.tags)}, sort_keys=True)
    return config
