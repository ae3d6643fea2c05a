"""Issue 15 item 7: inputs that crashed with a traceback get one line naming the flag, key or
file and the fix (exit 2 for bad input), with nothing created before it; a program that raises
is an engine error of one line (exit 1), and `ci` still writes its summary.

Each case runs the installed CLI as a user does; the state dir is checked afterwards to prove
nothing was half-created."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, subprocess_env
from tests.e2e.conftest import EXE

PULUMI_YAML = "name: tiny\nruntime: python\n"
PROGRAM = "import pulumi\npulumi.export('answer', 42)\n"
RAISING_PROGRAM = (
    "import pulumi\n\n\ndef configure():\n    raise ValueError('boom in the program')\n\n\n"
    "configure()\n"
)


def _project(root: Path, program: str = PROGRAM) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Pulumi.yaml").write_text(PULUMI_YAML)
    (root / "__main__.py").write_text(program)
    (root / "branchenv.toml").write_text('program = "."\ndefault_target = "local"\n')
    (root / "suite").mkdir(exist_ok=True)
    (root / "suite" / "test_it.py").write_text("def test_it():\n    pass\n")
    return root


def _run(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EXE), *args],
        cwd=root,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _one_line_error(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    assert "Traceback" not in proc.stderr and "╭" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == code, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("branchenv: error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.mark.parametrize(
    "args",
    [
        ("up", "--branch", "t/long", "--ttl", "3000000d"),
        ("ci", "--branch", "t/long", "--ttl", "3000000d", "--suite", "suite"),
        ("up", "--branch", "t/long", "--ttl", "99999999999999999999d"),
    ],
    ids=["up", "ci", "huge"],
)
def test_a_ttl_beyond_year_9999_is_bad_input(tmp_path: Path, args: tuple[str, ...]) -> None:
    root = _project(tmp_path / "p")
    proc = _run(root, *args)
    _one_line_error(proc, 2, "--ttl")
    assert not (root / ".branchenv").exists()


@pytest.mark.parametrize("value", ["inf", "nan", "1e400"])
@pytest.mark.parametrize("command", ["ci", "test"])
def test_a_ready_timeout_that_is_no_number_of_seconds_is_bad_input(
    tmp_path: Path, command: str, value: str
) -> None:
    root = _project(tmp_path / "p")
    proc = _run(root, command, "--branch", "t/ready", "--suite", "suite", "--ready-timeout", value)
    assert "Traceback" not in proc.stderr and "╭" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == 2 and "--ready-timeout" in proc.stderr, proc.stderr[-3000:]
    assert not (root / ".branchenv").exists()


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("branchenv.toml", b"\xff\xfe\x00binary"),
        ("branchenv.toml", b'program = "\xff"\n'),
        ("pyproject.toml", b'[tool.branchenv]\nprogram = "\xc3\x28"\n'),
    ],
    ids=["binary", "invalid-utf8-value", "pyproject"],
)
def test_a_config_file_that_is_not_utf8_is_bad_input(
    tmp_path: Path, name: str, content: bytes
) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "Pulumi.yaml").write_text(PULUMI_YAML)
    (root / name).write_bytes(content)
    for args in (("config", "show"), ("ls",), ("up", "--branch", "t/utf8")):
        _one_line_error(_run(root, *args), 2, name, "UTF-8")
    assert not (root / ".branchenv").exists()


def test_a_state_dir_that_cannot_be_one_is_bad_input(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    for state_dir in (a_file, a_file / "below", Path("/proc/branchenv-state")):
        for args in (("up", "--branch", "t/state"), ("cloud", "start")):
            proc = _run(root, *args, BRANCHENV_STATE_DIR=str(state_dir))
            _one_line_error(proc, 2, "BRANCHENV_STATE_DIR", str(state_dir))
    assert a_file.read_text() == "not a directory"


def test_render_into_a_place_that_cannot_be_a_directory_is_bad_input(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    shutil.copytree(REPO_ROOT / "infra" / "k8s", root / "infra" / "k8s")
    shutil.copytree(REPO_ROOT / "stacks", root / "stacks")
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for out in (a_file, a_file / "manifests"):
        proc = _run(root, "render", "--branch", "t/render", "--out", str(out))
        _one_line_error(proc, 2, "--out", str(out))
    assert a_file.read_text() == "x"


def test_a_program_that_raises_is_one_line_and_ci_still_writes_its_summary(
    tmp_path: Path, own_state_dir: Path
) -> None:
    root = _project(tmp_path / "p", RAISING_PROGRAM)
    env = {"BRANCHENV_STATE_DIR": str(own_state_dir)}
    line = _one_line_error(
        _run(root, "up", "--branch", "t/raises", **env), 1, "ValueError: boom in the program"
    )
    assert "__main__.py:5" in line  # where the program raised
    reports = tmp_path / "reports"
    proc = _run(
        root, "ci", "--branch", "t/raises", "--suite", "suite", "--report-dir", str(reports), **env
    )
    assert "Traceback" not in proc.stderr and proc.returncode == 1, proc.stderr[-3000:]
    summary = (reports / "summary.md").read_text()
    assert "boom in the program" in summary
