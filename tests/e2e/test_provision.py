"""`branchenv up / outputs / ls / down` as a user runs them, on the local cloud.

Every check of what exists goes to the local cloud over HTTP (boto3 and the Resource Groups
Tagging API), never to branchenv's own state.
"""

from __future__ import annotations

import json
import subprocess
from decimal import Decimal
from pathlib import Path

import requests

from branchenv.inventory import TaggedResource, find_tagged
from tests.conftest import cli_result, subprocess_env
from tests.e2e.conftest import EXE, Project

# The program's physical resources, by tagging-API resource type.
EXPECTED_TAGGED = {
    "dynamodb:table": 1,
    "sqs": 2,
    "s3": 1,
    "iam:role": 1,
    "logs:log-group": 1,
    "lambda:function": 1,
    "apigateway:apis": 1,
    "apigateway:stages": 1,
}


def tagged(project: Project, stack: str) -> list[TaggedResource]:
    """Every resource carrying ``branchenv:stack=<stack>``: the tagging API, plus IAM roles and
    HTTP APIs through their own APIs (the local cloud's tagging API does not list those)."""
    return find_tagged(project.target(), key="branchenv:stack", values={stack})


def kinds(resources: list[TaggedResource]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in resources:
        counts[r.type] = counts.get(r.type, 0) + 1
    return counts


def test_up_creates_everything_tagged_and_serving(project: Project) -> None:
    out = project.json("up", "--branch", "feature/x", "--target", "local")
    stack = out["stack"]
    try:
        assert out["engine"] == "inprocess" and out["target"] == "local"
        outputs = out["outputs"]
        assert outputs["endpoint"].startswith("http://127.0.0.1:")
        # Every resource of the program exists, tagged with the stack metadata.
        found = tagged(project, stack)
        assert kinds(found) == EXPECTED_TAGGED
        for r in found:
            tags = r.tags
            assert tags["branchenv:managed-by"] == "branchenv"
            assert tags["branchenv:branch"] == "feature/x"
            assert tags["branchenv:target"] == "local"
            assert tags["branchenv:engine"] == "inprocess"
            assert "branchenv:owner" in tags and "branchenv:created-at" in tags
            # Only identity tags: what changes between updates lives with the stack.
            assert "branchenv:expires-at" not in tags and "branchenv:commit" not in tags
        # And checked service by service too (the tagging API is not the only witness).
        t = project.target()
        ddb = t.client("dynamodb").describe_table(TableName=outputs["table_name"])["Table"]
        assert ddb["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        pitr = t.client("dynamodb").describe_continuous_backups(TableName=outputs["table_name"])
        assert (
            pitr["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"][
                "PointInTimeRecoveryStatus"
            ]
            == "ENABLED"
        )
        attrs = t.client("sqs").get_queue_attributes(
            QueueUrl=outputs["queue_url"], AttributeNames=["RedrivePolicy"]
        )["Attributes"]
        assert json.loads(attrs["RedrivePolicy"])["deadLetterTargetArn"] == outputs["dlq_arn"]
        s3 = t.client("s3")
        assert s3.get_bucket_versioning(Bucket=outputs["bucket_name"])["Status"] == "Enabled"
        pab = s3.get_public_access_block(Bucket=outputs["bucket_name"])
        assert all(pab["PublicAccessBlockConfiguration"].values())

        # The endpoint answers from the real handler.
        health = requests.get(f"{outputs['endpoint']}/health", timeout=30)
        assert health.status_code == 200, health.text
        assert health.json()["status"] == "ok"
        created = requests.post(
            f"{outputs['endpoint']}/orders",
            json={"customer": "ada", "items": [{"sku": "book", "qty": 2}]},
            timeout=30,
        )
        assert created.status_code == 201, created.text
        order_id = created.json()["id"]
        item = t.client("dynamodb").get_item(
            TableName=outputs["table_name"], Key={"id": {"S": order_id}}
        )["Item"]
        assert item["customer"]["S"] == "ada"
        messages = (
            t.client("sqs")
            .receive_message(
                QueueUrl=outputs["queue_url"], MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            .get("Messages", [])
        )
        assert any(json.loads(m["Body"]).get("order_id") == order_id for m in messages)
        fetched = requests.get(f"{outputs['endpoint']}/orders/{order_id}", timeout=30)
        assert fetched.status_code == 200 and fetched.json()["customer"] == "ada"

        # outputs and ls see the same stack.
        assert project.json("outputs", "--branch", "feature/x") == outputs
        rows = project.json("ls")
        row = next(r for r in rows if r["stack"] == stack)
        assert row["branch"] == "feature/x" and row["resource_count"] == 18
        assert row["engine"] == "inprocess" and row["target"] == "local"
        assert 0 < row["expires_in_s"] <= 2 * 3600
        # ls carries the estimated cost (the demo stack's burn rate is small but not zero).
        assert (
            Decimal(row["cost_hourly"]["amount"]) > 0 and Decimal(row["cost_so_far"]["amount"]) >= 0
        )
        assert row["cost_unpriced"] == []
        human = project.run("ls", check=True).stdout
        assert "cost so far" in human and "$0.00" in human
    finally:
        project.run("down", "--branch", "feature/x")
    assert tagged(project, stack) == []


def test_branches_coexist_up_is_idempotent_down_is_clean(project: Project) -> None:
    a = project.json("up", "--branch", "feature/a")
    b = project.json("up", "--branch", "Feature/A")  # differs only by case: its own stack
    try:
        assert a["stack"] != b["stack"]
        assert kinds(tagged(project, a["stack"])) == EXPECTED_TAGGED
        assert kinds(tagged(project, b["stack"])) == EXPECTED_TAGGED
        again = project.json("up", "--branch", "feature/a")
        assert again["changes"]["create"] == 0 and again["changes"]["delete"] == 0
        assert again["outputs"] == a["outputs"]
        assert kinds(tagged(project, a["stack"])) == EXPECTED_TAGGED  # no duplicates
        apis = project.target().client("apigatewayv2").get_apis()["Items"]
        assert sum(1 for api in apis if api["Name"].startswith(a["stack"])) == 1
    finally:
        down = project.json("down", "--branch", "feature/a")
    assert down["deleted"] == 18 and down["removed"] is True
    assert tagged(project, a["stack"]) == []
    assert (
        not (project.root / ".branchenv" / "inprocess" / "branchenv-demo")
        .joinpath(f"{a['stack']}.json")
        .exists()
    )
    # The other branch's stack is untouched.
    assert kinds(tagged(project, b["stack"])) == EXPECTED_TAGGED
    twice = project.run("down", "--branch", "feature/a")
    assert twice.returncode == 0 and "already gone" in twice.stdout
    project.run("down", "--branch", "Feature/A", check=True)
    assert tagged(project, b["stack"]) == []


def test_concurrent_ups_on_one_branch_never_duplicate(project: Project) -> None:
    cmd = [str(EXE), "up", "--branch", "feature/race", "--json"]
    env = subprocess_env()
    procs = [
        subprocess.Popen(
            cmd,
            cwd=project.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [(p.wait(timeout=180), p.stdout.read(), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
    try:
        codes = sorted(rc for rc, _, _ in results)
        # One provisions; the other waits for the lock then finds nothing to do, or gives up
        # with a clear "locked" error. Either way the two runs really overlapped: one of them
        # met the other's lock.
        assert codes[0] == 0
        assert any("is locked by pid" in err for _, _, err in results), [e for *_, e in results]
        if codes[1] != 0:
            assert any("locked" in err for rc, _, err in results if rc != 0)
        stack = json.loads(next(out for rc, out, _ in results if rc == 0))["result"]["stack"]
        assert kinds(tagged(project, stack)) == EXPECTED_TAGGED
        apis = project.target().client("apigatewayv2").get_apis()["Items"]
        assert sum(1 for api in apis if api["Name"].startswith(stack)) == 1
    finally:
        project.run("down", "--branch", "feature/race", check=True)


def test_bad_input_exits_2_with_one_line_and_creates_nothing(project: Project) -> None:
    was_running = _running(project)
    before = project.target().client("s3").list_buckets()["Buckets"] if was_running else []
    for args, needle in [
        (("up", "--branch", "///"), "--branch"),
        (("up", "--branch", "ok-branch", "--ttl", "soon"), "--ttl"),
        (("up", "--branch", "ok-branch", "--engine", "terraform"), "--engine"),
        (("up", "--branch", "ok-branch", "--target", "gcp"), "--target"),
        (("up", "--branch", "ok-branch", "--profile", "huge"), "profile"),
    ]:
        proc = project.run(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("branchenv: error")]
        assert len(lines) == 1 and needle in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr
    refused = project.run("up", "--branch", "ok-branch", "--target", "aws", "--engine", "inprocess")
    assert refused.returncode == 3 and "local target" in refused.stderr
    # Bad input is refused before any side effect: not even the local cloud was started.
    assert _running(project) == was_running
    if was_running:
        assert project.target().client("s3").list_buckets()["Buckets"] == before
    project.run("cloud", "start", check=True)
    missing = project.run("outputs", "--branch", "ok-branch")
    assert missing.returncode == 1 and "no stack" in missing.stderr


def _running(project: Project) -> bool:
    from branchenv.localcloud import LocalCloud

    return LocalCloud(project.root / ".branchenv").status().running


def test_progress_goes_to_stderr_and_json_to_stdout(project: Project, tmp_path: Path) -> None:
    gh_output, gh_summary = tmp_path / "gh-output", tmp_path / "gh-summary.md"
    proc = project.run(
        "up",
        "--branch",
        "feature/progress",
        "--json",
        check=True,
        GITHUB_OUTPUT=str(gh_output),
        GITHUB_STEP_SUMMARY=str(gh_summary),
    )
    try:
        out = cli_result(proc.stdout)
        assert "created" in proc.stderr and "aws:dynamodb/table:Table" in proc.stderr
        assert "no `pulumi` CLI on PATH" in proc.stderr  # the automatic engine choice is said
        # On GitHub Actions, `up` hands the stack and its endpoint to later steps.
        lines = dict(ln.split("=", 1) for ln in gh_output.read_text().splitlines() if "=" in ln)
        assert lines["stack"] == out["stack"] and lines["endpoint"] == out["outputs"]["endpoint"]
        assert out["stack"] in gh_summary.read_text()
    finally:
        project.run("down", "--branch", "feature/progress", check=True)


def test_protected_and_unmanaged_stacks_are_refused(project: Project) -> None:
    """Destructive commands never touch a stack matching a protected pattern, nor one that
    exists without the managed marker (exit 3, nothing changed)."""
    import datetime as dt

    from branchenv.config import Settings
    from branchenv.engines import get_engine
    from branchenv.metadata import StackMetadata
    from branchenv.naming import names_for
    from tests.conftest import inputs_for, program_at

    for args in (
        ("up", "--branch", "main"),
        ("down", "--branch", "staging-eu"),
        ("ci", "--branch", "production"),
    ):
        proc = project.run(*args)
        assert proc.returncode == 3, (args, proc.stderr)
        assert "protected pattern" in proc.stderr and "Traceback" not in proc.stderr
    assert tagged(project, "main") == []

    # A stack of this project that someone created without branchenv's marker.
    names = names_for("feature/foreign")
    target = project.target()
    engine = get_engine("inprocess", settings=Settings(project_dir=project.root), target=target)
    program = program_at(project.root / "infra" / "aws")
    unmanaged = StackMetadata(
        stack=names.stack,
        branch="feature/foreign",
        owner="someone",
        commit="0" * 40,
        created_at=dt.datetime.now(dt.UTC),
        expires_at=dt.datetime.now(dt.UTC),
        target="local",
        engine="inprocess",
        managed=False,
        project="branchenv-demo",
    )
    engine.up(
        stack=names.stack,
        program=program,
        target=target,
        metadata=unmanaged,
        inputs=inputs_for(unmanaged, {"branchenv:prefix": names.prefix}, target=target),
    )
    try:
        before = kinds(tagged(project, names.stack))
        for verb in ("down", "up"):
            proc = project.run(verb, "--branch", "feature/foreign")
            assert proc.returncode == 3 and "no branchenv managed-by marker" in proc.stderr
        assert kinds(tagged(project, names.stack)) == before == EXPECTED_TAGGED
    finally:
        engine.destroy(stack=names.stack, program=program, target=target)


def test_up_again_keeps_the_birth_date_and_extends_the_ttl(project: Project) -> None:
    first = project.json("up", "--branch", "feature/age", "--ttl", "1h")
    try:
        second = project.json("up", "--branch", "feature/age", "--ttl", "3h")
        assert second["metadata"]["created_at"] == first["metadata"]["created_at"]
        assert second["metadata"]["expires_at"] > first["metadata"]["expires_at"]
    finally:
        project.run("down", "--branch", "feature/age", check=True)
