"""The orphan-sweep rail on AWS (safety.orphan_sweep_refusal): a resource is an orphan when no
listed stack claims it, so EVERY engine whose listing the sweep relies on must see every
machine's stacks. One shared listing beside one that reads only this machine's state is not
enough: the second engine's stacks on other machines would look orphaned and be deleted."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from branchenv.config import Settings
from branchenv.engines import EngineSpec, register_engine, unregister_engine
from branchenv.engines.base import Engine
from branchenv.safety import orphan_sweep_refusal

SPECS = {
    "shared-one": True,
    "shared-two": True,
    "mine-only": False,
    "mine-too": False,
}


@pytest.fixture(autouse=True)
def engines() -> Iterator[None]:
    for name, shared in SPECS.items():
        register_engine(
            EngineSpec(
                name=name,
                load=lambda: object,
                available=lambda: None,
                local_only=False,
                shared_state=shared,
                program_kinds=frozenset({"pulumi"}),
                summary="a test engine",
            )
        )
    try:
        yield
    finally:
        for name in SPECS:
            unregister_engine(name)


@dataclasses.dataclass
class Named:
    name: str


def refusal(*names: str, target: str = "aws") -> str | None:
    listing = cast(list[Engine], [Named(n) for n in names])
    return orphan_sweep_refusal(Settings(project_dir=Path(".")), listing, target)


@pytest.mark.parametrize(
    ("names", "unshared"),
    [
        (("shared-one",), None),
        (("shared-one", "shared-two"), None),
        (("shared-one", "mine-only"), "mine-only"),
        (("mine-only", "shared-two"), "mine-only"),
        (("mine-only", "mine-too"), "mine-only, mine-too"),
        ((), ""),
    ],
)
def test_every_listing_must_see_every_machine(names: tuple[str, ...], unshared: Any) -> None:
    refused = refusal(*names)
    if unshared is None:
        assert refused is None
        return
    assert refused is not None and refused.startswith("refusing to sweep orphans on AWS")
    if unshared:
        assert f"({unshared})" in refused
    assert "backend_url" in refused and "\n" not in refused


def test_the_local_cloud_is_all_this_machine_s() -> None:
    assert refusal("mine-only", "shared-one", target="local") is None
