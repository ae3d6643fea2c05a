"""Actual cost per stack from Cost Explorer on the local cloud, over HTTP.

Results are seeded through the local cloud's ``/moto-api/static/ce/cost-and-usage-results``:
each ``get_cost_and_usage`` call with a new request body takes the next seeded result, so a
first call and calls carrying each ``NextPageToken`` get one seeded page each.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import requests

from branchenv.cost.actual import ACTIVATION_HINT, fetch_actuals


def seed(endpoint: str, pages: list[dict[str, Any]]) -> None:
    resp = requests.post(
        f"{endpoint}/moto-api/static/ce/cost-and-usage-results",
        json={"results": pages},
        timeout=10,
    )
    assert resp.status_code == 201, resp.text


def day(start: dt.date, groups: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "TimePeriod": {"Start": start.isoformat(), "End": (start + dt.timedelta(1)).isoformat()},
        "Total": {},
        "Groups": [
            {
                "Keys": [f"branchenv:stack${stack}"],
                "Metrics": {"UnblendedCost": {"Amount": amount, "Unit": "USD"}},
            }
            for stack, amount in groups
        ],
        "Estimated": True,
    }


def test_seeded_pages_become_per_stack_actuals(local_cloud: Any) -> None:
    a, b, c = (f"int-{uuid.uuid4().hex[:8]}" for _ in range(3))
    # A period no other test asks for, so this test's request bodies are its own.
    start = dt.date(2020, 1, 1) + dt.timedelta(days=uuid.uuid4().int % 3000)
    d1, d2, d3 = (start + dt.timedelta(days=i) for i in range(3))
    seed(
        local_cloud.endpoint_url,
        [
            {"ResultsByTime": [day(d1, [(a, "0.10"), (b, "1.25")])], "NextPageToken": "page-2"},
            {"ResultsByTime": [day(d2, [(a, "0.0200000001"), ("", "7")])], "NextPageToken": "p3"},
            {"ResultsByTime": [day(d3, [(b, "0.75"), (c, "2")])]},
        ],
    )
    result = fetch_actuals(local_cloud.client("ce"), start=d1, end=d3 + dt.timedelta(1))
    assert result.pages == 3
    assert dict(result.by_stack) == {
        a: Decimal("0.1200000001"),
        b: Decimal("2.00"),
        c: Decimal("2"),
    }
    assert result.untagged == Decimal("7")
    assert result.estimated and result.unit == "USD" and result.note is None
    # Asking for some stacks keeps only theirs (the query itself covers every tag value).
    again = fetch_actuals(local_cloud.client("ce"), start=d1, end=d3 + dt.timedelta(1), stacks=[a])
    assert dict(again.by_stack) == {a: Decimal("0.1200000001")}


def test_no_results_explain_tag_activation(local_cloud: Any) -> None:
    start = dt.date(2012, 1, 1) + dt.timedelta(days=uuid.uuid4().int % 3000)
    result = fetch_actuals(local_cloud.client("ce"), start=start, end=start + dt.timedelta(1))
    assert result.by_stack == {} and result.pages == 1
    assert result.note == ACTIVATION_HINT
    assert "24 h" in result.note and "update-cost-allocation-tags-status" in result.note
