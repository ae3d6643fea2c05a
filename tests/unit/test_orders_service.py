"""The orders service (infra/aws/service/orders.py): routing, validation and error mapping, with
in-memory fakes standing in for the DynamoDB and SQS clients. Runs against real moto come from
the integration suite."""

from __future__ import annotations

import base64
import importlib.util
import json
import socket
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SERVICE_FILE = Path(__file__).resolve().parents[2] / "infra" / "aws" / "service" / "orders.py"
TABLE = "feat-x-orders"
QUEUE_URL = "http://127.0.0.1:5000/123456789012/feat-x-orders"


def load_service() -> ModuleType:
    """A fresh copy of the service module (its client cache is per-process state)."""
    spec = importlib.util.spec_from_file_location("branchenv_demo_orders_service", SERVICE_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeDynamoDB:
    """The three DynamoDB calls the service makes, over a dict; ``fail`` raises instead."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.fail = fail
        self.calls: list[str] = []

    def _maybe_fail(self, operation: str) -> None:
        self.calls.append(operation)
        if self.fail is not None:
            raise self.fail

    def put_item(self, *, TableName: str, Item: dict[str, Any]) -> dict[str, Any]:
        self._maybe_fail("put_item")
        assert TableName == TABLE
        self.items[Item["id"]["S"]] = Item
        return {}

    def get_item(
        self, *, TableName: str, Key: dict[str, Any], ConsistentRead: bool = False
    ) -> dict[str, Any]:
        self._maybe_fail("get_item")
        assert TableName == TABLE
        item = self.items.get(Key["id"]["S"])
        return {"Item": item} if item else {}

    def describe_table(self, *, TableName: str) -> dict[str, Any]:
        self._maybe_fail("describe_table")
        assert TableName == TABLE
        return {"Table": {"TableName": TableName, "TableStatus": "ACTIVE"}}


class FakeSQS:
    def __init__(self, fail: BaseException | None = None) -> None:
        self.messages: list[dict[str, Any]] = []
        self.fail = fail

    def send_message(self, *, QueueUrl: str, MessageBody: str) -> dict[str, Any]:
        if self.fail is not None:
            raise self.fail
        assert QueueUrl == QUEUE_URL
        self.messages.append(json.loads(MessageBody))
        return {"MessageId": "m-1"}

    def get_queue_attributes(self, *, QueueUrl: str, AttributeNames: list[str]) -> dict[str, Any]:
        if self.fail is not None:
            raise self.fail
        assert QueueUrl == QUEUE_URL
        return {"Attributes": {"QueueArn": "arn:aws:sqs:us-east-1:123456789012:feat-x-orders"}}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TABLE_NAME", TABLE)
    monkeypatch.setenv("QUEUE_URL", QUEUE_URL)
    monkeypatch.setenv("BUCKET_NAME", "feat-x-artifacts")
    monkeypatch.setenv("SERVICE_TIMEOUT_S", "2")


class Service:
    """The module with fakes injected, plus helpers to send it API Gateway v2 events."""

    def __init__(self, dynamodb: FakeDynamoDB | None = None, sqs: FakeSQS | None = None) -> None:
        self.module = load_service()
        self.dynamodb = dynamodb or FakeDynamoDB()
        self.sqs = sqs or FakeSQS()
        self.module.use_clients(dynamodb=self.dynamodb, sqs=self.sqs)

    def call(self, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        response = self.module.handler(event, None)
        assert set(response) == {"statusCode", "headers", "body"}
        assert response["headers"]["content-type"] == "application/json"
        return response["statusCode"], json.loads(response["body"])

    def post(self, body: Any, *, raw: str | None = None) -> tuple[int, dict[str, Any]]:
        text = raw if raw is not None else json.dumps(body)
        return self.call(apigw_event("POST /orders", "/orders", body=text))

    def get(self, order_id: str) -> tuple[int, dict[str, Any]]:
        return self.call(apigw_event("GET /orders/{id}", f"/orders/{order_id}", id=order_id))


def apigw_event(
    route_key: str, path: str, *, body: str | None = None, id: str | None = None
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event that matched ``route_key``."""
    method = route_key.split(" ", 1)[0] if route_key != "$default" else "GET"
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {"http": {"method": method, "path": path}, "stage": "$default"},
        "isBase64Encoded": False,
    }
    if body is not None:
        event["body"] = body
    if id is not None:
        event["pathParameters"] = {"id": id}
    return event


def url_event(method: str, path: str, body: str | None = None) -> dict[str, Any]:
    """A Lambda function URL event (route key ``$default``)."""
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "requestContext": {"http": {"method": method, "path": path}},
        "isBase64Encoded": False,
    }
    if body is not None:
        event["body"] = body
    return event


VALID = {"customer": "ada", "items": [{"sku": "SKU-1", "qty": 2}, {"sku": "b", "qty": 1000}]}


# --- POST /orders ------------------------------------------------------------------------------


def test_valid_post_stores_the_order_and_announces_it(env: None) -> None:
    service = Service()
    status, order = service.post(VALID)
    assert status == 201
    assert order["status"] == "received"
    assert order["customer"] == "ada"
    assert order["items"] == VALID["items"]
    assert len(order["id"]) == 32 and int(order["id"], 16) >= 0
    assert order["expires_at"] - int(
        __import__("datetime").datetime.fromisoformat(order["created_at"]).timestamp()
    ) in range(7 * 24 * 3600 - 1, 7 * 24 * 3600 + 1)
    stored = service.dynamodb.items[order["id"]]
    assert stored["expires_at"] == {"N": str(order["expires_at"])}
    assert stored["status"] == {"S": "received"}
    assert service.sqs.messages == [{"type": "order.created", "order_id": order["id"]}]
    # and it reads back the same
    assert service.get(order["id"]) == (200, order)


def test_post_through_a_function_url_event_and_base64_body(env: None) -> None:
    service = Service()
    event = url_event("POST", "/orders/", base64.b64encode(json.dumps(VALID).encode()).decode())
    event["isBase64Encoded"] = True
    status, order = service.call(event)
    assert status == 201
    status, read = service.call(url_event("GET", f"/orders/{order['id']}"))
    assert (status, read) == (200, order)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("{not json", "malformed JSON body"),
        ("", "malformed JSON body"),
        ("[1, 2]", "invalid order"),
        ('"a string"', "invalid order"),
    ],
)
def test_malformed_bodies_are_400(env: None, raw: str, error: str) -> None:
    service = Service()
    status, body = service.post(None, raw=raw)
    assert status == 400
    assert body["error"] == error
    assert body["details"] and all(isinstance(d, str) for d in body["details"])
    assert service.dynamodb.items == {} and service.sqs.messages == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"items": VALID["items"]}, "customer"),
        ({"customer": "", "items": VALID["items"]}, "customer"),
        ({"customer": "   ", "items": VALID["items"]}, "customer"),
        ({"customer": 7, "items": VALID["items"]}, "customer"),
        ({"customer": "x" * 101, "items": VALID["items"]}, "customer"),
        ({"customer": "ada"}, "items"),
        ({"customer": "ada", "items": []}, "items"),
        ({"customer": "ada", "items": {"sku": "a", "qty": 1}}, "items"),
        ({"customer": "ada", "items": ["SKU-1"]}, "items[0]"),
        ({"customer": "ada", "items": [{"qty": 1}]}, "items[0].sku"),
        ({"customer": "ada", "items": [{"sku": "", "qty": 1}]}, "items[0].sku"),
        ({"customer": "ada", "items": [{"sku": "a"}]}, "items[0].qty"),
        ({"customer": "ada", "items": [{"sku": "a", "qty": 0}]}, "items[0].qty"),
        ({"customer": "ada", "items": [{"sku": "a", "qty": 1001}]}, "items[0].qty"),
        ({"customer": "ada", "items": [{"sku": "a", "qty": -3}]}, "items[0].qty"),
        ({"customer": "ada", "items": [{"sku": "a", "qty": 2.5}]}, "items[0].qty"),
        ({"customer": "ada", "items": [{"sku": "a", "qty": "2"}]}, "items[0].qty"),
        ({"customer": "ada", "items": [{"sku": "a", "qty": True}]}, "items[0].qty"),
        (
            {"customer": "ada", "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 0}]},
            "items[1].qty",
        ),
    ],
)
def test_invalid_fields_are_400_naming_the_field(
    env: None, body: dict[str, Any], field: str
) -> None:
    service = Service()
    status, reply = service.post(body)
    assert status == 400
    assert reply["error"] == "invalid order"
    assert [d for d in reply["details"] if d.startswith(f"{field}:")], reply["details"]
    assert service.dynamodb.items == {} and service.sqs.messages == []


def test_every_problem_is_reported_at_once(env: None) -> None:
    status, reply = Service().post({"customer": "", "items": [{"sku": "", "qty": 0}]})
    assert status == 400
    assert [d.split(":")[0] for d in reply["details"]] == [
        "customer",
        "items[0].sku",
        "items[0].qty",
    ]


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    customer=st.text(min_size=1, max_size=100).filter(str.strip),
    items=st.lists(
        st.fixed_dictionaries(
            {
                "sku": st.text(min_size=1, max_size=100).filter(str.strip),
                "qty": st.integers(1, 1000),
            }
        ),
        min_size=1,
        max_size=20,
    ),
)
def test_any_valid_order_round_trips(env: None, customer: str, items: list[dict[str, Any]]) -> None:
    service = Service()
    status, order = service.post({"customer": customer, "items": items})
    assert status == 201
    assert (order["customer"], order["items"]) == (customer, items)
    assert service.get(order["id"]) == (200, order)


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(qty=st.one_of(st.integers(max_value=0), st.integers(min_value=1001), st.floats()))
def test_any_out_of_range_qty_is_400(env: None, qty: Any) -> None:
    status, reply = Service().post({"customer": "ada", "items": [{"sku": "a", "qty": qty}]})
    assert status == 400
    assert reply["details"][0].startswith("items[0].qty:")


# --- GET /orders/{id} ----------------------------------------------------------------------------


def test_unknown_id_is_404(env: None) -> None:
    assert Service().get("0" * 32) == (404, {"error": "order not found"})


@pytest.mark.parametrize(
    "order_id", ["abc", "0" * 31, "0" * 33, "G" * 32, "A" * 32, "..%2F" + "0" * 27]
)
def test_badly_formed_id_is_400_without_a_lookup(env: None, order_id: str) -> None:
    service = Service()
    status, reply = service.get(order_id)
    assert status == 400
    assert reply["error"] == "invalid order id"
    assert service.dynamodb.calls == []


# --- GET /health -----------------------------------------------------------------------------


def test_health_ok(env: None) -> None:
    status, body = Service().call(apigw_event("GET /health", "/health"))
    assert (status, body) == (200, {"status": "ok", "checks": {"dynamodb": "ok", "sqs": "ok"}})


def test_health_names_the_failing_check(env: None) -> None:
    service = Service(sqs=FakeSQS(fail=EndpointConnectionError(endpoint_url=QUEUE_URL)))
    status, body = service.call(apigw_event("GET /health", "/health"))
    assert status == 503
    assert body["checks"]["dynamodb"] == "ok"
    assert body["checks"]["sqs"].startswith("failed")
    assert body["status"] != "ok"


# --- routing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/", 404),
        ("GET", "/nope", 404),
        ("POST", "/orders/abc/extra", 404),
        ("GET", "/orders", 405),
        ("DELETE", "/orders/" + "0" * 32, 405),
        ("POST", "/health", 405),
        ("GET", "/health/", 200),
    ],
)
def test_routing_by_method_and_path(env: None, method: str, path: str, status: int) -> None:
    got, body = Service().call(url_event(method, path))
    assert got == status
    if status != 200:
        assert isinstance(body["error"], str)


def test_405_says_what_is_allowed(env: None) -> None:
    response = Service().module.handler(url_event("PUT", "/orders"), None)
    assert response["statusCode"] == 405
    assert response["headers"]["allow"] == "POST"


# --- dependency failures -----------------------------------------------------------------------


def _client_error(code: str, status: int) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": "boom"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "PutItem")


DEPENDENCY_ERRORS = [
    EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
    ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"),
    ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
    _client_error("ProvisionedThroughputExceededException", 400),
    _client_error("ThrottlingException", 400),
    _client_error("InternalServerError", 500),
    _client_error("ServiceUnavailable", 503),
]


@pytest.mark.parametrize("error", DEPENDENCY_ERRORS, ids=lambda e: type(e).__name__)
def test_dynamodb_failure_is_503(env: None, error: BaseException) -> None:
    service = Service(dynamodb=FakeDynamoDB(fail=error))
    status, body = service.post(VALID)
    assert (status, body) == (503, {"error": "dependency unavailable", "dependency": "dynamodb"})
    assert service.sqs.messages == []
    status, body = service.get("0" * 32)
    assert (status, body["dependency"]) == (503, "dynamodb")


@pytest.mark.parametrize("error", DEPENDENCY_ERRORS, ids=lambda e: type(e).__name__)
def test_sqs_failure_is_503(env: None, error: BaseException) -> None:
    status, body = Service(sqs=FakeSQS(fail=error)).post(VALID)
    assert (status, body) == (503, {"error": "dependency unavailable", "dependency": "sqs"})


@pytest.mark.parametrize(
    "error",
    [
        _client_error("AccessDeniedException", 400),
        KeyError("surprise"),
        ValueError("secret detail"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_other_failures_are_500_without_internals(env: None, error: BaseException) -> None:
    service = Service(dynamodb=FakeDynamoDB(fail=error))
    response = service.module.handler(
        apigw_event("POST /orders", "/orders", body=json.dumps(VALID)), None
    )
    assert response["statusCode"] == 500
    body = json.loads(response["body"])
    assert body["error"] == "internal error"
    assert "Traceback" not in response["body"]
    assert "secret detail" not in response["body"] and "boom" not in response["body"]


def test_missing_configuration_is_500_not_a_crash(
    env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TABLE_NAME")
    status, body = Service().post(VALID)
    assert (status, body["error"]) == (500, "internal error")


# --- the real clients ----------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_real_clients_fail_fast_with_one_attempt(
    env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "branchenv-local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "branchenv-local-secret")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("SERVICE_TIMEOUT_S", "1.5")
    module = load_service()
    client = module._client("dynamodb")
    assert client is module._client("dynamodb")  # created once per process
    assert client.meta.config.connect_timeout == 1.5
    assert client.meta.config.read_timeout == 1.5
    assert client.meta.config.retries["total_max_attempts"] == 1

    response = module.handler(url_event("GET", "/orders/" + "0" * 32), None)
    assert response["statusCode"] == 503
    assert json.loads(response["body"])["dependency"] == "dynamodb"
    health = module.handler(url_event("GET", "/health"), None)
    assert health["statusCode"] == 503
    assert json.loads(health["body"])["checks"] == {
        "dynamodb": "failed: EndpointConnectionError",
        "sqs": "failed: EndpointConnectionError",
    }
