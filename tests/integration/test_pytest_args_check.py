"""`ci` asks pytest about the arguments after `--` before anything is created (issue 15 item
4): real pytest subprocesses on a small suite with a conftest option of its own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from branchenv.errors import UsageError
from branchenv.harness.suite import check_pytest_args


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    folder = tmp_path / "suite"
    folder.mkdir()
    (folder / "conftest.py").write_text(
        "def pytest_addoption(parser):\n    parser.addoption('--region-under-test')\n"
    )
    (folder / "test_one.py").write_text("def test_one():\n    pass\n")
    return folder


def check(suite: Path, *args: str) -> None:
    check_pytest_args(suite, args, cwd=suite.parent, env=dict(os.environ))


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("-x", "-q"),
        ("-k", "one and not two"),
        ("--region-under-test", "eu-west-1"),  # the suite's own conftest option
        ("-k", "nothing-matches"),  # no tests is the run's business, not an input error
    ],
)
def test_arguments_pytest_accepts_pass(suite: Path, args: tuple[str, ...]) -> None:
    check(suite, *args)


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (("--no-such-flag",), "unrecognized arguments: --no-such-flag"),
        (("-k", "a and"), "Wrong expression passed to '-k'"),
        (("missing/test_x.py",), "file or directory not found: missing/test_x.py"),
    ],
)
def test_arguments_pytest_rejects_are_a_usage_error(
    suite: Path, args: tuple[str, ...], why: str
) -> None:
    with pytest.raises(UsageError) as refused:
        check(suite, *args)
    message = str(refused.value)
    assert why in message and "after `--`" in message and "nothing was created" in message
    assert "\n" not in message
