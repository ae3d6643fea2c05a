"""The orders stack's integration suite: run it with `branchenv test` or `branchenv ci`.

Every fixture it uses comes from branchenv's pytest plugin (``branchenv_*``); without a stack
selected they skip. The program's own constants (``orders_stack_spec``) sit one directory up.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

PROGRAM_DIR = Path(__file__).resolve().parent.parent
if str(PROGRAM_DIR) not in sys.path:
    sys.path.insert(0, str(PROGRAM_DIR))


@pytest.fixture
def new_order(branchenv_http: Any) -> Any:
    """``new_order(customer=..., items=...)``: POST an order, check 201, return its body."""

    def create(customer: str | None = None, items: list[dict[str, Any]] | None = None) -> Any:
        body = {
            "customer": customer or f"it-{uuid.uuid4().hex[:8]}",
            "items": items or [{"sku": "book", "qty": 2}],
        }
        response = branchenv_http.post("/orders", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    return create
