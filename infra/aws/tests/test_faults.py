"""Fault injection: when DynamoDB is slow, resets connections or is down, the API answers 503
fast (well under the function timeout) instead of hanging, and recovers once the fault clears.

A real TCP proxy sits between the function and DynamoDB (``branchenv_fault_proxy``). Each test
also checks the proxy's own counters, so these tests fail if the traffic bypasses the proxy.
"""

from __future__ import annotations

import time
from typing import Any

import orders_contracts as schema
import pytest

from branchenv.harness.faults import FaultMode, FaultProxy

FAULTS = [
    pytest.param(FaultMode.LATENCY, 3.0, "delayed", id="latency"),
    pytest.param(FaultMode.RESET, 0.0, "resets", id="reset"),
    pytest.param(FaultMode.DOWN, 0.0, None, id="down"),
]


@pytest.fixture(scope="module")
def dynamodb_proxy(branchenv_fault_proxy: Any) -> FaultProxy:
    proxy: FaultProxy = branchenv_fault_proxy("dynamodb")
    return proxy


@pytest.fixture(scope="module")
def function_timeout_s(branchenv_boto3_session: Any, branchenv_outputs: dict[str, Any]) -> float:
    config = branchenv_boto3_session.client("lambda").get_function_configuration(
        FunctionName=branchenv_outputs["function_name"]
    )
    return float(config["Timeout"])


def _order() -> dict[str, Any]:
    return {"customer": "fault-test", "items": [{"sku": "cable", "qty": 1}]}


def test_pass_mode_serves_through_the_proxy(
    dynamodb_proxy: FaultProxy, branchenv_http: Any
) -> None:
    before = dynamodb_proxy.stats()
    created = branchenv_http.post("/orders", json=_order())
    assert created.status_code == 201, created.text
    fetched = branchenv_http.get(f"/orders/{created.json()['id']}")
    assert fetched.status_code == 200, fetched.text
    after = dynamodb_proxy.stats()
    # The service's DynamoDB calls really went through the proxy: it forwarded them both ways.
    assert after.bytes_up > before.bytes_up and after.bytes_down > before.bytes_down
    assert after.forwarded >= 1


@pytest.mark.parametrize(("mode", "latency_s", "counter"), FAULTS)
def test_dependency_fault_fails_fast_then_recovers(
    dynamodb_proxy: FaultProxy,
    branchenv_http: Any,
    branchenv_contract: Any,
    function_timeout_s: float,
    mode: FaultMode,
    latency_s: float,
    counter: str | None,
) -> None:
    with dynamodb_proxy.fault(mode, latency_s=latency_s):
        before = dynamodb_proxy.stats()
        started = time.monotonic()
        response = branchenv_http.post("/orders", json=_order())
        elapsed = time.monotonic() - started
        # 503 from the service itself (the runner's own timeout answer has another body).
        body = branchenv_contract(response, schema.UNAVAILABLE, status=503)
        assert body["dependency"] == "dynamodb"
        assert response.headers.get("retry-after") == "1"
        assert elapsed < function_timeout_s / 2, f"took {elapsed:.1f} s: not failing fast"
        if counter is not None:
            assert getattr(dynamodb_proxy.stats(), counter) > getattr(before, counter)
        if mode is not FaultMode.LATENCY:  # (a slow health check would only cost time)
            health = branchenv_http.get("/health")
            assert health.status_code == 503
            checks = health.json()["checks"]
            assert checks["dynamodb"] != "ok" and checks["sqs"] == "ok"
    recovered = branchenv_http.post("/orders", json=_order())
    assert recovered.status_code == 201, recovered.text
    assert branchenv_http.get("/health").status_code == 200
