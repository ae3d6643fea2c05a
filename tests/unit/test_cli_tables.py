"""Tables for people fit the terminal: names cut in the middle (hash kept), unsplittable cells
whole, optional columns left out (and named) when nothing else fits."""

from __future__ import annotations

import pytest

from branchenv.cli import render
from branchenv.naming import names_for

BRANCH = "feature/a-rather-long-branch-name-for-the-table"
LS = [
    "stack", "branch", "owner", "age", "expires in", "resources", "cost so far", "engine",
    "target", "account/region",
]  # fmt: skip
ROW = [
    names_for(BRANCH).stack, BRANCH, "dev@example.com", "6s", "expired 42s ago", "1", "$0.00",
    "inprocess", "local", "123456789012/us-east-1",
]  # fmt: skip


def _ls(width: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", str(width))
    render.table(
        "1 stack",
        LS,
        [ROW],
        abbreviate=("stack", "branch"),
        no_wrap=("age", "expires in"),
        optional=("account/region", "target", "engine"),
    )
    return capsys.readouterr().out


@pytest.mark.parametrize("width", [80, 100, 120, 200])
def test_ls_fits_keeps_the_hash_and_the_expiry_whole(
    width: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _ls(width, capsys, monkeypatch)
    assert max(len(line) for line in out.splitlines()) <= width, out
    assert names_for(BRANCH).stack[-8:] in out
    assert "expired 42s ago" in out


def test_what_is_left_out_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    narrow = _ls(80, capsys, monkeypatch)
    assert "not shown at 80 columns: account/region" in narrow
    wide = _ls(250, capsys, monkeypatch)
    assert "not shown" not in wide and "123456789012/us-east-1" in wide and BRANCH in wide
    assert "┃" in wide  # room enough: the usual box
