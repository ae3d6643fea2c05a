"""The materializer registry: one entry per Pulumi resource type the inprocess engine creates.

Each materializer is the in-process stand-in for the real provider's CRUD on one type, with the
provider's semantics:

- ``create`` makes a new physical resource and fails with :class:`AlreadyExists` when one by
  that name exists already (the real provider fails too: nothing is ever adopted);
- ``update`` changes an existing one in place, touching only the properties that changed
  (``changed``), tags included, and never calls a tagging API when the tags did not change;
- ``replace_on_change`` lists the input properties whose change forces a replacement, as the
  provider schema's ForceNew attributes do (terraform-provider-aws / pulumi-aws);
- ``delete`` removes it and says whether it did (a resource already gone is not a deletion);
- ``exists`` answers False only when the service says "not found";
- ``lookup`` / ``leftovers`` find the physical resource a create would make (before it, to
  refuse; after a crash, to remove what an interrupted create may have left).

``honours`` lists the input properties the materializer acts on (the generated coverage table
shows them); the engine notes any other property a program sets. A meta-test walks every entry.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from branchenv.errors import EngineError
from branchenv.targets import Target


@dataclasses.dataclass(frozen=True)
class Applied:
    """The physical id of a materialized resource and its output state (inputs + computed)."""

    id: str
    outputs: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Prior:
    """What the state knows of a resource before an update: its id, the inputs it was last
    applied with, its outputs and its effective tags."""

    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    tags: dict[str, str]


class AlreadyExists(EngineError):
    """A create found the physical resource already there (and not in this stack's state)."""


_CLIENTS: dict[tuple[Target, str], Any] = {}
_CLIENTS_LOCK = threading.Lock()
"""One client per target and service for the whole process: every engine call (up, resources,
destroy) makes a new Context, and a `ci` run asks several times (the claim's or up's existence
check, the cost estimate's, the release's)."""


class Context:
    """What a materializer may use: clients for the target and the resource's region. One
    client per service, shared by the engine's threads and its calls (botocore clients are
    thread-safe; making one costs tens of milliseconds, most of a small stack's no-op ``up``)."""

    def __init__(self, target: Target, region: str) -> None:
        self.target = target
        self.region = region
        # Its own lock: a check of the free set never waits behind a client being made.
        self._free_lock = threading.Lock()
        self._free: set[tuple[str, str]] = set()

    def client(self, service: str) -> Any:
        key = (self.target, service)
        with _CLIENTS_LOCK:
            if key not in _CLIENTS:
                _CLIENTS[key] = self.target.client(service)
            return _CLIENTS[key]

    def seen_free(self, key: tuple[str, str]) -> None:
        """Record that the engine just found this (type, name) free (see ``ensure_free``)."""
        with self._free_lock:
            self._free.add(key)

    def take_free(self, key: tuple[str, str]) -> bool:
        """Whether the engine found it free just now (once: the create's own check)."""
        with self._free_lock:
            if key in self._free:
                self._free.discard(key)
                return True
            return False


class Materializer:
    """Base of every registry entry; subclasses set ``type_token`` and implement the CRUD."""

    type_token: ClassVar[str]
    name_property: ClassVar[str | None] = "name"
    """The input naming the physical resource; Pulumi auto-names it when absent."""
    name_max_len: ClassVar[int] = 64
    unique_name: ClassVar[bool] = True
    """Whether the name is the resource's identity in the account (a bucket, a queue), so a
    fixed one could collide with another stack's; False for names scoped to a parent (a
    role's inline policy, a function's statement) or not unique at all (an API's name)."""
    taggable: ClassVar[bool] = True
    tag_property: ClassVar[str] = "tags"
    replace_on_change: ClassVar[frozenset[str]] = frozenset()
    """Input properties whose change forces replacement (the provider schema's ForceNew)."""
    honours: ClassVar[frozenset[str]] = frozenset()
    """Input properties this materializer acts on (besides the name and the tags)."""
    secret_properties: ClassVar[frozenset[str]] = frozenset()
    """Inputs the provider schema marks sensitive: never in the state, never in a log line."""
    recovered_by: ClassVar[str] = "its name"
    """How an interrupted create of this type is found again (for the coverage table)."""

    def prepare(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """The inputs of a create with whatever identifies the physical resource chosen now
        (the engine journals them before the call); keys starting ``__`` are the engine's own,
        never diffed. The default adds nothing (the engine already auto-named the resource)."""
        return inputs

    def create(self, ctx: Context, *, inputs: dict[str, Any], tags: dict[str, str]) -> Applied:
        """Create the resource; raise :class:`AlreadyExists` when it exists already."""
        raise NotImplementedError

    def update(
        self,
        ctx: Context,
        *,
        prior: Prior,
        inputs: dict[str, Any],
        tags: dict[str, str],
        changed: frozenset[str],
    ) -> Applied:
        """Bring the existing resource in line with ``inputs``, touching only ``changed``
        (``"tags"`` in it when the effective tags differ from ``prior.tags``)."""
        raise NotImplementedError

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        """Delete the resource; True when it did, False when it was already gone."""
        raise NotImplementedError

    def exists(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        """Whether the resource still exists; False only on the service's "not found"."""
        raise NotImplementedError

    def lookup(self, ctx: Context, *, inputs: dict[str, Any]) -> str | None:
        """The id of an existing physical resource that a create with ``inputs`` would
        collide with, or None (the default: types whose ids the cloud assigns never collide)."""
        return None

    def leftovers(
        self,
        ctx: Context,
        *,
        inputs: dict[str, Any],
        stack_tags: Mapping[str, str],
        known_ids: frozenset[str],
    ) -> list[str]:
        """Ids of what an interrupted create with ``inputs`` may have left (``known_ids`` are
        the ids this stack's state already holds for the type). The default finds it by name;
        types whose ids the cloud assigns find it by the stack's identity tags."""
        found = self.lookup(ctx, inputs=inputs)
        return [found] if found is not None and found not in known_ids else []

    def _free_key(self, inputs: dict[str, Any]) -> tuple[str, str] | None:
        name = inputs.get(self.name_property) if self.name_property else None
        return (self.type_token, name) if isinstance(name, str) and name else None

    def ensure_free(self, ctx: Context, inputs: dict[str, Any]) -> None:
        """The engine's check before it journals a create: raise :class:`AlreadyExists` when
        the physical resource exists. Recovery then removes by name only what this create
        made (a kill between the journal write and the create would otherwise have it remove
        another stack's resource); the create's own check right after is not asked again."""
        self.fail_if_exists(ctx, inputs)
        key = self._free_key(inputs)
        if key is not None:
            ctx.seen_free(key)

    def fail_if_exists(self, ctx: Context, inputs: dict[str, Any]) -> None:
        """Refuse a create whose physical resource exists already (never adopt it)."""
        key = self._free_key(inputs)
        if key is not None and ctx.take_free(key):
            return  # the engine saw it free a moment ago, before journaling this create
        found = self.lookup(ctx, inputs=inputs)
        if found is not None:
            name = inputs.get(self.name_property) if self.name_property else found
            raise AlreadyExists(
                f"{self.type_token} {name!r} already exists and is not part of this stack: "
                "the inprocess engine never adopts what it did not create (the real provider "
                "fails the same way). Give the resource a name derived from the stack's "
                "prefix (`branchenv:prefix` config) or delete the existing one"
            )


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


def ignore_missing(codes: tuple[str, ...]) -> Callable[[Callable[[], Any]], bool]:
    """Run a delete call: True when it deleted, False when the service said "not found"
    (one of ``codes``); any other error propagates."""

    def run(call: Callable[[], Any]) -> bool:
        from botocore.exceptions import ClientError

        try:
            call()
        except ClientError as exc:
            if error_code(exc) not in codes:
                raise
            return False
        return True

    return run


class Missing(Exception):
    """Raised inside a :func:`found` check by a call whose empty answer means "not found"
    (a describe that lists nothing instead of failing)."""


def found(
    codes: tuple[str, ...],
    call: Callable[[], Any],
    doing: str = "checking that a resource exists",
) -> bool:
    """Whether a describe/get call finds the resource: False only when AWS says it is not
    found (one of ``codes``, any not-found answer, or :class:`Missing`). Any other failure
    (throttling, access denied, a dropped connection) says nothing about the resource and is
    raised, TransientError when transient, so a live resource is never taken for gone."""
    from botocore.exceptions import BotoCoreError, ClientError

    from branchenv.aws_errors import is_not_found, translate

    try:
        call()
    except Missing:
        return False
    except ClientError as exc:
        if error_code(exc) in codes or is_not_found(exc):
            return False
        raise translate(exc, doing) from exc
    except BotoCoreError as exc:
        raise translate(exc, doing) from exc
    return True


def answers(call: Callable[[], Any], doing: str = "checking that a resource exists") -> bool:
    """Whether a describe/get call finds the resource: False only when AWS says it is not
    found (see :func:`found`)."""
    return found((), call, doing)


def require(value: Any) -> Any:
    """``value``, or :class:`Missing` when it is empty (for :func:`found` checks)."""
    if not value:
        raise Missing
    return value


def aws_tags_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def tag_changes(old: Mapping[str, str], new: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """What to set and what to remove to go from ``old`` tags to ``new`` ones; both empty when
    nothing changed, so no tagging call is made (several APIs reject an empty tag set)."""
    to_set = {k: v for k, v in new.items() if old.get(k) != v}
    to_remove = sorted(k for k in old if k not in new)
    return to_set, to_remove


def as_int(value: Any, default: int | None = None) -> int | None:
    if value is None:
        return default
    return int(value)


def as_bool_str(value: Any) -> str:
    return "true" if value else "false"
