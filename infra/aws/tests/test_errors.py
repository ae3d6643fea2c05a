"""Error handling: bad input gets a 4xx that says what is wrong, never a 5xx."""

from __future__ import annotations

import uuid
from typing import Any

import orders_contracts as schema
import pytest

BAD_BODIES = [
    pytest.param(b"{not json", "malformed JSON body", id="malformed-json"),
    pytest.param(b"", "malformed JSON body", id="empty-body"),
    pytest.param(b"[1, 2]", "invalid order", id="not-an-object"),
    pytest.param(b'{"items": [{"sku": "a", "qty": 1}]}', "invalid order", id="no-customer"),
    pytest.param(b'{"customer": "ada"}', "invalid order", id="no-items"),
    pytest.param(
        b'{"customer": "ada", "items": [{"sku": "a", "qty": 0}]}', "invalid order", id="qty-0"
    ),
    pytest.param(
        b'{"customer": "ada", "items": [{"sku": "a", "qty": true}]}',
        "invalid order",
        id="qty-bool",
    ),
]


@pytest.mark.parametrize(("raw", "error"), BAD_BODIES)
def test_bad_create_is_400_with_details(
    branchenv_http: Any, branchenv_contract: Any, raw: bytes, error: str
) -> None:
    response = branchenv_http.post(
        "/orders", data=raw, headers={"content-type": "application/json"}
    )
    body = branchenv_contract(response, schema.ERROR, status=400)
    assert body["error"] == error


def test_missing_fields_are_all_listed(branchenv_http: Any) -> None:
    response = branchenv_http.post("/orders", json={})
    assert response.status_code == 400
    details = " ".join(response.json()["details"])
    assert "customer" in details and "items" in details


def test_unknown_id_is_404(branchenv_http: Any) -> None:
    assert branchenv_http.get(f"/orders/{uuid.uuid4().hex}").status_code == 404


@pytest.mark.parametrize("order_id", ["not-an-id", "ABCDEF", "0" * 33])
def test_malformed_id_is_400(branchenv_http: Any, order_id: str) -> None:
    response = branchenv_http.get(f"/orders/{order_id}")
    assert response.status_code == 400, response.text


def test_unrouted_requests_are_4xx(branchenv_http: Any) -> None:
    for method, path in (("GET", "/nope"), ("DELETE", "/orders"), ("PUT", "/health")):
        response = branchenv_http.request(method, path)
        assert 400 <= response.status_code < 500, (method, path, response.status_code)
