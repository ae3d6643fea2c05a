"""The pytest plugin in a real pytest subprocess: inert without a stack, every fixture bound to
the stack with one (a bucket on the local cloud and a tiny HTTP service on loopback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from branchenv.harness.stackfile import StackInfo, TargetInfo, write_stack_file
from tests.conftest import subprocess_env

USER_SUITE = """
import requests

def test_stack(branchenv_stack, branchenv_outputs, branchenv_target):
    assert branchenv_stack.stack == "plugin-test"
    assert branchenv_target.is_local and branchenv_target.region == "us-east-1"
    assert branchenv_outputs["bucket_name"].startswith("plugin-")

def test_endpoints(branchenv_endpoint, branchenv_endpoints):
    assert branchenv_endpoints == {"endpoint": branchenv_endpoint}

def test_boto3_session_is_bound_to_the_target(branchenv_boto3_session, branchenv_outputs):
    s3 = branchenv_boto3_session.client("s3")
    s3.head_bucket(Bucket=branchenv_outputs["bucket_name"])  # exists only on the local cloud
    assert branchenv_boto3_session.region_name == "us-east-1"

def test_http_client(branchenv_http):
    assert branchenv_http.get("/health").json() == {"path": "/health"}
    try:
        branchenv_http.get("/slow")
    except requests.Timeout:
        pass
    else:
        raise AssertionError("the default timeout did not apply")

def test_latency_and_slo(branchenv_latency, branchenv_http, branchenv_slo):
    stats = branchenv_latency(lambda: branchenv_http.get("/health"), n=5, name="health")
    assert stats.count == 5 and stats.errors == 0
    assert branchenv_slo.latency_p95_ms == 123

def test_contract(branchenv_contract, branchenv_http):
    body = branchenv_contract(branchenv_http.get("/health"), {"required": ["path"]}, status=200)
    assert body["path"] == "/health"
"""


class Service(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/slow":
            threading.Event().wait(3)
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Service)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def run_pytest(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", *args],
        cwd=cwd,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_plugin_is_cheap_to_import() -> None:
    code = (
        "import sys, branchenv.harness.plugin; "
        "print([m for m in ('boto3', 'requests', 'jsonschema', 'tenacity', 'moto', 'pulumi') "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_fixtures_skip_without_a_stack(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(USER_SUITE)
    (tmp_path / "test_plain.py").write_text("def test_plain():\n    assert True\n")
    proc = run_pytest(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed, 6 skipped" in proc.stdout
    assert "no branchenv stack selected" in proc.stdout and "--branchenv-stack-file" in proc.stdout


def test_missing_stack_file_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(USER_SUITE)
    proc = run_pytest(tmp_path, BRANCHENV_STACK_FILE=str(tmp_path / "nope.json"))
    assert proc.returncode == 4
    assert "does not exist" in proc.stderr


def test_fixtures_bind_to_the_stack(tmp_path: Path, local_cloud: Any, service: str) -> None:
    bucket = f"plugin-{uuid.uuid4().hex[:8]}"
    local_cloud.client("s3").create_bucket(Bucket=bucket)
    stack_file = write_stack_file(
        StackInfo(
            stack="plugin-test",
            branch="plugin/test",
            target=TargetInfo(
                local_cloud.name,
                local_cloud.region,
                local_cloud.endpoint_url,
                local_cloud.functions_url,
            ),
            outputs={"endpoint": service, "bucket_name": bucket, "max_receive_count": 3},
            latency_p95_ms=123,
            ready_s=None,  # not checked yet: the plugin waits for readiness itself
        ),
        tmp_path / "stack.json",
    )
    (tmp_path / "test_user.py").write_text(USER_SUITE)
    report = tmp_path / "report.json"
    proc = run_pytest(
        tmp_path,
        f"--branchenv-stack-file={stack_file}",
        f"--branchenv-report={report}",
        "--branchenv-http-timeout=0.5",  # /slow takes 3 s
    )
    try:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "6 passed" in proc.stdout
        assert "branchenv latency" in proc.stdout  # the terminal summary section
        data = json.loads(report.read_text())
        assert data["stack"] == "plugin-test" and data["ready_s"] is not None
        assert [p["name"] for p in data["latency"]] == ["health"]
        assert data["latency"][0]["count"] == 5
    finally:
        local_cloud.client("s3").delete_bucket(Bucket=bucket)


HELD_SUITE = """
from pathlib import Path

def test_ran(branchenv_stack):
    assert branchenv_stack.stack == "held-test"  # the file was written after this pytest began
    Path("ran").write_text("yes")
"""

HELD_CONFTEST = """
from pathlib import Path

def pytest_configure(config):
    Path("configured").write_text("yes")
"""


def _held(tmp_path: Path) -> tuple[Any, Any]:
    from branchenv.harness.suite import ReportPaths, start_held

    (tmp_path / "test_held.py").write_text(HELD_SUITE)
    (tmp_path / "conftest.py").write_text(HELD_CONFTEST)
    paths = ReportPaths.under(tmp_path / "reports")
    paths.report_dir.mkdir()
    held = start_held(tmp_path, paths, cwd=tmp_path, env=subprocess_env(), extra_args=["-q"])
    return held, paths


def _wait_for(path: Path, proc: Any) -> None:
    """Until ``path`` exists (the held child has started up), or the child ended early."""
    ended = threading.Event()
    while not path.exists() and proc.poll() is None and not ended.wait(0.05):
        pass
    assert path.exists(), "the held child never started up"


def test_a_held_child_starts_up_first_and_runs_its_session_only_after_go(tmp_path: Path) -> None:
    from branchenv.harness.suite import run_suite

    held, paths = _held(tmp_path)
    try:
        _wait_for(tmp_path / "configured", held.proc)
        # Started up (its conftest configured) with no stack file yet; nothing ran before go.
        assert not (tmp_path / "ran").exists() and not paths.junit.exists()
        write_stack_file(
            StackInfo(
                stack="held-test",
                branch="held/test",
                target=TargetInfo("local", "us-east-1", "http://127.0.0.1:9", None),
                outputs={},
                ready_s=0.5,
            ),
            paths.stack_file,
        )
        run = run_suite(tmp_path, paths, cwd=tmp_path, env=subprocess_env(), held=held)
    except BaseException:
        held.abandon()
        raise
    assert run.exit_code == 0
    assert (tmp_path / "ran").read_text() == "yes" and paths.junit.exists()


def test_the_gate_closed_without_go_ends_the_session_before_any_test(tmp_path: Path) -> None:
    """What a held pytest does when branchenv closes the gate (or dies) without 'go': exit 2."""
    (tmp_path / "test_held.py").write_text(HELD_SUITE)
    read_end, write_end = os.pipe()
    os.close(write_end)
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                f"--branchenv-go-fd={read_end}",
            ],
            cwd=tmp_path,
            env=subprocess_env(),
            capture_output=True,
            text=True,
            timeout=120,
            pass_fds=(read_end,),
        )
    finally:
        os.close(read_end)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no test ran" in proc.stdout + proc.stderr
    assert not (tmp_path / "ran").exists()


def test_an_abandoned_held_child_ends_before_any_test(tmp_path: Path) -> None:
    held, paths = _held(tmp_path)
    _wait_for(tmp_path / "configured", held.proc)
    held.abandon()  # readiness failed: no 'go'
    assert held.proc.returncode != 0
    assert not (tmp_path / "ran").exists() and not paths.junit.exists()
