"""Wording shared by every module: plurals, and names cut in the middle for narrow tables."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from branchenv.naming import names_for
from branchenv.text import HASH_LENGTH, middle, plural


@pytest.mark.parametrize(
    ("count", "noun", "text"),
    [(0, "stack", "0 stacks"), (1, "resource", "1 resource"), (2, "attempt", "2 attempts")],
)
def test_plural(count: int, noun: str, text: str) -> None:
    assert plural(count, noun) == text


@given(text=st.text(min_size=0, max_size=120), width=st.integers(min_value=HASH_LENGTH + 1))
def test_middle_fits_and_keeps_the_hash(text: str, width: int) -> None:
    cut = middle(text, width)
    assert len(cut) <= width
    assert cut.endswith(text[-HASH_LENGTH:])
    if len(text) <= width:
        assert cut == text
    else:
        assert "…" in cut and len(cut) == width
        head = cut[: cut.index("…")]
        assert text.startswith(head)


def test_a_stack_name_cut_in_the_middle_keeps_its_hash() -> None:
    stack = names_for("feature/a-rather-long-branch-name-for-the-table").stack
    cut = middle(stack, 28)
    assert cut == stack[:14] + "…" + stack[-13:]  # the head takes the odd character
    assert cut.startswith("feature-a-rath") and cut.endswith(stack[-8:])
    assert middle(stack, 16) == stack[:7] + "…" + stack[-8:]


def test_narrower_than_the_hash_keeps_the_end() -> None:
    assert middle("abcdefghijkl", 5) == "hijkl"
    assert middle("abcdefghijkl", 0) == ""
