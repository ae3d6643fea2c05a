"""Ctrl-C during `branchenv up` with the pulumi engine, the CLI hung inside its update.

The stand-in (tests/standin/pulumi) is the `pulumi` on PATH, sleeping inside `up` with the
stack's lock held (STANDIN_UP_DELAY_S), and cancelling the update on SIGINT as the CLI does
(the lock released, nothing written, "update canceled"). It runs in a process group of its own
(engines/pulumi/command.py), so a terminal's Ctrl-C never reaches it: the first one only makes
`up` stop once provisioning is done; a second one is forwarded to the CLI's group by branchenv.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from branchenv.naming import names_for
from tests.e2e.conftest import EXE
from tests.e2e.test_pulumi_standin_cli import Clone, clones, standin_env
from tests.e2e.test_watchdog import alive, start_time
from tests.e2e.test_watchdog_pulumi import _up_call
from tests.integration.pulumi_rig import PROJECT, bucket_keys

__all__ = ["clones", "standin_env"]  # fixtures, used by name

pytestmark = [pytest.mark.standin, pytest.mark.slow]

EXIT_TIMEOUT_S = 180  # generous: a bound on a hang, not a speed figure


def _up(dev: Clone, branch: str, delay_s: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(EXE), "up", "--branch", branch],
        cwd=dev.root,
        env={**dev.env, "STANDIN_UP_DELAY_S": str(delay_s)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        process_group=0,  # its own group, as a shell's foreground job
    )


def _locks(local_cloud: Any, dev: Clone, branch: str) -> list[str]:
    stack = names_for(branch).stack
    url = dev.env["BRANCHENV_BACKEND_URL"]
    return [
        k for k in bucket_keys(local_cloud, url) if f"/{PROJECT}/{stack}" in k and "/locks/" in k
    ]


def test_a_second_sigint_cancels_the_hung_pulumi_update(
    clones: tuple[Clone, Clone], local_cloud: Any
) -> None:
    dev, _ = clones
    branch = "ctrlc/twice"
    state_dir = Path(dev.env["STANDIN_STATE_DIR"])
    up = _up(dev, branch, 600)  # would hang for 10 min
    call: dict[str, Any] = {}
    started: int | None = None
    try:
        call = _up_call(state_dir)
        started = start_time(call["pid"])
        assert alive(call["pid"], started), call
        up.send_signal(signal.SIGINT)
        time.sleep(1.0)  # the first is acted on (said) before the second comes
        assert alive(call["pid"], started), "the first SIGINT reached the stand-in"
        up.send_signal(signal.SIGINT)
        _, err = up.communicate(timeout=EXIT_TIMEOUT_S)
        assert up.returncode == 130, err
        assert "a second Ctrl-C stops the engine gracefully" in err, err
        assert f"SIGINT forwarded to the engine process {call['pid']}" in err, err
        assert "update canceled" in err, err
        assert not alive(call["pid"], started)
        assert not _locks(local_cloud, dev, branch)
        ls = dev.run("ls")
        assert ls.returncode == 0, ls.stderr
    finally:
        if up.poll() is None:
            up.kill()
            up.communicate()
        if call and alive(call["pid"], started):  # failed: the stand-in is not left behind
            os.killpg(call["pid"], signal.SIGINT)
    down = dev.run("down", "--branch", branch)
    assert down.returncode == 0, down.stderr  # the lock was released


def test_one_sigint_to_the_group_leaves_the_cli_alone_and_up_finishes(
    clones: tuple[Clone, Clone], local_cloud: Any
) -> None:
    dev, _ = clones
    branch = "ctrlc/once"
    state_dir = Path(dev.env["STANDIN_STATE_DIR"])
    up = _up(dev, branch, 5)
    try:
        call = _up_call(state_dir)
        os.killpg(up.pid, signal.SIGINT)  # a terminal's Ctrl-C: the whole foreground group
        _, err = up.communicate(timeout=EXIT_TIMEOUT_S)
        assert up.returncode == 130, err
        assert "update canceled" not in err, err
        assert "forwarded" not in err, err
        assert not alive(call["pid"], start_time(call["pid"]) or 0)
        ls = dev.run("ls", "--json")
        assert ls.returncode == 0, ls.stderr
        assert names_for(branch).stack in ls.stdout, ls.stdout  # provisioning finished
    finally:
        if up.poll() is None:
            up.kill()
            up.communicate()
        dev.run("down", "--branch", branch)
