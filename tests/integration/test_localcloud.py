"""The local cloud as a real background process, talked to over real HTTP by boto3."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from branchenv.errors import LocalCloudError
from branchenv.localcloud import LocalCloud
from tests.conftest import cli_result, subprocess_env


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    from branchenv.localcloud.server import _pid_alive

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_start_status_stop_and_idempotency(tmp_path: Path) -> None:
    cloud = LocalCloud(tmp_path)
    assert not cloud.status().running
    first = cloud.start()
    try:
        assert first.running and first.pid and first.port
        assert first.endpoint_url == f"http://127.0.0.1:{first.port}"
        assert (tmp_path / "localcloud" / "server.pid").read_text().strip() == str(first.pid)
        assert (tmp_path / "localcloud" / "server.log").exists()
        again = cloud.start()
        assert again.pid == first.pid and again.port == first.port
        assert again.note == "already running"
        assert cloud.status().running
    finally:
        stopped = cloud.stop()
    assert not stopped.running
    assert first.pid is not None and _wait_gone(first.pid)
    assert not (tmp_path / "localcloud" / "server.pid").exists()
    assert cloud.stop().note == "not running"  # stop twice is fine


def test_binds_only_loopback(tmp_path: Path) -> None:
    cloud = LocalCloud(tmp_path)
    st = cloud.start()
    try:
        ports = {st.port, st.functions_port}
        ours = []
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):  # an IPv6 wildcard bind counts too
            with open(table) as fh:
                rows = fh.read().splitlines()[1:]
            listening = [r.split() for r in rows if r.split()[3] == "0A"]  # 0A = LISTEN
            ours += [r for r in listening if int(r[1].split(":")[1], 16) in ports]
        assert len(ours) == 2
        assert all(r[1].split(":")[0] == "0100007F" for r in ours)  # 127.0.0.1, nothing else
    finally:
        cloud.stop()


def test_stale_pidfile_is_recovered(tmp_path: Path) -> None:
    cloud = LocalCloud(tmp_path)
    cloud.dir.mkdir(parents=True)
    # A pid that certainly is not our server: a process that has already exited.
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    cloud.pid_path.write_text(str(proc.pid))
    cloud.info_path.write_text(json.dumps({"pid": proc.pid, "port": 1}))
    status = cloud.status()
    assert not status.running and status.note and "stale pidfile" in status.note
    started = cloud.start()
    try:
        assert started.running and started.pid != proc.pid
        assert started.note and "stale" in started.note
    finally:
        cloud.stop()


def test_killed_server_is_detected_and_restarted(tmp_path: Path) -> None:
    cloud = LocalCloud(tmp_path)
    first = cloud.start()
    assert first.pid is not None
    os.kill(first.pid, signal.SIGKILL)
    assert _wait_gone(first.pid)
    assert not cloud.status().running
    second = cloud.start()
    try:
        assert second.running and second.pid != first.pid
    finally:
        cloud.stop()


def test_start_failure_is_reported_with_log(tmp_path: Path) -> None:
    # A state dir that cannot hold the server's files makes the child fail at once.
    cloud = LocalCloud(tmp_path, start_timeout_s=5)
    cloud.dir.mkdir(parents=True)
    (cloud.dir / "functions").write_text("not a directory")
    (cloud.dir / "server.json.tmp").mkdir()  # the child cannot write its info file
    with pytest.raises(LocalCloudError, match=r"server\.log"):
        cloud.start()
    assert not cloud.pid_path.exists()


def test_boto3_talks_to_it_over_http(local_cloud: object) -> None:
    from branchenv.targets import Target

    assert isinstance(local_cloud, Target)
    s3 = local_cloud.client("s3")
    sqs = local_cloud.client("sqs")
    s3.create_bucket(Bucket="lc-test-bucket")
    url = sqs.create_queue(QueueName="lc-test-queue")["QueueUrl"]
    assert "lc-test-bucket" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert url in sqs.list_queues(QueueNamePrefix="lc-test")["QueueUrls"]
    # And it really is HTTP on loopback: the endpoint the client used.
    assert s3.meta.endpoint_url.startswith("http://127.0.0.1:")
    s3.delete_bucket(Bucket="lc-test-bucket")
    sqs.delete_queue(QueueUrl=url)


def test_status_says_whether_the_server_makes_conditional_writes_atomic(
    local_cloud: object, local_cloud_dir: Path
) -> None:
    # A server started by this branchenv records it in server.json; one started by an older
    # version (still running: the server outlives commands) records nothing and is not taken
    # for atomic, so the pool's claim keeps its settle there.
    from branchenv.localcloud.fidelity import ATOMIC_CONDITIONAL_WRITES

    cloud = LocalCloud(local_cloud_dir)
    status = cloud.status()
    assert status.running and status.atomic_conditional_writes
    assert status.target().atomic_conditional_writes
    original = cloud.info_path.read_bytes()
    try:
        info = json.loads(original)
        del info[ATOMIC_CONDITIONAL_WRITES]
        cloud.info_path.write_text(json.dumps(info))
        older = cloud.status()
        assert older.running and not older.atomic_conditional_writes
        assert not older.target().atomic_conditional_writes
    finally:
        cloud.info_path.write_bytes(original)


def test_cli_cloud_commands(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "branchenv"
    (tmp_path / "branchenv.toml").write_text('state_dir = ".state"\n')
    env = subprocess_env()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(exe), "cloud", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    started = run("start", "--json")
    try:
        assert started.returncode == 0, started.stderr
        info = cli_result(started.stdout)
        assert info["running"] is True and info["endpoint_url"].startswith("http://127.0.0.1:")
        assert (tmp_path / ".state" / "localcloud" / "server.pid").exists()
        # The server outlives the command that started it.
        status = cli_result(run("status", "--json").stdout)
        assert status["running"] is True and status["pid"] == info["pid"]
        human = run("status")
        assert "running" in human.stdout
    finally:
        stopped = run("stop", "--json")
    assert stopped.returncode == 0
    assert cli_result(stopped.stdout)["running"] is False
    assert _wait_gone(info["pid"])
    assert run("stop").returncode == 0


def test_another_projects_local_cloud_is_never_taken_for_ours(tmp_path: Path) -> None:
    """A pidfile naming a live local cloud of another project (a reused pid, a copied state
    dir) is stale for us: start does not adopt it and stop does not kill it."""
    theirs = LocalCloud(tmp_path / "theirs")
    ours = LocalCloud(tmp_path / "ours")
    other = theirs.start()
    try:
        ours.dir.mkdir(parents=True)
        ours.pid_path.write_text(str(other.pid))
        ours.info_path.write_text(theirs.info_path.read_text())
        assert not ours.status().running
        assert "stale" in (ours.stop().note or "")
        assert theirs.status().running  # untouched by our stop
        mine = ours.start()
        try:
            assert mine.running and mine.pid != other.pid and mine.port != other.port
        finally:
            ours.stop()
        assert theirs.status().running
    finally:
        theirs.stop()
