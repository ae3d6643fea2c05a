"""The AWS boundary: what an error means is decided from its type, code and status, never its
words. Transient ones become TransientError (the one thing teardown and the reaper retry)."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
)

from branchenv.aws_errors import is_not_found, translate
from branchenv.errors import EngineError, TransientError


def client_error(code: str, status: int = 400, message: str = "m") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "Op",
    )


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (client_error("ThrottlingException"), TransientError),
        (client_error("SlowDown", 503), TransientError),
        (client_error("Whatever", 503), TransientError),
        (client_error("TooManyRequestsException", 429), TransientError),
        (client_error("ProvisionedThroughputExceededException"), TransientError),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), TransientError),
        (ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"), TransientError),
        (client_error("AccessDenied", 403, "rate exceeded, try again"), EngineError),
        (client_error("BucketNotEmpty", 409), EngineError),
        (NoCredentialsError(), EngineError),
    ],
    ids=lambda v: getattr(v, "__name__", None) or type(v).__name__,
)
def test_translate_types_the_error(exc: Exception, kind: type[Exception]) -> None:
    error = translate(exc, "deleting queue q")
    assert type(error) is kind
    assert str(error).startswith("deleting queue q failed: ")
    assert "\n" not in str(error)


@pytest.mark.parametrize(
    ("exc", "gone"),
    [
        (client_error("NoSuchEntity", 404), True),
        (client_error("AWS.SimpleQueueService.NonExistentQueue", 400), True),
        (client_error("ResourceNotFoundException", 400), True),
        (client_error("404", 404), True),
        (client_error("AccessDenied", 403), False),
        (client_error("ThrottlingException", 400), False),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), False),
    ],
)
def test_is_not_found(exc: Exception, gone: bool) -> None:
    assert is_not_found(exc) is gone
