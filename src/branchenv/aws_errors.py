"""What an AWS error means, decided from its type, code and HTTP status (never its wording):
not found, transient (worth retrying), or neither. Engines and sweeps that call AWS through
boto3 translate at their boundary with :func:`translate`."""

from __future__ import annotations

from branchenv.errors import BranchenvError, EngineError, TransientError, one_line

NOT_FOUND_CODES = frozenset(
    {
        "404",
        "NotFound",
        "NotFoundException",
        "NoSuchEntity",
        "NoSuchBucket",
        "NoSuchKey",
        "ResourceNotFoundException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "ParameterNotFound",
        "NotFoundFault",
    }
)
"""Error codes that say the resource does not exist (some services answer 400, not 404)."""

TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "SlowDown",
        "RequestTimeout",
        "RequestTimeoutException",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
        "PriorRequestNotComplete",
        "ConcurrentModification",
        "ConcurrentModificationException",
    }
)
"""Error codes AWS documents as retryable (throttling, a busy or briefly failing service)."""

TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ("" for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return status if isinstance(status, int) else None
    return None


def is_not_found(exc: BaseException) -> bool:
    """True when ``exc`` is AWS saying the resource does not exist."""
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError) and (
        error_code(exc) in NOT_FOUND_CODES or _status(exc) == 404
    )


def is_transient(exc: BaseException) -> bool:
    """True for throttling, a briefly failing service and dropped or timed-out connections."""
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    if isinstance(
        exc,
        EndpointConnectionError | ConnectionClosedError | ConnectTimeoutError | ReadTimeoutError,
    ):
        return True
    if isinstance(exc, ClientError):
        return error_code(exc) in TRANSIENT_CODES or _status(exc) in TRANSIENT_STATUS
    return False


def translate(exc: BaseException, doing: str) -> BranchenvError:
    """The branchenv error for an AWS failure while ``doing`` something: TransientError when
    it is transient, else EngineError; one line, the AWS message quoted, never a traceback."""
    if isinstance(exc, BranchenvError):
        return exc
    message = f"{doing} failed: {one_line(exc, limit=300)}"
    if is_transient(exc):
        return TransientError(f"{message} (transient: retry later)")
    return EngineError(message)
