"""The executor: marks, destroys in parallel, retries only transient errors, keeps going past
failures. Driven by a fake engine (the Engine protocol over a dict) and an injected sleep."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from branchenv.aws_errors import translate
from branchenv.engines.base import DestroyResult, Program, StackSummary
from branchenv.errors import (
    EngineError,
    OperationFailed,
    StackLocked,
    StackNotFound,
    TransientError,
)
from branchenv.harness.teardown import RetryPolicy, is_transient
from branchenv.metadata import StackMetadata
from branchenv.reaper.executor import ReapJob, Status, destroy_all, destroy_one
from branchenv.targets import Target

NOW = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)
PROGRAM = Program(
    name="default",
    path=Path("/nonexistent/program"),
    kind="pulumi",
    project="p",
    project_dir=Path("/nonexistent"),
)
TARGET = Target("local", "us-east-1", endpoint_url="http://127.0.0.1:1")

Behaviour = Callable[[int], None]
"""Called with the attempt number before a destroy succeeds; raises to fail that attempt."""


def meta(stack: str) -> StackMetadata:
    return StackMetadata.create(
        stack=stack,
        branch=stack,
        owner="o",
        commit="c",
        ttl=dt.timedelta(hours=1),
        now=NOW,
        target="local",
        engine="inprocess",
    )


class FakeEngine:
    """The Engine protocol over a dict of stacks; destroy follows a per-stack behaviour."""

    name = "inprocess"

    def __init__(self, stacks: Mapping[str, Behaviour | None]) -> None:
        self.stacks: dict[str, StackMetadata] = {s: meta(s) for s in stacks}
        self.behaviour = dict(stacks)
        self.calls: dict[str, int] = dict.fromkeys(stacks, 0)
        self.log: list[tuple[str, str, bool]] = []
        self.lock = threading.Lock()

    def up(self, **kwargs: Any) -> Any:
        raise NotImplementedError

    def preview(self, **kwargs: Any) -> Any:
        raise NotImplementedError

    def refresh(self, **kwargs: Any) -> None:
        raise NotImplementedError

    def outputs(self, *, stack: str, program: Path) -> dict[str, Any]:
        return {}

    def list_stacks(self, *, program: Path) -> list[StackSummary]:
        return [StackSummary(s, m, 3) for s, m in self.stacks.items()]

    def metadata(self, *, stack: str, program: Path) -> StackMetadata | None:
        if stack not in self.stacks:
            raise StackNotFound(stack)
        return self.stacks[stack]

    def set_metadata(self, *, stack: str, program: Path, metadata: StackMetadata) -> None:
        with self.lock:
            if stack not in self.stacks:
                raise StackNotFound(stack)
            self.stacks[stack] = metadata
            self.log.append(("mark", stack, metadata.reap_pending))

    def destroy(
        self,
        *,
        stack: str,
        program: Path,
        target: Target,
        on_output: Any = None,
        remove: bool = True,
    ) -> DestroyResult:
        with self.lock:
            if stack not in self.stacks:
                raise StackNotFound(f"no stack named {stack!r}")
            self.calls[stack] += 1
            attempt = self.calls[stack]
            self.log.append(("destroy", stack, self.stacks[stack].reap_pending))
        behaviour = self.behaviour.get(stack)
        if behaviour is not None:
            behaviour(attempt)
        with self.lock:
            del self.stacks[stack]
        return DestroyResult(stack=stack, deleted=3, removed=True, duration_s=0.0)


def fails_first(n: int, exc: Callable[[], BaseException]) -> Behaviour:
    def behaviour(attempt: int) -> None:
        if attempt <= n:
            raise exc()

    return behaviour


def always(exc: Callable[[], BaseException]) -> Behaviour:
    def behaviour(attempt: int) -> None:
        raise exc()

    return behaviour


def throttled_call() -> ClientError:
    return ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "X")


def throttled() -> BaseException:
    """What an engine raises at its boundary for a throttled AWS call."""
    return translate(throttled_call(), "deleting queue q")


def jobs(engine: FakeEngine) -> list[ReapJob]:
    return [
        ReapJob(stack=s, engine=engine, metadata=m, program=PROGRAM)
        for s, m in engine.stacks.items()
    ]


def test_flaky_stack_is_reaped_broken_one_reported_others_reaped() -> None:
    engine = FakeEngine(
        {
            "flaky": fails_first(1, lambda: StackLocked("held by another update")),
            "broken": always(lambda: EngineError("could not delete s3 bucket: AccessDenied")),
            "ok-1": None,
            "ok-2": None,
        }
    )
    sleeps: list[float] = []
    outcomes = destroy_all(jobs(engine), target=TARGET, concurrency=3, sleep=sleeps.append)
    by_stack = {o.stack: o for o in outcomes}
    assert [o.stack for o in outcomes] == ["flaky", "broken", "ok-1", "ok-2"]
    assert by_stack["flaky"].status is Status.DESTROYED and by_stack["flaky"].attempts == 2
    assert by_stack["broken"].status is Status.FAILED and by_stack["broken"].attempts == 1
    assert "AccessDenied" in (by_stack["broken"].error or "")
    assert by_stack["ok-1"].status is Status.DESTROYED and by_stack["ok-1"].deleted == 3
    assert by_stack["ok-2"].ok
    assert len(sleeps) == 1  # one retry, one (injected) wait
    assert set(engine.stacks) == {"broken"}
    # The broken stack stays marked reap-pending for the next run.
    assert engine.stacks["broken"].reap_pending


def test_run_exits_1_when_any_stack_failed(tmp_path: Path) -> None:
    from branchenv.config import Settings
    from branchenv.reaper import run
    from branchenv.reaper.policy import Action, Decision

    engine = FakeEngine({"ok": None, "broken": always(lambda: EngineError("AccessDenied"))})
    decisions = tuple(
        Decision(s, Action.REAP, (), s, "o", NOW, 1.0, 3, engine="inprocess")
        for s in ("ok", "broken")
    )
    plan = run.ReapPlan(
        now=NOW,
        target="local",
        engines=("inprocess",),
        remote=None,
        decisions=decisions,
        orphans=None,
        max_reap=5,
        metadata={("inprocess", "default", s): m for s, m in engine.stacks.items()},
    )
    (tmp_path / "prog").mkdir()
    (tmp_path / "prog" / "Pulumi.yaml").write_text("name: p\nruntime: python\n")
    result = run.execute(
        plan,
        settings=Settings(project_dir=tmp_path, program="prog"),
        engines=[engine],
        target=TARGET,
        sleep=lambda _s: None,
    )
    assert result.failed == 1
    assert {o.stack: o.status for o in result.outcomes} == {
        "ok": Status.DESTROYED,
        "broken": Status.FAILED,
    }
    # the CLI turns result.failed into OperationFailed, whose exit code is 1
    assert OperationFailed.exit_code == 1


def test_marks_reap_pending_before_destroying() -> None:
    engine = FakeEngine({"a": None})
    [outcome] = destroy_all(jobs(engine), target=TARGET, concurrency=1, sleep=lambda _s: None)
    assert outcome.status is Status.DESTROYED
    assert engine.log == [("mark", "a", True), ("destroy", "a", True)]


def test_already_gone_is_done() -> None:
    engine = FakeEngine({})
    job = ReapJob(stack="ghost", engine=engine, metadata=meta("ghost"), program=PROGRAM)
    outcome = destroy_one(job, target=TARGET, retry=RetryPolicy())
    assert outcome.status is Status.ALREADY_GONE and outcome.ok


def test_transient_errors_give_up_after_attempts() -> None:
    engine = FakeEngine({"t": always(throttled)})
    sleeps: list[float] = []
    [outcome] = destroy_all(
        jobs(engine),
        target=TARGET,
        concurrency=1,
        retry=RetryPolicy(attempts=3, wait_initial_s=1.0, wait_max_s=30.0),
        sleep=sleeps.append,
    )
    assert outcome.status is Status.FAILED and outcome.attempts == 3
    assert "ThrottlingException" in (outcome.error or "")
    assert sleeps == [1.0, 2.0]  # exponential, injected


def test_deadline_stops_retrying() -> None:
    engine = FakeEngine({"t": always(lambda: StackLocked("held"))})
    [outcome] = destroy_all(
        jobs(engine),
        target=TARGET,
        concurrency=1,
        retry=RetryPolicy(attempts=100, deadline_s=0.0),
        sleep=lambda _s: None,
    )
    assert outcome.status is Status.FAILED and outcome.attempts == 1


def test_runs_in_parallel() -> None:
    barrier = threading.Barrier(3, timeout=10)
    engine = FakeEngine({s: (lambda _a: barrier.wait()) for s in ("a", "b", "c")})
    outcomes = destroy_all(jobs(engine), target=TARGET, concurrency=3, sleep=lambda _s: None)
    # with less than 3 workers the barrier would time out and every stack would fail
    assert all(o.status is Status.DESTROYED for o in outcomes)


def _engine_error_from(cause: BaseException) -> EngineError:
    try:
        raise EngineError("could not delete sqs queue q") from cause
    except EngineError as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (StackLocked("held"), True),
        (TransientError("connection reset"), True),
        (throttled(), True),
        # Typed, never words: an untyped error is not retried, whatever it says; engines type
        # what they know at their boundary (tests/unit/test_aws_errors.py).
        (throttled_call(), False),
        (EngineError("request timed out"), False),
        (EngineError("Rate exceeded, try again"), False),
        (_engine_error_from(throttled_call()), False),
        (EngineError("could not delete s3 bucket: BucketNotEmpty"), False),
        (StackNotFound("gone"), False),
        (ValueError("timeout"), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_is_transient_is_exactly_the_typed_transient_error(
    exc: BaseException, expected: bool
) -> None:
    assert is_transient(exc) is expected


def test_an_untyped_error_that_only_sounds_transient_is_not_retried() -> None:
    engine = FakeEngine({"t": always(lambda: EngineError("Rate exceeded, try again"))})
    [outcome] = destroy_all(jobs(engine), target=TARGET, concurrency=1, sleep=lambda _s: None)
    assert outcome.status is Status.FAILED and outcome.attempts == 1


def test_a_stack_redeployed_since_the_plan_is_left_alone() -> None:
    """The plan is a snapshot; a stack whose metadata changed since (a new `up` extended its
    TTL) is not the stack judged stale, so it is not destroyed."""
    import dataclasses

    engine = FakeEngine({"s1": None, "s2": None})
    planned = {s: engine.stacks[s] for s in ("s1", "s2")}
    engine.stacks["s2"] = dataclasses.replace(
        planned["s2"], expires_at=planned["s2"].expires_at + dt.timedelta(hours=5)
    )
    jobs = [
        ReapJob(stack=s, engine=engine, metadata=planned[s], program=PROGRAM) for s in ("s1", "s2")
    ]
    outcomes = {
        o.stack: o for o in destroy_all(jobs, target=TARGET, concurrency=2, sleep=lambda _s: None)
    }
    assert outcomes["s1"].status is Status.DESTROYED
    assert outcomes["s2"].status is Status.CHANGED and outcomes["s2"].ok
    assert "s2" in engine.stacks and engine.calls["s2"] == 0
    assert ("mark", "s2", True) not in engine.log
