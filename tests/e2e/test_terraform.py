"""The terraform engine as a user runs it: the installed CLI in fresh copies of the project, on
each test's own local cloud (issue 12's "Must show").

Each test pays real terraform applies (the demo stack's costs about a minute: the aws provider
waits 25 s after each SQS queue it creates), so each runs one loop and checks everything that
loop can show; the tests are independent and spread over the xdist workers.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from branchenv.inventory import find_tagged
from branchenv.localcloud import LocalCloud
from branchenv.naming import names_for
from tests.conftest import REPO_ROOT, cli_result, subprocess_env
from tests.e2e.conftest import Project
from tests.e2e.test_ci import junit_cases
from tests.tfsupport import PROGRAMS, find_mirror

pytestmark = [pytest.mark.terraform, pytest.mark.slow]

STATE_BUCKET = "branchenv-tfstate"


@pytest.fixture(scope="module")
def mirror() -> Path:
    found = find_mirror()
    if shutil.which("terraform") is None or found is None:
        pytest.skip("terraform CLI or provider mirror absent (see tests/tfsupport.py)")
    return found


def terraform_project(root: Path, mirror: Path, *, program: str, extra: str = "") -> Project:
    """A fresh copy of the repository's infra/ (links kept, as a clone keeps them) with
    settings that run ``program`` with the terraform engine."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(
        REPO_ROOT / "infra",
        root / "infra",
        symlinks=True,
        ignore=shutil.ignore_patterns("__pycache__", ".build", ".terraform*"),
    )
    (root / "branchenv.toml").write_text(
        f'program = "{program}"\nengine = "terraform"\ndefault_target = "local"\n'
        f'default_ttl = "2h"\nterraform_plugin_mirror = "{mirror}"\n{extra}'
    )
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    return Project(root)


@pytest.fixture
def demo(tmp_path: Path, mirror: Path) -> Iterator[Project]:
    project = terraform_project(tmp_path / "clone", mirror, program="infra/terraform/aws")
    try:
        yield project
    finally:
        project.run("cloud", "stop")


def leftovers(target: Any, stack: str, prefix: str, project_name: str) -> list[str]:
    """Everything of the stack still in the local cloud: tagged resources (tagging API), the
    types it misses (IAM roles, HTTP APIs and their stages, by name), and state objects."""
    found = [t.arn for t in find_tagged(target, key="branchenv:stack", values={stack})]
    iam = target.client("iam")
    found += [r["Arn"] for r in iam.list_roles()["Roles"] if r["RoleName"].startswith(prefix)]
    apigw = target.client("apigatewayv2")
    for api in apigw.get_apis().get("Items", []):
        if api["Name"].startswith(prefix):
            found.append(f"api {api['ApiId']}")
            found += [
                f"stage {s['StageName']}" for s in apigw.get_stages(ApiId=api["ApiId"])["Items"]
            ]
    listed = target.client("s3").list_object_versions(
        Bucket=STATE_BUCKET, Prefix=f"branchenv/{project_name}/{stack}/"
    )
    found += [
        v["Key"] for v in (listed.get("Versions") or []) + (listed.get("DeleteMarkers") or [])
    ]
    return found


def test_ci_with_the_terraform_engine_is_green_on_a_fresh_clone(
    demo: Project, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    proc = demo.run("ci", "--branch", "e2e/tf", "--report-dir", str(reports), "--json", timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = cli_result(proc.stdout)
    assert out["status"] == "passed" and out["teardown"]["status"] == "destroyed"
    counts = out["counts"]
    assert counts["passed"] == counts["total"] == 29, counts
    cases = junit_cases(reports / "junit.xml")
    assert len(cases) == 29 and set(cases.values()) == {"passed"}
    names = names_for("e2e/tf")
    assert leftovers(demo.target(), names.stack, names.prefix, "aws") == []
    print(f"\nterraform ci timings: {out['timings']}")


def test_no_drift_right_after_up(demo: Project) -> None:
    names = names_for("e2e/tf-drift")
    up = demo.run("up", "--branch", "e2e/tf-drift", "--json", timeout=600)
    assert up.returncode == 0, up.stderr[-4000:]
    try:
        work = demo.root / ".branchenv" / "terraform" / "aws" / names.stack
        sidecar = json.loads(
            demo.target()
            .client("s3")
            .get_object(Bucket=STATE_BUCKET, Key=f"branchenv/aws/{names.stack}/branchenv.json")[
                "Body"
            ]
            .read()
        )
        env = subprocess_env(
            TF_CLI_CONFIG_FILE=str(demo.root / ".branchenv" / "terraform" / "cli.tfrc"),
            AWS_ACCESS_KEY_ID="branchenv-local",
            AWS_SECRET_ACCESS_KEY="branchenv-local-secret",
            **{
                f"TF_VAR_{k}": v if isinstance(v, str) else json.dumps(v)
                for k, v in sidecar["vars"].items()
            },
        )
        plan = subprocess.run(
            ["terraform", "plan", "-detailed-exitcode", "-input=false", "-no-color"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert plan.returncode == 0, plan.stdout[-3000:] + plan.stderr[-2000:]
        assert "No changes." in plan.stdout
    finally:
        down = demo.run("down", "--branch", "e2e/tf-drift", timeout=600)
        assert down.returncode == 0, down.stderr[-3000:]


def test_a_users_own_minimal_module_is_tagged_and_destroyed(tmp_path: Path, mirror: Path) -> None:
    root = tmp_path / "mine"
    project = terraform_project(root, mirror, program="module")
    module = root / "module"
    module.mkdir()
    # One bucket, one queue: no tags, no variables, no provider settings, no names.
    (module / "main.tf").write_text(
        'resource "aws_s3_bucket" "files" {\n  force_destroy = true\n}\n\n'
        'resource "aws_sqs_queue" "jobs" {}\n'
    )
    before = sorted(p.name for p in module.iterdir())
    names = names_for("e2e/mine")
    try:
        up = project.run("up", "--branch", "e2e/mine", "--json", timeout=600)
        assert up.returncode == 0, up.stderr[-3000:]
        assert cli_result(up.stdout)["resource_count"] == 2
        tagged = find_tagged(project.target(), key="branchenv:stack", values={names.stack})
        kinds = sorted(t.type for t in tagged)
        assert kinds == ["s3", "sqs"], tagged
        for resource in tagged:
            assert resource.tags["branchenv:managed-by"] == "branchenv"
            assert resource.tags["branchenv:branch"] == "e2e/mine"
        listed = project.json("ls")
        assert [r["stack"] for r in listed] == [names.stack]
        down = project.run("down", "--branch", "e2e/mine", timeout=600)
        assert down.returncode == 0, down.stderr[-3000:]
        assert leftovers(project.target(), names.stack, names.prefix, "module") == []
        assert sorted(p.name for p in module.iterdir()) == before  # never written to
    finally:
        project.run("cloud", "stop")


def _contract_clone(root: Path, mirror: Path, state_dir: Path) -> Project:
    project = terraform_project(
        root, mirror, program="contract", extra=f'state_dir = "{state_dir}"\n'
    )
    shutil.copytree(PROGRAMS / "contract", root / "contract")
    return project


def test_two_clones_stacks_are_listed_and_reaped_from_a_third(tmp_path: Path, mirror: Path) -> None:
    # The clones share one local cloud (one state dir); its S3 backend is all they share about
    # terraform stacks: the work dirs are deleted before the third clone looks.
    shared = tmp_path / "shared-state"
    first = _contract_clone(tmp_path / "a", mirror, shared)
    second = _contract_clone(tmp_path / "b", mirror, shared)
    third = _contract_clone(tmp_path / "c", mirror, shared)
    stacks = {names_for(b).stack for b in ("e2e/tf-a", "e2e/tf-b")}
    try:
        for clone, branch in ((first, "e2e/tf-a"), (second, "e2e/tf-b")):
            up = clone.run("up", "--branch", branch, "--ttl", "1s", timeout=600)
            assert up.returncode == 0, up.stderr[-3000:]
        shutil.rmtree(shared / "terraform")
        time.sleep(1.5)  # both stacks are now past their TTL
        listed = {r["stack"]: r for r in third.json("ls")}
        assert stacks <= set(listed), listed
        assert all(listed[s]["engine"] == "terraform" and listed[s]["expired"] for s in stacks)
        reap = third.run("reap", "--yes", "--json", timeout=600)
        assert reap.returncode == 0, reap.stderr[-3000:]
        report: Any = cli_result(reap.stdout)
        reaped = {r["stack"]: r["status"] for r in report["reaped"]}
        assert all(reaped.get(s) == "destroyed" for s in stacks), report
        assert [r for r in third.json("ls") if r["stack"] in stacks] == []
        shared_cloud = LocalCloud(shared).status().target("us-east-1")
        for branch in ("e2e/tf-a", "e2e/tf-b"):
            names = names_for(branch)
            assert leftovers(shared_cloud, names.stack, names.prefix, "contract") == []
    finally:
        third.run("cloud", "stop")
