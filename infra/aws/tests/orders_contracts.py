"""JSON schemas of every response the orders API gives (its contract with clients)."""

from __future__ import annotations

from typing import Any

ORDER_ID = {"type": "string", "pattern": "^[0-9a-f]{32}$"}

ORDER: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "order (201 on create, 200 on read)",
    "type": "object",
    "required": ["id", "status", "customer", "items", "created_at", "expires_at"],
    "additionalProperties": False,
    "properties": {
        "id": ORDER_ID,
        "status": {"enum": ["received"]},
        "customer": {"type": "string", "minLength": 1, "maxLength": 100},
        "items": {
            "type": "array",
            "minItems": 1,
            "maxItems": 100,
            "items": {
                "type": "object",
                "required": ["sku", "qty"],
                "additionalProperties": False,
                "properties": {
                    "sku": {"type": "string", "minLength": 1, "maxLength": 100},
                    "qty": {"type": "integer", "minimum": 1, "maximum": 1000},
                },
            },
        },
        "created_at": {
            "type": "string",
            "format": "date-time",
            "pattern": "^\\d{4}-\\d\\d-\\d\\dT",
        },
        "expires_at": {"type": "integer", "minimum": 0},
    },
}

ERROR: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "400 error",
    "type": "object",
    "required": ["error", "details"],
    "additionalProperties": False,
    "properties": {
        "error": {"type": "string", "minLength": 1},
        "details": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
    },
}

NOT_FOUND: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "404 error",
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {"error": {"const": "order not found"}},
}

HEALTH: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "health",
    "type": "object",
    "required": ["status", "checks"],
    "additionalProperties": False,
    "properties": {
        "status": {"enum": ["ok", "unavailable"]},
        "checks": {
            "type": "object",
            "required": ["dynamodb", "sqs"],
            "additionalProperties": {"type": "string"},
        },
    },
}

UNAVAILABLE: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "503 dependency unavailable",
    "type": "object",
    "required": ["error", "dependency"],
    "additionalProperties": False,
    "properties": {
        "error": {"const": "dependency unavailable"},
        "dependency": {"enum": ["dynamodb", "sqs"]},
    },
}
