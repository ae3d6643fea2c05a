"""Wording shared by every module that talks to people (below the CLI too)."""

from __future__ import annotations


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 resource``, ``2 resources``, ``0 stacks`` (``many``: an irregular plural)."""
    return f"{count} {noun if count == 1 else (many or noun + 's')}"
