"""Running a test suite against a stack: pytest in a subprocess, so the user's suite (its
imports, fixtures, monkeypatching) is isolated from branchenv's own process.

The child gets the stack through a stack file (``--branchenv-stack-file``), writes JUnit XML
(pytest's ``--junitxml``) and the plugin's JSON report (latency probes, time to ready). It runs
in its own process group, so a Ctrl-C at the terminal reaches branchenv only, which forwards
every delivery to the child's group (see :mod:`branchenv.harness.signals`) and waits for the
child to finish its own teardown before killing it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from branchenv.errors import UsageError
from branchenv.harness.latency import LatencyStats
from branchenv.harness.reports import mark_interrupted
from branchenv.harness.signals import CHILD_GRACE_S, SignalGuard

# pytest's exit codes
PYTEST_OK = 0
PYTEST_TESTS_FAILED = 1
PYTEST_INTERRUPTED = 2
PYTEST_INTERNAL_ERROR = 3
PYTEST_USAGE_ERROR = 4
PYTEST_NO_TESTS = 5


@dataclasses.dataclass(frozen=True)
class ReportPaths:
    """Where one run writes its files."""

    report_dir: Path
    junit: Path
    summary: Path
    stack_file: Path
    plugin_report: Path

    @classmethod
    def under(cls, report_dir: Path) -> ReportPaths:
        return cls(
            report_dir=report_dir,
            junit=report_dir / "junit.xml",
            summary=report_dir / "summary.md",
            stack_file=report_dir / "stack.json",
            plugin_report=report_dir / "pytest-report.json",
        )

    def clear(self) -> None:
        """Remove the files an earlier run left, so a run that fails before its tests can never
        report that run's results as its own."""
        for path in (self.junit, self.summary, self.stack_file, self.plugin_report):
            path.unlink(missing_ok=True)


def _signal_group(proc: subprocess.Popen[str], signum: int) -> None:
    """Signal pytest's whole process group (its xdist workers and any subprocess of a test),
    not only pytest itself."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signum)


@dataclasses.dataclass(frozen=True)
class SuiteRun:
    """A finished (or stopped) pytest child."""

    command: tuple[str, ...]
    exit_code: int | None
    duration_s: float
    latency: tuple[LatencyStats, ...]
    ready_s: float | None
    unfinished: tuple[str, ...] = ()
    """Node ids of the tests that started and never finished (a signal stopped them); they are
    marked interrupted in the JUnit report."""


def pytest_command(
    suite: Path, paths: ReportPaths, extra_args: Sequence[str] = (), *, gate: int | None = None
) -> list[str]:
    """The child's command line (``gate``: the descriptor its session waits on for 'go')."""
    return [
        sys.executable,
        "-m",
        "pytest",
        str(suite),
        f"--junitxml={paths.junit}",
        f"--branchenv-stack-file={paths.stack_file}",
        f"--branchenv-report={paths.plugin_report}",
        *([f"--branchenv-go-fd={gate}"] if gate is not None else []),
        *extra_args,
    ]


def bytecode_cache_dir(env: Mapping[str, str]) -> Path:
    """Where the suite's bytecode is cached when the environment forbids writing it next to the
    sources: shared by every project on this machine (``$XDG_CACHE_HOME/branchenv/pycache``),
    like the terraform provider cache, so a fresh checkout starts warm too."""
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "branchenv" / "pycache"


def suite_env(env: Mapping[str, str]) -> dict[str, str]:
    """The pytest child's environment.

    With ``PYTHONDONTWRITEBYTECODE`` set (and no ``PYTHONPYCACHEPREFIX`` of the user's), every
    run would compile the suite, its conftest (pytest's assertion rewriting) and branchenv's
    own modules anew: about a second of CPU per run on a 2-core box. The child instead writes
    its bytecode into :func:`bytecode_cache_dir` (``PYTHONPYCACHEPREFIX``), never next to the
    sources, which is what the setting asks for. A user who sets the prefix keeps theirs."""
    child = {k: v for k, v in env.items() if k != "BRANCHENV_STACK_FILE"}
    child["PYTHONUNBUFFERED"] = "1"
    if child.get("PYTHONDONTWRITEBYTECODE") and not child.get("PYTHONPYCACHEPREFIX"):
        del child["PYTHONDONTWRITEBYTECODE"]
        child["PYTHONPYCACHEPREFIX"] = str(bytecode_cache_dir(env))
    return child


_PYTEST_ERROR = re.compile(r"(?:^ERROR: (?!usage:)|: error: )(?P<why>.+)$")
PYTEST_ARGS_CHECK_TIMEOUT_S = 120.0


def check_pytest_args(
    suite: Path, args: Sequence[str], *, cwd: Path, env: Mapping[str, str]
) -> None:
    """Refuse (UsageError, exit 2) the arguments for pytest that pytest itself rejects, before
    anything is created: `ci` tears its stack down after a failed run, so a typo after `--`
    must not cost the branch's existing stack (issue 15 item 4).

    Asks pytest (``--collect-only``: options, ``-k``/``-m`` expressions and paths parsed the
    way the run will, the suite's conftest options included); only when there are arguments,
    so a plain run pays nothing. Anything but a usage error (exit 4) is left to the run."""
    if not args:
        return
    cmd = [sys.executable, "-m", "pytest", str(suite), "--collect-only", "-q", *args]
    try:
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            env=suite_env(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=PYTEST_ARGS_CHECK_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return  # collection this slow says nothing about the arguments; the run will tell
    if proc.returncode != PYTEST_USAGE_ERROR:
        return
    lines = [line.strip() for line in (proc.stderr + "\n" + proc.stdout).splitlines()]
    reasons = [m["why"] for m in map(_PYTEST_ERROR.search, lines) if m is not None]
    why = reasons[0] if reasons else "it exits with a usage error"
    raise UsageError(
        f"pytest rejects the arguments after `--` ({shlex.join(args)}): {why}; fix them "
        "(nothing was created or changed)"
    )


@dataclasses.dataclass(frozen=True)
class PluginReport:
    """What the plugin's JSON report says of the run (empty when it wrote none)."""

    latency: tuple[LatencyStats, ...] = ()
    ready_s: float | None = None
    unfinished: tuple[str, ...] = ()


def read_plugin_report(path: Path) -> PluginReport:
    try:
        data = json.loads(path.read_text())
        latency = tuple(LatencyStats.from_json(item) for item in data.get("latency") or [])
        ready = data.get("ready_s")
        unfinished = tuple(str(n) for n in data.get("unfinished") or [])
        return PluginReport(latency, float(ready) if ready is not None else None, unfinished)
    except (OSError, ValueError, KeyError, TypeError):
        return PluginReport()


def _popen(
    cmd: Sequence[str], *, cwd: Path, env: Mapping[str, str], pass_fds: Sequence[int] = ()
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        list(cmd),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        process_group=0,
        pass_fds=tuple(pass_fds),
    )


ABANDON_GRACE_S = 5.0
"""How long a held child may take to end by itself once told there will be no 'go'."""


class HeldSuite:
    """A pytest child started ahead of the stack's readiness (:func:`start_held`): the
    interpreter, pytest, its plugins and the suite's conftests start while branchenv waits
    for the stack, and its session waits at the plugin's gate (``--branchenv-go-fd``) until
    :meth:`go`. :meth:`abandon` ends it when no test is to run."""

    def __init__(self, proc: subprocess.Popen[str], command: tuple[str, ...], gate: int) -> None:
        self.proc = proc
        self.command = command
        self._gate: int | None = gate

    def go(self) -> None:
        """Open the gate: the stack is ready and its stack file written."""
        gate, self._gate = self._gate, None
        if gate is None:
            return
        try:
            os.write(gate, b"go\n")
        except OSError:
            pass  # the child is gone already: run_suite reports how it ended
        finally:
            os.close(gate)

    def abandon(self, guard: SignalGuard | None = None) -> None:
        """No test will run: close the gate and stop the child's group (SIGTERM: it is still
        starting up or waiting at the gate, before its session, so no test or fixture of the
        suite is cut short), drain it, and kill it if it does not end within
        :data:`ABANDON_GRACE_S`. Never waits for its start-up: teardown comes right after."""
        gate, self._gate = self._gate, None
        if gate is not None:
            with contextlib.suppress(OSError):
                os.close(gate)
        if self.proc.poll() is None:
            _signal_group(self.proc, signal.SIGTERM)
        try:
            self.proc.communicate(timeout=ABANDON_GRACE_S)
        except (subprocess.TimeoutExpired, ValueError, OSError):
            _signal_group(self.proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=ABANDON_GRACE_S)
        finally:
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            if guard is not None:
                guard.child_done()


def start_held(
    suite: Path,
    paths: ReportPaths,
    *,
    cwd: Path,
    env: Mapping[str, str],
    extra_args: Sequence[str] = (),
    guard: SignalGuard | None = None,
) -> HeldSuite:
    """Start the suite's pytest child now, held at its gate until :meth:`HeldSuite.go`."""
    for stale in (paths.junit, paths.plugin_report):
        stale.unlink(missing_ok=True)
    read_end, write_end = os.pipe()
    cmd = pytest_command(suite, paths, extra_args, gate=read_end)
    child_env = suite_env(env)
    try:
        # Through the guard, so a signal can never come between "not stopped" and "started".
        def start() -> subprocess.Popen[str]:
            return _popen(cmd, cwd=cwd, env=child_env, pass_fds=(read_end,))

        proc: subprocess.Popen[str] = guard.start_child(start) if guard is not None else start()
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    return HeldSuite(proc, tuple(cmd), write_end)


def run_suite(
    suite: Path,
    paths: ReportPaths,
    *,
    cwd: Path,
    env: Mapping[str, str],
    extra_args: Sequence[str] = (),
    on_output: Callable[[str], None] | None = None,
    guard: SignalGuard | None = None,
    held: HeldSuite | None = None,
) -> SuiteRun:
    """Run pytest on ``suite`` against the stack in ``paths.stack_file``; stream its output
    line by line to ``on_output`` (default: stderr). ``held``: the child started ahead of
    readiness (:func:`start_held`), let through its gate here."""
    say = on_output or (lambda line: print(line, file=sys.stderr, flush=True))
    started = time.monotonic()
    proc: subprocess.Popen[str]
    if held is not None:
        cmd = list(held.command)
        proc = held.proc
        held.go()
    else:
        for stale in (paths.junit, paths.plugin_report):
            stale.unlink(missing_ok=True)
        cmd = pytest_command(suite, paths, extra_args)
        child_env = suite_env(env)

        def start() -> subprocess.Popen[str]:
            return _popen(cmd, cwd=cwd, env=child_env)

        # Through the guard, so a signal can never come between "not stopped" and "started".
        proc = guard.start_child(start) if guard is not None else start()
    exit_code: int | None = None
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            say(line.rstrip("\n"))
        exit_code = proc.wait()
    finally:
        if exit_code is None:  # stopped by a signal or an error on our side
            forwarded = guard is not None and guard.forwarded_to == proc.pid
            if not forwarded and proc.poll() is None:
                _signal_group(proc, signal.SIGTERM)
            try:
                # Keep draining its output: a child blocked on a full pipe never exits, and its
                # interrupted summary belongs in the CI log.
                rest, _ = proc.communicate(timeout=CHILD_GRACE_S)
                for line in (rest or "").splitlines():
                    say(line)
                exit_code = proc.returncode
            except (subprocess.TimeoutExpired, ValueError, OSError):
                _signal_group(proc, signal.SIGKILL)
                exit_code = proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        if guard is not None:
            guard.child_done()
    report = read_plugin_report(paths.plugin_report)
    if report.unfinished:
        signame = guard.signame if guard is not None else None
        mark_interrupted(
            paths.junit,
            report.unfinished,
            f"interrupted by {signame}: the test did not finish"
            if signame
            else f"pytest stopped (exit {exit_code}) before the test finished",
        )
    return SuiteRun(
        command=tuple(cmd),
        exit_code=exit_code,
        duration_s=time.monotonic() - started,
        latency=report.latency,
        ready_s=report.ready_s,
        unfinished=report.unfinished,
    )
