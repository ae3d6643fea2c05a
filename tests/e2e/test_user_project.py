"""A user's own project, as a new user has it: Pulumi.yaml at the top with `main: src/`, a
program that knows nothing of branchenv, its suite in src/tests, no branchenv settings at all.
`branchenv ci` finds the program (Pulumi.yaml's `main:` honoured) and its suite and runs the
whole loop on the local cloud (issue 11, Must show)."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

from tests.conftest import cli_result, subprocess_env
from tests.e2e.conftest import E2E_DEFAULTS, EXE

PROGRAM = """
import pulumi
import pulumi_aws as aws

queue = aws.sqs.Queue("jobs")
bucket = aws.s3.Bucket("files")
pulumi.export("queue_url", queue.url)
pulumi.export("bucket_name", bucket.bucket)
"""

SUITE = """
def test_the_queue_takes_a_message(branchenv_outputs, branchenv_boto3_session):
    sqs = branchenv_boto3_session.client("sqs")
    sqs.send_message(QueueUrl=branchenv_outputs["queue_url"], MessageBody="hello")
    got = sqs.receive_message(QueueUrl=branchenv_outputs["queue_url"], WaitTimeSeconds=1)
    assert [m["Body"] for m in got["Messages"]] == ["hello"]


def test_the_bucket_is_there(branchenv_outputs, branchenv_boto3_session):
    s3 = branchenv_boto3_session.client("s3")
    s3.head_bucket(Bucket=branchenv_outputs["bucket_name"])
"""


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EXE), *args],
        cwd=root,
        env=subprocess_env(**E2E_DEFAULTS),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_ci_in_a_user_project_with_main_src_and_no_settings(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    (root / "src" / "tests").mkdir(parents=True)
    (root / "Pulumi.yaml").write_text(
        "name: shop\nruntime:\n  name: python\nmain: src/\n", encoding="utf-8"
    )
    (root / "src" / "__main__.py").write_text(textwrap.dedent(PROGRAM), encoding="utf-8")
    (root / "src" / "tests" / "test_shop.py").write_text(textwrap.dedent(SUITE))
    subprocess.run(["git", "init", "-q", "-b", "feature/shop", str(root)], check=True)
    try:
        proc = run(root, "ci", "--json")
        assert proc.returncode == 0, proc.stderr
        outcome = cli_result(proc.stdout)
        assert outcome["status"] == "passed", outcome
        assert outcome["counts"]["passed"] == 2
        assert outcome["branch"] == "feature/shop"
        assert outcome["teardown"]["status"] == "destroyed"
        assert outcome["suite"] == str((root / "src" / "tests").resolve())
    finally:
        run(root, "cloud", "stop")
