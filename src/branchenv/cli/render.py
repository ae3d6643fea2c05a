"""Rendering of core results: ``--json`` for machines, rich tables for people."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import typer

from branchenv.cli import output
from branchenv.cli.output import to_jsonable
from branchenv.errors import BranchenvError

__all__ = ["emit", "emit_json", "status", "table", "to_jsonable"]


def emit_json(value: Any, *, error: BranchenvError | None = None) -> None:
    """Print ``value`` as the ``result`` of the invocation's JSON envelope (with ``error``, a
    failure that still has a result)."""
    body = output.body_for(error, output.current().command) if error is not None else None
    output.print_document(output.envelope(result=value, error=body))


def emit(
    value: Any,
    *,
    as_json: bool,
    human: Callable[[], None],
    error: BranchenvError | None = None,
) -> None:
    """Print ``value`` as the JSON envelope's result when ``as_json``, else call ``human`` to
    render it for people; then raise ``error`` (a failure that still has a result to show:
    a red `ci`, a reap with failed deletions), which the entry point reports and exits with."""
    if as_json:
        emit_json(value, error=error)
    else:
        human()
    if error is not None:
        raise error


def width() -> int:
    """The terminal's width: ``COLUMNS`` when set, the terminal's own, else 200 (a pipe or a
    file gets whole lines)."""
    import os
    import shutil

    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return 200


def middle(text: str, limit: int) -> str:
    """``text`` cut in the middle to ``limit`` characters, keeping both ends (a stack name's
    hash is at its end)."""
    if len(text) <= limit or limit < 5:
        return text
    tail = (limit - 1) // 2 + (limit - 1) % 2
    head = limit - 1 - tail
    return f"{text[:head]}…{text[-tail:]}"


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    abbreviate: Sequence[str] = (),
) -> None:
    """Print a table that fits the terminal's width: columns named in ``abbreviate`` are cut
    in the middle when the table would not fit (down to 20 characters), the others wrap.
    (rich is imported lazily: it costs start-up time.)"""
    from rich.console import Console
    from rich.table import Table

    cells = [["" if v is None else str(v) for v in row] for row in rows]
    total = width()
    natural = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    # other columns wrap at spaces first: only what is left over is taken from the names
    narrowest = [
        natural[i]
        if c in abbreviate
        else max(len(w) for t in [c, *(r[i] for r in cells)] for w in [*t.split(), ""])
        for i, c in enumerate(columns)
    ]
    excess = sum(n + 3 for n in narrowest) + 1 - total
    for name in abbreviate:
        if excess <= 0 or name not in columns:
            continue
        i = list(columns).index(name)
        limit = max(20, natural[i] - excess)
        excess -= natural[i] - limit
        for r in cells:
            r[i] = middle(r[i], limit)
    t = Table(title=title)
    console = Console(width=total)
    for i, c in enumerate(columns):
        if c in abbreviate:
            # a name stays on one line (already cut to fit, hash kept): the others give way
            longest = max([len(c), *(len(r[i]) for r in cells)])
            t.add_column(c, no_wrap=True, min_width=longest)
        else:
            t.add_column(c, overflow="fold")
    for r in cells:
        t.add_row(*r)
    console.print(t)


def status(message: str) -> None:
    """A progress/status line for people, on stderr so stdout stays parseable."""
    typer.echo(message, err=True)
