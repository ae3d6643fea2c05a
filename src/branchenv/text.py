"""Wording shared by every module that talks to people (below the CLI too)."""

from __future__ import annotations


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 resource``, ``2 resources``, ``0 stacks`` (``many``: an irregular plural)."""
    return f"{count} {noun if count == 1 else (many or noun + 's')}"


HASH_LENGTH = 8
"""How many characters end a shortened stack name (its hash suffix): :func:`middle` keeps them."""


def middle(text: str, width: int, keep: int = HASH_LENGTH) -> str:
    """``text`` cut in the middle to at most ``width`` characters, with ``…`` where the cut is:
    the last ``keep`` characters (a stack name's hash) always stay, then the two ends share what
    is left, the head taking the odd one (``feature-a-ra…table-1a2b3c4d``). Text that fits is
    returned as it is; below ``keep + 1`` characters of width, the end alone is kept."""
    if len(text) <= width:
        return text
    if width <= keep:
        return text[-width:] if width > 0 else ""
    room = width - 1  # the ellipsis
    tail = max(keep, room // 2)
    head = room - tail
    return f"{text[:head]}…{text[-tail:]}"
