"""The one machine-readable form of every command: the ``--json`` envelope.

Every command run with ``--json`` (or ``--format json``) prints exactly one JSON document on
stdout, success or failure alike, validated by the JSON Schema shipped beside this module
(:data:`SCHEMA_PATH`, ``branchenv/cli/output.schema.json``)::

    {"schema": 1, "command": "ls", "ok": true,  "result": {...}}
    {"schema": 1, "command": "ci", "ok": false, "error": {"code": "safety_refusal", "exit": 3,
                                                          "message": "...", "hint": "..."},
     "result": {...}}            # a failure that still has a result (a red `ci`, a failed reap)

``error.code`` is the error's class in snake case (``usage_error``, ``config_error``,
``safety_refusal``, ``stack_not_found``, ``budget_exceeded``, ...), or one of ``usage`` (the
command line did not parse), ``tests_failed``, ``interrupted``, ``aws_error``, ``internal_error``
(a bug: its traceback follows on stderr). ``error.exit`` is the process's exit code.

Money is never prose: every amount is ``{"amount": "<decimal>", "currency": "USD"}``, the
amount a decimal string rounded half-even to :data:`MONEY_PLACES` places.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import pathlib
import re
import sys
from collections.abc import Sequence
from functools import cache
from typing import Any

from branchenv.cifold import Annotator

SCHEMA_VERSION = 1
SCHEMA_PATH = pathlib.Path(__file__).with_name("output.schema.json")
MONEY_PLACES = 6
CURRENCY = "USD"
_QUANTUM = decimal.Decimal(1).scaleb(-MONEY_PLACES)


def money(amount: decimal.Decimal, currency: str = CURRENCY) -> dict[str, str]:
    """An amount as the envelope carries it: a rounded decimal string and its currency."""
    rounded = amount.quantize(_QUANTUM, rounding=decimal.ROUND_HALF_EVEN)
    return {"amount": format(rounded, "f"), "currency": currency}


def to_jsonable(value: Any) -> Any:
    """Dataclasses, datetimes, enums and paths as JSON-ready values; every Decimal in a result
    is money (USD) and becomes :func:`money`."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return money(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, pathlib.Path):
        return str(value)
    return value


# --- the invocation: which command, and whether it speaks JSON -----------------------------


@dataclasses.dataclass
class Invocation:
    """What :func:`branchenv.cli.main` learnt from the command line before running it, and
    what the CI's log gets from this run (``annotator``: off unless main turns it on)."""

    command: str | None = None
    json: bool = False
    emitted: bool = False
    annotator: Annotator = dataclasses.field(default_factory=Annotator.off)


_current = Invocation()


def current() -> Invocation:
    return _current


def begin(argv: Sequence[str], root: Any) -> Invocation:
    """Record the command path and whether ``--json`` (or ``--format json``) was asked for."""
    global _current
    _current = Invocation(command=command_path(argv, root), json=wants_json(argv))
    return _current


def wants_json(argv: Sequence[str]) -> bool:
    """True for ``--json``, ``--format json``, ``--format=json``, ``-f json`` or ``-fjson``
    before a ``--`` (what follows it belongs to pytest)."""
    args = list(argv)
    if "--" in args:
        args = args[: args.index("--")]
    for i, arg in enumerate(args):
        if arg == "--json" or arg in ("--format=json", "-fjson"):
            return True
        if arg in ("--format", "-f") and i + 1 < len(args) and args[i + 1].lower() == "json":
            return True
    return False


def command_path(argv: Sequence[str], root: Any) -> str | None:
    """The subcommand names in ``argv`` (``"cost refresh-prices"``), None when there is none."""
    names: list[str] = []
    group = root
    for arg in argv:
        if arg == "--":
            break
        if arg.startswith("-"):
            continue
        commands = getattr(group, "commands", None)
        if not commands or arg not in commands:
            break
        names.append(arg)
        group = commands[arg]
    return " ".join(names) or None


def _command_now() -> str | None:
    try:
        import click

        ctx = click.get_current_context(silent=True)
    except ImportError:  # pragma: no cover - click ships with typer
        ctx = None
    if ctx is not None and ctx.command_path:
        path = ctx.command_path.split(" ", 1)
        return path[1] if len(path) > 1 else None
    return _current.command


# --- envelopes ------------------------------------------------------------------------------


def error_code(exc: BaseException) -> str:
    """``SafetyRefusal`` -> ``safety_refusal``: the error's class in snake case."""
    return snake_case(type(exc).__name__)


def snake_case(class_name: str) -> str:
    """``BudgetExceeded`` -> ``budget_exceeded``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower()


def error_body(
    *, code: str, exit_code: int, message: str, hint: str | None = None
) -> dict[str, Any]:
    return {"code": code, "exit": exit_code, "message": message, "hint": hint}


def default_hint(exc: BaseException, command: str | None) -> str | None:
    """A fix that works from where the user stands, for errors raised without one."""
    from branchenv.errors import ConfigError, SafetyRefusal, UsageError

    where = f"branchenv {command}" if command else "branchenv"
    if isinstance(exc, ConfigError) and str(exc).startswith("flag "):
        # a bad flag value (config's "flag --engine: bad value ..."): the fix is on this line
        return f"`{where} --help` lists the options and their values"
    if isinstance(exc, ConfigError) and command != "config show":
        return "`branchenv config show` lists every setting, its value and where it came from"
    if isinstance(exc, UsageError):
        return f"`{where} --help` lists the options and their values"
    if isinstance(exc, SafetyRefusal):
        return "safety rules are described in docs/concepts.md; they are never bypassed"
    return None


def body_for(exc: BaseException, command: str | None = None) -> dict[str, Any]:
    """The ``error`` object for one of our errors."""
    from branchenv.errors import BranchenvError

    if isinstance(exc, BranchenvError):
        message = getattr(exc, "message", None) or str(exc)
        hint = getattr(exc, "hint", None) or default_hint(exc, command)
        return error_body(code=error_code(exc), exit_code=exc.exit_code, message=message, hint=hint)
    return error_body(code=error_code(exc), exit_code=1, message=str(exc) or type(exc).__name__)


def envelope(
    *,
    result: Any = None,
    error: dict[str, Any] | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "command": command if command is not None else _command_now(),
        "ok": error is None,
    }
    if error is None or result is not None:
        doc["result"] = to_jsonable(result)
    if error is not None:
        doc["error"] = error
    return doc


def print_document(doc: dict[str, Any]) -> None:
    """Print one envelope on stdout (once per invocation: later calls are dropped)."""
    if _current.emitted:
        return
    _current.emitted = True
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    sys.stdout.flush()


# --- the schema -----------------------------------------------------------------------------


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema every envelope validates against."""
    data: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return data


def validate(doc: Any) -> None:
    """Raise ``jsonschema.ValidationError`` when ``doc`` is not a valid envelope."""
    import jsonschema  # type: ignore[import-untyped]

    jsonschema.Draft202012Validator(schema()).validate(doc)
