"""Shared fixtures. No test may reach a real AWS account or a real Pulumi backend: every test
runs with ``AWS_*`` and ``PULUMI_*`` stripped from the environment."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import settings as hypothesis_settings

# The programs run on the Pulumi mock runtime in a worker thread, and they import branchenv
# modules. branchenv is a pytest plugin, so pytest rewrites its modules on first import, and
# CPython 3.11's ast.parse can fail in that thread ("AST constructor recursion depth
# mismatch"). Importing them here, in the main thread, keeps that first import out of it.
import branchenv.k8s_names
import branchenv.metadata
import branchenv.naming  # noqa: F401

# Speed targets live in benchmarks/, never in asserts: on a loaded 2-core machine hypothesis'
# per-example deadline (200 ms) fails tests that are correct (FlakyFailure on a slow example).
hypothesis_settings.register_profile("branchenv", deadline=None)
hypothesis_settings.load_profile("branchenv")

if TYPE_CHECKING:
    from branchenv.engines.base import Program, ProgramInputs
    from branchenv.metadata import StackMetadata
    from branchenv.targets import Target

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Strip AWS_* / PULUMI_* / CI branch variables so no test touches a real account."""
    for key in list(os.environ):
        if key.startswith(("AWS_", "PULUMI_", "BRANCHENV_", "GITHUB_", "CI_COMMIT_", "GITLAB_")):
            monkeypatch.delenv(key, raising=False)
    # boto3 must never find a real credentials file either.
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def local_cloud_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("localcloud-state")


@pytest.fixture(scope="session")
def local_cloud(local_cloud_dir: Path) -> Iterator[object]:
    """A local cloud of this test session's own (a real moto server process on loopback).

    Yields a :class:`branchenv.targets.Target` for it; the server stops at session end.
    """
    from branchenv.localcloud import LocalCloud

    cloud = LocalCloud(local_cloud_dir)
    status = cloud.start()
    try:
        yield status.target("us-east-1")
    finally:
        cloud.stop()


def subprocess_env(**extra: str) -> dict[str, str]:
    """An environment for CLI subprocesses: no AWS_/PULUMI_ variables, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "PULUMI_", "BRANCHENV_", "GITHUB_", "CI_COMMIT_", "GITLAB_"))
    }
    env["AWS_CONFIG_FILE"] = os.devnull
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    env["AWS_EC2_METADATA_DISABLED"] = "true"  # never probe the instance metadata address
    # tables fit the terminal's COLUMNS: a test that wants a width says so (`COLUMNS="80"`)
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    # Where PYTHONDONTWRITEBYTECODE is set (the CI box sets it), every CLI subprocess compiled
    # branchenv's modules from source anew (no bytecode beside an editable install's sources):
    # about 0.2 s of CPU per run, over a thousand runs a tier. The children cache it where the
    # product's own suite child does (harness.suite.suite_env), never next to the sources. A
    # test that sets either variable itself keeps its value.
    if env.get("PYTHONDONTWRITEBYTECODE") and not env.get("PYTHONPYCACHEPREFIX"):
        from branchenv.harness.suite import bytecode_cache_dir

        del env["PYTHONDONTWRITEBYTECODE"]
        env["PYTHONPYCACHEPREFIX"] = str(bytecode_cache_dir(env))
    env.update(extra)
    return env


def inputs_for(
    metadata: StackMetadata,
    config: Mapping[str, str] | None = None,
    *,
    target: Target | None = None,
    profile: str = "ephemeral",
) -> ProgramInputs:
    """The neutral program inputs the core would hand an engine for ``metadata``'s stack:
    ``config`` may name ``branchenv:prefix`` (default: the stack name) and
    ``branchenv:profile``; every other key goes in as the target template's."""
    from branchenv.engines.base import ProgramInputs

    extra = dict(config or {})
    prefix = extra.pop("branchenv:prefix", metadata.stack)
    profile = extra.pop("branchenv:profile", profile)
    return ProgramInputs(
        prefix=prefix,
        profile=profile,
        tags=metadata.identity_tags(),
        metadata=metadata.to_tags(),
        region=target.region if target is not None else "us-east-1",
        functions_url=target.functions_url if target is not None else None,
        template=extra,
    )


def program_at(path: Path) -> Program:
    """The program in ``path`` as the core detects it."""
    from branchenv.programs import detect_program

    return detect_program(path)


def cli_envelope(stdout: str) -> Any:
    """The one JSON envelope a `branchenv ... --json` run printed (validated against the
    schema shipped in the package)."""
    import json

    from branchenv.cli.output import validate

    doc = json.loads(stdout)
    validate(doc)
    return doc


def cli_result(stdout: str) -> Any:
    """The ``result`` of a successful `branchenv ... --json` run."""
    doc = cli_envelope(stdout)
    assert doc["ok"] is True, doc
    return doc["result"]
