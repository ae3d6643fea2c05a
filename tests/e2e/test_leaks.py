"""The leak check as a user meets it: `ci`, `down` and `reap --yes` each look the stack's tag up
in the local cloud after teardown, count what is left in their output (`leaked: 0`), and exit 1
naming it by ARN when something is. The leak here is a queue the application made at run time
with the stack's tags, which no engine knows of."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from branchenv.naming import names_for
from tests.conftest import cli_envelope

LEAKY_SUITE = """
def test_the_app_makes_a_queue_of_its_own(branchenv_stack, branchenv_target):
    branchenv_target.client("sqs").create_queue(
        QueueName=branchenv_stack.stack + "-made-by-the-app",
        tags={"branchenv:stack": branchenv_stack.stack, "branchenv:managed-by": "branchenv"},
    )
"""


def _leave_a_queue(target: Any, stack: str) -> str:
    sqs = target.client("sqs")
    url = sqs.create_queue(
        QueueName=f"{stack}-left", tags={"branchenv:stack": stack, "branchenv:managed-by": "x"}
    )["QueueUrl"]
    return str(url)


def _arn_of(target: Any, url: str) -> str:
    attrs = target.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return str(attrs["Attributes"]["QueueArn"])


def test_ci_down_and_reap_exit_1_naming_what_teardown_left(
    own_project: Any, tmp_path: Path
) -> None:
    target: Any = None  # the local cloud starts with the first command
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_app.py").write_text(LEAKY_SUITE)
    reports = tmp_path / "reports"
    branch = "leak/ci"
    stack = names_for(branch).stack
    left: list[str] = []
    try:
        proc = own_project.run(
            "ci", "--branch", branch, "--suite", str(suite), "--report-dir", str(reports), "--json"
        )
        target = own_project.target()
        out = cli_envelope(proc.stdout)["result"]
        assert proc.returncode == 1, proc.stderr[-3000:]
        assert out["counts"]["passed"] == 1  # the suite was green; the leak fails the run
        leaked = out["teardown"]["leaked"]
        assert out["teardown"]["status"] == "leaked" and len(leaked) == 1
        assert leaked[0].endswith(f"{stack}-made-by-the-app")
        assert leaked[0] in out["error"]
        assert "leaked: 1" in (reports / "summary.md").read_text()
        left.append(
            target.client("sqs").get_queue_url(QueueName=f"{stack}-made-by-the-app")["QueueUrl"]
        )

        # `down`: a clean one says leaked: 0; one with a leftover exits 1 naming it
        own_project.ok("up", "--branch", "leak/down-clean")
        clean = own_project.ok("down", "--branch", "leak/down-clean")
        assert "leaked: 0" in clean.stdout
        own_project.ok("up", "--branch", "leak/down")
        url = _leave_a_queue(target, names_for("leak/down").stack)
        left.append(url)
        down = own_project.run("down", "--branch", "leak/down")
        assert down.returncode == 1 and "Traceback" not in down.stderr
        assert _arn_of(target, url) in down.stderr and "leaked: 1" in down.stderr

        # `reap --yes`: an expired stack with a leftover
        own_project.ok("up", "--branch", "leak/reap", "--ttl", "1s")
        url = _leave_a_queue(target, names_for("leak/reap").stack)
        left.append(url)
        time.sleep(1.5)
        reaped = own_project.run("reap", "--yes", "--json")
        assert reaped.returncode == 1, reaped.stderr
        report = cli_envelope(reaped.stdout)["result"]
        assert report["leaked"] == 1
        row = next(r for r in report["reaped"] if r["stack"] == names_for("leak/reap").stack)
        assert row["status"] == "leaked" and row["leaked"] == [_arn_of(target, url)]
    finally:
        if target is not None:
            for url in left:
                target.client("sqs").delete_queue(QueueUrl=url)
        for b in (branch, "leak/down-clean", "leak/down", "leak/reap"):
            own_project.run("down", "--branch", b)
