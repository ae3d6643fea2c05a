"""Where the embedded moto answers unlike AWS in ways a real provider trips on, and the fixes.

Applied once, inside the local cloud's own process (:mod:`branchenv.localcloud.serve`), before
the moto server starts; clients only ever see the result over HTTP. Each fix has a test in
tests/integration/test_localcloud_fidelity.py that failed against plain moto.

- DynamoDB ``ListTagsOfResource`` pages at 10 tags; the terraform aws provider reads tags with
  one call and never follows ``NextToken``, so tags 11+ look removed and every plan re-tags
  (and a re-apply times out). AWS itself returns a table's tags (at most 50) in one page: so
  does the local cloud now.
- SQS echoes a queue's ``RedrivePolicy`` re-serialised (``json.dumps`` with spaces); AWS keeps
  the compact form terraform sends, and the provider shows anything else as a perpetual
  whitespace diff. The policy is now returned as it was set.
- A deleted Lambda function's warm workers (in the function runner, same process) kept running
  and its unpacked code stayed on disk until some other function started. Listeners registered
  with :func:`on_function_deleted` now hear of every DeleteFunction.
- S3 conditional writes (PutObject with ``If-None-Match: *`` or ``If-Match``, DeleteObject with
  ``If-Match``, CompleteMultipartUpload with ``If-None-Match``) checked the condition and
  stored the key in two unlocked steps: two racers could both get 200 (the warm pool's claim
  relies on exactly one). Every S3 object write now runs under one lock, so a condition is
  checked and acted on at once, as on AWS. The server says so in its ``server.json``
  (:data:`ATOMIC_CONDITIONAL_WRITES`), so a claimer knows a server started by an older
  branchenv does not.

One knob, not a fix: SQS allows one PurgeQueue per queue per 60 s (moto enforces it, as AWS
does). ``BRANCHENV_LOCALCLOUD_SQS_PURGE_INTERVAL_S`` in the server's environment shortens that
interval (the rule itself stays: a second purge within it is refused with
``PurgeQueueInProgress``), so a test of the code that waits out the rule need not wait a
minute. Unset, it is AWS's 60 s.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

ATOMIC_CONDITIONAL_WRITES = "s3_atomic_conditional_writes"
"""The ``server.json`` key a local cloud with the S3 lock below sets to true."""

SQS_PURGE_INTERVAL_ENV = "BRANCHENV_LOCALCLOUD_SQS_PURGE_INTERVAL_S"
SQS_PURGE_INTERVAL_S = 60.0
"""AWS's: one PurgeQueue per queue per 60 s."""

_APPLIED = False
_LOCK = threading.Lock()
_S3_WRITES = threading.RLock()
_DELETE_LISTENERS: list[Callable[[], None]] = []


def on_function_deleted(listener: Callable[[], None]) -> None:
    """Call ``listener`` (no arguments) after every successful DeleteFunction; the listener
    checks for itself which functions are gone (a name, an ARN or a qualifier may be given)."""
    with _LOCK:
        _DELETE_LISTENERS.append(listener)


def apply() -> None:
    """Patch the embedded moto once; later calls do nothing."""
    global _APPLIED
    with _LOCK:
        if _APPLIED:
            return
        _fix_dynamodb_tag_pages()
        _fix_sqs_redrive_echo()
        _notify_function_deletes()
        _check_assume_role_trust()
        _serialize_s3_object_writes()
        _sqs_purge_interval(sqs_purge_interval_s(os.environ))
        _APPLIED = True


def sqs_purge_interval_s(env: Mapping[str, str]) -> float:
    """The interval between two purges of one queue the local cloud allows: AWS's 60 s unless
    ``env`` names a shorter positive one (:data:`SQS_PURGE_INTERVAL_ENV`)."""
    raw = env.get(SQS_PURGE_INTERVAL_ENV, "").strip()
    if not raw:
        return SQS_PURGE_INTERVAL_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= SQS_PURGE_INTERVAL_S:
        raise ValueError(
            f"{SQS_PURGE_INTERVAL_ENV}={raw!r}: give seconds in (0, {SQS_PURGE_INTERVAL_S:g}]"
            " (unset it for AWS's 60 s)"
        )
    return value


def _sqs_purge_interval(interval_s: float) -> None:
    if interval_s == SQS_PURGE_INTERVAL_S:
        return  # moto's own rule is AWS's
    from moto.core.utils import unix_time
    from moto.settings import sqs_enforce_strict_queue_purge_behaviour
    from moto.sqs import models
    from moto.sqs.exceptions import PurgeQueueInProgress

    backend: Any = models.SQSBackend  # patched in place: moto's own class

    def purge_queue(self: Any, queue_name: str) -> None:
        """moto's own, with ``interval_s`` for its 60."""
        queue = self.get_queue(queue_name)
        now = unix_time()
        if (
            sqs_enforce_strict_queue_purge_behaviour()
            and queue.last_purged_at is not None
            and now - queue.last_purged_at < interval_s
        ):
            raise PurgeQueueInProgress(queue.name)
        queue.last_purged_at = now
        queue._messages = []
        queue._pending_messages = set()

    backend.purge_queue = purge_queue


def _fix_dynamodb_tag_pages() -> None:
    from moto.core.responses import ActionResult
    from moto.dynamodb import responses

    handler: Any = responses.DynamoHandler  # patched in place: moto's own class

    def list_tags_of_resource(self: Any) -> Any:
        tags = self.dynamodb_backend.list_tags_of_resource(self.body["ResourceArn"])
        return ActionResult({"Tags": list(tags)})

    handler.list_tags_of_resource = list_tags_of_resource


def _fix_sqs_redrive_echo() -> None:
    from moto.sqs import models

    queue: Any = models.Queue
    original_setup = queue._setup_dlq
    original_attributes = queue.attributes

    def _setup_dlq(self: Any, policy: Any) -> None:
        original_setup(self, policy)
        # Kept only when it parsed into the policy now in force (an empty one clears it).
        self._branchenv_redrive_raw = (
            policy if isinstance(policy, str) and self.redrive_policy is not None else None
        )

    def attributes(self: Any) -> dict[str, Any]:
        result: dict[str, Any] = original_attributes.fget(self)
        raw = getattr(self, "_branchenv_redrive_raw", None)
        if raw is not None and self.redrive_policy and "RedrivePolicy" in result:
            try:
                same = json.loads(raw).get("deadLetterTargetArn") == self.redrive_policy.get(
                    "deadLetterTargetArn"
                )
            except (ValueError, AttributeError):
                same = False
            if same:
                result["RedrivePolicy"] = raw
        return result

    queue._setup_dlq = _setup_dlq
    queue.attributes = property(attributes)


def _notify_function_deletes() -> None:
    from moto.awslambda import models

    backend: Any = models.LambdaBackend
    original_delete = backend.delete_function

    def delete_function(self: Any, function_name: str, qualifier: str | None = None) -> None:
        original_delete(self, function_name, qualifier)
        with _LOCK:
            listeners = list(_DELETE_LISTENERS)
        for listener in listeners:
            listener()

    backend.delete_function = delete_function


def _serialize_s3_object_writes() -> None:
    """One lock around every S3 request handler that writes or deletes an object: moto's
    condition check and its write then happen as one step. Unconditional writes take it too,
    else one could land between a conditional write's check and its write (both would get 200,
    and the conditional one would win, which AWS never does). The request body is read
    before the handler runs, so the lock holds no network I/O."""
    from moto.s3.responses import S3Response

    handler: Any = S3Response  # patched in place: moto's own class
    for name in (
        "put_object",  # PutObject, If-None-Match / If-Match included
        "copy_object",  # writes the destination key
        "delete_object",  # DeleteObject, If-Match included
        "_key_response_post",  # multipart create/complete (If-None-Match on complete)
        "_bucket_response_post",  # DeleteObjects, and the browser-form POST upload
    ):
        handler_method = getattr(handler, name)

        def locked(self: Any, *args: Any, _method: Any = handler_method, **kwargs: Any) -> Any:
            with _S3_WRITES:
                return _method(self, *args, **kwargs)

        setattr(handler, name, locked)


def _check_assume_role_trust() -> None:
    """AssumeRole as AWS answers it, where moto grants any role ARN: the role must exist in
    its account and its trust policy must allow the call, else ``AccessDenied``. That is what
    lets a multi-account run be tested on the local cloud, including a denied role.

    The trust policy is read for a subset of IAM: statements whose Action covers
    ``sts:AssumeRole`` (``sts:AssumeRole``, ``sts:*``, ``*``); conditions ``StringEquals`` on
    ``sts:ExternalId`` and ``aws:RequestedRegion`` (the STS endpoint's region). Access = some
    Allow statement matches and no Deny statement does. Principals are not checked (every
    caller on the local cloud is the same developer). A condition outside the subset never
    matches, so an Allow with one grants nothing (denied, as an unknown condition would be
    safest) and a Deny with one denies nothing."""
    from moto.iam.models import iam_backends
    from moto.sts import responses
    from moto.sts.exceptions import STSClientError
    from moto.utilities.utils import get_partition

    handler: Any = responses.TokenResponse
    original = handler.assume_role

    def assume_role(self: Any) -> Any:
        role_arn = str(self._get_param("RoleArn") or "")
        external_id = self._get_param("ExternalId")
        parts = role_arn.split(":")
        denied = STSClientError(
            "AccessDenied",
            f"User is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
        )
        if len(parts) < 6 or not parts[4]:
            raise denied
        try:
            role = iam_backends[parts[4]][get_partition(self.region)].get_role_by_arn(role_arn)
        except Exception:
            raise denied from None
        context = {"sts:externalid": external_id, "aws:requestedregion": self.region}
        if not _trust_allows(role.assume_role_policy_document, context):
            raise denied
        return original(self)

    handler.assume_role = assume_role


def _trust_allows(document: Any, context: dict[str, Any]) -> bool:
    import json
    import urllib.parse

    if isinstance(document, str):
        try:
            document = json.loads(urllib.parse.unquote(document))
        except ValueError:
            return False
    statements = document.get("Statement", []) if isinstance(document, dict) else []
    if isinstance(statements, dict):
        statements = [statements]

    def covers(statement: dict[str, Any]) -> bool:
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        return any(a.lower() in ("sts:assumerole", "sts:*", "*") for a in actions)

    def matches(statement: dict[str, Any]) -> bool:
        for operator, checks in (statement.get("Condition") or {}).items():
            if operator != "StringEquals" or not isinstance(checks, dict):
                return False
            for key, wanted in checks.items():
                values = [wanted] if isinstance(wanted, str) else list(wanted)
                if context.get(key.lower()) not in values:
                    return False
        return True

    relevant = [s for s in statements if isinstance(s, dict) and covers(s)]
    if any(s.get("Effect") == "Deny" and matches(s) for s in relevant):
        return False
    return any(s.get("Effect") == "Allow" and matches(s) for s in relevant)
