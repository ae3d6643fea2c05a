"""One teardown path: destroy a stack with retries, the same for `down`, `ci` and the reaper.

In this order: mark the stack reap-pending (so a crash or a failure midway leaves it visibly
due for `branchenv reap`, and `ls` shows it), then destroy it, retrying exactly
:class:`~branchenv.errors.TransientError` (a held lock, throttling, a dropped connection:
engines raise it at their boundary) under an explicit stop (attempts and a deadline). A stack
already gone is done. Anything else fails at once; the stack then stays marked.

Then the leak check, whatever the engine said: the stack's tag (``branchenv:stack``) is looked
up in the target itself (:func:`branchenv.inventory.find_tagged`: the tagging API plus each
service's own listing for the types it misses). "Destroyed" means nothing carrying it is left;
anything found is a leak, named by ARN, and the teardown is not ok.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from branchenv.errors import StackNotFound, TransientError, one_line
from branchenv.text import plural

if TYPE_CHECKING:
    from branchenv.engines.base import Engine, OutputSink, Program
    from branchenv.metadata import StackMetadata
    from branchenv.targets import Target


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """When to give up on one stack: after ``attempts`` tries or ``deadline_s`` seconds,
    waiting exponentially between tries (``wait_initial_s`` doubling up to ``wait_max_s``)."""

    attempts: int = 4
    deadline_s: float = 900.0
    wait_initial_s: float = 2.0
    wait_max_s: float = 30.0


INTERACTIVE = RetryPolicy(attempts=3, deadline_s=300.0, wait_initial_s=1.0, wait_max_s=10.0)
"""For a person or a CI job waiting on the result (`down`, `ci`)."""


@dataclasses.dataclass(frozen=True)
class LeakPolicy:
    """How often the leak check looks before it calls what it finds leaked: AWS's tagging API
    lists a deleted resource for a while after its delete; the local cloud answers at once."""

    looks: int = 1
    wait_s: float = 0.0


LOCAL_LEAKS = LeakPolicy()
AWS_LEAKS = LeakPolicy(looks=4, wait_s=10.0)


@dataclasses.dataclass(frozen=True)
class LeakCheck:
    """What the target still holds with the stack's tag: ARNs (``leaked``), or why it could not
    be looked up (``error``: the check is then unknown, never taken for clean)."""

    leaked: tuple[str, ...] = ()
    error: str | None = None

    @property
    def clean(self) -> bool:
        return not self.leaked and self.error is None


def check_leaks(
    target: Target,
    stack: str,
    *,
    policy: LeakPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> LeakCheck:
    """Look the stack's tag up in the target; what is still found after ``policy.looks``
    looks is leaked."""
    from branchenv.inventory import find_tagged
    from branchenv.metadata import KEY_STACK

    policy = policy or (LOCAL_LEAKS if target.name == "local" else AWS_LEAKS)
    found: list[str] = []
    for look in range(max(1, policy.looks)):
        if look:
            sleep(policy.wait_s)
        try:
            found = sorted(r.arn for r in find_tagged(target, key=KEY_STACK, values={stack}))
        except Exception as exc:  # any failure to list: unknown, and said so
            return LeakCheck(error=f"the leak check could not list the target: {one_line(exc)}")
        if not found:
            break
    return LeakCheck(leaked=tuple(found))


def leak_text(stack: str, leaked: tuple[str, ...], *, limit: int = 10) -> str:
    """One line naming what a teardown left (the first ``limit`` ARNs) and what to do."""
    shown = ", ".join(leaked[:limit]) + (
        f" (+{len(leaked) - limit} more)" if len(leaked) > limit else ""
    )
    return (
        f"leaked: {plural(len(leaked), 'resource')} still "
        f"{'carries' if len(leaked) == 1 else 'carry'} the tag branchenv:stack={stack} after "
        f"teardown: {shown}; branchenv no longer tracks them: delete them, or let "
        "`branchenv reap --orphans --yes` sweep them once past its grace"
    )


@dataclasses.dataclass(frozen=True)
class TeardownResult:
    """What happened to one stack.

    ``status``: ``destroyed`` | ``already-gone`` | ``failed`` | ``leaked`` (the engine is
    done with the stack but the target still holds resources carrying its tag: ``leaked``
    names them). ``reap_pending`` tells whether the stack carries the reap-pending mark (set
    before destroying). ``failed`` names what the engine could not delete on its last attempt;
    ``error`` is one line; ``exception`` is the error itself, for callers that raise it.
    ``leak_check`` says why the leak check could not run (None when it ran)."""

    stack: str
    status: str
    attempts: int
    deleted: int
    duration_s: float
    reap_pending: bool
    failed: tuple[str, ...] = ()
    error: str | None = None
    exception: BaseException | None = dataclasses.field(default=None, repr=False, compare=False)
    leaked: tuple[str, ...] = ()
    leak_check: str | None = None

    @property
    def ok(self) -> bool:
        return self.status not in ("failed", "leaked")


def is_transient(exc: BaseException) -> bool:
    """The retry predicate of every teardown: exactly the typed transient errors."""
    return isinstance(exc, TransientError)


def destroy_stack(
    engine: Engine,
    *,
    stack: str,
    program: Program,
    target: Target,
    metadata: StackMetadata | None,
    retry: RetryPolicy = INTERACTIVE,
    sleep: Callable[[float], None] = time.sleep,
    on_output: OutputSink | None = None,
    leaks: LeakPolicy | None = None,
) -> TeardownResult:
    """Mark ``stack`` reap-pending (``metadata`` is what it carries now; None: unknown, not
    marked), destroy it with retries, then check the target for leaks (``leaks``: how; the
    default suits the target). Never raises for the stack's own failures."""
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
    marked = metadata is not None and metadata.reap_pending

    def attempt() -> int:
        nonlocal attempts, marked
        attempts += 1
        if attempts > 1:
            say(f"teardown attempt {attempts}/{retry.attempts}")
        if not marked and metadata is not None:
            engine.set_metadata(
                stack=stack,
                program=program,
                metadata=dataclasses.replace(metadata, reap_pending=True),
            )
            marked = True
        return engine.destroy(stack=stack, program=program, target=target, on_output=say).deleted

    retrying = Retrying(
        stop=stop_after_attempt(retry.attempts) | stop_after_delay(retry.deadline_s),
        wait=wait_exponential(multiplier=retry.wait_initial_s, max=retry.wait_max_s),
        retry=retry_if_exception(is_transient),
        sleep=sleep,
        reraise=True,
        before_sleep=lambda state: say(
            f"attempt {state.attempt_number} failed ({_outcome_text(state.outcome)}); retrying"
        ),
    )

    def result(
        status: str,
        *,
        deleted: int = 0,
        failed: tuple[str, ...] = (),
        exc: BaseException | None = None,
    ) -> TeardownResult:
        return TeardownResult(
            stack=stack,
            status=status,
            attempts=attempts,
            deleted=deleted,
            duration_s=time.monotonic() - started,
            reap_pending=marked and status == "failed",
            failed=failed,
            error=one_line(exc) if exc is not None else None,
            exception=exc,
        )

    try:
        deleted = retrying(attempt)
    except StackNotFound:
        done = result("already-gone")
    except Exception as exc:
        # An engine that tried everything says what it left on the error (DestroyResult).
        partial = getattr(exc, "result", None)
        done = result(
            "failed",
            deleted=int(getattr(partial, "deleted", 0) or 0),
            failed=tuple(getattr(partial, "failed", ()) or ()),
            exc=exc,
        )
    else:
        done = result("destroyed", deleted=deleted)
    check = check_leaks(target, stack, policy=leaks, sleep=sleep)
    if check.error is not None:
        say(f"warning: {check.error}; what the stack left is unknown")
    elif check.leaked:
        say(leak_text(stack, check.leaked))
    else:
        say(f"leak check: nothing carries branchenv:stack={stack} any more (leaked: 0)")
    status = "leaked" if check.leaked and done.status != "failed" else done.status
    return dataclasses.replace(
        done,
        status=status,
        leaked=check.leaked,
        leak_check=check.error,
        duration_s=time.monotonic() - started,
    )


def _outcome_text(outcome: object) -> str:
    exc = getattr(outcome, "exception", lambda: None)()
    return one_line(exc) if isinstance(exc, BaseException) else "unknown error"
