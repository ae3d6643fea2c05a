"""Rendering of core results: ``--json`` for machines, rich tables for people."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import pathlib
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import typer


def to_jsonable(value: Any) -> Any:
    """Convert dataclasses, datetimes, Decimals, enums and paths into JSON-ready values."""
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
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, pathlib.Path):
        return str(value)
    return value


def emit_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout."""
    typer.echo(json.dumps(to_jsonable(value), indent=2, sort_keys=False))


def emit(value: Any, *, as_json: bool, human: Callable[[], None]) -> None:
    """Print ``value`` as JSON when ``as_json``, else call ``human`` to render it for people."""
    if as_json:
        emit_json(value)
    else:
        human()


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print a rich table (imported lazily: rich costs start-up time)."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    console = Console() if sys.stdout.isatty() else Console(width=200)
    for c in columns:
        t.add_column(c)
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    console.print(t)


def status(message: str) -> None:
    """A progress/status line for people, on stderr so stdout stays parseable."""
    typer.echo(message, err=True)
