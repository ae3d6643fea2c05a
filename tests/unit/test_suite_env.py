"""The pytest child's environment (harness/suite.py): bytecode goes to a cache dir, never next to
the sources, when the environment forbids writing it there; everything else is passed on."""

from __future__ import annotations

from pathlib import Path

import pytest

from branchenv.harness.suite import bytecode_cache_dir, suite_env

CACHE = str(Path("/x/cache") / "branchenv" / "pycache")


@pytest.mark.parametrize(
    ("env", "dont_write", "prefix"),
    [
        # The image's setting: the child caches bytecode under the shared cache dir instead.
        ({"PYTHONDONTWRITEBYTECODE": "1", "XDG_CACHE_HOME": "/x/cache"}, None, CACHE),
        # A user's own prefix wins, and their setting stays as they made it.
        (
            {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": "/mine"},
            "1",
            "/mine",
        ),
        # Bytecode already allowed: Python's default (__pycache__ next to sources) is left alone.
        ({"XDG_CACHE_HOME": "/x/cache"}, None, None),
        # An empty value means "not set" to Python, so nothing to work around.
        ({"PYTHONDONTWRITEBYTECODE": ""}, "", None),
    ],
)
def test_bytecode_setting_of_the_child(
    env: dict[str, str], dont_write: str | None, prefix: str | None
) -> None:
    child = suite_env({**env, "BRANCHENV_STACK_FILE": "/s.json", "KEEP": "me"})
    assert child.get("PYTHONDONTWRITEBYTECODE") == dont_write
    assert child.get("PYTHONPYCACHEPREFIX") == prefix
    assert child["PYTHONUNBUFFERED"] == "1"
    assert child["KEEP"] == "me"
    assert "BRANCHENV_STACK_FILE" not in child  # the child gets the stack by its flag


def test_cache_dir_defaults_under_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/u")
    assert bytecode_cache_dir({}) == Path("/home/u/.cache/branchenv/pycache")
