"""The executor: destroys the stacks the policy chose, in parallel, through their engines.

Each stack is first marked reap-pending (so a crash midway is visible to the next run and to
``ls``), then destroyed. Transient failures (a held lock, throttling, a dropped connection)
are retried with tenacity under an explicit stop (attempts and a deadline); anything else fails
that stack at once. A stack already gone counts as done. One stack's failure never stops the
others; every stack gets an :class:`Outcome`.
"""

from __future__ import annotations

import dataclasses
import enum
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from branchenv.errors import EngineError, StackLocked, StackNotFound, one_line

if TYPE_CHECKING:
    from branchenv.engines.base import Engine, OutputSink, Program
    from branchenv.metadata import StackMetadata
    from branchenv.targets import Target

_BOTO_TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "SlowDown",
        "RequestTimeout",
        "RequestTimeoutException",
        "ServiceUnavailable",
        "InternalError",
        "PriorRequestNotComplete",
        "ConcurrentModification",
        "ConcurrentModificationException",
    }
)
_TRANSIENT_WORDS = (
    "throttl",
    "rate exceeded",
    "too many requests",
    "timed out",
    "timeout",
    "connection reset",
    "connection refused",
    "connection aborted",
    "temporarily unavailable",
    "service unavailable",
    "try again",
    "slow down",
    "conflicting concurrent update",
)


class Status(enum.StrEnum):
    DESTROYED = "destroyed"
    ALREADY_GONE = "already-gone"
    CHANGED = "changed"
    """Left alone: the stack's metadata changed since the plan (re-deployed, TTL extended)."""
    FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class ReapJob:
    """One stack to destroy, with the engine that knows it and its metadata (for the mark)."""

    stack: str
    engine: Engine
    metadata: StackMetadata | None


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What happened to one stack."""

    stack: str
    engine: str
    status: Status
    attempts: int
    deleted: int
    duration_s: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not Status.FAILED


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """When to give up on one stack: after ``attempts`` tries or ``deadline_s`` seconds,
    waiting exponentially between tries (``wait_initial_s`` doubling up to ``wait_max_s``)."""

    attempts: int = 4
    deadline_s: float = 900.0
    wait_initial_s: float = 2.0
    wait_max_s: float = 30.0


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying: a held stack lock, AWS throttling or connection errors
    (also when they caused an EngineError), or an EngineError whose message says so."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, StackLocked):
            return True
        if _botocore_transient(current):
            return True
        if isinstance(current, EngineError):
            text = str(current).lower()
            if any(word in text for word in _TRANSIENT_WORDS):
                return True
        current = current.__cause__ or current.__context__
    return False


def _botocore_transient(exc: BaseException) -> bool:
    try:
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
        )
    except ImportError:  # pragma: no cover - botocore is a dependency
        return False
    if isinstance(
        exc,
        EndpointConnectionError | ConnectionClosedError | ConnectTimeoutError | ReadTimeoutError,
    ):
        return True
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return code in _BOTO_TRANSIENT_CODES or status in (429, 503)
    return False


def _outcome_text(outcome: object) -> str:
    exc = getattr(outcome, "exception", lambda: None)()
    return one_line(exc) if isinstance(exc, BaseException) else "unknown error"


def destroy_one(
    job: ReapJob,
    *,
    program: Program,
    target: Target,
    retry: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    on_output: OutputSink | None = None,
) -> Outcome:
    """Mark the stack reap-pending, destroy it with retries, and say what happened."""
    from tenacity import (
        Retrying,
        retry_if_exception,
        stop_after_attempt,
        stop_after_delay,
        wait_exponential,
    )

    say = on_output or (lambda _line: None)
    started = time.monotonic()
    attempts = 0
    marked = job.metadata is None or job.metadata.reap_pending

    def attempt() -> int:
        nonlocal attempts, marked
        attempts += 1
        if not marked and job.metadata is not None:
            job.engine.set_metadata(
                stack=job.stack,
                program=program,
                metadata=dataclasses.replace(job.metadata, reap_pending=True),
            )
            marked = True
        result = job.engine.destroy(
            stack=job.stack,
            program=program,
            target=target,
            on_output=lambda line: say(f"[{job.stack}] {line}"),
        )
        return result.deleted

    retrying = Retrying(
        stop=stop_after_attempt(retry.attempts) | stop_after_delay(retry.deadline_s),
        wait=wait_exponential(multiplier=retry.wait_initial_s, max=retry.wait_max_s),
        retry=retry_if_exception(is_transient),
        sleep=sleep,
        reraise=True,
        before_sleep=lambda state: say(
            f"[{job.stack}] attempt {state.attempt_number} failed "
            f"({_outcome_text(state.outcome)}); retrying"
        ),
    )

    def outcome(status: Status, deleted: int = 0, error: str | None = None) -> Outcome:
        return Outcome(
            stack=job.stack,
            engine=job.engine.name,
            status=status,
            attempts=attempts,
            deleted=deleted,
            duration_s=time.monotonic() - started,
            error=error,
        )

    if job.metadata is not None and not job.metadata.reap_pending:
        # The plan may be minutes old: a stack re-deployed since then (new expiry) is no longer
        # the stack that was judged stale. Decide on what is there now, not on the snapshot.
        try:
            current = job.engine.metadata(stack=job.stack, program=program)
        except StackNotFound:
            say(f"[{job.stack}] already gone")
            return outcome(Status.ALREADY_GONE)
        if current != job.metadata:
            say(f"[{job.stack}] changed since the plan (re-deployed?); left alone")
            return outcome(Status.CHANGED, error="metadata changed since the plan; left alone")
    try:
        deleted = retrying(attempt)
    except StackNotFound:
        say(f"[{job.stack}] already gone")
        return outcome(Status.ALREADY_GONE)
    except Exception as exc:
        say(f"[{job.stack}] failed after {attempts} attempt(s): {one_line(exc)}")
        return outcome(Status.FAILED, error=one_line(exc))
    say(f"[{job.stack}] destroyed: {deleted} resource(s) deleted")
    return outcome(Status.DESTROYED, deleted=deleted)


def destroy_all(
    jobs: Sequence[ReapJob],
    *,
    program: Program,
    target: Target,
    concurrency: int,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_output: OutputSink | None = None,
) -> list[Outcome]:
    """Destroy every job's stack, ``concurrency`` at a time; outcomes in the jobs' order."""
    if not jobs:
        return []
    lock = threading.Lock()

    def say(line: str) -> None:
        if on_output is not None:
            with lock:
                on_output(line)

    policy = retry or RetryPolicy()
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="reap") as pool:
        futures = [
            pool.submit(
                destroy_one,
                job,
                program=program,
                target=target,
                retry=policy,
                sleep=sleep,
                on_output=say,
            )
            for job in jobs
        ]
        return [f.result() for f in futures]
