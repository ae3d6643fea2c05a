"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import fakes


@pytest.fixture
def registered() -> Iterator[None]:
    """The tests' in-memory engine (``fake``) registered for the test's duration."""
    fakes.register()
    try:
        yield
    finally:
        fakes.unregister()
