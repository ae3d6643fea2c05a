"""Every command's `--json`, success and failure paths, validates against the one JSON Schema
shipped in the package (branchenv/cli/output.schema.json), on a real one-bucket project with its
own local cloud. A command added to the CLI without a case here fails the coverage check."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main

from branchenv.cli import build_app
from tests.e2e.tiny_project import TinyProject, make_tiny_project

BRANCH = "feature/json-contract"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyProject]:
    project = make_tiny_project(tmp_path_factory.mktemp("json") / "shop")
    try:
        yield project
    finally:
        project.run("down", "--branch", BRANCH, "--yes")
        project.stop()


def _leaf_commands() -> set[str]:
    def walk(command: Any, path: tuple[str, ...]) -> Iterator[str]:
        subs = getattr(command, "commands", None)
        if subs:
            if getattr(command, "invoke_without_command", False) and path:
                yield " ".join(path)
            for name, sub in subs.items():
                yield from walk(sub, (*path, name))
        else:
            yield " ".join(path)

    return set(walk(typer.main.get_command(build_app()), ()))


# (args, exit code); every envelope is validated by TinyProject.envelope (tests.conftest)
SUCCESS: list[tuple[str, ...]] = [
    ("config", "show"),
    ("cloud", "start"),
    ("cloud", "status"),
    ("up", "--branch", BRANCH, "--ttl", "2h"),
    ("preview", "--branch", BRANCH),
    ("outputs", "--branch", BRANCH),
    ("ls",),
    ("cost", "--branch", BRANCH),
    ("reap",),
    ("pool", "status"),
    ("pool", "drain"),
    ("test", "--branch", BRANCH),
    ("down", "--branch", BRANCH, "--yes"),
    ("ci", "--branch", f"{BRANCH}-ci"),
]
FAILURE: list[tuple[tuple[str, ...], int, str]] = [
    (("ls", "--no-such-flag"), 2, "usage"),
    (("up", "--branch", BRANCH, "--ttl", "bogus"), 2, "usage_error"),
    (("up", "--branch", BRANCH, "--ttl", "100000d"), 2, "usage_error"),
    (("ci", "--branch", "main"), 3, "safety_refusal"),
    (("down", "--branch", "main"), 3, "safety_refusal"),
    (("outputs", "--branch", "nosuch"), 1, "stack_not_found"),
    (("cost", "--branch", "nosuch"), 1, "stack_not_found"),
    (("preview", "--branch", BRANCH, "--profile", "bogus"), 2, "usage_error"),
    (("reap", "--orphan-grace", "bogus"), 2, "usage_error"),
    (("render", "--program", "infra/nope"), 2, "usage_error"),
    (("cost", "refresh-prices"), 1, "operation_failed"),
    (("config", "show", "--target", "mars"), 2, "config_error"),
    (("init",), 2, "usage_error"),  # the project already has a branchenv.toml
    (("cloud", "stop", "--bogus"), 2, "usage"),
    (("pool", "fill", "--size", "100000"), 2, "usage_error"),
    (("cloud", "status", "-x"), 2, "usage"),
]


def test_every_command_has_a_case() -> None:
    covered = {" ".join(a for a in args if not a.startswith("-")).strip() for args in SUCCESS}
    covered |= {" ".join(a for a in args[:2] if not a.startswith("-")) for args, _, _ in FAILURE}
    words = {c.split(" --")[0] for c in covered}
    missing = {c for c in _leaf_commands() if not any(w.startswith(c) for w in words)}
    assert not missing, f"no --json case for: {sorted(missing)}"


def test_success_envelopes_validate(tiny: TinyProject) -> None:
    for args in SUCCESS:
        doc = tiny.envelope(*args)
        assert doc["ok"] is True and "error" not in doc, (args, doc)
        expected = " ".join(a for a in args[:2] if not a.startswith("-"))
        assert doc["command"] in (expected, args[0]), (args, doc["command"])


def test_a_fresh_project_inits(tmp_path: Path, tiny: TinyProject) -> None:
    fresh = tmp_path / "fresh"
    shutil.copytree(tiny.root, fresh, ignore=shutil.ignore_patterns(".branchenv", "reports"))
    (fresh / "branchenv.toml").unlink()
    proc = tiny.run("init", "--json", cwd=fresh)
    assert proc.returncode == 0, proc.stderr
    from tests.conftest import cli_result

    assert cli_result(proc.stdout)["kind"] == "pulumi"


@pytest.mark.parametrize("args,code,error", FAILURE, ids=[" ".join(a) for a, _, _ in FAILURE])
def test_failure_envelopes_validate(
    tiny: TinyProject, args: tuple[str, ...], code: int, error: str
) -> None:
    doc = tiny.envelope(*args, exit=code)
    assert doc["ok"] is False and doc["error"]["exit"] == code, doc
    assert doc["error"]["code"] == error, doc
    assert doc["error"]["message"] and "\n" not in doc["error"]["message"].strip()


def test_a_budget_failure_keeps_its_result(tiny: TinyProject) -> None:
    tiny.result("up", "--branch", f"{BRANCH}-budget")
    try:
        doc = tiny.envelope(
            "cost", "--branch", f"{BRANCH}-budget", "--max-total", "0.000001", exit=1
        )
        assert doc["error"]["code"] == "budget_exceeded" and doc["result"]["rows"]
    finally:
        tiny.run("down", "--branch", f"{BRANCH}-budget", "--yes")
