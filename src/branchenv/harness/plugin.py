"""branchenv's pytest plugin (registered through the ``pytest11`` entry point).

It loads in every pytest run of an environment where branchenv is installed, so it is cheap to
import (standard library and pytest only at import time) and inert until a stack is selected:

- ``--branchenv-stack-file PATH`` or ``BRANCHENV_STACK_FILE=PATH``: a stack file written by
  ``branchenv test`` / ``branchenv ci`` (see :mod:`branchenv.harness.stackfile`);
- ``--branchenv-branch NAME``: resolve the branch's stack from the project in the current
  directory (settings, target and engine as `branchenv outputs` would).

Without either, every fixture below skips its test with the reason, so suites that mix
unit tests and stack tests still run.

Fixtures (all names start with ``branchenv_``):

=============================  ===========  ====================================================
fixture                        scope        value
=============================  ===========  ====================================================
``branchenv_stack``            session      :class:`~branchenv.harness.stackfile.StackInfo`:
                                            stack, branch, target, outputs, metadata
``branchenv_outputs``          session      the stack's outputs (dict)
``branchenv_endpoints``        session      outputs named ``endpoint`` / ``*_endpoint`` (dict)
``branchenv_endpoint``         session      the ``endpoint`` output (or the only endpoint)
``branchenv_target``           session      :class:`branchenv.targets.Target`
``branchenv_boto3_session``    session      a boto3 session bound to the target and region
                                            (on the local cloud its clients default to the
                                            local endpoint, with dummy credentials)
``branchenv_http``             session      ``requests.Session``: default timeout (10 s,
                                            ``--branchenv-http-timeout``),
                                            relative URLs joined to ``branchenv_endpoint``
``branchenv_latency``          session      ``probe(call, n=50, name=...) -> LatencyStats``;
                                            each probe also goes into the run's report
``branchenv_slo``              session      :class:`Slo` (``latency_p95_ms`` from the project's
                                            settings, or ``--branchenv-latency-p95-ms``)
``branchenv_contract``         session      :func:`branchenv.harness.contracts.check_contract`
``branchenv_fault_proxy``      module       ``make(dependency="dynamodb", function_name=None)
                                            -> FaultProxy`` routing the stack's function's calls
                                            to that dependency through a fault proxy (local
                                            target only) until the module ends
=============================  ===========  ====================================================

When the stack file does not say the stack was found ready, ``branchenv_stack`` first waits
for readiness (:mod:`branchenv.harness.readiness`, ``--branchenv-ready-timeout``).
``--branchenv-report PATH`` writes the run's latency probes and time-to-ready as JSON (what
``branchenv test`` turns into its Markdown summary).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from branchenv.harness.stackfile import STACK_FILE_ENV, StackFileError, StackInfo, read_stack_file

if TYPE_CHECKING:
    import boto3
    import requests

    from branchenv.harness.faults import FaultProxy
    from branchenv.harness.latency import LatencyStats
    from branchenv.targets import Target

NO_STACK_REASON = (
    "no branchenv stack selected: run the suite with `branchenv test`, or pass "
    f"--branchenv-stack-file PATH (or set {STACK_FILE_ENV}), or --branchenv-branch NAME"
)


@dataclasses.dataclass(frozen=True)
class Slo:
    """Service-level objectives the suite checks against."""

    latency_p95_ms: int


@dataclasses.dataclass
class _State:
    """What the plugin keeps for one pytest session."""

    stack_file: Path | None = None
    branch: str | None = None
    stack: StackInfo | None = None
    error: str | None = None
    ready_s: float | None = None
    latency: list[LatencyStats] = dataclasses.field(default_factory=list)
    running: dict[str, None] = dataclasses.field(default_factory=dict)
    """Tests started and not finished yet, in start order: what a signal leaves here is
    reported as ``unfinished`` (the JUnit report leaves such a test nameless and passed)."""


_STATE = pytest.StashKey[_State]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("branchenv", "branchenv: run against a branch stack")
    group.addoption(
        "--branchenv-stack-file",
        metavar="PATH",
        default=None,
        help=f"stack file written by `branchenv test` (or set {STACK_FILE_ENV}).",
    )
    group.addoption(
        "--branchenv-branch",
        metavar="NAME",
        default=None,
        help="resolve this branch's stack from the project in the current directory.",
    )
    group.addoption(
        "--branchenv-latency-p95-ms",
        metavar="MS",
        type=int,
        default=None,
        help="p95 latency objective (default: the stack file's, from latency_p95_ms).",
    )
    group.addoption(
        "--branchenv-ready-timeout",
        metavar="S",
        type=float,
        default=60.0,
        help="seconds to wait for the stack to be ready when the stack file does not say so.",
    )
    group.addoption(
        "--branchenv-http-timeout",
        metavar="S",
        type=float,
        default=10.0,
        help="default timeout in seconds of each branchenv_http request (default 10).",
    )
    group.addoption(
        "--branchenv-report",
        metavar="PATH",
        default=None,
        help="write latency probes and time-to-ready of this run as JSON to PATH.",
    )
    group.addoption(
        "--branchenv-go-fd",
        metavar="FD",
        type=int,
        default=None,
        help="(set by `branchenv test`/`ci`) start up, then wait for the stack to be ready: "
        "the session starts once 'go' arrives on this file descriptor.",
    )


def pytest_configure(config: pytest.Config) -> None:
    state = _State()
    path = config.getoption("--branchenv-stack-file") or os.environ.get(STACK_FILE_ENV) or None
    state.stack_file = Path(path) if path else None
    state.branch = config.getoption("--branchenv-branch")
    if state.stack_file is not None and state.branch is not None:
        raise pytest.UsageError(
            "give either --branchenv-stack-file (or BRANCHENV_STACK_FILE) or --branchenv-branch, "
            "not both"
        )
    config.stash[_STATE] = state
    config.pluginmanager.register(_RunningTests(state), "branchenv-running-tests")
    if _gate(config) is None:
        _read_stack(state)


def _gate(config: pytest.Config) -> int | None:
    """The descriptor `branchenv test`/`ci` opens the session with, in the controlling process
    only (xdist workers start after the session does, so they read the stack file at once)."""
    gate: int | None = config.getoption("--branchenv-go-fd", None)
    return None if hasattr(config, "workerinput") else gate


def _read_stack(state: _State) -> None:
    if state.stack_file is not None:
        try:
            state.stack = read_stack_file(state.stack_file)
        except StackFileError as exc:
            raise pytest.UsageError(str(exc)) from None


class _RunningTests:
    """Keeps ``_State.running``. The log hooks, not the run protocol, so that under xdist the
    controller (which writes the report) sees every worker's tests start and finish."""

    def __init__(self, state: _State) -> None:
        self.state = state

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.state.running[nodeid] = None

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        self.state.running.pop(nodeid, None)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """With ``--branchenv-go-fd``: the interpreter, pytest, its plugins and the conftests have
    started while branchenv waited for the stack to be ready; the session (collection, xdist
    workers, tests) starts once 'go' arrives, and then the stack file is read. End of file
    without it (readiness failed, branchenv stopped or died) ends the run before any test."""
    gate = _gate(session.config)
    if gate is None:
        return
    got = b""
    try:
        while chunk := os.read(gate, 16):
            got += chunk
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            os.close(gate)
    if got.strip() != b"go":
        pytest.exit("branchenv: the stack was not found ready; no test ran", returncode=2)
    _read_stack(_state(session.config))


def _state(config: pytest.Config) -> _State:
    return config.stash[_STATE]


def _resolve_branch(branch: str) -> StackInfo:
    """The stack of ``branch`` in the project around the current directory."""
    from branchenv import provision
    from branchenv.config import load_settings
    from branchenv.harness.stackfile import TargetInfo, metadata_to_json

    settings = load_settings()
    ctx = provision.resolve(settings, branch=branch, target=None, engine=None)
    outputs = provision.outputs(ctx)
    metadata = ctx.engine.metadata(stack=ctx.names.stack, program=ctx.program)
    t = ctx.target
    return StackInfo(
        stack=ctx.names.stack,
        branch=ctx.branch.name,
        target=TargetInfo(t.name, t.region, t.endpoint_url, t.functions_url),
        outputs=outputs,
        metadata=metadata_to_json(metadata),
        latency_p95_ms=settings.latency_p95_ms,
    )


@pytest.fixture(scope="session")
def branchenv_stack(request: pytest.FixtureRequest) -> StackInfo:
    """The selected branch stack; skips the test when none is selected."""
    state = _state(request.config)
    if state.stack is None:
        if state.error is not None:
            pytest.fail(state.error, pytrace=False)
        if state.branch is None:
            pytest.skip(NO_STACK_REASON)
        from branchenv.errors import BranchenvError

        try:
            state.stack = _resolve_branch(state.branch)
        except BranchenvError as exc:
            state.error = f"--branchenv-branch {state.branch}: {exc}"
            pytest.fail(state.error, pytrace=False)
    stack = state.stack
    if stack.ready_s is not None:
        state.ready_s = stack.ready_s
    elif state.ready_s is None:
        from branchenv.errors import BranchenvError
        from branchenv.harness.clients import to_target
        from branchenv.harness.readiness import checks_for_stack, wait_ready

        try:
            report = wait_ready(
                checks_for_stack(stack.outputs, to_target(stack.target)),
                deadline_s=float(request.config.getoption("--branchenv-ready-timeout")),
            )
        except BranchenvError as exc:
            state.error = str(exc)
            pytest.fail(state.error, pytrace=False)
        state.ready_s = report.seconds
    return stack


@pytest.fixture(scope="session")
def branchenv_outputs(branchenv_stack: StackInfo) -> dict[str, Any]:
    """The stack's outputs."""
    return dict(branchenv_stack.outputs)


def endpoints_of(outputs: dict[str, Any]) -> dict[str, str]:
    """Outputs that are HTTP endpoints: named ``endpoint`` or ``*_endpoint``."""
    return {
        k: v
        for k, v in sorted(outputs.items())
        if (k == "endpoint" or k.endswith("_endpoint"))
        and isinstance(v, str)
        and v.startswith(("http://", "https://"))
    }


@pytest.fixture(scope="session")
def branchenv_endpoints(branchenv_stack: StackInfo) -> dict[str, str]:
    """The stack's HTTP endpoints by output name."""
    return endpoints_of(branchenv_stack.outputs)


@pytest.fixture(scope="session")
def branchenv_endpoint(branchenv_endpoints: dict[str, str]) -> str:
    """The ``endpoint`` output, or the stack's only endpoint."""
    if "endpoint" in branchenv_endpoints:
        return branchenv_endpoints["endpoint"]
    if len(branchenv_endpoints) == 1:
        return next(iter(branchenv_endpoints.values()))
    pytest.fail(
        "the stack has no single endpoint: it exports "
        f"{sorted(branchenv_endpoints) or 'no endpoint outputs'}; use branchenv_endpoints[name]",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def branchenv_target(branchenv_stack: StackInfo) -> Target:
    """Where the stack lives, as a :class:`branchenv.targets.Target`."""
    from branchenv.harness.clients import to_target

    return to_target(branchenv_stack.target)


@pytest.fixture(scope="session")
def branchenv_boto3_session(branchenv_target: Target) -> boto3.Session:
    """A boto3 session bound to the stack's target and region."""
    from branchenv.harness.clients import target_session

    return target_session(branchenv_target)


@pytest.fixture(scope="session")
def branchenv_http(
    branchenv_endpoint: str, request: pytest.FixtureRequest
) -> Iterator[requests.Session]:
    """HTTP client for the stack: default timeout, relative URLs joined to the endpoint."""
    from branchenv.harness.clients import http_session

    timeout = float(request.config.getoption("--branchenv-http-timeout"))
    session = http_session(branchenv_endpoint, timeout=timeout)
    try:
        yield session
    finally:
        session.close()


@pytest.fixture(scope="session")
def branchenv_slo(branchenv_stack: StackInfo, request: pytest.FixtureRequest) -> Slo:
    """The objectives to check: ``--branchenv-latency-p95-ms`` or the stack file's setting."""
    override = request.config.getoption("--branchenv-latency-p95-ms")
    return Slo(latency_p95_ms=int(override) if override else branchenv_stack.latency_p95_ms)


@pytest.fixture(scope="session")
def branchenv_latency(request: pytest.FixtureRequest) -> Callable[..., LatencyStats]:
    """``probe(call, n=50, name="probe", ok=...)``: time ``n`` calls; recorded for the report."""
    from branchenv.harness.latency import probe

    state = _state(request.config)

    def run(call: Callable[[], Any], n: int = 50, name: str = "probe", **kw: Any) -> LatencyStats:
        stats = probe(call, n=n, name=name, **kw)
        state.latency.append(stats)
        return stats

    return run


@pytest.fixture(scope="session")
def branchenv_contract() -> Callable[..., Any]:
    """:func:`branchenv.harness.contracts.check_contract`."""
    from branchenv.harness.contracts import check_contract

    return check_contract


@pytest.fixture(scope="module")
def branchenv_fault_proxy(
    branchenv_stack: StackInfo, branchenv_target: Target
) -> Iterator[Callable[..., FaultProxy]]:
    """``make(dependency="dynamodb", function_name=None) -> FaultProxy``.

    Puts a fault proxy between the stack's function (``function_name`` output by default) and
    one dependency until the end of the module; calling ``make`` again for the same pair returns
    the same proxy, switched back to ``PASS``. Skips on a target other than local.
    """
    from branchenv.harness.faults import FaultMode, proxied_dependency

    if not branchenv_target.is_local:
        pytest.skip("fault injection through a proxy needs the local target (--target local)")
    active: dict[tuple[str, str], FaultProxy] = {}
    with contextlib.ExitStack() as stack:

        def make(dependency: str = "dynamodb", function_name: str | None = None) -> FaultProxy:
            name = function_name or branchenv_stack.outputs.get("function_name")
            if not name:
                pytest.fail(
                    "no function to inject faults into: the stack has no `function_name` "
                    "output; pass function_name=",
                    pytrace=False,
                )
            key = (str(name), dependency)
            if key not in active:
                active[key] = stack.enter_context(
                    proxied_dependency(
                        branchenv_target, function_name=str(name), dependency=dependency
                    )
                )
            proxy = active[key]
            proxy.set_mode(FaultMode.PASS)
            return proxy

        yield make


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None or not state.latency:
        return
    terminalreporter.section("branchenv latency")
    for s in state.latency:
        terminalreporter.write_line(
            f"{s.name}: n={s.count} errors={s.errors} p50={s.p50_ms:.1f} ms "
            f"p95={s.p95_ms:.1f} ms p99={s.p99_ms:.1f} ms"
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = config.stash.get(_STATE, None)
    target = config.getoption("--branchenv-report", None)
    if state is None or not target:
        return
    report = {
        "stack": state.stack.stack if state.stack else None,
        "ready_s": state.ready_s,
        "latency": [s.to_json() for s in state.latency],
        "unfinished": list(state.running),
    }
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """In the suite child of `branchenv test`/`ci` (the only caller passing
    ``--branchenv-report``), freeze what is left out of the garbage collector: the
    interpreter's last collection at exit walks every boto3 and requests object of the run,
    0.3 s before the parent learns the suite ended, for a process that is ending anyway."""
    if config.getoption("--branchenv-report", None):
        gc.freeze()
