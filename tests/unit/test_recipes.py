"""The CI recipes users copy (recipes/github/*.yml, recipes/gitlab/*.yml).

Every file validates against the official schema check-jsonschema vendors (GitHub workflows,
GitLab CI), loaded from its package data with jsonschema: no network. Broken copies prove a
schema violation fails. Then what each recipe must do: triggers, concurrency, credentials,
JUnit, and branchenv invocations whose flags the CLI really accepts.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest
import typer
import yaml

from branchenv.cli import build_app
from tests.conftest import REPO_ROOT

RECIPES = REPO_ROOT / "recipes"
GITHUB = sorted((RECIPES / "github").glob("*.yml"))
GITLAB = sorted((RECIPES / "gitlab").glob("*.yml"))
# The reaper's own examples (docs/examples/reap-*.yml) are held to the same schemas.
EXAMPLES = sorted((REPO_ROOT / "docs" / "examples").glob("*.yml"))
SCHEMA_OF = {"github": "github-workflows.json", "gitlab": "gitlab-ci.json"}
GROUP = "branchenv-${{ github.head_ref || github.ref_name }}"


def load_yaml(text: str) -> Any:
    """YAML 1.2 as GitHub and GitLab read it (PyYAML's 1.1 would turn the key `on` into True)."""
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load(text)


@functools.cache
def validator(kind: str) -> jsonschema.protocols.Validator:
    """The vendored official schema, from check-jsonschema's package data."""
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(vendor.joinpath(SCHEMA_OF[kind]).read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)  # type: ignore[no-any-return]


def schema_errors(kind: str, path: Path) -> list[str]:
    data = load_yaml(path.read_text(encoding="utf-8"))
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}"
        for e in validator(kind).iter_errors(data)
    ]


def test_the_recipes_exist() -> None:
    names = {p.name for p in GITHUB}
    assert {"branchenv-ci.yml", "branchenv-down.yml", "branchenv-reap.yml"} <= names
    assert [p.name for p in GITLAB] == ["branchenv.gitlab-ci.yml"]


@pytest.mark.parametrize(
    ("kind", "path"),
    [("github", p) for p in GITHUB]
    + [("gitlab", p) for p in GITLAB]
    + [("gitlab" if "gitlab" in p.name else "github", p) for p in EXAMPLES],
    ids=lambda v: v.name if isinstance(v, Path) else v,
)
def test_recipe_validates_against_the_official_schema(kind: str, path: Path) -> None:
    assert schema_errors(kind, path) == []


# Each breaks one rule of the official schema; the same check must reject it.
BROKEN: list[tuple[str, str, str, str]] = [
    ("github", "branchenv-ci.yml", "    runs-on: ubuntu-latest\n", "    runs_on: ubuntu-latest\n"),
    ("github", "branchenv-ci.yml", "  cancel-in-progress: false\n", "  cancel-in-progress: []\n"),
    ("github", "branchenv-ci.yml", "  id-token: write", "  id-token: maybe"),
    ("github", "branchenv-reap.yml", "    - cron: ", "    - crontab: "),
    ("github", "branchenv-down.yml", "    types: [closed]", "    types: closed\n    branch: main"),
    ("gitlab", "branchenv.gitlab-ci.yml", "    when: always\n", "    when: sometimes\n"),
    ("gitlab", "branchenv.gitlab-ci.yml", "    action: stop\n", "    action: halt\n"),
    (
        "gitlab",
        "branchenv.gitlab-ci.yml",
        "      junit: reports/junit.xml\n",
        "      junit: {path: x}\n",
    ),
    ("gitlab", "branchenv.gitlab-ci.yml", "    auto_stop_in: 1 day\n", "    auto_stop_in: [1]\n"),
]


@pytest.mark.parametrize(("kind", "name", "old", "new"), BROKEN)
def test_a_schema_invalid_copy_fails(
    tmp_path: Path, kind: str, name: str, old: str, new: str
) -> None:
    text = (RECIPES / kind / name).read_text(encoding="utf-8")
    assert old in text, f"{name} no longer holds {old!r}: update this case"
    broken = tmp_path / name
    broken.write_text(text.replace(old, new, 1), encoding="utf-8")
    assert schema_errors(kind, broken) != []


# --- what each recipe does -------------------------------------------------------------------


def github(name: str) -> dict[str, Any]:
    data = load_yaml((RECIPES / "github" / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def gitlab() -> dict[str, Any]:
    data = load_yaml((RECIPES / "gitlab" / "branchenv.gitlab-ci.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for job in workflow["jobs"].values() for s in job["steps"]]


def uses(workflow: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in steps(workflow) if str(s.get("uses", "")).split("@")[0] == action]


def runs(workflow: dict[str, Any]) -> str:
    return "\n".join(str(s.get("run", "")) for s in steps(workflow))


def test_pull_request_opened_or_pushed_runs_ci_one_run_per_branch() -> None:
    wf = github("branchenv-ci.yml")
    assert set(wf["on"]["pull_request"]["types"]) >= {"opened", "synchronize"}
    assert "closed" not in wf["on"]["pull_request"]["types"]
    assert wf["concurrency"] == {"group": GROUP, "cancel-in-progress": False}
    assert "branchenv ci" in runs(wf)
    upload = uses(wf, "actions/upload-artifact")
    assert len(upload) == 1 and upload[0]["with"]["path"].rstrip("/") == "reports"
    assert "!cancelled()" in upload[0]["if"]  # the JUnit of a failed run is uploaded too
    assert "$GITHUB_STEP_SUMMARY" in runs(wf)


def test_pull_request_closed_runs_down_in_the_same_group() -> None:
    wf = github("branchenv-down.yml")
    assert wf["on"]["pull_request"]["types"] == ["closed"]
    assert wf["concurrency"]["group"] == GROUP
    assert "branchenv down" in runs(wf)
    # A branch name never reaches the shell script through an expression.
    assert "github.head_ref" not in runs(wf)


def test_nightly_reap_acts_with_yes() -> None:
    wf = github("branchenv-reap.yml")
    assert len(wf["on"]["schedule"]) == 1 and wf["on"]["schedule"][0]["cron"].count(" ") == 4
    script = runs(wf)
    assert "branchenv reap" in script and "--yes" in script
    assert "BRANCHENV_ALLOWED_ACCOUNT_IDS" in wf["env"]


@pytest.mark.parametrize("name", [p.name for p in GITHUB])
def test_every_workflow_assumes_an_aws_role_through_oidc(name: str) -> None:
    wf = github(name)
    assert wf["permissions"]["id-token"] == "write"
    creds = uses(wf, "aws-actions/configure-aws-credentials")
    assert len(creds) == 1 and creds[0]["with"]["role-to-assume"]
    assert not any("aws-secret-access-key" in s.get("with", {}) for s in creds)
    assert uses(wf, "pulumi/actions"), "the pulumi engine needs the pulumi CLI"
    env = wf["env"]
    assert env["BRANCHENV_DEFAULT_TARGET"] == "aws" and env["BRANCHENV_BACKEND_URL"]
    # Steps that need credentials come after them.
    order = [str(s.get("uses", "")) + str(s.get("run", "")) for s in steps(wf)]
    first_creds = next(i for i, s in enumerate(order) if "configure-aws-credentials" in s)
    first_branchenv = next(i for i, s in enumerate(order) if "branchenv " in s and "pip" not in s)
    assert first_creds < first_branchenv


def test_gitlab_merge_request_pipeline_with_junit_and_a_review_environment() -> None:
    ci = gitlab()
    assert {r["if"] for r in ci["workflow"]["rules"]} >= {
        '$CI_PIPELINE_SOURCE == "merge_request_event"'
    }
    job = ci["branchenv:ci"]
    assert job["rules"][0]["if"] == '$CI_PIPELINE_SOURCE == "merge_request_event"'
    assert any(line.startswith("branchenv ci") for line in job["script"])
    assert job["artifacts"]["when"] == "always"
    from branchenv.harness.suite import ReportPaths

    junit = ReportPaths.under(Path("reports")).junit.as_posix()
    assert job["artifacts"]["reports"]["junit"] == junit  # where `branchenv ci` writes it
    assert "--report-dir reports" in " ".join(job["script"])
    env = job["environment"]
    assert env["name"] == "review/$CI_COMMIT_REF_SLUG"
    stop = ci[env["on_stop"]]
    assert stop["environment"] == {"name": env["name"], "action": "stop"}
    assert stop["script"] == ["branchenv down"]
    assert stop["resource_group"] == job["resource_group"] == "branchenv-$CI_COMMIT_REF_SLUG"


def test_gitlab_scheduled_reap() -> None:
    ci = gitlab()
    reap = ci["branchenv:reap"]
    assert '$CI_PIPELINE_SOURCE == "schedule"' in reap["rules"][0]["if"]
    assert any(line.startswith("branchenv reap --yes") for line in reap["script"])
    assert reap["variables"]["BRANCHENV_ALLOWED_ACCOUNT_IDS"]
    base = ci[".branchenv"]
    assert base["id_tokens"]["BRANCHENV_ID_TOKEN"]["aud"] == "sts.amazonaws.com"
    assert base["variables"]["AWS_ROLE_ARN"] == "$BRANCHENV_AWS_ROLE_ARN"


# --- every branchenv invocation in a recipe parses with the real CLI --------------------------


def invocations() -> Iterator[tuple[str, str]]:
    """(file, command line) for every line of a run/script that starts with `branchenv `."""
    for path in [*GITHUB, *GITLAB, *EXAMPLES]:
        for raw in path.read_text(encoding="utf-8").splitlines():
            line = raw.strip().removeprefix("- ").strip()
            if line.startswith("run: "):
                line = line.removeprefix("run: ")
            if line.startswith("branchenv "):
                yield path.name, line


def usage_errors() -> tuple[type[Exception], ...]:
    """click's usage-error base, and typer's own where typer vendors click (typer >= 0.22)."""
    kinds: list[type[Exception]] = [click.ClickException]
    try:
        from typer._click.exceptions import ClickException
    except ImportError:  # typer on the real click
        pass
    else:
        kinds.append(ClickException)
    return tuple(kinds)


def _base_parse_args(command: Any) -> Any:
    """The plain Command.parse_args of a group: parses the group's own options and returns the
    rest, subcommand name included (a group's override hides the name in a private field)."""
    return next(c for c in type(command).__mro__ if c.__name__ == "Command").parse_args


def cli_accepts(line: str) -> None:
    """Parse ``line`` with the real command tree, down to the leaf command, without running
    anything; raises the CLI's usage errors for unknown commands, options or values."""
    words = shlex.split(line, comments=True)
    words = words[: next((i for i, w in enumerate(words) if w in {"|", ">", ">>"}), len(words))]
    args = [w for w in words[1:] if "$" not in w]  # shell variables are filled in at run time
    command: Any = typer.main.get_command(build_app())
    name, parent = "branchenv", None
    while hasattr(command, "commands"):
        ctx = command.context_class(command, info_name=name, parent=parent)
        rest = _base_parse_args(command)(command, ctx, args)
        if not rest:
            assert command.invoke_without_command, f"{line!r}: `{name}` needs a subcommand"
            return
        name, command, args = command.resolve_command(ctx, rest)
        parent = ctx
    leaf = command.make_context(name, args, parent=parent)
    # `ci`/`test` pass extra arguments to pytest, but only those after `--` are meant so.
    if leaf.args and "--" not in words:
        raise click.UsageError(f"{line!r}: unexpected arguments {leaf.args}")


def test_recipes_invoke_branchenv() -> None:
    found = list(invocations())
    commands = {line.split()[1] for _, line in found}
    assert {"ci", "down", "reap"} <= commands, found


@pytest.mark.parametrize(("name", "line"), list(invocations()))
def test_recipe_invocation_is_accepted_by_the_cli(name: str, line: str) -> None:
    cli_accepts(line)


@pytest.mark.parametrize(
    "line",
    [
        "branchenv down --no-such-flag",
        "branchenv reap --yes --format",
        "branchenv nosuchcommand",
        "branchenv ci --report-dir",
        "branchenv ci --ttl",
    ],
)
def test_a_bad_invocation_is_caught(line: str) -> None:
    with pytest.raises(usage_errors()):
        cli_accepts(line)


def test_pyyaml_would_misread_on_so_it_is_not_used() -> None:
    # Guards the choice of loader above: with YAML 1.1 the trigger key silently becomes True.
    assert True in yaml.safe_load("on: push") and "on" in load_yaml("on: push")


# --- the organisation-wide reaper (issue 18) ------------------------------------------------


def _filled(text: str) -> str:
    """A recipe's shell words with its variables filled in as a run would."""
    values = {
        "$ACCOUNTS": "111111111111,222222222222",
        '"$BRANCHENV_REAP_ACCOUNTS"': "111111111111,222222222222",
        "$ROLE": "branchenv-reaper",
        "$BRANCHENV_REAPER_ROLE": "branchenv-reaper",
        "${GITHUB_RUN_ID}": "42",
        "$CI_JOB_ID": "42",
    }
    for name, value in values.items():
        text = text.replace(name, value)
    return text


def test_org_reap_github_signs_in_to_a_hub_role_and_reaps_every_account_and_region() -> None:
    import re

    wf = github("branchenv-reap-org.yml")
    assert wf["on"]["schedule"][0]["cron"].count(" ") == 4
    assert wf["on"]["workflow_dispatch"]["inputs"]["dry_run"]["default"] is True
    creds = uses(wf, "aws-actions/configure-aws-credentials")
    assert creds[0]["with"]["role-to-assume"] == "${{ vars.BRANCHENV_HUB_ROLE_ARN }}"
    assert wf["env"]["BRANCHENV_REAP_EXTERNAL_ID"].startswith("${{ secrets.")
    script = runs(wf)
    found = re.search(r"args=\((.*?)\)\n", script, re.S)
    assert found is not None
    line = "branchenv reap --yes " + _filled(found.group(1)).replace("\n", " ")
    assert "--regions all" in line and "arn:aws:iam::{account}:role/branchenv-reaper" in line
    cli_accepts(line)
    assert 'branchenv reap "${args[@]}"' in script


def test_org_reap_gitlab_job() -> None:
    job = gitlab()["branchenv:reap-org"]
    assert '$CI_PIPELINE_SOURCE == "schedule"' in job["rules"][0]["if"]
    assert job["extends"] == ".branchenv"  # the project's OIDC token, into the hub role
    [line] = job["script"]
    line = _filled(line)
    assert line.startswith("branchenv reap --yes") and "--accounts 111111111111" in line
    assert "--assume-role" in line and "{account}" in line and "--regions all" in line
    cli_accepts(line)
