"""./dev test with no arguments runs the suite as two tiers at once (the real-terraform tier
beside the rest); run for real with a recording stand-in for the venv's python."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT


def _dev(tmp_path: Path, *args: str, main_rc: int = 0, tf_rc: int = 0) -> tuple[int, list[str]]:
    (tmp_path / "dev").write_text((REPO_ROOT / "dev").read_text())
    (tmp_path / "dev").chmod(0o755)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    bindir = tmp_path / ".venv" / "bin"
    bindir.mkdir(parents=True)
    (bindir / "branchenv").write_text("#!/bin/sh\n")
    (bindir / "branchenv").chmod(0o755)
    (tmp_path / ".venv" / ".installed").touch()  # newer than pyproject.toml: no install
    log = tmp_path / "calls.log"
    fake = bindir / "python"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {log}\n'
        'case "$*" in *"-m terraform"*) echo "tf tier ran"; exit $TF_RC;; esac\n'
        "exit $MAIN_RC\n"
    )
    fake.chmod(0o755)
    proc = subprocess.run(
        ["./dev", "test", *args],
        cwd=tmp_path,
        env={**os.environ, "PYTHON": sys.executable, "MAIN_RC": str(main_rc), "TF_RC": str(tf_rc)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if not args:
        assert "tf tier ran" in proc.stdout, proc.stdout  # the tier's report is shown
    return proc.returncode, log.read_text().splitlines()


@pytest.mark.parametrize(
    ("main_rc", "tf_rc", "expected"),
    [(0, 0, 0), (1, 0, 1), (0, 1, 1), (0, 5, 1), (5, 0, 1), (2, 1, 2)],
)
def test_the_whole_suite_runs_as_two_tiers_and_fails_if_either_does(
    tmp_path: Path, main_rc: int, tf_rc: int, expected: int
) -> None:
    rc, calls = _dev(tmp_path, main_rc=main_rc, tf_rc=tf_rc)
    pytests = [c for c in calls if c.startswith("-m pytest")]
    assert len(pytests) == 2, calls
    assert any("-m terraform" in c for c in pytests), pytests
    assert any("-m not terraform" in c for c in pytests), pytests
    assert rc == expected


def test_arguments_run_one_pytest_with_them(tmp_path: Path) -> None:
    rc, calls = _dev(tmp_path, "tests/unit", "-k", "naming")
    assert rc == 0
    assert [c for c in calls if c.startswith("-m pytest")] == [
        "-m pytest -n 2 tests/unit -k naming"
    ]
