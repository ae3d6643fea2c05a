"""The materializer registry: one entry per Pulumi resource type the inprocess engine creates.

Each materializer declares its type token and knows how to bring one resource into the state
its inputs describe (create it, or update it in place: ``apply`` is idempotent) and how to
delete it (a resource already gone is fine). A meta-test walks every registered entry.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any, ClassVar

from branchenv.targets import Target


@dataclasses.dataclass(frozen=True)
class Applied:
    """The physical id of a materialized resource and its output state (inputs + computed)."""

    id: str
    outputs: dict[str, Any]


class Context:
    """What a materializer may use: clients for the target (one set per thread), the
    resource's effective tags (provider default tags merged with its own) and its region."""

    def __init__(self, target: Target, region: str) -> None:
        self.target = target
        self.region = region
        self._local = threading.local()

    def client(self, service: str) -> Any:
        cache: dict[str, Any] | None = getattr(self._local, "clients", None)
        if cache is None:
            cache = {}
            self._local.clients = cache
        if service not in cache:
            cache[service] = self.target.client(service)
        return cache[service]


class Materializer:
    """Base of every registry entry; subclasses set ``type_token`` and implement both methods."""

    type_token: ClassVar[str]
    name_property: ClassVar[str | None] = "name"
    """The input naming the physical resource; Pulumi auto-names it when absent."""
    name_max_len: ClassVar[int] = 64
    taggable: ClassVar[bool] = True
    tag_property: ClassVar[str] = "tags"

    def apply(
        self,
        ctx: Context,
        *,
        inputs: dict[str, Any],
        tags: dict[str, str],
        existing: Applied | None,
    ) -> Applied:
        """Create the resource, or bring the existing one in line with ``inputs``."""
        raise NotImplementedError

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> None:
        """Delete the resource; one that no longer exists counts as deleted."""
        raise NotImplementedError

    def exists(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        """Whether the resource still exists (for refresh); default: assume it does."""
        return True


REGISTRY: dict[str, Materializer] = {}


def register(cls: type[Materializer]) -> type[Materializer]:
    """Class decorator: add a materializer to the registry under its type token."""
    token = cls.type_token
    if token in REGISTRY:
        raise ValueError(f"duplicate materializer for {token}")
    REGISTRY[token] = cls()
    return cls


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ("" for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def ignore_missing(codes: tuple[str, ...]) -> Callable[[Callable[[], Any]], None]:
    """Run a delete call, treating the given "not found" error codes as success."""

    def run(call: Callable[[], Any]) -> None:
        from botocore.exceptions import ClientError

        try:
            call()
        except ClientError as exc:
            if error_code(exc) not in codes:
                raise

    return run


def answers(call: Callable[[], Any], doing: str = "checking that a resource exists") -> bool:
    """Whether a describe/get call finds the resource: False only when AWS says it is not
    found. Any other failure (throttling, access denied, a dropped connection) says nothing
    about the resource and is raised (TransientError when transient), so refresh never drops
    a live resource from the state."""
    from botocore.exceptions import BotoCoreError, ClientError

    from branchenv.aws_errors import is_not_found, translate

    try:
        call()
    except ClientError as exc:
        if is_not_found(exc):
            return False
        raise translate(exc, doing) from exc
    except BotoCoreError as exc:
        raise translate(exc, doing) from exc
    return True


def aws_tags_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def as_int(value: Any, default: int | None = None) -> int | None:
    if value is None:
        return default
    return int(value)
