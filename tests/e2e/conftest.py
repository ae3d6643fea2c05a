"""Fixtures for running the installed CLI as a user does, in a project of the test's own."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, cli_result, subprocess_env

EXE = Path(sys.executable).parent / "branchenv"

E2E_DEFAULTS = {
    # The reference suite's p95 latency SLO is the product's own check (500 ms by default).
    # End-to-end runs test the loop, not this machine's load: on a busy 2-core CI box they give
    # the SLO headroom so a slow neighbour cannot fail them.
    "BRANCHENV_LATENCY_P95_MS": "2000",
}


@dataclass
class Project:
    """A copy of the demo project (Pulumi.yaml, infra/, stacks/) in a temp dir."""

    root: Path

    def run(
        self, *args: str, check: bool = False, timeout: float = 180, **env: str
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(EXE), *args],
            cwd=self.root,
            env=subprocess_env(**{**E2E_DEFAULTS, **env}),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"branchenv {' '.join(args)} exited {proc.returncode}\n{proc.stderr}"
            )
        return proc

    def down_all(self, branches: Iterable[str], timeout: float = 180) -> None:
        """`down` every branch's stack, the runs side by side: a test's clean-up of many stacks
        (each run's outcome unchecked, as ``run`` leaves it; a stack already gone is nothing
        to do). The runs share nothing but the local cloud, so none waits for another."""
        procs = [
            subprocess.Popen(
                [str(EXE), "down", "--branch", branch],
                cwd=self.root,
                env=subprocess_env(**E2E_DEFAULTS),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for branch in branches
        ]
        deadline = time.monotonic() + timeout
        try:
            for proc in procs:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()

    def down_left(self, branches: Iterable[str]) -> None:
        """:meth:`down_all` for those of ``branches`` whose stack ``ls`` still lists (all of
        them when it cannot list): after a test that saw every one go, one listing instead
        of a run per branch, each finding nothing to do."""
        wanted = set(branches)
        proc = self.run("ls", "--json")
        try:
            rows = cli_result(proc.stdout) if proc.returncode == 0 else None
        except (AssertionError, ValueError):
            rows = None
        if rows is not None and all(row.get("branch") for row in rows):
            wanted &= {row["branch"] for row in rows}
        self.down_all(sorted(wanted))

    def json(self, *args: str, **env: str) -> Any:
        proc = self.run(*args, "--json", check=True, **env)
        return cli_result(proc.stdout)

    def target(self) -> Any:
        from branchenv.localcloud import LocalCloud

        return LocalCloud(self.root / ".branchenv").status().target("us-east-1")


def make_project(root: Path) -> Project:
    shutil.copy(REPO_ROOT / "Pulumi.yaml", root / "Pulumi.yaml")
    shutil.copytree(
        REPO_ROOT / "infra", root / "infra", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(REPO_ROOT / "stacks", root / "stacks")
    (root / "branchenv.toml").write_text(
        'program = "infra/aws"\ndefault_target = "local"\ndefault_ttl = "2h"\n'
    )
    return Project(root)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """One demo project (and its own local cloud) per test module."""
    proj = make_project(tmp_path_factory.mktemp("project"))
    try:
        yield proj
    finally:
        proj.run("cloud", "stop")


@pytest.fixture(scope="module")
def own_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One state dir (so one local cloud) shared by a module's user projects."""
    path = tmp_path_factory.mktemp("own-state")
    try:
        yield path
    finally:
        subprocess.run(
            [str(EXE), "cloud", "stop"],
            cwd=path,
            env=subprocess_env(BRANCHENV_STATE_DIR=str(path)),
            capture_output=True,
            timeout=60,
        )


@pytest.fixture
def own_project(tmp_path: Path, own_state_dir: Path) -> Any:
    """A user's own small bucket + queue project in a fresh git repo (tests/e2e/own_project.py)."""
    from tests.e2e.own_project import make_user_project

    return make_user_project(tmp_path / "shop", own_state_dir)
