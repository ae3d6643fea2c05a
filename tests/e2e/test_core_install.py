"""Issue 17 item 4: a core-only install (no pulumi, no moto, no kubernetes packages) runs the
CLI, and every command that needs an extra exits 2 with one line naming
``pip install 'branchenv[EXTRA]'``, before it creates anything.

The venvs are real and fresh (tests/core_install.py: the core's dependency closure linked in,
nothing else importable); the CLI runs from this checkout's src/.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, subprocess_env
from tests.core_install import build_venv, closure, group_requirements

HEAVY = ("pulumi", "pulumi_aws", "pulumi_kubernetes", "kubernetes_validate", "moto")


@pytest.fixture(scope="module")
def core_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_venv(tmp_path_factory.mktemp("core") / "venv")


@pytest.fixture(scope="module")
def local_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Core plus the [local] extra (moto), without [pulumi]."""
    return build_venv(tmp_path_factory.mktemp("local") / "venv", ("local",))


def _project(root: Path, program: str = "infra/aws") -> Path:
    (root / ".git").mkdir()
    (root / "branchenv.toml").write_text(
        f'program = "{REPO_ROOT / program}"\ndefault_target = "local"\n'
    )
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return _project(tmp_path)


def _run(python: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-m", "branchenv", *args],
        cwd=cwd,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_core_pulls_no_engine_package() -> None:
    core = closure(group_requirements(()))
    assert {"boto3", "typer", "tenacity"} <= core
    heavy = {"pulumi", "pulumi-aws", "pulumi-kubernetes", "kubernetes-validate", "moto", "flask"}
    assert not core & heavy, f"core pulls {sorted(core & heavy)}"
    # [all] is exactly the union of the engine extras, and [dev] holds all of it.
    every = closure(group_requirements(("all",)))
    assert heavy <= every
    assert every <= closure(group_requirements(("dev",)))


def test_the_core_venv_really_lacks_the_extras(core_python: Path, tmp_path: Path) -> None:
    probe = "; ".join(f"print({m!r}, importlib.util.find_spec({m!r}) is not None)" for m in HEAVY)
    proc = subprocess.run(
        [str(core_python), "-c", f"import importlib.util, boto3, typer; {probe}"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert proc.stdout.split() == [w for m in HEAVY for w in (m, "False")]


def test_core_cli_runs_without_any_extra(core_python: Path, project: Path) -> None:
    proc = _run(core_python, project, "--help")
    assert proc.returncode == 0, proc.stderr
    proc = _run(core_python, project, "ls", "--json")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (("cloud", "start"), "local"),
        (("ci", "--branch", "feat-x"), "pulumi"),
        (("up", "--branch", "feat-x", "--engine", "terraform"), "local"),
        (("up", "--branch", "feat-x", "--target", "aws", "--engine", "pulumi"), "pulumi"),
        (("render", "--branch", "feat-x"), "k8s"),
    ],
)
def test_a_missing_extra_is_one_line_naming_the_pip_command(
    core_python: Path, tmp_path: Path, args: tuple[str, ...], extra: str
) -> None:
    terraform = "terraform" in args
    project = _project(tmp_path, "infra/terraform/aws" if terraform else "infra/aws")
    before = sorted(p.relative_to(project) for p in project.rglob("*"))
    proc = _run(core_python, project, *args)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"pip install 'branchenv[{extra}]'" in lines[0]
    assert "Traceback" not in proc.stderr
    # Nothing half-created: no local cloud, no stack state (`ci` writes its failed run's
    # summary under reports/ by design).
    assert not (project / ".branchenv" / "localcloud").exists()
    assert not list((project / ".branchenv").glob("**/*.json"))
    after = sorted(p.relative_to(project) for p in project.rglob("*"))
    allowed = {".branchenv", "reports"} if args[0] == "ci" else {".branchenv"}
    assert [p for p in after if p not in before and p.parts[0] not in allowed] == []


def test_inprocess_without_pulumi_names_the_pulumi_extra(local_python: Path, project: Path) -> None:
    """With moto (so the local cloud can start) but no pulumi SDK, the registry's reason for
    the inprocess engine names `[pulumi]`, and the command stops before the cloud starts."""
    proc = _run(local_python, project, "up", "--branch", "feat-x", "--engine", "inprocess")
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    line = proc.stderr.strip()
    assert "\n" not in line
    assert "inprocess engine cannot run here" in line
    assert "pip install 'branchenv[pulumi]'" in line
    assert not (project / ".branchenv" / "localcloud").exists()
