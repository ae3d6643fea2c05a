"""The watchdog (dead-man's switch of `ci`) as processes: a real stand-in for `ci` that arms
it and starts a "suite" in a process group of its own, then is SIGKILLed; a disarmed watchdog
that exits without acting; the suite-group kill that refuses any group it cannot prove is the
suite's. The full `ci` cases (SIGKILL across provisioning and during the tests, with a real
stack) are tests/e2e/test_watchdog.py."""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from branchenv.config import Settings
from branchenv.harness.watchdog import (
    REPORT_JSON,
    Watchdog,
    WatchdogSpec,
    alive,
    kill_suite_group,
    listen,
    start_time,
)
from tests.conftest import subprocess_env

STAND_IN = """
import os, subprocess, sys, time
from pathlib import Path
from branchenv.config import Settings
from branchenv.harness.watchdog import Watchdog, WatchdogSpec, start_time

me = os.getpid()
spec = WatchdogSpec(
    ci_pid=me, ci_start=start_time(me), settings=Settings(project_dir=Path(sys.argv[1])),
    branch="wd/stand-in", stack="wd-stand-in", target="local", engine="inprocess",
    report_dir=sys.argv[1],
)
wd = Watchdog.arm(spec, env=os.environ, say=lambda line: print(line, flush=True))
suite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], process_group=0)
wd.tell("suite", pgid=suite.pid, start=start_time(suite.pid))
print(f"suite {suite.pid}", flush=True)
if sys.argv[2] == "fork":
    # A child forked without exec (as multiprocessing's fork does) holds every fd ci holds,
    # the watchdog's pipe too: ci's death then closes no pipe.
    if os.fork() == 0:
        time.sleep(300)
        os._exit(0)
    print("forked", flush=True)
if sys.argv[2] == "disarm":
    suite.kill()
    suite.wait()
    wd.disarm("finished")
    print("disarmed", flush=True)
time.sleep(300)
"""


def _wait_gone(pid: int, started: int | None, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid, started):
            return True
        time.sleep(0.1)
    return False


def _stand_in(tmp_path: Path, mode: str) -> tuple[subprocess.Popen[str], int, int]:
    """A `ci` stand-in that armed its watchdog and started its suite: (proc, watchdog, suite)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", STAND_IN, str(tmp_path), mode],
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout or ()], daemon=True).start()
    watchdog = suite = 0
    seen: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1.0)
        except queue.Empty:
            continue
        seen.append(line)
        if line.startswith("watchdog "):
            watchdog = int(line.split()[1])
        if line.startswith("suite "):
            suite = int(line.split()[1])
        wanted = {"disarm": "disarmed", "fork": "forked"}.get(mode, "suite ")
        if suite and line.startswith(wanted):
            break
    if not (watchdog and suite):
        proc.kill()
        raise AssertionError(f"the stand-in never armed its watchdog: {seen}")
    return proc, watchdog, suite


def test_sigkill_of_ci_makes_the_watchdog_stop_the_suite_and_report(tmp_path: Path) -> None:
    proc, watchdog, suite = _stand_in(tmp_path, "kill")
    wd_start, suite_start = start_time(watchdog), start_time(suite)
    try:
        assert alive(watchdog, wd_start) and alive(suite, suite_start)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert _wait_gone(watchdog, wd_start), "the watchdog never finished"
        assert not alive(suite, suite_start), "the suite outlived ci and its watchdog"
    finally:
        for pid, started in ((suite, suite_start), (watchdog, wd_start)):
            if alive(pid, started):
                os.kill(pid, signal.SIGKILL)
    report = json.loads((tmp_path / REPORT_JSON).read_text())
    assert report["phase"] == "suite" and report["ci_pid"] == proc.pid
    assert report["suite"] == f"process group {suite}: terminated"
    assert report["teardown"] is None  # the stand-in never provisioned
    assert "killed" in (tmp_path / "summary.md").read_text()


def test_the_watchdog_acts_when_ci_dies_while_a_forked_child_holds_its_pipe(
    tmp_path: Path,
) -> None:
    proc, watchdog, suite = _stand_in(tmp_path, "fork")
    wd_start, suite_start = start_time(watchdog), start_time(suite)
    try:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert _wait_gone(watchdog, wd_start), "ci died, its pipe stayed open: no watchdog"
        assert not alive(suite, suite_start)
    finally:
        for pid, started in ((suite, suite_start), (watchdog, wd_start)):
            if alive(pid, started):
                os.kill(pid, signal.SIGKILL)
        # the forked child: the only other process whose parent was the stand-in
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError):
                    cmd = (entry / "cmdline").read_bytes()
                    if STAND_IN.encode()[:40] in cmd and int(entry.name) != proc.pid:
                        os.kill(int(entry.name), signal.SIGKILL)
    report = json.loads((tmp_path / REPORT_JSON).read_text())
    assert report["phase"] == "suite" and report["suite"].endswith("terminated")


def test_a_disarmed_watchdog_exits_without_acting(tmp_path: Path) -> None:
    proc, watchdog, _ = _stand_in(tmp_path, "disarm")
    wd_start = start_time(watchdog)
    try:
        assert _wait_gone(watchdog, wd_start, timeout=10), "a disarmed watchdog stayed"
        proc.send_signal(signal.SIGKILL)  # ci dying after disarming changes nothing
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (tmp_path / REPORT_JSON).exists()
    assert not (tmp_path / "summary.md").exists()
    assert "disarmed (finished)" in (tmp_path / "watchdog.log").read_text()


ENGINE_STAND_IN = """
import os, sys, threading, time
from pathlib import Path
from branchenv import processes
from branchenv.config import Settings
from branchenv.engines.terraform import cmd
from branchenv.engines.terraform.options import TerraformOptions
from branchenv.harness.watchdog import Watchdog, WatchdogSpec, start_time

me = os.getpid()
spec = WatchdogSpec(
    ci_pid=me, ci_start=start_time(me), settings=Settings(project_dir=Path(sys.argv[1])),
    branch="wd/stand-in", stack="wd-stand-in", target="local", engine="terraform",
    report_dir=sys.argv[1],
)
wd = Watchdog.arm(spec, env=os.environ, say=lambda line: print(line, flush=True))
options = TerraformOptions(work_dir=Path(sys.argv[1]), binary=sys.argv[2])
with processes.announced_to(wd):  # as ci runs its provisioning
    threading.Thread(target=cmd.run, args=(options, ["apply"]), daemon=True).start()
    time.sleep(300)
"""


def test_sigkill_of_ci_makes_the_watchdog_stop_the_engines_child_first(tmp_path: Path) -> None:
    """`ci` killed while terraform applies: the watchdog stops terraform's group (started in a
    group of its own by the gateway, announced to it), proven by its start time."""
    pid_file = tmp_path / "terraform.pid"
    fake = tmp_path / "terraform"
    fake.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 300\n")
    fake.chmod(0o755)
    proc = subprocess.Popen(
        [sys.executable, "-c", ENGINE_STAND_IN, str(tmp_path), str(fake)],
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    armed = proc.stdout.readline()
    assert armed.startswith("watchdog "), armed
    watchdog = int(armed.split()[1])
    wd_start = start_time(watchdog)
    child = child_start = None
    try:
        deadline = time.monotonic() + 60
        while child_start is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                child = int(pid_file.read_text())
                child_start = start_time(child)
            time.sleep(0.1)
        assert child is not None and child_start is not None, "terraform never started"
        assert os.getpgid(child) == child  # a group of its own
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert _wait_gone(watchdog, wd_start), "the watchdog never finished"
        assert not alive(child, child_start), "terraform outlived ci and its watchdog"
    finally:
        for pid, started in ((child, child_start), (watchdog, wd_start)):
            if pid is not None and alive(pid, started):
                os.kill(pid, signal.SIGKILL)
    report = json.loads((tmp_path / REPORT_JSON).read_text())
    assert report["engine"] == [f"process group {child}: terminated"]
    assert report["teardown"] is None  # the stand-in never said it provisioned


def test_an_engine_child_is_heard_until_it_ends() -> None:
    seen, _ = listen(
        [
            '{"event": "provision"}',
            '{"event": "engine", "pgid": 41, "start": 7}',
            '{"event": "engine", "pgid": 42, "start": 8}',
            '{"event": "engine-done", "pgid": 41}',
            '{"event": "engine", "pgid": "x"}',
        ]
    )
    assert seen.engine_groups == {42: 8}
    assert seen.phase == "provision"  # an engine child is no phase


def test_the_suite_group_kill_refuses_what_it_cannot_prove_is_the_suite() -> None:
    assert kill_suite_group(0, None) == "refused"
    assert kill_suite_group(1, None) == "refused"
    assert kill_suite_group(os.getpgrp(), start_time(os.getpgrp())) == "refused"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], process_group=0)
    try:
        started = start_time(other.pid)
        assert started is not None
        # A group whose leader started at another time is some other process's (pid reused)
        assert kill_suite_group(other.pid, started + 1) == "not-ours"
        assert kill_suite_group(other.pid, None) == "not-ours"
        assert other.poll() is None
        assert kill_suite_group(other.pid, started, grace_s=5.0) == "terminated"
        assert other.wait(timeout=5) == -signal.SIGTERM
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()
    assert kill_suite_group(other.pid, started) == "gone"


def test_a_pool_claim_is_heard() -> None:
    seen, reason = listen(['{"event": "provision"}', '{"event": "claimed", "stack": "p-1"}'])
    assert seen.claimed and seen.provisioning and reason is None
    assert not listen(['{"event": "provision"}'])[0].claimed


@pytest.mark.parametrize(
    ("lines", "phase", "provisioning", "pgid", "disarmed"),
    [
        ([], "armed", False, None, None),
        (['{"event": "provision"}'], "provision", True, None, None),
        (
            ['{"event": "provision"}', "not json", "[1]", '{"event": 3}'],
            "provision",
            True,
            None,
            None,
        ),
        (
            ['{"event": "provision"}', '{"event": "suite", "pgid": 42, "start": 7}'],
            "suite",
            True,
            42,
            None,
        ),
        (
            ['{"event": "suite", "pgid": 42}', '{"event": "suite-done"}'],
            "suite-done",
            False,
            None,
            None,
        ),
        (['{"event": "suite", "pgid": "x"}'], "suite", False, None, None),
        (
            ['{"event": "provision"}', '{"event": "disarm", "reason": "kept"}', '{"event": "x"}'],
            "provision",
            True,
            None,
            "kept",
        ),
    ],
)
def test_listen_reads_what_ci_said(
    lines: list[str], phase: str, provisioning: bool, pgid: int | None, disarmed: str | None
) -> None:
    seen, reason = listen(io.StringIO("".join(line + "\n" for line in lines)))
    assert (seen.phase, seen.provisioning, seen.suite_pgid, reason) == (
        phase,
        provisioning,
        pgid,
        disarmed,
    )


def test_the_spec_goes_over_the_pipe_whole(tmp_path: Path) -> None:
    spec = WatchdogSpec(
        ci_pid=1234,
        ci_start=99,
        settings=Settings(project_dir=tmp_path, protected_patterns=("x*",)),
        branch="b",
        stack="b",
        target="local",
        engine="inprocess",
        report_dir=str(tmp_path),
        keep=True,
    )
    assert WatchdogSpec.decode(spec.encode() + "\n") == spec


def test_a_watchdog_that_cannot_log_is_said_and_the_run_goes_on(tmp_path: Path) -> None:
    said: list[str] = []
    spec = WatchdogSpec(
        ci_pid=os.getpid(),
        ci_start=None,
        settings=Settings(project_dir=tmp_path),
        branch="b",
        stack="b",
        target="local",
        engine="inprocess",
        report_dir=str(tmp_path / "missing"),
    )
    assert Watchdog.arm(spec, env=os.environ, say=said.append) is None
    assert len(said) == 1 and "no watchdog" in said[0] and "TTL" in said[0]
