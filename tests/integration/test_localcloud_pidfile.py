"""No signal ever goes to a process that is not provably our local cloud (issue 15, item 1).

A pidfile is input like any other: it may hold ``-1``, ``0``, ``1``, a huge number, garbage, or
the pid of an unrelated live process. ``kill(-1, sig)`` signals every process we may signal and
``kill(0, sig)`` our own process group, so these tests record every ``os.kill`` the local cloud
module makes instead of letting it reach the kernel, and fail on any non-probe signal to a pid
that is not a verified server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from branchenv.errors import LocalCloudError
from branchenv.localcloud import LocalCloud
from branchenv.localcloud import server as server_mod

_REAL_KILL = os.kill  # the tests below replace os.kill; their clean-up must still reach the kernel

BAD_PIDFILES = [
    "-1",
    "0",
    "1",
    "-42",
    "99999999999999999999",
    "4194305",  # above the kernel's pid_max ceiling
    "abc",
    "",
    "12abc",
    "1e3",
    "0x10",
    "\x00\x01",
    " -1 ",
]


class KillRecorder:
    """Replaces ``os.kill`` in the server module: records each call; probes (signal 0) of
    positive pids go to the kernel, everything else is only recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []
        self.real_kill = _REAL_KILL

    def __call__(self, pid: int, sig: int) -> None:
        self.calls.append((pid, sig))
        if sig == 0 and pid > 0:
            self.real_kill(pid, 0)

    def signals(self) -> list[tuple[int, int]]:
        return [(pid, sig) for pid, sig in self.calls if sig != 0]


@pytest.fixture
def kills(monkeypatch: pytest.MonkeyPatch) -> KillRecorder:
    recorder = KillRecorder()
    monkeypatch.setattr(server_mod.os, "kill", recorder)
    monkeypatch.setattr(server_mod.os, "killpg", lambda *a: recorder.calls.append(a))
    return recorder


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    """A live process that is not a local cloud."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield proc
    finally:
        _REAL_KILL(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.parametrize("content", BAD_PIDFILES)
def test_stop_never_signals_a_bad_pid(tmp_path: Path, kills: KillRecorder, content: str) -> None:
    cloud = LocalCloud(tmp_path)
    cloud.dir.mkdir(parents=True)
    cloud.pid_path.write_text(content)
    cloud.info_path.write_text(json.dumps({"pid": content}))

    status = cloud.stop()

    assert not status.running
    assert kills.signals() == []
    assert not any(pid <= 1 for pid, _ in kills.calls), kills.calls


@pytest.mark.parametrize("content", ["-1", "0", "1", "99999999999999999999"])
def test_status_and_start_never_signal_a_bad_pid(
    tmp_path: Path, kills: KillRecorder, content: str
) -> None:
    cloud = LocalCloud(tmp_path)
    cloud.dir.mkdir(parents=True)
    cloud.pid_path.write_text(content)
    assert not cloud.status().running
    started = cloud.start()
    try:
        assert started.running and started.pid and started.pid > 1
        assert not any(pid <= 1 for pid, _ in kills.calls), kills.calls
    finally:
        server_mod.os.kill = kills.real_kill  # let stop reach our server
        cloud.stop()


def test_a_live_process_that_is_not_ours_is_never_signalled(
    tmp_path: Path, kills: KillRecorder, bystander: subprocess.Popen[bytes]
) -> None:
    cloud = LocalCloud(tmp_path)
    cloud.dir.mkdir(parents=True)
    cloud.pid_path.write_text(str(bystander.pid))
    cloud.info_path.write_text(json.dumps({"pid": bystander.pid}))

    assert "stale" in (cloud.stop().note or "")

    assert kills.signals() == []
    assert bystander.poll() is None


def test_unreadable_cmdline_is_not_proof_of_ownership(
    tmp_path: Path,
    kills: KillRecorder,
    bystander: subprocess.Popen[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without /proc (or with its cmdline unreadable) nothing proves the pid is our server:
    it must be treated as not ours, never as "alive, so ours"."""
    cloud = LocalCloud(tmp_path)
    cloud.dir.mkdir(parents=True)
    cloud.pid_path.write_text(str(bystander.pid))

    def unreadable(pid: int) -> list[str] | None:
        return None

    monkeypatch.setattr(server_mod, "_cmdline", unreadable)
    assert server_mod._is_our_server(bystander.pid, cloud.dir) is False
    cloud.stop()
    assert kills.signals() == []
    assert bystander.poll() is None


def test_our_own_pid_or_group_is_never_signalled(tmp_path: Path, kills: KillRecorder) -> None:
    cloud = LocalCloud(tmp_path)
    cloud.dir.mkdir(parents=True)
    for pid in (os.getpid(), os.getpgid(0)):
        cloud.pid_path.write_text(str(pid))
        cloud.stop()
    assert kills.signals() == []


def test_terminate_refuses_a_pid_that_is_not_a_verified_server(
    tmp_path: Path, kills: KillRecorder, bystander: subprocess.Popen[bytes]
) -> None:
    cloud = LocalCloud(tmp_path)
    for pid in (-1, 0, 1, bystander.pid):
        cloud._terminate(pid)
    assert kills.signals() == []
    assert bystander.poll() is None


def test_a_garbage_pidfile_while_the_cloud_runs_does_not_start_a_second_server(
    tmp_path: Path,
) -> None:
    cloud = LocalCloud(tmp_path)
    first = cloud.start()
    assert first.pid is not None
    try:
        for garbage in ("garbage", "-1", ""):
            cloud.pid_path.write_text(garbage)
            again = cloud.start()
            assert again.running
            assert again.pid == first.pid and again.port == first.port, garbage
            assert cloud.pid_path.read_text().strip() == str(first.pid)  # repaired
    finally:
        stopped = cloud.stop()
    assert not stopped.running
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and server_mod._pid_alive(first.pid):
        time.sleep(0.05)
    assert not server_mod._pid_alive(first.pid)


def test_a_lost_pidfile_while_the_cloud_runs_is_recovered_and_stop_stops_it(
    tmp_path: Path,
) -> None:
    cloud = LocalCloud(tmp_path)
    first = cloud.start()
    assert first.pid is not None
    cloud.pid_path.unlink()
    try:
        status = cloud.status()
        assert status.running and status.pid == first.pid
    finally:
        cloud.stop()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and server_mod._pid_alive(first.pid):
        time.sleep(0.05)
    assert not server_mod._pid_alive(first.pid)


@pytest.mark.parametrize(
    "info",
    ["[1, 2]", '"text"', "null", "{", '{"pid": "x", "endpoint_url": 5}', "\xff\xfe"],
)
def test_malformed_server_json_is_stale_not_a_traceback(tmp_path: Path, info: str) -> None:
    cloud = LocalCloud(tmp_path)
    cloud.dir.mkdir(parents=True)
    cloud.pid_path.write_text(str(os.getpid()))
    cloud.info_path.write_bytes(info.encode("utf-8", "surrogateescape"))
    status = cloud.status()
    assert not status.running


def test_status_never_probes_a_host_off_loopback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """server.json is a file anyone could write: its URL is checked to be loopback before any
    request goes out."""
    probed: list[str] = []
    monkeypatch.setattr(server_mod, "_answers", lambda url, timeout=1.0: probed.append(url))
    monkeypatch.setattr(server_mod, "_is_our_server", lambda pid, state_dir=None: True)
    cloud = LocalCloud(tmp_path)
    cloud.dir.mkdir(parents=True)
    cloud.pid_path.write_text(str(os.getpid()))
    for url in ("http://evil.example:80", "http://127.evil.example:1", "http://10.0.0.1:5"):
        cloud.info_path.write_text(json.dumps({"pid": os.getpid(), "endpoint_url": url}))
        assert not cloud.status().running
    assert probed == []


def test_start_refuses_when_a_server_holds_the_dir_but_cannot_be_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server holding this state dir whose pid cannot be proven (pidfile and server.json
    both garbage): starting a second, untracked server is refused with the fix."""
    cloud = LocalCloud(tmp_path)
    first = cloud.start()
    try:
        cloud.pid_path.write_text("garbage")
        cloud.info_path.write_text("[1,2]")
        with pytest.raises(LocalCloudError, match="already holds"):
            cloud.start()
    finally:
        # server.json is gone: stop finds the server through the liveness lock's holder.
        cloud.stop()
    assert first.pid is not None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and server_mod._pid_alive(first.pid):
        time.sleep(0.05)
    assert not server_mod._pid_alive(first.pid)


def test_signal_0_probe_of_a_bad_pid_is_never_made(tmp_path: Path, kills: KillRecorder) -> None:
    assert server_mod._pid_alive(-1) is False
    assert server_mod._pid_alive(0) is False
    assert server_mod._pid_alive(1) is False
    assert not any(pid <= 1 for pid, _ in kills.calls)
    assert signal.SIGTERM not in [sig for _, sig in kills.calls]


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("http://127.0.0.1:4566", True),
        ("http://127.1.2.3:4566", True),
        ("http://localhost:4566", True),
        ("http://[::1]:4566", True),
        ("http://127.evil.example:4566", False),
        ("http://127.0.0.1.evil.example:4566", False),
        ("http://10.0.0.1:4566", False),
        ("http://[::1", False),
    ],
)
def test_a_local_target_only_ever_talks_to_loopback(url: str, ok: bool) -> None:
    from branchenv.errors import SafetyRefusal
    from branchenv.targets import Target

    target = Target(name="local", region="us-east-1", endpoint_url=url)
    if ok:
        assert target.local_endpoint() == url
    else:
        with pytest.raises(SafetyRefusal):
            target.local_endpoint()
