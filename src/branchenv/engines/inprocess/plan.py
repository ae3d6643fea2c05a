"""Pure decisions of the inprocess engine: how inputs compare, which change kind a resource
gets (create / update / replace / same), how replacements are ordered, auto-names and the
dependency order of deletions. No cloud, no state files: tested from tables of cases.

The rules follow Pulumi's engine and its AWS provider:

- a resource whose inputs did not change is ``same`` (nothing is called);
- a changed input listed in the type's replace-on-change set (the provider schema's ForceNew)
  makes a ``replace``, any other change an ``update``; the effective tags (provider default tags
  merged with the resource's own) count as the ``tags`` property;
- a replacement creates the new resource before deleting the old one, unless the program fixes
  the physical name (not auto-named): then the old one goes first, since both cannot coexist
  (the bridge's ``nameRequiresDeleteBeforeReplace``);
- an auto-named resource keeps its name across updates and gets a new one on replacement;
- a value not known yet (a preview of something that depends on a resource still to be
  created) counts as changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets as _secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from branchenv.engines.inprocess.materializers import Materializer

UNKNOWN = "[unknown until applied]"
"""How a value the preview cannot know yet is written in a plan."""

ENGINE_KEYS_PREFIX = "__"
"""Input keys the engine adds itself (client tokens): never diffed, never reported."""

ENGINE_HANDLED = frozenset({"tagsAll", "region"})
"""Inputs every type has that the engine handles itself (the region picks the client)."""


@dataclasses.dataclass(frozen=True)
class Step:
    """The change one resource gets: ``op`` and the changed input properties (sorted)."""

    op: str  # "create" | "update" | "replace" | "same"
    diff: tuple[str, ...] = ()
    delete_before_replace: bool = False


class _Entry(Protocol):
    inputs: dict[str, Any] | None
    outputs: dict[str, Any]
    tags: dict[str, str]
    autonamed: bool


def is_unknown(value: Any) -> bool:
    """True for the SDK's marker of a value a preview does not know yet."""
    try:
        from pulumi.output import Unknown
    except ImportError:  # pragma: no cover - pulumi is a dependency of this engine
        return False
    return isinstance(value, Unknown)


def normalize(value: Any, *, archive_digest: Callable[[Any], str] | None = None) -> Any:
    """A JSON-ready, comparable form of an input: numbers that are whole become ints (the SDK
    sends every number as a float), tuples become lists, unknown values become :data:`UNKNOWN`,
    archives and assets become a digest of their content (so a code change is a change)."""
    if is_unknown(value):
        return UNKNOWN
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, Mapping):
        return {str(k): normalize(v, archive_digest=archive_digest) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalize(v, archive_digest=archive_digest) for v in value]
    if archive_digest is not None:
        return {f"{ENGINE_KEYS_PREFIX}content": archive_digest(value)}
    return repr(value)


def contains_unknown(value: Any) -> bool:
    if value == UNKNOWN or is_unknown(value):
        return True
    if isinstance(value, Mapping):
        return any(contains_unknown(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(contains_unknown(v) for v in value)
    return False


def old_inputs(entry: _Entry, new: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs a resource was last applied with. States of format 1 kept none: their
    outputs (inputs plus computed values) stand in, for the keys the program sets now."""
    if entry.inputs is not None:
        return dict(entry.inputs)
    return {k: entry.outputs[k] for k in new if k in entry.outputs}


def changed_properties(
    old: Mapping[str, Any], new: Mapping[str, Any], *, ignore: Iterable[str] = ()
) -> set[str]:
    """Top-level input properties whose values differ (added and removed ones included)."""
    skip = set(ignore)
    out = set()
    for key in set(old) | set(new):
        if key in skip or key.startswith(ENGINE_KEYS_PREFIX):
            continue
        a, b = old.get(key), new.get(key)
        if contains_unknown(b) or a != b:
            out.add(key)
    return out


def _top(paths: Iterable[str]) -> set[str]:
    """Top-level property names of resource-option paths (``tags.team`` -> ``tags``)."""
    return {p.split(".", 1)[0].split("[", 1)[0] for p in paths}


def decide(
    materializer: Materializer,
    old: _Entry | None,
    inputs: Mapping[str, Any],
    tags: Mapping[str, str],
    *,
    autonamed: bool,
    ignore_changes: Iterable[str] = (),
    replace_on_changes: Iterable[str] = (),
    delete_before_replace: bool = False,
) -> Step:
    """The step for one resource: ``inputs`` normalized (the name filled in when auto-named),
    ``tags`` the effective tags it should carry, ``autonamed`` whether the name is the
    engine's (not the program's); the resource options ``ignoreChanges``,
    ``replaceOnChanges`` (``*``: every property) and ``deleteBeforeReplace`` as Pulumi reads
    them (paths count by their top-level property)."""
    if old is None:
        return Step("create")
    ignored = _top(ignore_changes)
    changed = changed_properties(
        old_inputs(old, inputs),
        inputs,
        ignore={materializer.tag_property, *ENGINE_HANDLED, *ignored},
    )
    if materializer.taggable and dict(old.tags) != dict(tags) and "tags" not in ignored:
        changed.add("tags")
    if not changed:
        return Step("same")
    diff = tuple(sorted(changed))
    forcing = set(materializer.replace_on_change) | _top(replace_on_changes)
    if changed & forcing or "*" in forcing:
        dbr = delete_before_replace or (bool(materializer.name_property) and not autonamed)
        return Step("replace", diff, delete_before_replace=dbr)
    return Step("update", diff)


def autoname(logical: str, materializer: Materializer, inputs: Mapping[str, Any]) -> str:
    """Pulumi's auto-name: the logical name, a dash and seven random hex digits, within the
    type's length limit (FIFO queues and topics keep their mandatory ``.fifo`` suffix)."""
    fifo = bool(inputs.get("fifoQueue") or inputs.get("fifoTopic"))
    suffix = ".fifo" if fifo else ""
    base = f"{logical}-{_secrets.token_hex(4)[:7]}"
    return base[: materializer.name_max_len - len(suffix)] + suffix


def unhonoured(materializer: Materializer, inputs: Mapping[str, Any]) -> list[str]:
    """Input properties the program sets that the type's materializer does not act on."""
    handled = set(materializer.honours) | set(ENGINE_HANDLED) | {materializer.tag_property}
    if materializer.name_property:
        handled.add(materializer.name_property)
    return sorted(
        k
        for k, v in inputs.items()
        if k not in handled and not k.startswith(ENGINE_KEYS_PREFIX) and v not in (None, [], {})
    )


class _Dep(Protocol):
    urn: str
    dependencies: list[str]


T = TypeVar("T", bound=_Dep)


def reverse_dependency_order(entries: Sequence[T]) -> list[T]:
    """Dependents before their dependencies (reverse creation order already is one such order;
    the explicit sort keeps it true for states written by hand or by older versions)."""
    by_urn: dict[str, list[T]] = {}
    for e in entries:
        by_urn.setdefault(e.urn, []).append(e)
    order: list[T] = []
    seen: set[int] = set()

    def visit(e: T) -> None:
        if id(e) in seen:
            return
        seen.add(id(e))
        for dep in e.dependencies:
            for d in by_urn.get(dep, []):
                visit(d)
        order.append(e)

    for e in entries:
        visit(e)
    return list(reversed(order))


def content_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
