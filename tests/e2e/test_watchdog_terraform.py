"""The dead-man's switch with the real terraform: `ci` SIGKILLed while `terraform apply` creates
the demo stack (the aws provider waits 25 s after each SQS queue it creates: a kill lands in
the middle of the apply). The watchdog must stop terraform first - SIGINT, on which terraform
stops gracefully, writes what it created to the state and releases the state lock - and only
then destroy: an orphaned apply would go on creating after the destroy, or hold the lock the
destroy needs. Afterwards nothing of the stack is left on the local cloud (tagged resources,
IAM roles and HTTP APIs by name, the state's objects), and terraform's process group is empty.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from branchenv.harness.watchdog import group_members
from branchenv.naming import names_for
from tests.conftest import subprocess_env
from tests.e2e.conftest import E2E_DEFAULTS, EXE
from tests.e2e.test_signal_offsets import Lines
from tests.e2e.test_terraform import leftovers, mirror, terraform_project
from tests.e2e.test_watchdog import _report, _suite

__all__ = ["mirror"]  # a fixture, used by name

pytestmark = [pytest.mark.terraform, pytest.mark.slow]


def test_sigkill_of_ci_during_terraform_apply_stops_terraform_then_destroys(
    tmp_path: Path, mirror: Path
) -> None:
    project = terraform_project(tmp_path / "clone", mirror, program="infra/terraform/aws")
    branch = "wd/tf-apply"
    reports = tmp_path / "reports"
    suite = _suite(tmp_path, "def test_never_runs():\n    pass\n")
    proc = subprocess.Popen(
        [str(EXE), "ci", "--branch", branch, "--suite", str(suite), "--report-dir", str(reports)],
        cwd=project.root,
        env=subprocess_env(**E2E_DEFAULTS),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = Lines(proc)
    try:
        # Mid-apply: a queue is being created (the provider's 25 s wait), a dozen resources
        # are done, the rest not started.
        lines.wait_for("aws_sqs_queue.dlq: Still creating", timeout=600)
        proc.send_signal(signal.SIGKILL)
        assert lines.finish() == -signal.SIGKILL, "`ci` had finished"

        report = _report(reports, timeout=600)
        assert report["phase"] == "provision", report
        # terraform was running, and stopped on SIGINT within its grace (not killed)
        assert len(report["engine"]) == 1, report
        group, what = report["engine"][0].removeprefix("process group ").split(": ")
        assert what == "terminated", report
        assert group_members(int(group)) == [], report
        names = names_for(branch)
        assert leftovers(project.target(), names.stack, names.prefix, "aws") == [], report
        assert report["teardown"]["status"] == "destroyed", report
        assert report["teardown"]["leaked"] == [], report
        assert report["teardown"]["deleted"] > 0, report  # the apply had created some
    finally:
        if proc.poll() is None:
            proc.kill()
        project.run("down", "--branch", branch, timeout=600)
        project.run("cloud", "stop")
