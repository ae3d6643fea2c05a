"""The stand-in CLI rig shared by the pulumi engine's tests: an install root holding
``bin/pulumi`` (tests/standin/pulumi), "clones" of a project that share nothing but what a test
gives them, and the stand-in's invocation log.

A test module's fixture: ``@pytest.fixture def rig(tmp_path, monkeypatch): return
make_rig(tmp_path, monkeypatch)``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from branchenv.engines.base import PlanCheck, Program, ProgramInputs
from branchenv.engines.pulumi import PulumiEngine
from branchenv.metadata import StackMetadata
from branchenv.targets import Target

STANDIN_SCRIPT = Path(__file__).resolve().parents[1] / "standin" / "pulumi"
FIXTURES = STANDIN_SCRIPT.parent / "fixtures"
PROJECT = "branchenv-demo"
ENDPOINT = "http://127.0.0.1:45999"
LOCAL = Target(name="local", region="us-east-1", endpoint_url=ENDPOINT)
AWS = Target(name="aws", region="us-east-1")


@dataclass
class Clone:
    """One checkout of the project with its own branchenv state dir."""

    root: Path
    state_dir: Path

    @property
    def program(self) -> Program:
        return Program(
            name="default",
            path=self.root / "infra" / "aws",
            kind="pulumi",
            project=PROJECT,
            project_dir=self.root,
        )


@dataclass
class Rig:
    tmp: Path
    exe: Path
    standin_state: Path
    sleeps: list[float] = field(default_factory=list)

    def clone(self, name: str = "dev") -> Clone:
        root = self.tmp / name
        (root / "infra" / "aws").mkdir(parents=True, exist_ok=True)
        (root / "Pulumi.yaml").write_text(
            f"name: {PROJECT}\nruntime:\n  name: python\n  options:\n    toolchain: pip\n"
            "main: infra/aws/\n"
        )
        return Clone(root=root, state_dir=root / ".branchenv")

    def engine(self, clone: Clone, **options: Any) -> PulumiEngine:
        options.setdefault("pulumi_command", self.exe)
        options.setdefault("sleep", self.sleeps.append)
        return PulumiEngine(state_dir=clone.state_dir, **options)

    def calls(self) -> list[dict[str, Any]]:
        log = self.standin_state / "argv.jsonl"
        if not log.is_file():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    def commands(self, *words: str) -> list[list[str]]:
        """Invocations whose command words (after --non-interactive) start with ``words``."""
        found = []
        for call in self.calls():
            rest = [a for a in call["argv"] if a != "--non-interactive"]
            if rest[: len(words)] == list(words):
                found.append(rest)
        return found

    def calls_of(self, *words: str) -> list[dict[str, Any]]:
        found = []
        for call in self.calls():
            rest = [a for a in call["argv"] if a != "--non-interactive"]
            if rest[: len(words)] == list(words):
                found.append(call)
        return found

    def reset_log(self) -> None:
        (self.standin_state / "argv.jsonl").unlink(missing_ok=True)

    def run_cli(
        self, cwd: Path, *args: str, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the stand-in directly (as another user of the same backend would run pulumi)."""
        return subprocess.run(
            [str(self.exe), *args],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            check=False,
        )


def make_rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Rig:
    """A stand-in install and its log (a test module's ``rig`` fixture returns this)."""
    install = tmp_path / "pulumi-install" / "bin"
    install.mkdir(parents=True)
    exe = install / "pulumi"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STANDIN_SCRIPT}" "$@"\n')
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    standin_state = tmp_path / "standin-state"
    monkeypatch.setenv("STANDIN_STATE_DIR", str(standin_state))
    for key in list(os.environ):
        if key.startswith("STANDIN_") and key != "STANDIN_STATE_DIR":
            monkeypatch.delenv(key)
    return Rig(tmp=tmp_path, exe=exe, standin_state=standin_state)


def make_metadata(stack: str, *, target: str = "local", **changes: Any) -> StackMetadata:
    base = StackMetadata.create(
        stack=stack,
        branch=f"feature/{stack}",
        owner="dev@example.com",
        commit="0123456789abcdef",
        ttl=dt.timedelta(hours=24),
        now=dt.datetime(2030, 5, 1, 12, 0, tzinfo=dt.UTC),
        target=target,  # type: ignore[arg-type]
        engine="pulumi",
    )
    return dataclasses.replace(base, **changes) if changes else base


def identity_tags(metadata: StackMetadata) -> dict[str, str]:
    identity: Callable[[], dict[str, str]] | None = getattr(metadata, "identity_tags", None)
    return identity() if identity is not None else metadata.to_tags()


def make_inputs(
    stack: str,
    target: Target = LOCAL,
    *,
    metadata: StackMetadata | None = None,
    template: Mapping[str, str] | None = None,
) -> ProgramInputs:
    meta = metadata or make_metadata(stack, target=target.name)
    return ProgramInputs(
        prefix=stack,
        profile="ephemeral",
        tags=identity_tags(meta),
        region=target.region,
        functions_url=target.functions_url,
        template=dict(template or {}),
    )


def stack_name() -> str:
    return f"int-{uuid.uuid4().hex[:8]}"


def do_up(
    engine: PulumiEngine,
    clone: Clone,
    stack: str,
    *,
    target: Target = LOCAL,
    meta: StackMetadata | None = None,
    template: Mapping[str, str] | None = None,
    lines: list[str] | None = None,
    plan_check: PlanCheck | None = None,
) -> Any:
    metadata = meta or make_metadata(stack, target=target.name)
    return engine.up(
        stack=stack,
        program=clone.program,
        target=target,
        metadata=metadata,
        inputs=make_inputs(stack, target, metadata=metadata, template=template),
        on_output=lines.append if lines is not None else None,
        plan_check=plan_check,
    )


def backend_root(engine: PulumiEngine) -> Path:
    assert engine.backend_url.startswith("file://")
    return Path(engine.backend_url[len("file://") :])


def stack_tags(root: Path, stack: str) -> dict[str, str]:
    path = root / ".pulumi" / "stacks" / PROJECT / f"{stack}.pulumi-tags"
    return dict(json.loads(path.read_text())["tags"])


def last_update_config(root: Path, stack: str) -> dict[str, Any]:
    """The config the stack's latest update ran with, from the DIY backend's history."""
    history = sorted((root / ".pulumi" / "history" / PROJECT / stack).glob("*.history.json"))
    assert history, f"no update recorded for {stack}"
    return dict(json.loads(history[-1].read_text())["config"])


def plant_lock(root: Path, stack: str, *, age: dt.timedelta) -> Path:
    """A lock left by another process, in the DIY backend's layout and format."""
    directory = root / ".pulumi" / "locks" / "organization" / PROJECT / stack
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{uuid.uuid4()}.json"
    taken = dt.datetime.now(dt.UTC) - age
    path.write_text(
        json.dumps(
            {
                "pid": 4242,
                "username": "alice",
                "hostname": "build-7",
                "timestamp": taken.isoformat().replace("+00:00", "Z"),
            }
        )
    )
    return path


def s3_backend(cloud: Target, monkeypatch: pytest.MonkeyPatch, *, prefix: str = "branchenv") -> str:
    """A DIY backend in a fresh bucket of the local cloud, as a team keeps one in S3: the URL
    (gocloud s3blob query: endpoint, region, path-style addressing) and, in the environment,
    the credentials for it and the team's passphrase."""
    from branchenv.targets import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY

    bucket = f"pulumi-state-{uuid.uuid4().hex[:8]}"
    cloud.client("s3").create_bucket(Bucket=bucket)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", LOCAL_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", LOCAL_SECRET_KEY)
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "the-team-passphrase")
    endpoint = cloud.local_endpoint()
    return f"s3://{bucket}/{prefix}?region={cloud.region}&endpoint={endpoint}&s3ForcePathStyle=true"


def bucket_keys(cloud: Target, url: str) -> list[str]:
    """Every object key of an s3:// backend's bucket, relative to its prefix."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    prefix = parts.path.strip("/") + "/"
    listed = cloud.client("s3").list_objects_v2(Bucket=parts.netloc, Prefix=prefix)
    return sorted(o["Key"][len(prefix) :] for o in listed.get("Contents", []))
