"""The optional parts of the install (``pip install 'branchenv[NAME]'``) and the one check that
names the extra when one of its packages is missing.

The core (CLI, harness, reaper, cost, the terraform engine, boto3) imports none of these at
module level; every import of an extra's package sits behind :func:`require` (or a registry
``available()`` that calls :func:`missing`), so a core-only install runs everything it can and
says which extra to install for the rest: one line, exit 2.
"""

from __future__ import annotations

import dataclasses
import importlib.util

from branchenv.errors import UsageError


@dataclasses.dataclass(frozen=True)
class Extra:
    """One optional dependency group of pyproject.toml: its name, the top-level modules that
    prove it is installed, and what it is for (for the error's wording)."""

    name: str
    modules: tuple[str, ...]
    purpose: str

    @property
    def install(self) -> str:
        """The command that installs it."""
        return f"pip install 'branchenv[{self.name}]'"


EXTRAS: dict[str, Extra] = {
    extra.name: extra
    for extra in (
        Extra(
            "pulumi", ("pulumi", "pulumi_aws"), "Pulumi programs (the pulumi and inprocess engines)"
        ),
        Extra(
            "k8s", ("pulumi_kubernetes", "kubernetes_validate"), "Kubernetes programs and render"
        ),
        Extra("local", ("moto", "flask", "werkzeug"), "the local cloud (`--target local`)"),
    )
}
"""Every extra but ``all`` (which is the union of these) and ``dev`` (``all`` plus test tools)."""


class MissingExtra(UsageError):
    """A package of an extra is not installed (exit 2); the message names the pip command."""

    def __init__(self, extra: Extra, module: str, needed_for: str) -> None:
        super().__init__(
            f"{needed_for} needs the Python package {module!r}, which is not installed: "
            f"run `{extra.install}` (or `pip install 'branchenv[all]'`)"
        )
        self.extra = extra
        self.module = module


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        # A broken or half-removed package: treat as absent, the import would fail too.
        return False


def missing_module(name: str) -> str | None:
    """The first module of extra ``name`` that cannot be imported here, or None."""
    for module in EXTRAS[name].modules:
        if not _importable(module):
            return module
    return None


def missing(name: str) -> str | None:
    """None when extra ``name`` is installed, else why not, naming the pip command (the wording
    of a registry ``available()`` reason)."""
    module = missing_module(name)
    if module is None:
        return None
    return f"the Python package {module!r} is not installed (run `{EXTRAS[name].install}`)"


def require(name: str, needed_for: str) -> None:
    """Raise :class:`MissingExtra` (exit 2) unless extra ``name`` is installed; ``needed_for``
    starts the message ("the local cloud", "the inprocess engine")."""
    module = missing_module(name)
    if module is not None:
        raise MissingExtra(EXTRAS[name], module, needed_for)


def from_import_error(exc: ImportError, needed_for: str) -> MissingExtra | None:
    """The :class:`MissingExtra` for an ImportError raised by a missing extra's package (a
    program importing ``pulumi_kubernetes`` on a core-only install), else None."""
    top = (getattr(exc, "name", None) or "").split(".")[0]
    for extra in EXTRAS.values():
        if top in extra.modules:
            return MissingExtra(extra, top, needed_for)
    return None
