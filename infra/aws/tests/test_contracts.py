"""Contracts: every kind of response the API gives matches its JSON schema."""

from __future__ import annotations

import uuid
from typing import Any

import orders_contracts as schema


def test_health_contract(branchenv_http: Any, branchenv_contract: Any) -> None:
    body = branchenv_contract(branchenv_http.get("/health"), schema.HEALTH, status=200)
    assert body == {"status": "ok", "checks": {"dynamodb": "ok", "sqs": "ok"}}


def test_create_order_contract(branchenv_http: Any, branchenv_contract: Any) -> None:
    request = {"customer": "ada", "items": [{"sku": "book", "qty": 2}, {"sku": "pen", "qty": 1}]}
    body = branchenv_contract(
        branchenv_http.post("/orders", json=request), schema.ORDER, status=201
    )
    assert body["customer"] == "ada" and body["items"] == request["items"]


def test_get_order_contract(branchenv_http: Any, branchenv_contract: Any, new_order: Any) -> None:
    created = new_order()
    body = branchenv_contract(
        branchenv_http.get(f"/orders/{created['id']}"), schema.ORDER, status=200
    )
    assert body == created


def test_not_found_contract(branchenv_http: Any, branchenv_contract: Any) -> None:
    branchenv_contract(
        branchenv_http.get(f"/orders/{uuid.uuid4().hex}"), schema.NOT_FOUND, status=404
    )


def test_bad_request_contract(branchenv_http: Any, branchenv_contract: Any) -> None:
    body = branchenv_contract(
        branchenv_http.post("/orders", json={"items": []}), schema.ERROR, status=400
    )
    assert body["error"] == "invalid order"
