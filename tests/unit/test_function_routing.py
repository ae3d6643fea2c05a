"""Route matching and event shapes of the local function runner (pure functions)."""

from __future__ import annotations

import base64
import json

import pytest

from branchenv.localcloud.functions import build_event, match_route, to_http_response

ROUTES = [
    ("GET /orders/{id}", "get"),
    ("POST /orders", "post"),
    ("GET /orders/special", "special"),
    ("ANY /files/{proxy+}", "files"),
    ("GET /health", "health"),
]


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/orders/abc", ("GET /orders/{id}", "get", {"id": "abc"})),
        ("GET", "/orders/special", ("GET /orders/special", "special", {})),
        ("POST", "/orders", ("POST /orders", "post", {})),
        ("GET", "/orders", None),
        ("DELETE", "/orders/abc", None),
        ("PUT", "/files/a/b/c", ("ANY /files/{proxy+}", "files", {"proxy": "a/b/c"})),
        ("GET", "/health/", ("GET /health", "health", {})),
        ("GET", "/orders/a%20b", ("GET /orders/{id}", "get", {"id": "a b"})),
    ],
)
def test_match_route(method: str, path: str, expected: object) -> None:
    assert match_route(ROUTES, method, path) == expected


def test_default_route_catches_the_rest_but_loses_to_specific() -> None:
    routes = [*ROUTES, ("$default", "fallback")]
    assert match_route(routes, "GET", "/nowhere") == ("$default", "fallback", {})
    assert match_route(routes, "POST", "/orders") == ("POST /orders", "post", {})


def test_event_is_payload_format_2() -> None:
    ev = build_event(
        method="POST",
        raw_path="/orders",
        raw_query="a=1&a=2&b=",
        headers={"Content-Type": "application/json", "Cookie": "x=1; y=2", "X-Thing": "v"},
        body=b'{"k": 1}',
        route_key="POST /orders",
        path_params={},
        api_id="abc123",
        account_id="123456789012",
        domain="127.0.0.1:9000",
        source_ip="127.0.0.1",
    )
    assert ev["version"] == "2.0"
    assert ev["routeKey"] == ev["requestContext"]["routeKey"] == "POST /orders"
    assert ev["headers"]["x-thing"] == "v" and "cookie" not in ev["headers"]
    assert ev["cookies"] == ["x=1", "y=2"]
    assert ev["queryStringParameters"] == {"a": "1,2", "b": ""}
    assert ev["body"] == '{"k": 1}' and ev["isBase64Encoded"] is False
    assert ev["requestContext"]["http"]["method"] == "POST"
    assert "pathParameters" not in ev


def test_binary_body_is_base64() -> None:
    ev = build_event(
        method="PUT",
        raw_path="/f",
        raw_query="",
        headers={"content-type": "image/png"},
        body=b"\x89PNG",
        route_key="$default",
        path_params={},
        api_id="",
        account_id="1",
        domain="d",
        source_ip="127.0.0.1",
    )
    assert ev["isBase64Encoded"] is True
    assert base64.b64decode(ev["body"]) == b"\x89PNG"


def test_response_shapes() -> None:
    assert to_http_response({"statusCode": 201, "body": "x", "headers": {"a": "b"}}) == (
        201,
        {"a": "b"},
        b"x",
    )
    raw = base64.b64encode(b"\x00\x01").decode()
    assert to_http_response({"statusCode": 200, "body": raw, "isBase64Encoded": True})[2] == (
        b"\x00\x01"
    )
    status, _headers, body = to_http_response({"hello": "world"})
    assert status == 200 and json.loads(body) == {"hello": "world"}
