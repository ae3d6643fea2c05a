"""The "orders" service: a small HTTP API on Lambda (API Gateway v2 payload 2.0 or function URL).

Routes::

    POST /orders        create an order: DynamoDB item + "order.created" message on SQS -> 201
    GET  /orders/{id}   read one order -> 200, or 404
    GET  /health        DynamoDB DescribeTable + SQS GetQueueAttributes -> 200, or 503

Environment: TABLE_NAME, QUEUE_URL, BUCKET_NAME (the artifacts bucket; the role may read and
write objects there, no route does yet), SERVICE_TIMEOUT_S (connect and read timeout of each AWS
call, default 2). One attempt per call, no retries: a slow or dead dependency makes a request
fail fast with 503 instead of hanging until the function times out. Any other failure is a 500
whose body carries no stack trace (the trace goes to the log).

Standard library and boto3 only: this directory is the whole deployment package.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

LOG = logging.getLogger("orders")
LOG.setLevel(logging.INFO)

ORDER_TTL_S = 7 * 24 * 3600
MAX_CUSTOMER_LEN = 100
MAX_SKU_LEN = 100
MAX_ITEMS = 100  # keeps one order far below DynamoDB's 400 KB item limit
MIN_QTY, MAX_QTY = 1, 1000
DEFAULT_TIMEOUT_S = 2.0

_ORDER_ID = re.compile(r"[0-9a-f]{32}")
_JSON_HEADERS = {"content-type": "application/json"}

# Error codes AWS uses for throttling and transient server trouble (besides any HTTP 5xx).
_TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


class DependencyUnavailable(Exception):
    """A dependency (``dynamodb`` or ``sqs``) failed in a way the caller may retry later."""

    def __init__(self, dependency: str, cause: BaseException) -> None:
        super().__init__(f"{dependency} unavailable: {type(cause).__name__}")
        self.dependency = dependency


# --- the dependency layer ----------------------------------------------------------------------

_clients: dict[str, Any] = {}


def use_clients(*, dynamodb: Any, sqs: Any) -> None:
    """Replace the AWS clients (tests inject in-memory fakes with the same methods)."""
    _clients.clear()
    _clients.update(dynamodb=dynamodb, sqs=sqs)


def _timeout_s() -> float:
    try:
        value = float(os.environ.get("SERVICE_TIMEOUT_S", DEFAULT_TIMEOUT_S))
    except ValueError:
        return DEFAULT_TIMEOUT_S
    return value if value > 0 else DEFAULT_TIMEOUT_S


def _client(service: str) -> Any:
    """The process's client for ``service``, created on first use with short timeouts."""
    if service not in _clients:
        import boto3
        from botocore.config import Config

        timeout = _timeout_s()
        config = Config(
            connect_timeout=timeout,
            read_timeout=timeout,
            # total_max_attempts counts the first try (max_attempts=1 would allow one retry).
            retries={"total_max_attempts": 1, "mode": "standard"},
        )
        # AWS_ENDPOINT_URL (set by the local function runner) is honoured by boto3 itself.
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        _clients[service] = boto3.client(  # type: ignore[call-overload]
            service, region_name=region, config=config
        )
    return _clients[service]


def is_dependency_error(exc: BaseException) -> bool:
    """True for failures of a dependency itself: unreachable, timed out, throttled, or 5xx."""
    try:
        from botocore.exceptions import ClientError, ConnectionError, HTTPClientError
    except ImportError:  # pragma: no cover - boto3 is always in the Lambda runtime
        return False
    # ConnectionError covers EndpointConnectionError and ConnectTimeoutError; HTTPClientError
    # covers ReadTimeoutError and ConnectionClosedError.
    if isinstance(exc, ConnectionError | HTTPClientError):
        return True
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return int(status) >= 500 or error.get("Code") in _TRANSIENT_CODES
    return False


def _call(service: str, operation: str, **kwargs: Any) -> Any:
    """One AWS call; dependency failures become DependencyUnavailable(service)."""
    try:
        return getattr(_client(service), operation)(**kwargs)
    except Exception as exc:
        if is_dependency_error(exc):
            raise DependencyUnavailable(service, exc) from exc
        raise


# --- DynamoDB item <-> order ----------------------------------------------------------------


def _to_item(order: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": {"S": order["id"]},
        "status": {"S": order["status"]},
        "customer": {"S": order["customer"]},
        "created_at": {"S": order["created_at"]},
        "expires_at": {"N": str(order["expires_at"])},
        "items": {
            "L": [
                {"M": {"sku": {"S": item["sku"]}, "qty": {"N": str(item["qty"])}}}
                for item in order["items"]
            ]
        },
    }


def _from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": item["id"]["S"],
        "status": item["status"]["S"],
        "customer": item["customer"]["S"],
        "created_at": item["created_at"]["S"],
        "expires_at": int(item["expires_at"]["N"]),
        "items": [
            {"sku": entry["M"]["sku"]["S"], "qty": int(entry["M"]["qty"]["N"])}
            for entry in item["items"]["L"]
        ],
    }


# --- validation --------------------------------------------------------------------------------


class BadRequest(Exception):
    """The request is wrong; ``details`` lists each problem."""

    def __init__(self, error: str, details: list[str]) -> None:
        super().__init__(error)
        self.error = error
        self.details = details


def _json_body(event: dict[str, Any]) -> Any:
    raw = event.get("body")
    if raw is None or raw == "":
        raise BadRequest("malformed JSON body", ["the request has no body"])
    try:
        if event.get("isBase64Encoded"):
            raw = base64.b64decode(raw).decode("utf-8")
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("malformed JSON body", [str(exc)]) from None


def validate_order(body: Any) -> tuple[str, list[dict[str, Any]]]:
    """The customer and items of a create-order body; BadRequest lists every problem."""
    if not isinstance(body, dict):
        raise BadRequest("invalid order", ["the body must be a JSON object"])
    details: list[str] = []
    customer = body.get("customer")
    if not isinstance(customer, str) or not customer.strip():
        details.append("customer: required, a non-empty string")
    elif len(customer) > MAX_CUSTOMER_LEN:
        details.append(f"customer: at most {MAX_CUSTOMER_LEN} characters")
    items = body.get("items")
    clean: list[dict[str, Any]] = []
    if not isinstance(items, list) or not items:
        details.append("items: required, a non-empty list")
    elif len(items) > MAX_ITEMS:
        details.append(f"items: at most {MAX_ITEMS} entries")
    else:
        for index, item in enumerate(items):
            where = f"items[{index}]"
            if not isinstance(item, dict):
                details.append(f"{where}: must be an object with sku and qty")
                continue
            sku, qty = item.get("sku"), item.get("qty")
            ok = True
            if not isinstance(sku, str) or not sku.strip():
                details.append(f"{where}.sku: required, a non-empty string")
                ok = False
            elif len(sku) > MAX_SKU_LEN:
                details.append(f"{where}.sku: at most {MAX_SKU_LEN} characters")
                ok = False
            # bool is an int subclass in Python; true is not a quantity.
            if isinstance(qty, bool) or not isinstance(qty, int) or not MIN_QTY <= qty <= MAX_QTY:
                details.append(f"{where}.qty: required, an integer from {MIN_QTY} to {MAX_QTY}")
                ok = False
            if ok:
                clean.append({"sku": sku, "qty": qty})
    if details:
        raise BadRequest("invalid order", details)
    assert isinstance(customer, str)
    return customer, clean


# --- routes ----------------------------------------------------------------------------------


def _response(status: int, body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {**_JSON_HEADERS, **(headers or {})},
        "body": json.dumps(body),
    }


def create_order(event: dict[str, Any]) -> dict[str, Any]:
    customer, items = validate_order(_json_body(event))
    now = time.time()
    order = {
        "id": uuid.uuid4().hex,
        "status": "received",
        "customer": customer,
        "items": items,
        "created_at": datetime.fromtimestamp(now, UTC).isoformat(),
        "expires_at": int(now) + ORDER_TTL_S,
    }
    _call("dynamodb", "put_item", TableName=_env("TABLE_NAME"), Item=_to_item(order))
    # If this send fails the order is stored but unannounced; the 503 tells the client to retry.
    _call(
        "sqs",
        "send_message",
        QueueUrl=_env("QUEUE_URL"),
        MessageBody=json.dumps({"type": "order.created", "order_id": order["id"]}),
    )
    return _response(201, order)


def get_order(order_id: str) -> dict[str, Any]:
    if not _ORDER_ID.fullmatch(order_id):
        return _response(
            400,
            {"error": "invalid order id", "details": ["an order id is 32 lowercase hex digits"]},
        )
    found = _call(
        "dynamodb",
        "get_item",
        TableName=_env("TABLE_NAME"),
        Key={"id": {"S": order_id}},
        ConsistentRead=True,
    )
    item = found.get("Item")
    if not item:
        return _response(404, {"error": "order not found"})
    return _response(200, _from_item(item))


def health() -> dict[str, Any]:
    checks: dict[str, str] = {}
    for name, service, operation, kwargs in (
        ("dynamodb", "dynamodb", "describe_table", {"TableName": _env("TABLE_NAME")}),
        (
            "sqs",
            "sqs",
            "get_queue_attributes",
            {"QueueUrl": _env("QUEUE_URL"), "AttributeNames": ["QueueArn"]},
        ),
    ):
        try:
            getattr(_client(service), operation)(**kwargs)
            checks[name] = "ok"
        except Exception as exc:  # any failure of a check is that check failing
            LOG.warning("health check %s failed: %s", name, type(exc).__name__)
            checks[name] = f"failed: {type(exc).__name__}"
    healthy = all(state == "ok" for state in checks.values())
    return _response(
        200 if healthy else 503, {"status": "ok" if healthy else "unavailable", "checks": checks}
    )


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"environment variable {name} is not set")
    return value


_ORDER_PATH = re.compile(r"/orders/([^/]+)")
_ALLOWED = {"/orders": "POST", "/health": "GET", "/orders/{id}": "GET"}


def _route(event: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
    """(method, route path template, path parameters) of an API Gateway v2 / function URL
    event. The route key wins when API Gateway matched one; ``$default`` falls back to the
    raw method and path."""
    route_key = event.get("routeKey")
    params = dict(event.get("pathParameters") or {})
    if route_key and route_key != "$default" and " " in route_key:
        method, template = route_key.split(" ", 1)
        if template == "/orders/{id}" and "id" not in params:
            match = _ORDER_PATH.fullmatch(event.get("rawPath", ""))
            if match:
                params["id"] = match.group(1)
        return method.upper(), template, params
    http = (event.get("requestContext") or {}).get("http") or {}
    method = str(http.get("method") or event.get("httpMethod") or "").upper()
    path = str(event.get("rawPath") or http.get("path") or "/")
    if len(path) > 1:
        path = path.rstrip("/")
    match = _ORDER_PATH.fullmatch(path)
    if match:
        return method, "/orders/{id}", {"id": match.group(1)}
    return method, path, params


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point."""
    request_id = getattr(context, "aws_request_id", None)
    try:
        method, template, params = _route(event)
        allowed = _ALLOWED.get(template)
        if allowed is None:
            return _response(404, {"error": "not found"})
        if method != allowed:
            return _response(405, {"error": "method not allowed"}, {"allow": allowed})
        if template == "/orders":
            return create_order(event)
        if template == "/orders/{id}":
            return get_order(params.get("id", ""))
        return health()
    except BadRequest as exc:
        return _response(400, {"error": exc.error, "details": exc.details})
    except DependencyUnavailable as exc:
        LOG.warning("request %s: %s", request_id, exc, exc_info=exc.__cause__)
        return _response(
            503,
            {"error": "dependency unavailable", "dependency": exc.dependency},
            {"retry-after": "1"},
        )
    except Exception:
        LOG.exception("request %s failed", request_id)
        return _response(500, {"error": "internal error", "request_id": request_id})
