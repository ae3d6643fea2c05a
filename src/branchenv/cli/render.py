"""Rendering of core results: ``--json`` for machines, rich tables for people."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import typer

from branchenv.cli import output
from branchenv.cli.output import to_jsonable
from branchenv.errors import BranchenvError
from branchenv.text import middle

__all__ = ["emit", "emit_json", "middle", "status", "table", "to_jsonable"]


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


MIN_CUT = 16
"""The narrowest an abbreviated column is cut to: a stack name keeps its hash and some head."""
MIN_FOLD = 6
"""The narrowest a wrapping column is planned at (narrower, its words break letter by letter)."""
MAX_WHOLE_LINE = 32
"""In a ``whole_lines`` column, a line up to this long is never split."""


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    abbreviate: Sequence[str] = (),
    no_wrap: Sequence[str] = (),
    whole_lines: Sequence[str] = (),
    optional: Sequence[str] = (),
) -> None:
    """Print a table that fits the terminal's width (:func:`width`).

    Columns named in ``abbreviate`` (stack names, branches) are cut in the middle when the
    table would not fit, keeping their ends (a stack name's hash: :func:`branchenv.text.middle`),
    down to :data:`MIN_CUT` characters, first one first; cells of ``no_wrap`` columns (``expired
    42s ago``) are never split, nor the lines of ``whole_lines`` columns up to
    :data:`MAX_WHOLE_LINE` characters (one reason a line); the other columns wrap, at spaces
    first. When that does not fit, the box gives way to one space between columns, then the
    ``optional`` columns are left out, first named first, and a line under the table names
    them. (rich is imported lazily: it costs start-up time.)"""
    from rich.console import Console
    from rich.table import Table

    names = list(columns)
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    total = width()

    def lines(i: int) -> list[str]:
        return [line for r in cells for line in r[i].splitlines()]

    def natural(i: int) -> int:
        return max([len(names[i])] + [len(x) for x in lines(i)])

    def narrowest(i: int) -> int:
        """What column ``i`` needs at least: a whole cell where it may not wrap (an abbreviated
        one: as cut at most), else its longest header word, and MIN_FOLD where values fold."""
        name = names[i]
        if name in abbreviate:
            return min(natural(i), MIN_CUT)
        if name in no_wrap:
            return natural(i)
        header = max((len(w) for w in name.split()), default=0)
        if name in whole_lines:
            kept = [len(x) for x in lines(i) if len(x) <= MAX_WHOLE_LINE]
            return max([header, min(natural(i), MIN_FOLD), *kept])
        return max(header, min(natural(i), MIN_FOLD))

    def needed(gap: int, edge: int) -> int:
        return sum(narrowest(i) + gap for i in range(len(names))) + edge

    # rich's box costs 3 characters a column (+1); when that does not fit, the table drops its
    # box and padding for one space between columns (as kubectl and docker print theirs)
    compact = sum(natural(i) + 3 for i in range(len(names))) + 1 > total
    gap, edge = (1, -1) if compact else (3, 1)
    hidden: list[str] = []
    for name in optional:
        if needed(gap, edge) <= total:
            break
        if name in names:
            i = names.index(name)
            hidden.append(name)
            del names[i]
            for r in cells:
                del r[i]
    # the plan: every column at its narrowest, then what is left goes to the cut names first
    # (hash and head), then to the wrapping columns, each up to its natural width
    widths = [narrowest(i) for i in range(len(names))]
    spare = total - (sum(widths) + gap * len(names) + edge)
    order = [i for i, c in enumerate(names) if c in abbreviate]
    order += [i for i in range(len(names)) if i not in order]
    for i in order:
        more = max(0, min(spare, natural(i) - widths[i]))
        widths[i] += more
        spare -= more
    for i, c in enumerate(names):
        if c in abbreviate:
            for r in cells:
                r[i] = middle(r[i], widths[i])
    if compact:
        from rich import box

        t = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 0), show_edge=False)
    else:
        t = Table(title=title)
    console = Console(width=total)
    for i, c in enumerate(names):
        fixed = c in abbreviate or c in no_wrap
        t.add_column(c, no_wrap=fixed, overflow="fold", width=widths[i])
    for r in cells:
        t.add_row(*r)
    console.print(t)
    if hidden:
        console.print(
            f"not shown at {total} columns: {', '.join(hidden)} (a wider terminal or --json "
            "shows them)",
            highlight=False,
        )


def status(message: str) -> None:
    """A progress/status line for people, on stderr so stdout stays parseable."""
    typer.echo(message, err=True)
