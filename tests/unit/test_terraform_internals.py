"""The terraform engine's pure parts: argv and environment of the gateway, CLI config, HCL
reading, the override file, variable selection, backend settings, the work dir."""

from __future__ import annotations

import configparser
import json
from pathlib import Path

import hcl2
import pytest

from branchenv.engines.terraform import cmd
from branchenv.engines.terraform.backend import BackendSpec
from branchenv.engines.terraform.cliconfig import render_cli_config, resolve_mirror
from branchenv.engines.terraform.hcl import AwsProvider, read_module, tfvars_names, to_hcl
from branchenv.engines.terraform.options import TerraformOptions, resolve_binary
from branchenv.engines.terraform.override import (
    AWS_CONFIG_FILE,
    LOCAL_PROFILE,
    OVERRIDE_FILE,
    PROVIDERS_FILE,
    LocalWiring,
    endpoint_services,
    needs_endpoints_block,
    render_files,
    select_vars,
    tags_expression,
    write_files,
)
from branchenv.engines.terraform.workdir import prepare_work_dir
from branchenv.engines.terraform.workspace import LOCAL_ENDPOINT_ENV
from branchenv.errors import ConfigError, UsageError

REPO = Path(__file__).resolve().parents[2]
OPTS = TerraformOptions(work_dir=Path("/w"), binary="terraform", lock_timeout_s=7)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["init"], ["terraform", "init", "-input=false", "-no-color", "-lock-timeout=7s"]),
        (
            ["plan", "-out=p"],
            ["terraform", "plan", "-input=false", "-no-color", "-lock-timeout=7s", "-out=p"],
        ),
        (
            ["apply", "-lock-timeout=1s", "p"],
            ["terraform", "apply", "-input=false", "-no-color", "-lock-timeout=1s", "p"],
        ),
        (["output", "-json"], ["terraform", "output", "-no-color", "-json"]),
        (["show", "-json", "p"], ["terraform", "show", "-no-color", "-json", "p"]),
        (["state", "pull"], ["terraform", "state", "pull"]),
        (["providers", "schema", "-json"], ["terraform", "providers", "schema", "-json"]),
        (["force-unlock", "-force", "id"], ["terraform", "force-unlock", "-force", "id"]),
    ],
)
def test_every_command_is_non_interactive_where_it_can_be(
    args: list[str], expected: list[str]
) -> None:
    assert cmd.command_args(OPTS, args) == expected


def test_command_env_passes_only_the_options_vars() -> None:
    opts = TerraformOptions(
        work_dir=Path("/w"),
        vars={"prefix": "p-1", "tags": {"a": "b"}, "n": 3},
        env={"TF_CLI_CONFIG_FILE": "/x/cli.tfrc"},
    )
    env = cmd.command_env(opts, {"TF_VAR_sneaky": "1", "PATH": "/bin"})
    assert "TF_VAR_sneaky" not in env
    assert env["TF_VAR_prefix"] == "p-1"
    assert json.loads(env["TF_VAR_tags"]) == {"a": "b"}
    assert env["TF_VAR_n"] == "3"
    assert env["TF_INPUT"] == "0" and env["TF_IN_AUTOMATION"] == "1"
    assert env["TF_CLI_CONFIG_FILE"] == "/x/cli.tfrc" and env["PATH"] == "/bin"


def test_command_env_clears_the_callers_variables_the_options_name() -> None:
    opts = TerraformOptions(
        work_dir=Path("/w"),
        env={"AWS_ENDPOINT_URL": "http://127.0.0.1:1"},
        env_cleared=LOCAL_ENDPOINT_ENV,
    )
    caller = {
        "AWS_ENDPOINT_URL": "https://elsewhere.example.com",
        "AWS_ENDPOINT_URL_S3": "https://s3.example.com",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true",
        "TF_AWS_STS_ENDPOINT": "https://sts.example.com",
        "AWS_S3_ENDPOINT": "https://s3.example.com",
        "AWS_REGION": "eu-west-1",
        "PATH": "/bin",
    }
    env = cmd.command_env(opts, caller)
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:1"
    assert {k for k in env if "ENDPOINT" in k} == {"AWS_ENDPOINT_URL"}
    assert env["AWS_REGION"] == "eu-west-1" and env["PATH"] == "/bin"  # the rest as given
    # Without env_cleared (a real account) the caller's variables pass as they are.
    assert cmd.command_env(TerraformOptions(work_dir=Path("/w")), caller) == {
        **caller,
        **cmd.command_env(TerraformOptions(work_dir=Path("/w")), {}),
    }


def test_mask_hides_every_secret() -> None:
    assert (
        cmd.mask("key=abc and abc again, def", ["abc", "", "def"]) == "key=*** and *** again, ***"
    )


def test_binary_setting_is_validated() -> None:
    with pytest.raises(ConfigError, match="terraform_binary"):
        resolve_binary("terragrunt")


def test_mirror_setting_accepts_the_root_or_the_host_dir(tmp_path: Path) -> None:
    host = tmp_path / "mirror" / "registry.terraform.io"
    (host / "hashicorp" / "aws").mkdir(parents=True)
    assert resolve_mirror(str(tmp_path / "mirror"), base=tmp_path) == tmp_path / "mirror"
    assert resolve_mirror(str(host), base=tmp_path) == tmp_path / "mirror"
    assert resolve_mirror("mirror", base=tmp_path) == tmp_path / "mirror"
    assert resolve_mirror(None, base=tmp_path) is None
    assert resolve_mirror("", base=tmp_path) is None
    with pytest.raises(ConfigError, match="terraform_plugin_mirror"):
        resolve_mirror(str(tmp_path), base=tmp_path)


def test_cli_config_with_a_mirror_never_installs_directly(tmp_path: Path) -> None:
    text = render_cli_config(mirror=Path("/m"), plugin_cache=tmp_path / "cache")
    parsed = hcl2.loads(text)
    installation = parsed["provider_installation"][0]
    assert "direct" not in installation
    assert installation["filesystem_mirror"][0]["path"] == '"/m"'
    assert str(tmp_path / "cache") in parsed["plugin_cache_dir"]
    assert "provider_installation" not in render_cli_config(mirror=None, plugin_cache=tmp_path)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"x"', '"x"'),
        ("${var.tags}", "var.tags"),
        ("${merge(var.a, {b = 1})}", "merge(var.a, {b = 1})"),
        ({"owner": '"me"', '"a:b"': '"c"', "__is_block__": True}, '{owner = "me", "a:b" = "c"}'),
        ([1, True, None], "[1, true, null]"),
        ("bare", '"bare"'),
    ],
)
def test_hcl_values_render_back_as_expressions(value: object, expected: str) -> None:
    assert to_hcl(value) == expected


def _module(tmp_path: Path, text: str, name: str = "main.tf") -> Path:
    (tmp_path / name).write_text(text)
    return tmp_path


def test_read_module_finds_variables_and_aws_providers(tmp_path: Path) -> None:
    module = _module(
        tmp_path,
        """
variable "prefix" { type = string }
variable "tags" {
  type    = map(string)
  default = {}
}
provider "aws" {
  region = "eu-west-1"
  default_tags { tags = merge(var.tags, { team = "x" }) }
}
provider "aws" {
  alias = "east"
}
provider "random" {}
""",
    )
    info = read_module(module)
    assert set(info.variables) == {"prefix", "tags"}
    assert info.variables["prefix"].type == "string" and not info.variables["prefix"].has_default
    assert info.variables["tags"].has_default
    assert [(p.alias, p.sets_region) for p in info.aws_providers] == [(None, True), ("east", False)]
    assert info.aws_providers[0].default_tags == 'merge(var.tags, {team = "x"})'
    assert info.uses_aws


def test_read_module_reports_invalid_hcl_as_usage(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not valid HCL"):
        read_module(_module(tmp_path, 'resource "x" {'))


def test_tfvars_names(tmp_path: Path) -> None:
    (tmp_path / "terraform.tfvars").write_text('a = "1"\n')
    (tmp_path / "x.auto.tfvars.json").write_text('{"b": 2}')
    (tmp_path / "other.tfvars").write_text('c = "ignored: not auto-loaded"\n')
    assert tfvars_names(tmp_path) == {"a", "b"}


def test_tags_are_merged_with_the_modules_own_and_win() -> None:
    identity = {"branchenv:stack": "s", "branchenv:managed-by": "branchenv"}
    assert tags_expression(None, identity) == (
        '{"branchenv:managed-by" = "branchenv", "branchenv:stack" = "s"}'
    )
    assert tags_expression("var.tags", identity).startswith("merge(var.tags, {")


LOCAL = LocalWiring(endpoint_url="http://127.0.0.1:5555", access_key="ak", secret_key="sk")


def test_override_wires_every_aws_provider_to_the_local_cloud(tmp_path: Path) -> None:
    info = read_module(
        _module(
            tmp_path,
            'provider "aws" {\n  region = "eu-west-1"\n}\n'
            'provider "aws" {\n  alias = "east"\n  default_tags {\n    tags = var.t\n  }\n}\n',
        )
    )
    files = render_files(
        info, region="us-east-1", tags={"branchenv:stack": "s"}, local=LOCAL, backend_kind="s3"
    )
    assert set(files) == {OVERRIDE_FILE, AWS_CONFIG_FILE}
    parsed = hcl2.loads(files[OVERRIDE_FILE])
    providers = [body for entry in parsed["provider"] for body in entry.values()]
    assert len(providers) == 2
    for body in providers:
        assert body["region"] == '"us-east-1"'  # the local cloud's region wins
        assert body["skip_requesting_account_id"] is False  # ARNs still carry the account
        # No endpoints block: the provider spends seconds of CPU on it at every start; the
        # work dir's shared config file routes every service instead, for a hand-run plan too.
        assert "endpoints" not in body
        assert body["profile"] == f'"{LOCAL_PROFILE}"'
        assert body["shared_config_files"] == [f'"{AWS_CONFIG_FILE}"']
        assert body["shared_credentials_files"] == [f'"{AWS_CONFIG_FILE}"']
    assert providers[1]["alias"] == '"east"'
    assert providers[1]["default_tags"][0]["tags"].startswith("${merge(var.t, {")
    assert parsed["terraform"][0]["backend"][0] == {'"s3"': {"__is_block__": True}}
    config = configparser.ConfigParser()
    config.read_string(files[AWS_CONFIG_FILE])
    assert dict(config[f"profile {LOCAL_PROFILE}"]) == {
        "region": "us-east-1",
        "endpoint_url": "http://127.0.0.1:5555",
    }


def test_on_aws_no_shared_config_file_is_written(tmp_path: Path) -> None:
    info = read_module(_module(tmp_path, 'resource "aws_s3_bucket" "b" {}\n'))
    files = render_files(info, region="us-east-1", tags={}, local=None, backend_kind="s3")
    assert AWS_CONFIG_FILE not in files
    (tmp_path / AWS_CONFIG_FILE).write_text("stale")
    write_files(tmp_path, files)
    assert not (tmp_path / AWS_CONFIG_FILE).exists()


def test_a_module_without_provider_block_gets_a_plain_one(tmp_path: Path) -> None:
    info = read_module(_module(tmp_path, 'resource "aws_s3_bucket" "b" {}\n'))
    files = render_files(info, region="us-east-1", tags={"k": "v"}, local=LOCAL, backend_kind="s3")
    assert set(files) == {OVERRIDE_FILE, PROVIDERS_FILE, AWS_CONFIG_FILE}
    assert "provider" not in hcl2.loads(files[OVERRIDE_FILE])
    body = hcl2.loads(files[PROVIDERS_FILE])["provider"][0]['"aws"']
    assert body["access_key"] == '"ak"' and "endpoints" not in body
    assert body["shared_config_files"] == [f'"{AWS_CONFIG_FILE}"']


@pytest.mark.parametrize(
    "module",
    [
        # The module's own endpoints block: an override's block replaces it, an absent one
        # would leave it (pointing who knows where) above the shared config file.
        {"main.tf": 'provider "aws" {\n  endpoints {\n    s3 = "https://s3.example.com"\n  }\n}\n'},
        # A service whose provider client ignores endpoint_url (aws-sdk-go v1).
        {"main.tf": 'resource "aws_simpledb_domain" "d" {\n  name = "x"\n}\n'},
        # The same in a local sub-module, two levels down.
        {
            "main.tf": 'module "a" {\n  source = "./a"\n}\nresource "aws_s3_bucket" "b" {}\n',
            "a/main.tf": 'module "b" {\n  source = "../b"\n}\n',
            "b/main.tf": 'resource "aws_simpledb_domain" "d" {\n  name = "x"\n}\n',
        },
        # Types that cannot be read: a registry module, a JSON configuration file.
        {
            "main.tf": 'module "m" {\n  source = "terraform-aws-modules/s3-bucket/aws"\n}\n'
            'resource "aws_s3_bucket" "b" {}\n'
        },
        {
            "main.tf": 'resource "aws_s3_bucket" "b" {}\n',
            "more.tf.json": '{"resource": {"aws_simpledb_domain": {"d": {"name": "x"}}}}',
        },
    ],
    ids=[
        "module-sets-endpoints",
        "env-blind-service",
        "env-blind-service-in-a-sub-module",
        "registry-module",
        "json-configuration",
    ],
)
def test_the_full_endpoints_block_stays_where_the_shared_config_might_not_route(
    tmp_path: Path, module: dict[str, str]
) -> None:
    for name, text in module.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    info = read_module(tmp_path)
    files = render_files(info, region="us-east-1", tags={}, local=LOCAL, backend_kind="s3")
    text = files.get(PROVIDERS_FILE) or files[OVERRIDE_FILE]
    endpoints = hcl2.loads(text)["provider"][0]['"aws"']["endpoints"][0]
    assert {"s3", "sqs", "simpledb", "sts", "iam"} <= set(endpoints)
    assert len([k for k in endpoints if k != "__is_block__"]) == len(endpoint_services())
    assert endpoints["s3"] == '"http://127.0.0.1:5555"'


def test_a_local_sub_modules_types_count(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text(
        'module "store" {\n  source = "./modules/store"\n}\ndata "aws_region" "r" {}\n'
    )
    (tmp_path / "modules" / "store").mkdir(parents=True)
    (tmp_path / "modules" / "store" / "main.tf").write_text(
        'resource "aws_dynamodb_table" "t" {\n  name = "x"\n}\n'
        'module "back" {\n  source = "../.."\n}\n'  # a cycle is followed once
    )
    info = read_module(tmp_path)
    assert info.aws_types == {"aws_region", "aws_dynamodb_table"}
    assert info.types_complete and info.uses_aws
    assert not any(needs_endpoints_block(info, p) for p in info.aws_providers)


def test_a_sub_module_alone_using_aws_gets_the_root_a_wired_provider(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text('module "q" {\n  source = "./q"\n}\n')
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "main.tf").write_text('resource "aws_sqs_queue" "q" {}\n')
    info = read_module(tmp_path)
    files = render_files(info, region="us-east-1", tags={}, local=LOCAL, backend_kind="s3")
    body = hcl2.loads(files[PROVIDERS_FILE])["provider"][0]['"aws"']
    assert body["profile"] == f'"{LOCAL_PROFILE}"' and "endpoints" not in body


def test_the_demo_module_needs_no_endpoints_block() -> None:
    info = read_module(REPO / "infra" / "terraform" / "aws")
    assert info.types_complete and "aws_lambda_function" in info.aws_types
    default = AwsProvider(alias=None, default_tags=None, sets_region=False)
    assert not any(needs_endpoints_block(info, p) for p in (*info.aws_providers, default))


def test_on_aws_only_tags_and_a_missing_region_are_set(tmp_path: Path) -> None:
    info = read_module(_module(tmp_path, 'provider "aws" {\n  region = "eu-west-1"\n}\n'))
    files = render_files(info, region="us-east-1", tags={"k": "v"}, local=None, backend_kind="s3")
    body = hcl2.loads(files[OVERRIDE_FILE])["provider"][0]['"aws"']
    assert "region" not in body and "endpoints" not in body and "access_key" not in body
    assert body["default_tags"][0]["tags"] == {'"k"': '"v"'}


def test_endpoint_list_has_no_alias_pairs() -> None:
    data = json.loads((REPO / "src/branchenv/engines/terraform/aws_endpoints.json").read_text())
    assert not set(data["aliases"]) & set(data["services"])
    assert set(data["aliases"].values()) <= set(data["services"])


def test_only_declared_variables_get_inputs(tmp_path: Path) -> None:
    info = read_module(
        _module(tmp_path, 'variable "prefix" {}\nvariable "x" {\n  default = 1\n}\n')
    )
    offered = {
        "prefix": "p",
        "profile": "ephemeral",
        "tags": {"a": "b"},
        "local_functions_url": None,
    }
    assert select_vars(info, offered, given_by_module=set()) == {"prefix": "p"}
    info = read_module(_module(tmp_path, 'variable "needed" {}\n'))
    with pytest.raises(UsageError, match="needed"):
        select_vars(info, offered, given_by_module=set())
    assert select_vars(info, offered, given_by_module={"needed"}) == {}


def test_backend_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="terraform_state_bucket"):
        BackendSpec(kind="s3", region="us-east-1")
    with pytest.raises(ConfigError, match="terraform_backend"):
        BackendSpec(kind="gcs", region="us-east-1", bucket="b")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="terraform_state_prefix"):
        BackendSpec(kind="s3", region="us-east-1", bucket="b", key_prefix="a/../b")


def test_local_cloud_backend_init_args() -> None:
    spec = BackendSpec(
        kind="s3",
        region="us-east-1",
        bucket="branchenv-tfstate",
        endpoint_url="http://127.0.0.1:5555",
        access_key="ak",
        secret_key="sk",
    )
    args = spec.init_args("proj", "feat-1")
    assert "-backend-config=key=branchenv/proj/feat-1/terraform.tfstate" in args
    assert "-backend-config=use_lockfile=true" in args
    assert (
        '-backend-config=endpoints={s3="http://127.0.0.1:5555",sts="http://127.0.0.1:5555",dynamodb="http://127.0.0.1:5555"}'
        in args
    )
    assert spec.sidecar_key("proj", "feat-1") == "branchenv/proj/feat-1/branchenv.json"
    team = BackendSpec(kind="s3", region="eu-west-1", bucket="tf", lock_table="locks")
    team_args = team.init_args("p", "s")
    assert "-backend-config=dynamodb_table=locks" in team_args
    assert not any("use_lockfile" in a or "endpoints" in a for a in team_args)


def test_work_dir_links_the_module_and_never_touches_it(tmp_path: Path) -> None:
    module = tmp_path / "module"
    module.mkdir()
    (module / "main.tf").write_text('resource "aws_s3_bucket" "b" {}\n')
    (module / "files").mkdir()
    (module / ".terraform").mkdir()
    (module / "terraform.tfstate").write_text("{}")
    (module / ".terraform.lock.hcl").write_text("# lock\n")
    before = sorted(p.name for p in module.iterdir())
    work = prepare_work_dir(module, tmp_path / "work")
    assert sorted(p.name for p in work.iterdir()) == [".terraform.lock.hcl", "files", "main.tf"]
    assert (work / "main.tf").resolve() == (module / "main.tf").resolve()
    assert not (work / ".terraform.lock.hcl").is_symlink()
    (module / "extra.tf").write_text("")
    (module / "files").rmdir()
    prepare_work_dir(module, work)
    assert sorted(p.name for p in work.iterdir() if p.is_symlink()) == ["extra.tf", "main.tf"]
    assert sorted(p.name for p in module.iterdir()) == sorted({*before, "extra.tf"} - {"files"})
    assert not any(p.name.startswith("branchenv_") for p in module.iterdir())


def test_work_dir_refuses_a_module_without_tf_files_and_reserved_names(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no \*\.tf files"):
        prepare_work_dir(tmp_path, tmp_path / "work")
    (tmp_path / "main.tf").write_text("")
    (tmp_path / "branchenv_x.tf").write_text("")
    with pytest.raises(UsageError, match="reserves"):
        prepare_work_dir(tmp_path, tmp_path / "work")


def test_demo_module_matches_the_pulumi_programs_spec() -> None:
    """infra/terraform/aws is the same stack as infra/aws: same sizes per profile and names."""
    import sys

    sys.path.insert(0, str(REPO / "infra" / "aws"))
    try:
        import orders_stack_spec as spec
    finally:
        sys.path.pop(0)
    module = hcl2.load((REPO / "infra/terraform/aws/main.tf").open())
    hcl_locals = {k: v for block in module["locals"] for k, v in block.items()}
    profiles = hcl_locals["profiles"]
    for name, profile in spec.PROFILES.items():
        got = {k: int(v) for k, v in profiles[name].items() if k != "__is_block__"}
        assert got == {
            "log_retention_days": profile.log_retention_days,
            "lambda_memory_mb": profile.lambda_memory_mb,
            "lambda_timeout_s": profile.lambda_timeout_s,
            "reserved_concurrency": -1
            if profile.reserved_concurrency is None
            else profile.reserved_concurrency,
            "queue_retention_s": profile.queue_retention_s,
            "dlq_retention_s": profile.dlq_retention_s,
            "queue_visibility_timeout_s": profile.queue_visibility_timeout_s,
        }
    assert int(hcl_locals["max_receive_count"]) == spec.MAX_RECEIVE_COUNT
    assert int(hcl_locals["service_timeout_s"]) == spec.SERVICE_TIMEOUT_S
    names = spec.physical_names("abc-123")
    rendered = {
        k: v.strip('"').replace("${var.prefix}", "abc-123")
        for k, v in hcl_locals["names"].items()
        if k != "__is_block__"
    }
    assert rendered == {k: getattr(names, k) for k in rendered}
    assert len(rendered) == 8
    bucket = hcl_locals["bucket_name"].strip('"')
    bucket = bucket.replace("${var.prefix}", "abc-123").replace(
        "${data.aws_caller_identity.current.account_id}", "123456789012"
    )
    assert bucket == spec.bucket_name("abc-123", "123456789012")
