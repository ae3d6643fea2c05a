"""What a root module declares, read with python-hcl2 (never with regexes): its variables and
its ``aws`` provider blocks (alias, default tags, region), so the engine passes only declared
variables and merges its tags into the module's own."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from branchenv.errors import UsageError

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_INTERP = re.compile(r"^\$\{(.*)\}$", re.DOTALL)


@dataclasses.dataclass(frozen=True)
class Variable:
    """One ``variable`` block: its name, its type expression (None: any) and whether it has a
    default."""

    name: str
    type: str | None
    has_default: bool


@dataclasses.dataclass(frozen=True)
class AwsProvider:
    """One ``provider "aws"`` block: alias (None: the default one), its ``default_tags.tags``
    as an HCL expression (None when it sets none), and whether it sets ``region`` and an
    ``endpoints`` block of its own."""

    alias: str | None
    default_tags: str | None
    sets_region: bool
    sets_endpoints: bool = False


@dataclasses.dataclass(frozen=True)
class ModuleInfo:
    """What the engine needs to know of a root module."""

    variables: dict[str, Variable]
    aws_providers: tuple[AwsProvider, ...]
    uses_aws: bool
    aws_types: frozenset[str] = frozenset()
    """Every ``aws_*`` resource and data source type the module declares, its local
    sub-modules' (``source = "./..."`` or ``"../..."``, followed down) included."""
    types_complete: bool = True
    """False when some of those types could not be read: a module call from a registry, git
    or any other non-local source, or a ``*.tf.json`` file (not parsed here)."""


def _label(raw: str) -> str:
    return raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] == '"' else raw


def to_hcl(value: Any) -> str:
    """Render a python-hcl2 value back as an HCL expression (literals keep their quotes,
    ``${expr}`` becomes ``expr``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        match = _INTERP.match(value)
        if match:
            return match.group(1)
        if len(value) >= 2 and value[0] == value[-1] == '"':
            return value
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(to_hcl(v) for v in value) + "]"
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            if key == "__is_block__":
                continue
            shown = key if key.startswith('"') or _IDENT.match(key) else json.dumps(key)
            items.append(f"{shown} = {to_hcl(item)}")
        return "{" + ", ".join(items) + "}"
    raise TypeError(f"unexpected HCL value {value!r}")


def _type_expression(value: Any) -> str | None:
    # python-hcl2 gives a bare keyword type (`string`) as it is, a call (`map(string)`) as
    # `${...}`: both are expressions already.
    if value is None:
        return None
    if isinstance(value, str) and _IDENT.match(value):
        return value
    return to_hcl(value)


def _load(path: Path) -> dict[str, Any]:
    import hcl2

    try:
        with path.open() as fh:
            data: dict[str, Any] = hcl2.load(fh)
    except Exception as exc:  # python-hcl2 raises lark's errors, which share no base
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            f"{path} is not valid HCL ({first[:200]}); run `terraform validate` in the module "
            "to see where"
        ) from None
    return data


def _blocks(data: dict[str, Any], kind: str) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for entry in data.get(kind, []) or []:
        if isinstance(entry, dict):
            for label, body in entry.items():
                if isinstance(body, dict):
                    found.append((_label(label), body))
    return found


def _is_local_source(source: str) -> bool:
    return source.startswith(("./", "../", ".\\", "..\\"))


def _called_types(module_dir: Path, seen: set[Path]) -> tuple[set[str], bool]:
    """The ``aws_*`` types of a called module and of the local modules it calls in turn, and
    whether they are all known (see :attr:`ModuleInfo.types_complete`)."""
    module_dir = module_dir.resolve()
    if module_dir in seen:
        return set(), True
    seen.add(module_dir)
    if not module_dir.is_dir() or any(module_dir.glob("*.tf.json")):
        return set(), False
    types: set[str] = set()
    complete = True
    for path in sorted(module_dir.glob("*.tf")):
        found, calls = _types_and_calls(_load(path))
        sub_types, sub_complete = _types_of_calls(module_dir, calls, seen)
        types |= found | sub_types
        complete = complete and sub_complete
    return types, complete


def _types_of_calls(
    module_dir: Path, calls: list[str | None], seen: set[Path]
) -> tuple[set[str], bool]:
    """The ``aws_*`` types of the modules ``calls`` name (sources relative to ``module_dir``),
    local ones followed down; and whether all are known (a non-local source is not)."""
    types: set[str] = set()
    complete = True
    for source in calls:
        if source is None or not _is_local_source(source):
            complete = False
            continue
        sub_types, sub_complete = _called_types(module_dir / source, seen)
        types |= sub_types
        complete = complete and sub_complete
    return types, complete


def _types_and_calls(data: dict[str, Any]) -> tuple[set[str], list[str | None]]:
    """One file's ``aws_*`` resource and data types, and the ``source`` of each module call
    (None when it is not a plain string)."""
    types: set[str] = set()
    for resource_kind in ("resource", "data"):
        for entry in data.get(resource_kind, []) or []:
            if isinstance(entry, dict):
                types |= {_label(k) for k in entry if _label(k).startswith("aws_")}
    calls: list[str | None] = []
    for _name, body in _blocks(data, "module"):
        source = body.get("source")
        calls.append(_label(source) if isinstance(source, str) else None)
    return types, calls


def read_module(module_dir: Path) -> ModuleInfo:
    """Variables and aws provider blocks of every ``*.tf`` file in ``module_dir`` (override
    files included, since terraform merges them; the engine's own ``branchenv_*`` excluded)."""
    variables: dict[str, Variable] = {}
    providers: list[AwsProvider] = []
    uses_aws = False
    aws_types: set[str] = set()
    types_complete = not any(module_dir.glob("*.tf.json"))
    seen = {module_dir.resolve()}
    for path in sorted(module_dir.glob("*.tf")):
        if path.name.startswith("branchenv_"):
            continue
        data = _load(path)
        for name, body in _blocks(data, "variable"):
            type_expr = body.get("type")
            variables[name] = Variable(
                name=name,
                type=_type_expression(type_expr),
                has_default="default" in body,
            )
        for name, body in _blocks(data, "provider"):
            if name != "aws":
                continue
            uses_aws = True
            tags_blocks = body.get("default_tags") or []
            tags = None
            for block in tags_blocks if isinstance(tags_blocks, list) else [tags_blocks]:
                if isinstance(block, dict) and "tags" in block:
                    tags = to_hcl(block["tags"])
            alias = body.get("alias")
            providers.append(
                AwsProvider(
                    alias=None if alias is None else _label(str(alias)),
                    default_tags=tags,
                    sets_region="region" in body,
                    sets_endpoints="endpoints" in body,
                )
            )
        found, calls = _types_and_calls(data)
        if found:
            uses_aws = True
            aws_types |= found
        sub_types, sub_complete = _types_of_calls(module_dir, calls, seen)
        # A sub-module's resources use the root's default aws provider: it needs wiring.
        uses_aws = uses_aws or bool(sub_types)
        aws_types |= sub_types
        types_complete = types_complete and sub_complete
        for block in data.get("terraform", []) or []:
            required = block.get("required_providers") if isinstance(block, dict) else None
            for req in required or []:
                if isinstance(req, dict) and "aws" in req:
                    uses_aws = True
    return ModuleInfo(
        variables=variables,
        aws_providers=tuple(providers),
        uses_aws=uses_aws,
        aws_types=frozenset(aws_types),
        types_complete=types_complete,
    )


def tfvars_names(module_dir: Path) -> set[str]:
    """Variables given values by the module's own ``terraform.tfvars`` / ``*.auto.tfvars``
    (and their ``.json`` forms), which terraform loads by itself."""
    names: set[str] = set()
    for path in sorted(module_dir.iterdir()):
        name = path.name
        if name in ("terraform.tfvars", "terraform.tfvars.json") or name.endswith(
            (".auto.tfvars", ".auto.tfvars.json")
        ):
            if name.endswith(".json"):
                try:
                    names.update(json.loads(path.read_text()))
                except (OSError, ValueError) as exc:
                    raise UsageError(f"{path} is not valid JSON ({exc}); fix it") from None
            else:
                names.update(_load(path))
    return names
