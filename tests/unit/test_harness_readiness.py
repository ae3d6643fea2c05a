"""Readiness: polling under a deadline with injected sleep, and checks derived from outputs."""

from __future__ import annotations

import pytest

from branchenv.harness.readiness import Check, NotReady, NotYet, checks_for_stack, wait_ready
from branchenv.targets import Target


def flaky(name: str, failures: int) -> tuple[Check, list[int]]:
    """A check that fails ``failures`` times, then passes; the list counts its calls."""
    calls: list[int] = []

    def probe() -> None:
        calls.append(1)
        if len(calls) <= failures:
            raise NotYet(f"{name} not yet ({len(calls)})")

    return Check(name, probe), calls


def test_ready_once_every_check_passed_and_passed_checks_are_not_rerun() -> None:
    fast, fast_calls = flaky("fast", 0)
    slow, slow_calls = flaky("slow", 3)
    sleeps: list[float] = []
    report = wait_ready([fast, slow], sleep=sleeps.append, max_attempts=10)
    assert report.ready and report.attempts == 4
    assert (len(fast_calls), len(slow_calls)) == (1, 4)
    assert len(sleeps) == 3 and sleeps == sorted(sleeps)  # exponential, never shrinking
    by_name = {c.name: c for c in report.checks}
    assert by_name["slow"].attempts == 4 and by_name["slow"].last_error is None


def test_timeout_names_what_was_not_ready_with_its_last_error() -> None:
    ok, _ = flaky("table", 0)
    never, _ = flaky("endpoint GET /health", 1000)
    sleeps: list[float] = []
    with pytest.raises(NotReady) as info:
        wait_ready([ok, never], sleep=sleeps.append, max_attempts=5)
    message = str(info.value)
    assert "endpoint GET /health: NotYet: endpoint GET /health not yet (5)" in message
    assert "table" not in message.split("attempts):", 1)[1]
    assert "--ready-timeout" in message
    assert info.value.report.pending[0].name == "endpoint GET /health"
    assert len(sleeps) == 4


def test_any_exception_in_a_probe_means_not_ready() -> None:
    def boom() -> None:
        raise ConnectionError("refused")

    report = wait_ready(
        [Check("x", boom)], sleep=lambda _s: None, max_attempts=2, raise_on_timeout=False
    )
    assert not report.ready and report.checks[0].last_error == "ConnectionError: refused"


def test_deadline_stops_polling() -> None:
    never, calls = flaky("never", 10**6)
    # tenacity measures the deadline on its own clock: a zero deadline allows one attempt
    with pytest.raises(NotReady):
        wait_ready([never], deadline_s=0.0, max_attempts=10**6, sleep=lambda _s: None)
    assert len(calls) == 1


def test_checks_follow_output_names() -> None:
    outputs = {
        "endpoint": "http://127.0.0.1:1/api/x",
        "admin_endpoint": "https://example.invalid/admin",
        "table_name": "t",
        "audit_table_name": "t2",
        "queue_url": "http://127.0.0.1:1/123/q",
        "dlq_url": "http://127.0.0.1:1/123/q-dlq",
        "bucket_name": "b",
        "function_name": "f",
        "region": "us-east-1",
        "max_receive_count": 3,
        "role_name": "r",
    }
    target = Target(name="local", region="us-east-1", endpoint_url="http://127.0.0.1:1")
    names = sorted(c.name for c in checks_for_stack(outputs, target))
    assert names == [
        "admin_endpoint GET /health",
        "dynamodb table t",
        "dynamodb table t2",
        "endpoint GET /health",
        "lambda function f",
        "s3 bucket b",
        "sqs queue q",
        "sqs queue q-dlq",
    ]
    # A warm claim that applied nothing and found every resource in place: its endpoints only.
    only = sorted(c.name for c in checks_for_stack(outputs, target, endpoints_only=True))
    assert only == ["admin_endpoint GET /health", "endpoint GET /health"]


def test_the_probes_of_a_round_run_side_by_side() -> None:
    """The first probe waits for the second to have started: run one after the other, the
    first would give up (its wait runs out) and the round could not pass in one attempt."""
    import threading

    second_started = threading.Event()
    waited: list[bool] = []

    def first() -> None:
        waited.append(second_started.wait(timeout=10))
        if not waited[-1]:
            raise NotYet("the second probe never ran alongside")

    def second() -> None:
        second_started.set()

    report = wait_ready(
        [Check("endpoint GET /health", first), Check("s3 bucket b", second)],
        sleep=lambda _s: None,
        max_attempts=1,
        raise_on_timeout=False,
    )
    assert report.ready and report.attempts == 1
    assert waited == [True]
