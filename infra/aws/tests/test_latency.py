"""The latency objective: p95 of reading an order over 50 requests, under settings.latency_p95_ms."""

from __future__ import annotations

from typing import Any

REQUESTS = 50


def test_read_order_p95_within_slo(
    branchenv_http: Any, branchenv_latency: Any, branchenv_slo: Any, new_order: Any
) -> None:
    order_id = new_order()["id"]
    branchenv_http.get(f"/orders/{order_id}")  # warm the path, not measured
    stats = branchenv_latency(
        lambda: branchenv_http.get(f"/orders/{order_id}"), n=REQUESTS, name="GET /orders/{id}"
    )
    assert stats.count == REQUESTS and stats.errors == 0
    assert stats.p95_ms <= branchenv_slo.latency_p95_ms, (
        f"p95 {stats.p95_ms:.1f} ms over the {branchenv_slo.latency_p95_ms} ms objective"
    )
