"""The stack file hand-off and the contract helper."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from branchenv.harness.contracts import ContractViolation, check_contract, violations
from branchenv.harness.stackfile import (
    StackFileError,
    StackInfo,
    TargetInfo,
    read_stack_file,
    write_stack_file,
)

INFO = StackInfo(
    stack="feature-x",
    branch="feature/x",
    target=TargetInfo("local", "us-east-1", "http://127.0.0.1:5000", "http://127.0.0.1:5001"),
    outputs={"endpoint": "http://127.0.0.1:5001/api/a", "max_receive_count": 3},
    metadata={"owner": "ada"},
    latency_p95_ms=250,
    ready_s=0.5,
)


def test_round_trip(tmp_path: Path) -> None:
    path = write_stack_file(INFO, tmp_path / "sub" / "stack.json")
    assert read_stack_file(path) == INFO
    assert json.loads(path.read_text())["settings"] == {"latency_p95_ms": 250}


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ("[]", "expected a JSON object"),
        ("{not json", "not valid JSON"),
        ('{"version": 2}', "version 2 is not 1"),
        ('{"version": 1, "stack": "s"}', "missing keys target, outputs"),
        (
            '{"version": 1, "stack": "s", "target": {"name": "local"}, "outputs": {}}',
            "'target' needs",
        ),
        (
            '{"version": 1, "stack": "s", "target": {"name": "l", "region": "r"}, "outputs": [],'
            ' "settings": {}}',
            "'outputs' must be an object",
        ),
    ],
)
def test_bad_stack_files_say_what_is_wrong(tmp_path: Path, document: str, problem: str) -> None:
    path = tmp_path / "stack.json"
    path.write_text(document)
    with pytest.raises(StackFileError, match=f"stack file {path}.*") as info:
        read_stack_file(path)
    assert problem in str(info.value)


def test_missing_stack_file_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(StackFileError, match="branchenv test"):
        read_stack_file(tmp_path / "absent.json")


SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "qty"],
    "properties": {"id": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
}


def test_violations_lists_every_problem() -> None:
    assert violations({"id": "a", "qty": 1}, SCHEMA) == []
    found = violations({"qty": 0}, SCHEMA)
    assert len(found) == 2
    assert any("'id' is a required property" in v for v in found)
    assert any(v.startswith("qty:") for v in found)


class FakeResponse:
    def __init__(self, status: int, body: str, content_type: str = "application/json") -> None:
        self.status_code = status
        self.text = body
        self.headers = {"content-type": content_type}
        self.url = "http://x/y"

        class Req:
            method = "GET"

        self.request = Req()

    def json(self) -> Any:
        return json.loads(self.text)


def test_check_contract_on_responses() -> None:
    assert check_contract(FakeResponse(200, '{"id": "a", "qty": 2}'), SCHEMA, status=200) == {
        "id": "a",
        "qty": 2,
    }
    with pytest.raises(ContractViolation) as info:
        check_contract(FakeResponse(500, '{"qty": 0}', "text/html"), SCHEMA, status=200)
    problems = info.value.problems
    assert problems[0] == "status: expected 200, got 500"
    assert problems[1].startswith("content-type: expected application/json")
    assert len(problems) == 4
    with pytest.raises(ContractViolation, match="body is not JSON"):
        check_contract(FakeResponse(200, "<html>"), SCHEMA)


def test_a_broken_schema_is_reported_as_such() -> None:
    from jsonschema.exceptions import SchemaError

    with pytest.raises(SchemaError):
        violations({}, {"type": "nonsense"})
