"""The CLI run as the process's command collects garbage less often (branchenv.cli.GC_THRESHOLD:
Python's 700-object young generation made the collector 20-25 % of an `up`'s CPU); a caller
passing argv (a test, an embedding program) keeps its collector as it was."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest

from branchenv.cli import GC_THRESHOLD, main
from tests.conftest import subprocess_env

REPORT_AT_EXIT = """
import atexit, gc, sys
from branchenv.cli import main
atexit.register(lambda: print("threshold", *gc.get_threshold()))
sys.argv = ["branchenv", "--version"]
main()
"""


def test_the_cli_as_the_process_command_collects_less_often() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", REPORT_AT_EXIT],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("branchenv "), proc.stdout
    assert proc.stdout.splitlines()[-1] == "threshold " + " ".join(map(str, GC_THRESHOLD))
    assert GC_THRESHOLD[0] > gc.get_threshold()[0]


def test_a_caller_passing_argv_keeps_its_collector() -> None:
    before = gc.get_threshold()
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code in (0, None)
    assert gc.get_threshold() == before
