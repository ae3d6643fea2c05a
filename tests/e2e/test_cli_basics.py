"""The installed ``branchenv`` CLI as a user runs it: version, help, ``config show``, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from branchenv import __version__
from branchenv.cli import build_app
from tests.conftest import cli_envelope, cli_result

BRANCHENV = Path(sys.executable).parent / "branchenv"


def _clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without AWS_*, PULUMI_* or BRANCHENV_* variables."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PULUMI_", "BRANCHENV_"))
    }
    env.update({"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb", "PYTHONIOENCODING": "utf-8"})
    # and no credentials file or instance metadata for anything that might look for them
    env.update(
        {
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    env.update(extra)
    return env


def _run(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BRANCHENV), *args],
        cwd=cwd,
        env=_clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()
    (tmp_path / "branchenv.toml").write_text(
        'region = "eu-west-1"\n'
        'default_ttl = "2h"\n'
        'protected_patterns = ["prod*", "release-*"]\n'
        'max_hourly = "1.25"\n'
    )
    return tmp_path


def test_cli_is_installed_next_to_the_interpreter() -> None:
    assert BRANCHENV.is_file(), f"{BRANCHENV} missing: pip install -e . in the venv"


def test_version() -> None:
    result = _run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"branchenv {__version__}"


def test_help_lists_every_command_group() -> None:
    result = _run("--help")
    assert result.returncode == 0, result.stderr
    root = typer.main.get_command(build_app())
    assert isinstance(root, typer.core.TyperGroup)
    names = sorted(root.commands)
    assert "config" in names
    for name in names:
        assert name in result.stdout, f"{name!r} missing from --help"


def test_config_show_json_reports_values_and_sources(project: Path) -> None:
    result = _run(
        "config", "show", "--json", "--target", "aws", cwd=project, BRANCHENV_MAX_REAP="3"
    )
    assert result.returncode == 0, result.stderr
    doc = cli_result(result.stdout)
    assert doc["project_dir"] == str(project.resolve())
    got = {k: (v["value"], v["source"]) for k, v in doc["settings"].items()}
    assert got["region"] == ("eu-west-1", "branchenv.toml")
    assert got["default_ttl"] == ("2h", "branchenv.toml")
    assert got["protected_patterns"] == (["prod*", "release-*"], "branchenv.toml")
    assert got["max_hourly"] == ("1.25", "branchenv.toml")
    assert got["max_reap"] == (3, "env BRANCHENV_MAX_REAP")
    assert got["default_target"] == ("aws", "flag --target")
    assert got["tag_prefix"] == ("branchenv:", "default")
    assert got["backend_url"] == (None, "default")


def test_config_show_renders_a_table_for_people(project: Path) -> None:
    result = _run("config", "show", "--region", "ap-south-1", cwd=project)
    assert result.returncode == 0, result.stderr
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if "│" in line}
    assert "ap-south-1" in rows["region"]
    assert "flag --region" in rows["region"]
    assert "prod*, release-*" in rows["protected_patterns"]
    assert "(unset)" in rows["backend_url"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('region = "mars"\n', "bad value for 'region'"),
        ('regoin = "us-east-1"\n', "unknown key 'regoin'; did you mean 'region'?"),
        ('region = "us-east-1\n', "not valid TOML"),
    ],
)
def test_bad_config_is_one_line_on_stderr_and_exit_2(
    project: Path, content: str, expected: str
) -> None:
    (project / "branchenv.toml").write_text(content)
    result = _run("config", "show", "--json", cwd=project)
    assert result.returncode == 2
    # with --json the error is also the envelope on stdout (issue 16), the one line on stderr
    error = cli_envelope(result.stdout)["error"]
    assert error["code"] == "config_error" and error["exit"] == 2 and expected in error["message"]
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert str(project.resolve() / "branchenv.toml") in lines[0]
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


def test_bad_env_value_names_the_variable(project: Path) -> None:
    result = _run("config", "show", cwd=project, BRANCHENV_REAP_CONCURRENCY="many")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "BRANCHENV_REAP_CONCURRENCY" in result.stderr
    assert "reap_concurrency" in result.stderr


def test_building_the_cli_imports_no_heavy_library() -> None:
    code = (
        "import sys; from branchenv.cli import build_app; build_app(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'pulumi','boto3','botocore','moto'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=_clean_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
