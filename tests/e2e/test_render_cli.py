"""`branchenv render` as a user runs it: JSON listing files with no errors, the human table, a
bad config value refused with exit 2 and nothing written."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT, cli_result, subprocess_env

EXE = Path(sys.executable).parent / "branchenv"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project holding the Kubernetes program and its stack template (no git, no cloud)."""
    root = tmp_path_factory.mktemp("k8s-project")
    shutil.copytree(
        REPO_ROOT / "infra" / "k8s",
        root / "infra" / "k8s",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (root / "stacks").mkdir()
    shutil.copy(REPO_ROOT / "stacks" / "Pulumi.k8s.yaml", root / "stacks" / "Pulumi.k8s.yaml")
    (root / "branchenv.toml").write_text('default_ttl = "2h"\n')
    return root


def _run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EXE), "render", *args],
        cwd=project,
        env=subprocess_env(COLUMNS="200", NO_COLOR="1"),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_render_json_lists_files_and_no_errors(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "manifests"
    proc = _run(project, "--branch", "feature/x", "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    doc = cli_result(proc.stdout)
    assert doc["errors"] == []
    assert doc["k8s_version"] == "1.30"
    assert doc["stack"].startswith("feature-x-")
    assert len(doc["files"]) == 10
    assert sorted(str(p) for p in out.glob("*.yaml")) == sorted(doc["files"])
    assert {o["kind"] for o in doc["objects"]} >= {"Namespace", "Deployment", "NetworkPolicy"}
    assert doc["outputs"]["ingress_url"] == f"http://{doc['stack']}.branches.example.com"
    namespace = yaml.safe_load(Path(doc["files"][0]).read_text(encoding="utf-8"))
    assert namespace["metadata"]["annotations"]["janitor/ttl"] == "2h"  # the project's TTL


def test_render_human_output_to_default_dir(project: Path) -> None:
    proc = _run(project, "--branch", "Main", "--profile", "prodlike", "--k8s-version", "1.31")
    assert proc.returncode == 0, proc.stderr
    assert "Kubernetes 1.31 schema: all valid" in proc.stderr
    assert "Deployment" in proc.stdout
    rendered = project / ".branchenv" / "manifests"
    (stack_dir,) = rendered.iterdir()
    assert stack_dir.name.startswith("main-")
    assert len(list(stack_dir.glob("*.yaml"))) == 10


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ("branchenv:cpuLimit=12 cores", "branchenv:cpuLimit"),
        ("branchenv:baseDomain=Not A Domain", "branchenv:baseDomain"),
        ("cpuLimit=1", "--config"),
    ],
)
def test_bad_config_is_exit_2_and_writes_nothing(
    project: Path, tmp_path: Path, config: str, named: str
) -> None:
    out = tmp_path / "manifests"
    proc = _run(project, "--branch", "feature/x", "--out", str(out), "--config", config)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("branchenv: error:"), proc.stderr
    assert named in lines[0]
    assert not out.exists()
