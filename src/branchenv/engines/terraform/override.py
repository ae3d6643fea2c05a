"""The files the engine writes into a stack's work dir (the way tflocal wires LocalStack):
provider settings for the target and the backend block, so a module that knows nothing of
branchenv runs on the local cloud with its resources tagged.

- ``branchenv_override.tf``: a terraform override file. For every ``provider "aws"`` block of
  the module (each alias): on the local cloud, its region, the dummy credentials, path-style S3
  and the skip flags (the account id is still requested, so ARNs carry it); on every target,
  ``default_tags`` = the module's own default tags merged with the stack's identity tags. Plus
  ``terraform { backend "<kind>" {} }``, its settings given to ``init`` as ``-backend-config``.
- ``branchenv_aws_config``: on the local cloud, a shared AWS config file with one profile
  whose ``endpoint_url`` is the local cloud's, named by every provider block the engine writes
  (``profile``, ``shared_config_files``, ``shared_credentials_files``). That is how the
  provider reaches the local cloud for every service, not an ``endpoints`` block: the provider
  spends seconds of CPU on that block at every start (plan, apply, destroy) however few of
  its ~300 attributes are set (an empty block costs nearly as much as a full one: issue 17,
  most of a pool claim's update). The work dir stays self-contained: a plain ``terraform
  plan`` run there by hand reads the same file. The engine's own runs also get
  ``AWS_ENDPOINT_URL``, and the caller's rival variables are cleared
  (:data:`.workspace.LOCAL_ENDPOINT_ENV`). The full ``endpoints`` block, every service the
  provider knows, is still written where the file cannot route (:func:`needs_endpoints_block`):
  a provider block with ``endpoints`` of its own (the override's block replaces it; none would
  leave it in force above the file), a module using a service whose client ignores
  ``endpoint_url`` (:data:`ENV_BLIND_TYPE_PREFIXES`), or a module whose types are not all
  known (a registry or git module, a ``*.tf.json`` file).
- ``branchenv_providers.tf``: only when the module has no ``provider "aws"`` block of its own
  (an override must have a block to override): the same settings as a plain provider block.

Only the variables the module declares receive branchenv's inputs (:func:`select_vars`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from branchenv.engines.terraform.hcl import AwsProvider, ModuleInfo
from branchenv.errors import UsageError

OVERRIDE_FILE = "branchenv_override.tf"
PROVIDERS_FILE = "branchenv_providers.tf"
AWS_CONFIG_FILE = "branchenv_aws_config"
LOCAL_PROFILE = "branchenv-local"
"""The profile of :data:`AWS_CONFIG_FILE` the provider blocks name on the local cloud."""

ENV_BLIND_TYPE_PREFIXES = ("aws_simpledb_",)
"""Resource types whose provider client ignores ``endpoint_url`` and ``AWS_ENDPOINT_URL``: in
aws provider 5.x SimpleDB is the one service left on aws-sdk-go v1 (which reads neither)."""


@dataclasses.dataclass(frozen=True)
class LocalWiring:
    """How to reach the local cloud."""

    endpoint_url: str
    access_key: str
    secret_key: str


@lru_cache(maxsize=1)
def endpoint_services() -> tuple[str, ...]:
    """Every service key of the aws provider's ``endpoints`` block, aliases left out (setting a
    service under two names makes the provider warn, and later versions fail)."""
    data = json.loads(
        resources.files("branchenv.engines.terraform").joinpath("aws_endpoints.json").read_text()
    )
    return tuple(data["services"])


def _str(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is an HCL string literal


def tags_expression(module_tags: str | None, identity: Mapping[str, str]) -> str:
    """``default_tags.tags`` for one provider block: the module's own expression merged with the
    identity tags (the identity tags win: they are how branchenv finds what it made)."""
    rendered = "{" + ", ".join(f"{_str(k)} = {_str(v)}" for k, v in sorted(identity.items())) + "}"
    return rendered if module_tags is None else f"merge({module_tags}, {rendered})"


def _provider_body(
    provider: AwsProvider,
    *,
    region: str,
    tags: Mapping[str, str],
    local: LocalWiring | None,
    endpoints: bool,
) -> list[str]:
    lines = []
    if provider.alias is not None:
        lines.append(f"  alias = {_str(provider.alias)}")
    if local is not None or not provider.sets_region:
        lines.append(f"  region = {_str(region)}")
    if local is not None:
        lines += [
            f"  access_key = {_str(local.access_key)}",
            f"  secret_key = {_str(local.secret_key)}",
            f"  profile = {_str(LOCAL_PROFILE)}",
            # Relative to the work dir, where terraform (and so the provider) runs.
            f"  shared_config_files = [{_str(AWS_CONFIG_FILE)}]",
            f"  shared_credentials_files = [{_str(AWS_CONFIG_FILE)}]",
            "  s3_use_path_style = true",
            "  skip_credentials_validation = true",
            "  skip_metadata_api_check = true",
            "  skip_region_validation = true",
            "  skip_requesting_account_id = false",
        ]
        if endpoints:
            lines += [
                "  endpoints {",
                *(f"    {svc} = {_str(local.endpoint_url)}" for svc in endpoint_services()),
                "  }",
            ]
    lines += [
        "  default_tags {",
        f"    tags = {tags_expression(provider.default_tags, tags)}",
        "  }",
    ]
    return lines


def needs_endpoints_block(module: ModuleInfo, provider: AwsProvider) -> bool:
    """Whether, on the local cloud, ``provider`` needs the full ``endpoints`` block because
    :data:`AWS_CONFIG_FILE` alone might not route every request of the module to it."""
    return (
        provider.sets_endpoints
        or not module.types_complete
        or any(t.startswith(ENV_BLIND_TYPE_PREFIXES) for t in module.aws_types)
    )


def aws_config_text(local: LocalWiring, *, region: str) -> str:
    """The shared AWS config file of the local cloud's profile."""
    return (
        "# Generated by branchenv for this stack's work dir; never edit (rewritten each run).\n"
        f"[profile {LOCAL_PROFILE}]\n"
        f"region = {region}\n"
        f"endpoint_url = {local.endpoint_url}\n"
    )


def render_files(
    module: ModuleInfo,
    *,
    region: str,
    tags: Mapping[str, str],
    local: LocalWiring | None,
    backend_kind: str,
) -> dict[str, str]:
    """The generated files by name: the override (always); when the module has no aws
    provider block but uses aws resources, a plain provider block; on the local cloud, when a
    provider block is written, the shared AWS config file it names."""
    header = (
        "# Generated by branchenv for this stack's work dir; never edit (rewritten each run).\n"
    )
    override = [header.rstrip("\n")]
    files: dict[str, str] = {}
    if module.aws_providers:
        for provider in module.aws_providers:
            override += [
                'provider "aws" {',
                *_provider_body(
                    provider,
                    region=region,
                    tags=tags,
                    local=local,
                    endpoints=needs_endpoints_block(module, provider),
                ),
                "}",
            ]
    elif module.uses_aws:
        default = AwsProvider(alias=None, default_tags=None, sets_region=False)
        files[PROVIDERS_FILE] = (
            "\n".join(
                [
                    header.rstrip("\n"),
                    'provider "aws" {',
                    *_provider_body(
                        default,
                        region=region,
                        tags=tags,
                        local=local,
                        endpoints=needs_endpoints_block(module, default),
                    ),
                    "}",
                ]
            )
            + "\n"
        )
    if local is not None and (module.aws_providers or module.uses_aws):
        files[AWS_CONFIG_FILE] = aws_config_text(local, region=region)
    override += ["terraform {", f'  backend "{backend_kind}" {{}}', "}"]
    files[OVERRIDE_FILE] = "\n".join(override) + "\n"
    return files


def write_files(work_dir: Path, files: Mapping[str, str]) -> None:
    """Write the generated files and remove generated ones no longer wanted."""
    for stale in (OVERRIDE_FILE, PROVIDERS_FILE, AWS_CONFIG_FILE):
        if stale not in files:
            (work_dir / stale).unlink(missing_ok=True)
    for name, text in files.items():
        path = work_dir / name
        try:
            if path.read_text() == text:
                continue
        except OSError:
            pass
        tmp = work_dir / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(path)


def select_vars(
    module: ModuleInfo, offered: Mapping[str, Any], *, given_by_module: set[str]
) -> dict[str, Any]:
    """The inputs the module declares a variable for (``None`` values left out). A variable with
    no default that neither branchenv nor the module's own tfvars gives is a UsageError now,
    before anything runs."""
    chosen = {k: v for k, v in offered.items() if k in module.variables and v is not None}
    missing = sorted(
        v.name
        for v in module.variables.values()
        if not v.has_default and v.name not in chosen and v.name not in given_by_module
    )
    if missing:
        offered_names = ", ".join(sorted(offered))
        raise UsageError(
            f"the module's {'variable' if len(missing) == 1 else 'variables'} {', '.join(missing)} "
            f"{'has' if len(missing) == 1 else 'have'} no default and branchenv does "
            f"not set them (it sets only {offered_names}, where declared); give them a default "
            "or a value in the module's terraform.tfvars"
        )
    return chosen
