"""The reference suite's fault tests really inject faults: they pass against a stack, and they
FAIL when the proxy is bypassed (a conftest that hands out a proxy without rewiring the
function). Runs through `run_test`, the core of `branchenv test`, on one stack for the module."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from branchenv import provision
from branchenv.config import Settings, load_settings
from branchenv.harness.flow import run_test
from branchenv.harness.publish import RunOutcome
from branchenv.localcloud import LocalCloud
from tests.conftest import subprocess_env
from tests.e2e.conftest import make_project

BRANCH = "ref-suite"
FAULT_TESTS = {
    "test_pass_mode_serves_through_the_proxy",
    "test_dependency_fault_fails_fast_then_recovers[latency]",
    "test_dependency_fault_fails_fast_then_recovers[reset]",
    "test_dependency_fault_fails_fast_then_recovers[down]",
}

BYPASS = '''

@pytest.fixture(scope="module")
def branchenv_fault_proxy(branchenv_target):
    """BYPASSED: a real proxy in front of the local cloud, but the function is not rewired to
    it, so the service talks to DynamoDB directly."""
    import urllib.parse

    from branchenv.harness.faults import FaultProxy

    url = urllib.parse.urlsplit(branchenv_target.endpoint_url)
    proxies = []

    def make(dependency="dynamodb", function_name=None):
        proxies.append(FaultProxy((url.hostname, url.port)).start())
        return proxies[-1]

    yield make
    for proxy in proxies:
        proxy.stop()
'''


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    project = make_project(tmp_path_factory.mktemp("refsuite"))
    settings = load_settings(cwd=project.root, env={})
    ctx = provision.resolve(settings, branch=BRANCH, target=None, engine=None, env={})
    try:
        provision.up(ctx)
        yield settings
    finally:
        try:
            provision.down(ctx)
        finally:
            LocalCloud(settings.state_path).stop()


def run(settings: Settings, suite: Path, report_dir: Path) -> tuple[RunOutcome, list[str]]:
    lines: list[str] = []
    outcome = run_test(
        settings,
        branch=BRANCH,
        suite=suite,
        report_dir=report_dir,
        env=subprocess_env(),
        on_output=lines.append,
    )
    return outcome, lines


def test_fault_tests_pass_against_the_stack(stack: Settings, tmp_path: Path) -> None:
    suite = stack.program_path / "tests" / "test_faults.py"
    outcome, lines = run(stack, suite, tmp_path)
    log = "\n".join(lines)
    assert outcome.status == "passed", log
    counts = outcome.counts
    assert {c.name for c in counts.cases if c.outcome == "passed"} == FAULT_TESTS, log
    assert outcome.exit_code == 0 and outcome.time_to_ready_s is not None


def test_fault_tests_fail_when_the_proxy_is_bypassed(stack: Settings, tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    shutil.copytree(stack.program_path / "tests", suite)
    with (suite / "conftest.py").open("a") as fh:
        fh.write(BYPASS)
    outcome, lines = run(stack, suite / "test_faults.py", tmp_path / "reports")
    log = "\n".join(lines)
    assert outcome.status == "failed" and outcome.exit_code == 1, log
    counts = outcome.counts
    assert {c.name for c in counts.cases if c.outcome == "failed"} == FAULT_TESTS, log
    # and they fail for the right reason: no traffic through the proxy, no 503
    messages = " ".join(c.message or "" for c in counts.cases)
    assert "bytes_up" in messages and "503" in messages
