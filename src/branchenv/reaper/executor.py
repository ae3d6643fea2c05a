"""The executor: destroys the stacks the policy chose, in parallel, through their engines.

Each stack goes through the one teardown path (:mod:`branchenv.harness.teardown`, shared with
`down` and `ci`): marked reap-pending, then destroyed, retrying exactly the typed transient
errors. A stack already gone counts as done; one re-deployed since the plan is left alone. One
stack's failure never stops the others; every stack gets an :class:`Outcome`.
"""

from __future__ import annotations

import dataclasses
import enum
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from branchenv.errors import StackNotFound
from branchenv.harness.teardown import RetryPolicy
from branchenv.text import plural

if TYPE_CHECKING:
    from branchenv.engines.base import Engine, OutputSink, Program
    from branchenv.metadata import StackMetadata
    from branchenv.reaper.org import AccountGates
    from branchenv.targets import Target


class Status(enum.StrEnum):
    DESTROYED = "destroyed"
    ALREADY_GONE = "already-gone"
    CHANGED = "changed"
    """Left alone: the stack's metadata changed since the plan (re-deployed, TTL extended)."""
    FAILED = "failed"
    LEAKED = "leaked"
    """Destroyed, but the leak check found resources still carrying the stack's tag."""
    RELEASED = "released"
    """A warm-pool stack whose claim expired: wiped, verified empty, back in its pool."""


@dataclasses.dataclass(frozen=True)
class ReapJob:
    """One stack to destroy, with the engine that knows it and its metadata (for the mark)."""

    stack: str
    engine: Engine
    metadata: StackMetadata | None
    program: Program
    target: Target | None = None
    """Where to destroy it (its account and region); None: the run's target."""
    account: str | None = None
    """The account whose concurrency gate the destroy holds (organisation-wide runs)."""


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
    program: str = "default"
    leaked: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status not in (Status.FAILED, Status.LEAKED)


def destroy_one(
    job: ReapJob,
    *,
    target: Target,
    retry: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    on_output: OutputSink | None = None,
) -> Outcome:
    """Unless the stack changed since the plan, tear it down through the one teardown path
    (mark reap-pending, destroy with retries) and say what happened."""
    from branchenv.harness.teardown import destroy_stack

    say = on_output or (lambda _line: None)
    started = time.monotonic()

    def outcome(
        status: Status,
        attempts: int = 0,
        deleted: int = 0,
        error: str | None = None,
        leaked: tuple[str, ...] = (),
    ) -> Outcome:
        return Outcome(
            stack=job.stack,
            engine=job.engine.name,
            program=job.program.name,
            status=status,
            attempts=attempts,
            deleted=deleted,
            duration_s=time.monotonic() - started,
            error=error,
            leaked=leaked,
        )

    if job.metadata is not None and not job.metadata.reap_pending:
        # The plan may be minutes old: a stack re-deployed since then (new expiry) is no longer
        # the stack that was judged stale. Decide on what is there now, not on the snapshot.
        try:
            current = job.engine.metadata(stack=job.stack, program=job.program)
        except StackNotFound:
            say(f"[{job.stack}] already gone")
            return outcome(Status.ALREADY_GONE)
        if current != job.metadata:
            say(f"[{job.stack}] changed since the plan (re-deployed?); left alone")
            return outcome(Status.CHANGED, error="metadata changed since the plan; left alone")
    md = job.metadata
    if md is not None and md.pool is not None and md.claimed_by is not None and not md.reap_pending:
        # A claimed warm-pool stack goes back to its pool (wiped and verified empty), or is
        # destroyed when it cannot be (branchenv.pool.release_stack).
        from branchenv.pool import release_stack

        back = release_stack(
            job.engine,
            program=job.program,
            target=target,
            stack=job.stack,
            metadata=md,
            say=lambda line: say(f"[{job.stack}] {line}"),
            sleep=sleep,
        )
        if back.status == "returned":
            return outcome(Status.RELEASED, attempts=1)
        if back.status == "destroyed":
            return outcome(Status.DESTROYED, attempts=1, deleted=back.deleted)
        return outcome(Status.FAILED, attempts=1, deleted=back.deleted, error=back.reason)
    done = destroy_stack(
        job.engine,
        stack=job.stack,
        program=job.program,
        target=target,
        metadata=job.metadata,
        retry=retry,
        sleep=sleep,
        on_output=lambda line: say(f"[{job.stack}] {line}"),
    )
    if done.status == "already-gone":
        say(f"[{job.stack}] already gone")
        return outcome(Status.ALREADY_GONE, attempts=done.attempts)
    if done.status == "failed":
        say(f"[{job.stack}] failed after {plural(done.attempts, 'attempt')}: {done.error}")
        return outcome(
            Status.FAILED,
            attempts=done.attempts,
            deleted=done.deleted,
            error=done.error,
            leaked=done.leaked,
        )
    if done.status == "leaked":
        from branchenv.harness.teardown import leak_text

        return outcome(
            Status.LEAKED,
            attempts=done.attempts,
            deleted=done.deleted,
            error=leak_text(job.stack, done.leaked),
            leaked=done.leaked,
        )
    say(f"[{job.stack}] destroyed: {plural(done.deleted, 'resource')} deleted")
    return outcome(Status.DESTROYED, attempts=done.attempts, deleted=done.deleted)


def destroy_all(
    jobs: Sequence[ReapJob],
    *,
    target: Target,
    concurrency: int,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_output: OutputSink | None = None,
    gates: AccountGates | None = None,
) -> list[Outcome]:
    """Destroy every job's stack, ``concurrency`` at a time (and, with ``gates``, at most the
    gate's limit per job account); outcomes in the jobs' order."""
    if not jobs:
        return []
    lock = threading.Lock()

    def say(line: str) -> None:
        if on_output is not None:
            with lock:
                on_output(line)

    policy = retry or RetryPolicy()

    def run(job: ReapJob) -> Outcome:
        def go() -> Outcome:
            return destroy_one(
                job, target=job.target or target, retry=policy, sleep=sleep, on_output=say
            )

        if gates is None or job.account is None:
            return go()
        with gates.hold(job.account):
            return go()

    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="reap") as pool:
        futures = [pool.submit(run, job) for job in jobs]
        return [f.result() for f in futures]
