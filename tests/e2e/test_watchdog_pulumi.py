"""The dead-man's switch with the pulumi engine: `ci` SIGKILLed while the `pulumi up` it started
runs. pulumi.automation starts the CLI in `ci`'s own process group, unannounced; before the CLI
was started in a group of its own and announced (engines/pulumi/command.py), the orphaned `up`
ran on after `ci` died, holding the stack's lock, while the watchdog tried to destroy the stack.

The stand-in (tests/standin/pulumi) is the `pulumi` on PATH, sleeping inside `up` with the lock
held (STANDIN_UP_DELAY_S), as a real update of many resources does; backend and everything of
branchenv are real (the installed CLI, pulumi.automation, an s3:// DIY backend on the local
cloud). Afterwards: the `up` process is gone (proven by /proc: pid and start time), the
watchdog's report names the engine's process group it stopped, its teardown destroyed the stack
and no checkpoint or lock of it is left in the backend.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from branchenv.naming import names_for
from tests.e2e.conftest import EXE
from tests.e2e.test_pulumi_standin_cli import Clone, clones, standin_env
from tests.e2e.test_watchdog import _report, _suite, alive, start_time
from tests.integration.pulumi_rig import PROJECT, bucket_keys

__all__ = ["clones", "standin_env"]  # fixtures, used by name

pytestmark = [pytest.mark.standin, pytest.mark.slow]


def _up_call(state_dir: Path, timeout: float = 120) -> dict[str, Any]:
    """The stand-in's record of the `up` invocation, once it has started."""
    log = state_dir / "argv.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists():
            for line in log.read_text().splitlines():
                call: dict[str, Any] = json.loads(line)
                if "up" in call["argv"]:
                    return call
        time.sleep(0.1)
    raise AssertionError(f"no `pulumi up` started in {timeout} s")


def test_sigkill_of_ci_during_pulumi_up_stops_the_cli_then_destroys(
    clones: tuple[Clone, Clone], tmp_path: Path, local_cloud: Any
) -> None:
    dev, _ = clones
    branch = "wd/pulumi-up"
    reports = tmp_path / "reports"
    suite = _suite(tmp_path, "def test_never_runs():\n    pass\n")
    state_dir = Path(dev.env["STANDIN_STATE_DIR"])
    ci = subprocess.Popen(
        [str(EXE), "ci", "--branch", branch, "--suite", str(suite), "--report-dir", str(reports)],
        cwd=dev.root,
        env={**dev.env, "STANDIN_UP_DELAY_S": "300"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        up = _up_call(state_dir)
        up_started = start_time(up["pid"])
        assert alive(up["pid"], up_started), up
        ci.send_signal(signal.SIGKILL)
        assert ci.wait(timeout=30) == -signal.SIGKILL

        report = _report(reports)
        assert report["phase"] == "provision", report
        assert len(report["engine"]) == 1 and "process group" in report["engine"][0], report
        assert not alive(up["pid"], up_started), f"the orphaned `pulumi up` runs on: {report}"
        assert report["teardown"]["status"] in ("destroyed", "already-gone"), report
        stack = names_for(branch).stack
        url = dev.env["BRANCHENV_BACKEND_URL"]
        left = [k for k in bucket_keys(local_cloud, url) if f"/{PROJECT}/{stack}" in k]
        assert not [k for k in left if k.endswith(".json") and "/stacks/" in k], left
        assert not [k for k in left if "/locks/" in k], left
    finally:
        if ci.poll() is None:
            ci.kill()
        dev.run("down", "--branch", branch)
