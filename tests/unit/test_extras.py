"""The extras table (src/branchenv/extras.py) against pyproject.toml, and its messages."""

from __future__ import annotations

import pytest

from branchenv import extras
from branchenv.errors import EXIT_USAGE
from tests.core_install import closure, group_requirements

# The distribution each checked module comes from.
DIST_OF = {
    "pulumi": "pulumi",
    "pulumi_aws": "pulumi-aws",
    "pulumi_kubernetes": "pulumi-kubernetes",
    "kubernetes_validate": "kubernetes-validate",
    "moto": "moto",
    "flask": "flask",
    "werkzeug": "werkzeug",
}


@pytest.mark.parametrize("name", sorted(extras.EXTRAS))
def test_each_extra_installs_the_modules_it_is_checked_by(name: str) -> None:
    core = closure(group_requirements(()))
    group = closure(group_requirements((name,)))
    for module in extras.EXTRAS[name].modules:
        assert DIST_OF[module] in group, (name, module)
        assert DIST_OF[module] not in core, (name, module)


@pytest.mark.parametrize(
    ("error_name", "extra"),
    [
        ("pulumi_kubernetes", "k8s"),
        ("pulumi_aws.s3", "pulumi"),
        ("pulumi", "pulumi"),
        ("moto.core", "local"),
        ("kubernetes_validate", "k8s"),
        ("yaml_typo", None),
        (None, None),
    ],
)
def test_an_import_error_maps_to_its_extra(error_name: str | None, extra: str | None) -> None:
    found = extras.from_import_error(ModuleNotFoundError("x", name=error_name), "the program")
    if extra is None:
        assert found is None
        return
    assert found is not None
    assert found.exit_code == EXIT_USAGE
    assert f"pip install 'branchenv[{extra}]'" in str(found)
    assert "\n" not in str(found)
    assert str(found).startswith("the program needs the Python package")


def test_an_installed_extra_is_not_missing() -> None:
    # This venv is the [dev] install: every extra is present.
    assert all(extras.missing(name) is None for name in extras.EXTRAS)
    for name in extras.EXTRAS:
        extras.require(name, "this test")


def test_an_absent_module_is_reported_with_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        extras.EXTRAS, "pulumi", extras.Extra("pulumi", ("pulumi", "no_such_mod_x1"), "p")
    )
    reason = extras.missing("pulumi")
    assert reason == (
        "the Python package 'no_such_mod_x1' is not installed (run `pip install 'branchenv[pulumi]'`)"
    )
    with pytest.raises(extras.MissingExtra, match=r"pip install 'branchenv\[pulumi\]'"):
        extras.require("pulumi", "the inprocess engine")
