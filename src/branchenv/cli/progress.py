"""Progress for long work (up, down): a live spinner on a terminal, plain lines otherwise.

Lines go to stderr, so `--json` output on stdout stays parseable.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def progress(title: str, *, quiet: bool = False) -> Iterator[Callable[[str], None]]:
    """Yield a sink for engine output lines: shown live, each also kept in the scrollback."""
    if quiet:
        yield lambda _line: None
        return
    if not sys.stderr.isatty():

        def plain(line: str) -> None:
            print(line, file=sys.stderr, flush=True)

        plain(title)
        yield plain
        return
    from rich.console import Console

    console = Console(stderr=True)
    with console.status(title) as status:

        def live(line: str) -> None:
            console.print(line, highlight=False, markup=False)
            status.update(f"{title} {line.strip()[:60]}")

        yield live
