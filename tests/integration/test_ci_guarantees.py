"""`ci`'s guarantees in isolation: teardown retries then marks the stack reap-pending; signals
become Interrupted (or wait, or are only recorded during teardown) and reach the child."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from branchenv.config import Settings
from branchenv.engines.base import DestroyResult, Program
from branchenv.errors import EngineError, TransientError, UsageError
from branchenv.gitinfo import BranchInfo
from branchenv.harness.ci import teardown
from branchenv.harness.flow import Phases, resolve_suite
from branchenv.harness.publish import teardown_error
from branchenv.harness.signals import Interrupted, SignalGuard
from branchenv.metadata import StackMetadata
from branchenv.naming import names_for
from branchenv.provision import StackContext
from branchenv.targets import Target


class FakeEngine:
    """An engine whose destroy fails ``failures`` times (with ``error``) before it works."""

    name = "inprocess"

    def __init__(
        self, failures: int, metadata: StackMetadata, error: type[Exception] = TransientError
    ) -> None:
        self.failures = failures
        self.error = error
        self.destroys = 0
        self.md = metadata
        self.saved: list[StackMetadata] = []
        self.log: list[str] = []

    def destroy(self, *, stack: str, **_: Any) -> DestroyResult:
        self.destroys += 1
        self.log.append("destroy")
        if self.destroys <= self.failures:
            raise self.error(f"could not delete table of {stack} (attempt {self.destroys})")
        return DestroyResult(stack=stack, deleted=18, removed=True, duration_s=0.1)

    def metadata(self, *, stack: str, program: Path) -> StackMetadata:
        return self.md

    def set_metadata(self, *, stack: str, program: Path, metadata: StackMetadata) -> None:
        self.saved.append(metadata)
        self.log.append("mark")
        self.md = metadata


def context(tmp_path: Path, engine: FakeEngine, target: Target) -> StackContext:
    names = names_for("feature/x")
    return StackContext(
        settings=Settings(project_dir=tmp_path),
        branch=BranchInfo(name="feature/x", source="flag", detached=False),
        names=names,
        target=target,
        engine=engine,  # type: ignore[arg-type]
        engine_note=None,
        program=Program(
            name="default", path=tmp_path, kind="pulumi", project="p", project_dir=tmp_path
        ),
    )


def metadata() -> StackMetadata:
    return StackMetadata.create(
        stack=names_for("feature/x").stack,
        branch="feature/x",
        owner="ada",
        commit="abc1234",
        ttl=dt.timedelta(hours=2),
        now=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
        target="local",
        engine="inprocess",
    )


def test_teardown_retries_transient_failures(tmp_path: Path, local_cloud: Any) -> None:
    engine = FakeEngine(failures=2, metadata=metadata())
    sleeps: list[float] = []
    out = teardown(context(tmp_path, engine, local_cloud), say=lambda _l: None, sleep=sleeps.append)
    assert out.status == "destroyed" and out.attempts == 3 and out.deleted == 18
    assert len(sleeps) == 2
    # Marked reap-pending once, before the first destroy: a crash midway leaves it visible.
    assert engine.log == ["mark", "destroy", "destroy", "destroy"]
    assert engine.saved == [dataclasses.replace(metadata(), reap_pending=True)]


def test_teardown_does_not_retry_a_failure_that_is_not_typed_transient(
    tmp_path: Path, local_cloud: Any
) -> None:
    engine = FakeEngine(failures=99, metadata=metadata(), error=EngineError)
    out = teardown(context(tmp_path, engine, local_cloud), say=lambda _l: None, sleep=lambda _s: 0)
    assert out.status == "failed" and out.attempts == 1 and engine.destroys == 1
    assert out.reap_pending


def test_teardown_that_keeps_failing_marks_reap_pending_and_names_what_remains(
    tmp_path: Path, local_cloud: Any
) -> None:
    engine = FakeEngine(failures=99, metadata=metadata())
    ctx = context(tmp_path, engine, local_cloud)
    # something of the stack's really remains in the target, tagged with its name
    sqs = local_cloud.client("sqs")
    url = sqs.create_queue(
        QueueName=f"{ctx.names.prefix}-leftover", tags={"branchenv:stack": ctx.names.stack}
    )["QueueUrl"]
    try:
        out = teardown(ctx, say=lambda _l: None, sleep=lambda _s: None)
    finally:
        sqs.delete_queue(QueueUrl=url)
    assert out.status == "failed" and out.attempts == 3 and engine.destroys == 3
    assert out.reap_pending and engine.saved == [dataclasses.replace(metadata(), reap_pending=True)]
    assert any(arn.endswith(f"{ctx.names.prefix}-leftover") for arn in out.remaining)
    message = teardown_error(ctx.names.stack, "feature/x", out)
    assert "failed after 3 attempt" in message and "reap-pending" in message
    assert f"{ctx.names.prefix}-leftover" in message
    assert "branchenv down --branch feature/x" in message


def test_bad_input_is_not_retried(tmp_path: Path, local_cloud: Any) -> None:
    engine = FakeEngine(failures=0, metadata=metadata())

    def refuse(**_: Any) -> DestroyResult:
        engine.destroys += 1
        raise UsageError("bad")

    engine.destroy = refuse  # type: ignore[method-assign]
    out = teardown(context(tmp_path, engine, local_cloud), say=lambda _l: None, sleep=lambda _s: 0)
    assert out.status == "failed" and out.attempts == 1


def test_resolve_suite(tmp_path: Path) -> None:
    settings = Settings(project_dir=tmp_path, program="prog")
    with pytest.raises(UsageError, match="`program`"):
        resolve_suite(settings, None)
    (tmp_path / "prog").mkdir()
    (tmp_path / "prog" / "Pulumi.yaml").write_text("name: p\nruntime: python\n")
    with pytest.raises(UsageError, match="--suite PATH"):
        resolve_suite(settings, None)
    (tmp_path / "prog" / "tests").mkdir(parents=True)
    assert resolve_suite(settings, None) == tmp_path / "prog" / "tests"
    with pytest.raises(UsageError, match="--suite nope"):
        resolve_suite(settings, "nope")


def test_the_default_suite_is_beside_the_program_pulumi_yaml_runs(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: p\nruntime: python\nmain: src/\n")
    (tmp_path / "src" / "tests").mkdir(parents=True)
    assert resolve_suite(Settings(project_dir=tmp_path), None) == tmp_path / "src" / "tests"


# --- signals -------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_raises_interrupted_with_shell_exit_code(signum: int) -> None:
    before = signal.getsignal(signum)
    waited: list[str] = []

    def readiness() -> None:
        os.kill(os.getpid(), signum)
        with contextlib.suppress(Interrupted):
            guard.sleep(30)  # ends at once when the run is stopped
            waited.append("slept through the stop")

    with pytest.raises(Interrupted) as info, SignalGuard() as guard:
        assert signal.getsignal(signum) != before  # the guard's own handler is in place
        guard.cancel(readiness)
        pytest.fail("the signal did not interrupt")
    assert info.value.exit_code == 128 + signum
    assert signal.getsignal(signum) == before  # the previous handler is restored on exit
    assert guard.cancelled.is_set() and waited == []


def test_a_signal_during_a_finishing_step_is_raised_after_it() -> None:
    done = []

    def step() -> str:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
        done.append("finished the step")
        return "created"

    with pytest.raises(Interrupted), SignalGuard() as guard:
        assert guard.finish(step) == "created"
        assert guard.received == signal.SIGTERM
        guard.checkpoint()
        pytest.fail("not raised after the step")
    assert done == ["finished the step"]
    with SignalGuard() as fresh:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)
        with pytest.raises(Interrupted):
            fresh.finish(lambda: pytest.fail("a step started after the signal"))


def test_shielded_guard_only_records_and_forwards_to_the_child() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    said: list[str] = []

    def teardown() -> str:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
        return "destroyed"

    try:
        with SignalGuard(on_signal=said.append) as guard:
            guard.start_child(lambda: child)
            assert guard.shielded(teardown) == "destroyed"
            assert guard.received == signal.SIGTERM
            assert guard.deliveries == (signal.SIGTERM, signal.SIGINT)
        assert child.wait(timeout=10) == -signal.SIGTERM  # forwarded
        assert guard.forwarded_to == child.pid
        assert sum("teardown in progress" in line for line in said) == 2  # every delivery
    finally:
        child.kill()
        child.wait()


def test_signals_reach_the_whole_test_process_group(tmp_path: Path) -> None:
    """pytest runs in its own process group; a forwarded signal reaches its children too
    (xdist workers, a test's subprocesses), not only pytest."""
    marker = tmp_path / "grandchild.pid"
    script = (
        "import subprocess, sys, time, pathlib\n"
        "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"pathlib.Path({str(marker)!r}).write_text(str(g.pid))\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], process_group=0)
    try:
        for _ in range(200):
            if marker.exists() and marker.read_text():
                break
            time.sleep(0.05)
        grandchild = int(marker.read_text())

        def tests() -> int:
            guard.start_child(lambda: child)
            os.kill(os.getpid(), signal.SIGTERM)
            code = child.wait(timeout=10)
            guard.child_done()
            return code

        with SignalGuard() as guard:
            assert guard.run_child(tests) == -signal.SIGTERM
        for _ in range(200):  # the grandchild got it too (it is not our child: poll /proc)
            if not Path(f"/proc/{grandchild}").exists() or "Z" in _proc_state(grandchild):
                break
            time.sleep(0.05)
        assert not Path(f"/proc/{grandchild}").exists() or "Z" in _proc_state(grandchild)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()


def test_a_child_that_ignores_the_signal_is_killed_after_its_grace() -> None:
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", script, "x"], process_group=0)
    time.sleep(0.3)  # its handler is in place

    def tests() -> int:
        guard.start_child(lambda: child)
        os.kill(os.getpid(), signal.SIGTERM)
        code = child.wait(timeout=20)
        guard.child_done()
        return code

    try:
        with SignalGuard(child_grace_s=0.5) as guard:
            assert guard.run_child(tests) == -signal.SIGKILL
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return "Z"


def test_phases_record_durations_and_the_current_phase() -> None:
    said: list[str] = []
    phases = Phases(said.append)
    with pytest.raises(RuntimeError), phases.run("ready", "ready"):
        raise RuntimeError
    assert phases.current == "ready" and "ready" in phases.durations and said == ["== ready"]


def test_ci_never_tears_down_a_stack_another_run_holds(
    tmp_path: Path, local_cloud: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`up` failing with StackLocked means another run owns the stack right now: `ci` reports
    and exits non-zero without destroying it mid-test."""
    from branchenv import provision
    from branchenv.errors import StackLocked, StackNotFound
    from branchenv.harness.ci import run_ci

    engine = FakeEngine(failures=0, metadata=metadata())

    def locked_up(**_: Any) -> Any:
        raise StackLocked("stack is locked by pid 4242 (an `up` or `down` in progress)")

    def no_metadata(**_: Any) -> Any:
        raise StackNotFound("no such stack yet")

    engine.up = locked_up  # type: ignore[attr-defined]
    engine.metadata = no_metadata  # type: ignore[method-assign]
    ctx = context(tmp_path, engine, local_cloud)
    monkeypatch.setattr(provision, "resolve", lambda *_a, **_k: ctx)
    monkeypatch.setattr(provision, "program_inputs", lambda *_a, **_k: None)
    monkeypatch.setattr(provision, "build_metadata", lambda *_a, **_k: metadata())
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_x.py").write_text("def test_x():\n    pass\n")
    outcome = run_ci(
        Settings(project_dir=tmp_path),
        branch="feature/x",
        suite=suite,
        report_dir=tmp_path / "reports",
        on_output=lambda _l: None,
    )
    assert outcome.exit_code == 1 and "locked" in (outcome.error or "")
    assert engine.destroys == 0 and engine.saved == []
    assert outcome.teardown is not None and outcome.teardown.status == "skipped"


def test_ci_refuses_a_protected_branch_before_anything_starts(
    tmp_path: Path, local_cloud: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from branchenv import provision
    from branchenv.errors import SafetyRefusal
    from branchenv.harness.ci import run_ci

    engine = FakeEngine(failures=0, metadata=metadata())
    ctx = dataclasses.replace(
        context(tmp_path, engine, local_cloud),
        branch=BranchInfo(name="main", source="flag", detached=False),
        names=names_for("main"),
    )
    monkeypatch.setattr(provision, "resolve", lambda *_a, **_k: ctx)
    with pytest.raises(SafetyRefusal, match="protected pattern 'main'"):
        run_ci(
            Settings(project_dir=tmp_path),
            branch="main",
            suite=tmp_path,
            report_dir=tmp_path / "r",
            on_output=lambda _l: None,
        )
    assert engine.destroys == 0


def test_a_failed_down_exits_1_and_leaves_the_stack_marked_reap_pending(
    tmp_path: Path, local_cloud: Any
) -> None:
    """Issue 15 item 9: a `down` that fails must leave the stack due for the reaper."""
    from branchenv import provision
    from branchenv.errors import OperationFailed

    engine = FakeEngine(failures=99, metadata=metadata(), error=EngineError)
    with pytest.raises(OperationFailed) as caught:
        provision.down(context(tmp_path, engine, local_cloud), sleep=lambda _s: None)
    assert caught.value.exit_code == 1
    assert engine.saved == [dataclasses.replace(metadata(), reap_pending=True)]
    assert "reap-pending" in str(caught.value) and "branchenv down --branch feature/x" in str(
        caught.value
    )


class CountingEngine:
    """A real engine, counting how often the run asks it for the stack's metadata."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.metadata_reads = 0

    def metadata(self, **kwargs: Any) -> Any:
        self.metadata_reads += 1
        return self.inner.metadata(**kwargs)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.inner, attr)


def test_ci_reads_the_stack_metadata_once_per_run(
    tmp_path: Path, local_cloud: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11 item 5: metadata read once per run and passed forward (not re-read by `up`,
    the stack file, the cost line and teardown)."""
    from branchenv import provision
    from branchenv.config import load_settings
    from branchenv.engines import get_engine
    from branchenv.harness.ci import run_ci
    from branchenv.programs import default_program

    (tmp_path / "Pulumi.yaml").write_text("name: once\nruntime: python\nmain: src/\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "__main__.py").write_text(
        "import pulumi\nimport pulumi_aws as aws\n"
        "q = aws.sqs.Queue('jobs')\npulumi.export('queue_url', q.url)\n"
    )
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_up.py").write_text("def test_up():\n    pass\n")
    settings = load_settings(cwd=tmp_path, env={})
    engine = CountingEngine(get_engine("inprocess", settings=settings, target=local_cloud))
    ctx = StackContext(
        settings=settings,
        branch=BranchInfo(name="feature/once", source="flag", detached=False),
        names=names_for("feature/once"),
        target=local_cloud,
        engine=engine,  # type: ignore[arg-type]
        engine_note=None,
        program=default_program(settings),
    )
    monkeypatch.setattr(provision, "resolve", lambda *_a, **_k: ctx)
    outcome = run_ci(
        settings,
        branch="feature/once",
        suite=suite,
        report_dir=tmp_path / "reports",
        on_output=lambda _l: None,
    )
    assert outcome.status == "passed", outcome.error
    assert outcome.teardown is not None and outcome.teardown.status == "destroyed"
    assert engine.metadata_reads == 1
