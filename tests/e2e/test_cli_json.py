"""Every command's `--json`, success and failure paths, validates against the one JSON Schema
shipped in the package (branchenv/cli/output.schema.json), on a real one-bucket project with its
own local cloud. A command added to the CLI without a case here fails the coverage check."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import typer.main

from branchenv.cli import build_app, main
from branchenv.cli.output import command_path
from tests.conftest import REPO_ROOT, cli_envelope
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
    ("pool", "fill", "--size", "1"),
    ("pool", "status"),
    ("pool", "drain"),
    ("pool", "drain", "--yes"),
    ("test", "--branch", BRANCH),
    ("down", "--branch", BRANCH, "--yes"),
    ("ci", "--branch", f"{BRANCH}-ci"),
    ("cloud", "stop"),  # last: the cases after it start the cloud again when they need it
]
# success envelopes validated by another test (it runs where the command can succeed)
SUCCESS_ELSEWHERE = {
    "init": "test_a_fresh_project_inits",
    "render": "tests/e2e/test_render_cli.py::test_render_json_lists_files_and_no_errors",
    "cost refresh-prices": "test_refresh_prices_success_envelope_validates",
}
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
    (("cloud", "start", "--bogus"), 2, "usage"),
    (("test", "--branch", "main"), 3, "safety_refusal"),
    (("pool", "status", "--target", "mars"), 2, "config_error"),
    (("pool", "drain", "--engine", "nope"), 2, "config_error"),
]


def _command(args: tuple[str, ...]) -> str | None:
    return command_path(args, typer.main.get_command(build_app()))


def test_every_command_has_a_success_and_a_failure_case() -> None:
    leaves = _leaf_commands()
    succeeds = {_command(args) for args in SUCCESS} | set(SUCCESS_ELSEWHERE)
    fails = {_command(args) for args, _, _ in FAILURE}
    assert not leaves - succeeds, f"no --json success case for: {sorted(leaves - succeeds)}"
    assert not leaves - fails, f"no --json failure case for: {sorted(leaves - fails)}"
    here = Path(__file__).read_text()
    for where in SUCCESS_ELSEWHERE.values():
        path, _, name = where.rpartition("::")
        text = (REPO_ROOT / path).read_text() if path else here
        assert f"def {name}(" in text, f"{where} does not exist"


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
    doc = cli_envelope(proc.stdout)
    assert doc["command"] == "init" and doc["result"]["kind"] == "pulumi"


def test_refresh_prices_success_envelope_validates(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In process, since it succeeds only against the real Price List API: a fetcher that
    finds nothing (every figure kept, each reported as a problem) is a success."""
    from branchenv.cost import prices

    monkeypatch.setattr(prices, "price_list_fetcher", lambda client: lambda code, filters: [])
    with pytest.raises(SystemExit) as exited:
        main(["cost", "refresh-prices", "--region", "us-east-1", "--json"])
    assert exited.value.code in (0, None)
    doc = cli_envelope(capsys.readouterr().out)
    assert doc["ok"] is True and doc["command"] == "cost refresh-prices", doc
    assert doc["result"]["problems"] and doc["result"]["updated"] == []


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


def test_every_command_has_a_result_schema() -> None:
    """A command's result is checked by its own part of the schema, not only the envelope."""
    import json

    from branchenv.cli.output import SCHEMA_PATH

    schema = json.loads(SCHEMA_PATH.read_text())
    typed = {
        part["if"]["properties"]["command"]["const"]
        for part in schema["allOf"]
        if "command" in part.get("if", {}).get("properties", {})
    }
    assert not _leaf_commands() - typed, f"no result schema for {_leaf_commands() - typed}"


def test_the_schema_refuses_prose_money_in_a_pool_status() -> None:
    from branchenv.cli.output import validate

    doc = {
        "schema": 1,
        "command": "pool status",
        "ok": True,
        "result": {
            "pool": "p",
            "target": "local",
            "engine": "inprocess",
            "size": 0,
            "stacks": [],
            "idle_hourly": "$0.0009/h",
            "unpriced": [],
        },
    }
    with pytest.raises(jsonschema.ValidationError, match=r"0\.0009"):
        validate(doc)
    validate({**doc, "result": {**doc["result"], "idle_hourly": None}})
