"""Issue 14's "Must show", as a user runs branchenv with ``--engine pulumi``.

The real ``pulumi`` CLI cannot run here, so the stand-in (tests/standin/pulumi) is the
``pulumi`` on PATH; everything else is real: the installed ``branchenv`` CLI, real git clones,
the real pulumi.automation library, and an ``s3://`` DIY backend in a bucket of a real local
cloud (moto over HTTP), where the stand-in keeps state, tags and locks as the DIY backend does.

- ``up --target local`` then ``up --target aws`` on one branch: refused (exit 3), nothing changed.
- ``up`` in one clone, then ``ls``, ``down`` and ``reap --yes`` from a second fresh clone that
  shares only the backend URL and the passphrase: the stacks are found, managed and destroyed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import cli_result, subprocess_env
from tests.e2e.conftest import E2E_DEFAULTS, EXE, make_project
from tests.integration.pulumi_rig import PROJECT, STANDIN_SCRIPT, bucket_keys, s3_backend
from tests.integration.reaper_seed import git

pytestmark = [pytest.mark.standin, pytest.mark.slow]


class Clone:
    """A git checkout of the demo project, run as a user does: `branchenv ...` in its root."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env

    def run(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(EXE), *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def json(self, *args: str) -> Any:
        proc = self.run(*args, "--json")
        assert proc.returncode == 0, proc.stderr
        return cli_result(proc.stdout)


@pytest.fixture
def standin_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local_cloud: Any
) -> dict[str, str]:
    """The environment of a developer and of CI alike: the stand-in as `pulumi` on PATH, the
    team's backend URL and passphrase, credentials for the backend's bucket."""
    bin_dir = tmp_path / "pulumi-install" / "bin"
    bin_dir.mkdir(parents=True)
    exe = bin_dir / "pulumi"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STANDIN_SCRIPT}" "$@"\n')
    exe.chmod(0o755)
    backend = s3_backend(local_cloud, monkeypatch)
    return subprocess_env(
        **E2E_DEFAULTS,
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        STANDIN_STATE_DIR=str(tmp_path / "standin-state"),
        BRANCHENV_BACKEND_URL=backend,
        BRANCHENV_ENGINE="pulumi",
        PULUMI_CONFIG_PASSPHRASE=os.environ["PULUMI_CONFIG_PASSPHRASE"],
        AWS_ACCESS_KEY_ID=os.environ["AWS_ACCESS_KEY_ID"],
        AWS_SECRET_ACCESS_KEY=os.environ["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture
def clones(tmp_path: Path, standin_env: dict[str, str]) -> Iterator[tuple[Clone, Clone]]:
    """The project committed in one repository, and a fresh `git clone` of it."""
    origin = tmp_path / "dev"
    origin.mkdir()
    make_project(origin)
    (origin / ".gitignore").write_text(".branchenv/\n")
    git("init", "-q", "-b", "main", cwd=origin)
    git("add", "-A", cwd=origin)
    git("commit", "-q", "-m", "the project", cwd=origin)
    git("clone", "-q", str(origin), str(tmp_path / "ci"), cwd=tmp_path)
    dev, ci = Clone(origin, standin_env), Clone(tmp_path / "ci", standin_env)
    try:
        yield dev, ci
    finally:
        for clone in (dev, ci):
            clone.run("cloud", "stop")


def stack_objects(cloud: Any, url: str, stack: str) -> dict[str, bytes]:
    """The stack's checkpoint and tags file in the backend's bucket, byte for byte."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    s3 = cloud.client("s3")
    found = {}
    for suffix in (".json", ".pulumi-tags"):
        key = f"{parts.path.strip('/')}/.pulumi/stacks/{PROJECT}/{stack}{suffix}"
        found[suffix] = s3.get_object(Bucket=parts.netloc, Key=key)["Body"].read()
    return found


def test_a_stacks_target_never_changes_under_it(
    clones: tuple[Clone, Clone], local_cloud: Any, standin_env: dict[str, str]
) -> None:
    dev, _ = clones
    up = dev.run("up", "--branch", "feature/login", "--target", "local", "--json")
    assert up.returncode == 0, up.stderr
    stack = cli_result(up.stdout)["stack"]
    backend = standin_env["BRANCHENV_BACKEND_URL"]
    before = stack_objects(local_cloud, backend, stack)
    updates = len(bucket_keys(local_cloud, backend))

    refused = dev.run("up", "--branch", "feature/login", "--target", "aws")

    assert refused.returncode == 3, refused.stderr
    (message,) = [line for line in refused.stderr.splitlines() if "error:" in line]
    assert "'local'" in message and "'aws'" in message and "branchenv down" in message
    # Nothing changed: the same state and tags, byte for byte, and no update recorded.
    assert stack_objects(local_cloud, backend, stack) == before
    assert len(bucket_keys(local_cloud, backend)) == updates
    after = dev.run("up", "--branch", "feature/login", "--target", "local", "--json")
    assert after.returncode == 0, after.stderr
    assert cli_result(after.stdout)["stack"] == stack


def test_a_fresh_clone_sharing_only_the_backend_finds_manages_and_destroys(
    clones: tuple[Clone, Clone], local_cloud: Any, standin_env: dict[str, str]
) -> None:
    dev, ci = clones
    kept = dev.run("up", "--branch", "feature/login", "--ttl", "8h", "--json")
    assert kept.returncode == 0, kept.stderr
    expiring = dev.run("up", "--branch", "feature/old", "--ttl", "1s", "--json")
    assert expiring.returncode == 0, expiring.stderr
    login, old = cli_result(kept.stdout)["stack"], cli_result(expiring.stdout)["stack"]
    backend = standin_env["BRANCHENV_BACKEND_URL"]
    keys = bucket_keys(local_cloud, backend)
    assert f".pulumi/stacks/{PROJECT}/{login}.json" in keys
    assert f".pulumi/stacks/{PROJECT}/{login}.pulumi-tags" in keys
    assert not any(k.startswith(".pulumi/locks/") and k.endswith(".json") for k in keys)
    assert not (ci.root / ".branchenv").exists()  # a fresh checkout: no local state at all

    listed = {row["stack"]: row for row in ci.json("ls")}
    assert {login, old} <= set(listed)
    assert listed[login]["managed"] is True
    assert listed[login]["branch"] == "feature/login"
    assert listed[login]["resource_count"] == 4

    down = ci.run("down", "--branch", "feature/login", "--json")
    assert down.returncode == 0, down.stderr
    assert cli_result(down.stdout)["deleted"] == 4
    time.sleep(1.5)  # feature/old's TTL runs out
    reaped = ci.run("reap", "--yes", "--json")
    assert reaped.returncode == 0, reaped.stderr
    report = cli_result(reaped.stdout)
    assert [r["stack"] for r in report["reaped"]] == [old]
    assert report["reaped"][0]["status"] == "destroyed"

    assert ci.json("ls") == []
    assert not any(
        k.startswith(f".pulumi/stacks/{PROJECT}/") for k in bucket_keys(local_cloud, backend)
    )
