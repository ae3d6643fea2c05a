"""Readiness: before the tests, wait until the stack answers.

A stack is ready when its endpoint answers ``GET <endpoint>/health`` with 200 and each of its
resources responds through the target's API. Which resources: by the stack's output names, a
convention the demo program follows and any program can:

==========================================  ==================================================
output name                                 check
==========================================  ==================================================
``endpoint`` or ``*_endpoint``              ``GET <url>/health`` answers 200
``table_name`` or ``*_table_name``          DynamoDB ``DescribeTable``: status ACTIVE
``queue_url``, ``dlq_url``, ``*_queue_url``  SQS ``GetQueueAttributes``
``bucket_name`` or ``*_bucket_name``        S3 ``HeadBucket``
``function_name`` or ``*_function_name``    Lambda ``GetFunction``: state Active (or unset)
==========================================  ==================================================

:func:`wait_ready` polls the checks that have not passed yet under a deadline (tenacity: stop
after a delay or a number of attempts, exponential waits, injectable ``sleep``), reports the
time to ready, and on timeout raises :class:`NotReady` naming every check that never passed
with its last error.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from branchenv.errors import OperationFailed, one_line

if TYPE_CHECKING:
    from branchenv.targets import Target

DEFAULT_DEADLINE_S = 60.0
DEFAULT_MAX_ATTEMPTS = 40
HEALTH_PATH = "/health"


class NotYet(Exception):
    """A check that ran but found the resource not ready yet."""


@dataclasses.dataclass(frozen=True)
class Check:
    """One thing that must respond; ``probe`` returns when it does and raises otherwise."""

    name: str
    probe: Callable[[], None]


@dataclasses.dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    attempts: int
    ready_after_s: float | None
    last_error: str | None


@dataclasses.dataclass(frozen=True)
class ReadinessReport:
    """Outcome of :func:`wait_ready`: ``seconds`` is the time to ready (or to giving up)."""

    ready: bool
    seconds: float
    attempts: int
    checks: tuple[CheckResult, ...]

    @property
    def pending(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if not c.ok)


class NotReady(OperationFailed):
    """The stack did not become ready before the deadline."""

    def __init__(self, report: ReadinessReport) -> None:
        self.report = report
        what = "; ".join(f"{c.name}: {c.last_error}" for c in report.pending)
        super().__init__(
            f"stack not ready after {report.seconds:.1f} s ({report.attempts} attempts): "
            f"{what}. Check the stack with `branchenv outputs`, or raise --ready-timeout"
        )


def wait_ready(
    checks: Sequence[Check],
    *,
    deadline_s: float = DEFAULT_DEADLINE_S,
    max_attempts: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_progress: Callable[[str], None] | None = None,
    raise_on_timeout: bool = True,
) -> ReadinessReport:
    """Poll ``checks`` until all pass; a passed check is not run again.

    Raises :class:`NotReady` on timeout unless ``raise_on_timeout`` is false (then the report
    says ``ready=False``).
    """
    from tenacity import (
        Retrying,
        retry_if_result,
        stop_after_attempt,
        stop_after_delay,
        wait_exponential,
    )

    say = on_progress or (lambda _msg: None)
    started = clock()
    attempts: dict[str, int] = {c.name: 0 for c in checks}
    errors: dict[str, str | None] = {c.name: None for c in checks}
    ready_at: dict[str, float] = {}
    rounds = 0

    lock = threading.Lock()

    def run_probe(check: Check) -> None:
        try:
            check.probe()
        except Exception as exc:  # any failure of a probe means "not ready yet"
            with lock:
                errors[check.name] = one_line(exc, limit=200)
        else:
            with lock:
                ready_at[check.name] = clock() - started
                errors[check.name] = None
                say(f"ready: {check.name} ({ready_at[check.name]:.2f} s)")

    def attempt() -> list[str]:
        nonlocal rounds
        rounds += 1
        pending = [c for c in checks if c.name not in ready_at]
        for check in pending:
            attempts[check.name] += 1
        # The probes of a round run side by side: the endpoint's first answer (a function's
        # cold start, in the local cloud's process) no longer waits behind the AWS API probes
        # (each of whose first call loads a botocore service model, in this one).
        # Daemon threads, joined here: a probe bounded by its own timeout can never keep the
        # process from exiting on a signal.
        threads = [
            threading.Thread(target=run_probe, args=(c,), name="branchenv-ready", daemon=True)
            for c in pending[1:]
        ]
        for thread in threads:
            thread.start()
        if pending:
            run_probe(pending[0])
        for thread in threads:
            thread.join()
        return [c.name for c in checks if c.name not in ready_at]

    if max_attempts is None:
        # Enough rounds to reach the deadline at the longest wait (2 s), with some to spare:
        # the deadline, not a fixed count, decides how long a slow stack gets.
        max_attempts = max(DEFAULT_MAX_ATTEMPTS, math.ceil(deadline_s / 2.0) + 10)
    retrying = Retrying(
        stop=stop_after_delay(deadline_s) | stop_after_attempt(max_attempts),
        wait=wait_exponential(multiplier=0.05, min=0.05, max=2.0),
        retry=retry_if_result(lambda pending: bool(pending)),
        sleep=sleep,
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
    )
    retrying(attempt)
    report = ReadinessReport(
        ready=len(ready_at) == len(checks),
        seconds=clock() - started,
        attempts=rounds,
        checks=tuple(
            CheckResult(
                name=c.name,
                ok=c.name in ready_at,
                attempts=attempts[c.name],
                ready_after_s=ready_at.get(c.name),
                last_error=errors[c.name],
            )
            for c in checks
        ),
    )
    if not report.ready and raise_on_timeout:
        raise NotReady(report)
    return report


# --- checks from a stack's outputs -------------------------------------------------------------


def _is(key: str, name: str) -> bool:
    return key == name or key.endswith("_" + name)


def checks_for_stack(
    outputs: Mapping[str, Any],
    target: Target,
    *,
    health_path: str = HEALTH_PATH,
    timeout_s: float = 5.0,
    endpoints_only: bool = False,
) -> list[Check]:
    """The readiness checks for a stack's outputs (see the module doc for the conventions);
    ``endpoints_only``: the endpoints' alone, for a stack whose resources the caller has just
    found in place, unchanged since they last passed these checks (a warm-pool claim that
    applied nothing)."""
    checks: list[Check] = []
    clients: dict[str, Any] = {}
    made = threading.Lock()

    def client(service: str) -> Any:
        # Probes run side by side (wait_ready): a boto3 session is not thread-safe, its clients
        # are, so clients are made one at a time.
        with made:
            return _client(service)

    def _client(service: str) -> Any:
        if service not in clients:
            from botocore.config import Config

            cfg = Config(
                connect_timeout=timeout_s,
                read_timeout=timeout_s,
                retries={"total_max_attempts": 1, "mode": "standard"},
            )
            # From the target's shared session: in `ci` the engine has just read these
            # services' models, which a session of the checks' own would read again (0.1 s
            # of CPU per service while the first probes wait).
            clients[service] = target.client(service, config=cfg)
        return clients[service]

    for key in sorted(outputs):
        value = outputs[key]
        if not isinstance(value, str) or not value:
            continue
        if _is(key, "endpoint") and value.startswith(("http://", "https://")):
            checks.append(Check(f"{key} GET {health_path}", _health_probe(value, health_path)))
        elif endpoints_only:
            continue
        elif _is(key, "table_name"):
            checks.append(Check(f"dynamodb table {value}", _table_probe(client, value)))
        elif _is(key, "queue_url") or key == "dlq_url":
            checks.append(
                Check(f"sqs queue {value.rsplit('/', 1)[-1]}", _queue_probe(client, value))
            )
        elif _is(key, "bucket_name"):
            checks.append(Check(f"s3 bucket {value}", _bucket_probe(client, value)))
        elif _is(key, "function_name"):
            checks.append(Check(f"lambda function {value}", _function_probe(client, value)))
    return checks


def _health_probe(endpoint: str, path: str, timeout_s: float = 5.0) -> Callable[[], None]:
    url = endpoint.rstrip("/") + "/" + path.lstrip("/")

    def probe() -> None:
        import requests

        response = requests.get(url, timeout=timeout_s)
        if response.status_code != 200:
            raise NotYet(f"HTTP {response.status_code} {response.text[:120]}")

    return probe


def _table_probe(client: Callable[[str], Any], name: str) -> Callable[[], None]:
    def probe() -> None:
        status = client("dynamodb").describe_table(TableName=name)["Table"]["TableStatus"]
        if status != "ACTIVE":
            raise NotYet(f"table status {status}")

    return probe


def _queue_probe(client: Callable[[str], Any], url: str) -> Callable[[], None]:
    def probe() -> None:
        client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])

    return probe


def _bucket_probe(client: Callable[[str], Any], name: str) -> Callable[[], None]:
    def probe() -> None:
        client("s3").head_bucket(Bucket=name)

    return probe


def _function_probe(client: Callable[[str], Any], name: str) -> Callable[[], None]:
    def probe() -> None:
        config = client("lambda").get_function(FunctionName=name)["Configuration"]
        state = config.get("State")
        if state not in (None, "Active"):
            raise NotYet(f"function state {state}")

    return probe
