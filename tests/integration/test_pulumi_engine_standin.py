"""The pulumi engine at its boundary: the REAL ``pulumi.automation`` library against a STAND-IN CLI.

There is no ``pulumi`` CLI on the test machines, so these tests do not run the Pulumi engine.
They run branchenv's :class:`PulumiEngine` and the unmodified automation library from
site-packages, which start ``tests/standin/pulumi`` — a script that validates argv strictly
(unknown command or flag -> exit 255, like cobra), logs every invocation, keeps stack state in the
DIY backend layout, and answers with the output shapes of pulumi/pulumi's source (``stack ls
--json``, ``stack history --json``, ``stack tag ls --json``, engine events over the gRPC Events
service, the DIY "the stack is currently locked by" error). What is proven: the argv and
environment the engine makes automation send, and how the engine reads the answers and errors.
What is not: that a real CLI deploys the program (see test_engine_contract.py, which runs the
pulumi engine only when ``pulumi`` is on PATH).
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from branchenv.engines.base import Program
from branchenv.engines.pulumi_engine import PulumiEngine
from branchenv.errors import (
    EngineError,
    EngineUnavailable,
    StackLocked,
    StackNotFound,
    UsageError,
)
from branchenv.metadata import StackMetadata
from branchenv.targets import Target
from tests.conftest import inputs_for, program_at

pytestmark = pytest.mark.standin

STANDIN_SCRIPT = Path(__file__).resolve().parents[1] / "standin" / "pulumi"
PROJECT = "branchenv-demo"
ENDPOINT = "http://127.0.0.1:45999"


@dataclass
class Rig:
    """One stand-in installation, project and branchenv state dir."""

    tmp: Path
    exe: Path
    project: Path
    program: Program
    state_dir: Path
    standin_state: Path
    target: Target
    sleeps: list[float] = field(default_factory=list)

    def engine(self, **options: Any) -> PulumiEngine:
        options.setdefault("pulumi_command", self.exe)
        options.setdefault("sleep", self.sleeps.append)
        return PulumiEngine(state_dir=self.state_dir, **options)

    def calls(self) -> list[dict[str, Any]]:
        log = self.standin_state / "argv.jsonl"
        if not log.is_file():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    def argvs(self) -> list[list[str]]:
        return [c["argv"] for c in self.calls()]

    def commands(self, *words: str) -> list[list[str]]:
        """Invocations whose command words (after --non-interactive) start with ``words``."""
        found = []
        for argv in self.argvs():
            rest = [a for a in argv if a != "--non-interactive"]
            if rest[: len(words)] == list(words):
                found.append(rest)
        return found

    def reset_log(self) -> None:
        (self.standin_state / "argv.jsonl").unlink(missing_ok=True)

    def run_cli(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the stand-in directly (as another user of the same backend would run pulumi)."""
        full_env = {**os.environ, **(env or {})}
        return subprocess.run(
            [str(self.exe), *args],
            cwd=self.project,
            env=full_env,
            capture_output=True,
            text=True,
            check=False,
        )

    def lock_dir(self, stack: str) -> Path:
        return self.state_dir / "pulumi" / ".pulumi" / "locks" / "organization" / PROJECT / stack

    def plant_lock(self, stack: str, *, age: dt.timedelta) -> Path:
        """A lock left by another process, in the DIY backend's layout and format."""
        directory = self.lock_dir(stack)
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


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Rig:
    install = tmp_path / "pulumi-install" / "bin"
    install.mkdir(parents=True)
    exe = install / "pulumi"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STANDIN_SCRIPT}" "$@"\n')
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    project = tmp_path / "project"
    program = project / "infra" / "aws"
    program.mkdir(parents=True)
    (project / "Pulumi.yaml").write_text(
        f"name: {PROJECT}\nruntime:\n  name: python\nmain: infra/aws/\n"
    )
    standin_state = tmp_path / "standin-state"
    monkeypatch.setenv("STANDIN_STATE_DIR", str(standin_state))
    for key in list(os.environ):
        if key.startswith("STANDIN_") and key != "STANDIN_STATE_DIR":
            monkeypatch.delenv(key)
    return Rig(
        tmp=tmp_path,
        exe=exe,
        project=project,
        program=program_at(program),
        state_dir=tmp_path / ".branchenv",
        standin_state=standin_state,
        target=Target(name="local", region="us-east-1", endpoint_url=ENDPOINT),
    )


def make_metadata(stack: str, **changes: Any) -> StackMetadata:
    now = dt.datetime(2030, 5, 1, 12, 0, tzinfo=dt.UTC)
    return StackMetadata.create(
        stack=stack,
        branch=changes.pop("branch", f"feature/{stack}"),
        owner="dev@example.com",
        commit="0123456789abcdef",
        ttl=dt.timedelta(hours=24),
        now=now,
        target="local",
        engine="pulumi",
    )


def stack_name() -> str:
    return f"int-{uuid.uuid4().hex[:8]}"


def do_up(rig: Rig, engine: PulumiEngine, stack: str, lines: list[str] | None = None) -> Any:
    return engine.up(
        stack=stack,
        program=rig.program,
        target=rig.target,
        metadata=make_metadata(stack),
        inputs=inputs_for(make_metadata(stack), target=rig.target),
        on_output=lines.append if lines is not None else None,
    )


# --- availability ----------------------------------------------------------------------------


def test_no_cli_on_path_is_engine_unavailable_with_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(EngineUnavailable) as caught:
        PulumiEngine(state_dir=tmp_path / ".branchenv")
    assert caught.value.exit_code == 2
    message = str(caught.value)
    assert "curl -fsSL https://get.pulumi.com | sh" in message
    assert "--engine inprocess" in message


def test_cli_older_than_automation_minimum_is_engine_unavailable(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_PULUMI_VERSION", "v3.0.0")
    engine = rig.engine()
    with pytest.raises(EngineUnavailable) as caught:
        engine.outputs(stack="anything", program=rig.program)
    assert "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK" in str(caught.value)


def test_explicit_command_outside_a_bin_dir_is_rejected(rig: Rig) -> None:
    engine = rig.engine(pulumi_command=rig.tmp / "somewhere" / "pulumi-cli")
    with pytest.raises(UsageError, match="bin"):
        engine.outputs(stack="anything", program=rig.program)


# --- up --------------------------------------------------------------------------------------


def test_up_creates_the_stack_sets_config_and_tags_and_streams_output(rig: Rig) -> None:
    engine = rig.engine()
    stack = stack_name()
    lines: list[str] = []

    result = do_up(rig, engine, stack, lines)

    # create-or-select: select fails (no stack), then init.
    assert rig.commands("stack", "select") == [["stack", "select", "--stack", stack]]
    assert rig.commands("stack", "init") == [["stack", "init", stack]]
    set_alls = rig.commands("config", "set-all")
    flat = next(a for a in set_alls if "--path" not in a)
    assert f"branchenv:prefix={stack}" in flat
    assert "aws:region=us-east-1" in flat
    assert flat[flat.index("aws:secretKey=branchenv-local-secret") - 1] == "--secret"
    tags_value = next(a for a in flat if a.startswith("branchenv:tags="))
    assert json.loads(tags_value.split("=", 1)[1]) == make_metadata(stack).to_tags()
    structured = next(a for a in set_alls if "--path" in a)
    assert f"aws:endpoints[0].s3={ENDPOINT}" in structured
    assert f"aws:endpoints[0].dynamodb={ENDPOINT}" in structured
    # The provider sees a list of maps, not a JSON string.
    written = json.loads((rig.project / f"Pulumi.{stack}.yaml").read_text())
    assert written["config"]["aws:endpoints"][0]["sqs"] == ENDPOINT
    tag_sets = {tuple(a[3:5]) for a in rig.commands("stack", "tag", "set")}
    assert tag_sets == set(make_metadata(stack).to_tags().items())

    ups = rig.commands("up")
    assert len(ups) == 1
    up_argv = ups[0]
    assert up_argv[:3] == ["up", "--yes", "--skip-preview"]
    assert up_argv[up_argv.index("--stack") + 1] == stack
    assert up_argv[up_argv.index("--event-log") + 1].startswith("tcp://127.0.0.1:")

    assert any(f"Updating ({stack})" in line for line in lines)
    assert any("aws:dynamodb/table:Table orders" in line for line in lines)
    assert result.stack == stack
    assert result.outputs == {
        "endpoint": f"https://{stack}.execute-api.us-east-1.example/",
        "tableName": f"{stack}-orders",
        "apiToken": "[secret]",
    }
    assert result.changes == {"create": 5}
    assert sorted(r.name for r in result.resources) == [
        "artifacts",
        "orders",
        "orders-fn",
        "orders-queue",
    ]
    assert all(r.address.startswith(f"urn:pulumi:{stack}::{PROJECT}::") for r in result.resources)


def test_up_passes_backend_passphrase_and_target_env_to_the_cli(rig: Rig) -> None:
    engine = rig.engine()
    stack = stack_name()
    do_up(rig, engine, stack)

    calls = [c for c in rig.calls() if c["argv"] != ["version"]]
    assert calls
    backend = f"file://{rig.state_dir / 'pulumi'}"
    passphrase_file = rig.state_dir / "pulumi" / ".passphrase"
    for call in calls:
        assert call["env"]["PULUMI_BACKEND_URL"] == backend
        assert call["env"]["PULUMI_SKIP_UPDATE_CHECK"] == "true"
        assert call["env"]["PULUMI_AUTOMATION_API"] == "true"
        assert call["env"]["PULUMI_CONFIG_PASSPHRASE_FILE"] == str(passphrase_file)
        assert call["cwd"] == str(rig.project)
    up_call = next(c for c in calls if c["argv"][1] == "up")
    assert up_call["env"]["AWS_ENDPOINT_URL"] == ENDPOINT
    assert up_call["env"]["AWS_REGION"] == "us-east-1"
    assert stat.S_IMODE(passphrase_file.stat().st_mode) == 0o600


def test_generated_passphrase_is_kept_and_reused(rig: Rig) -> None:
    stack = stack_name()
    do_up(rig, rig.engine(), stack)
    first = {c["passphrase_sha256"] for c in rig.calls() if c["argv"] != ["version"]}
    rig.reset_log()
    # A new engine (a later branchenv run) must decrypt the same stack: same passphrase.
    result = do_up(rig, rig.engine(), stack)
    again = {c["passphrase_sha256"] for c in rig.calls() if c["argv"] != ["version"]}
    assert len(first) == 1
    assert first == again
    assert result.changes == {"same": 5}


def test_second_up_selects_and_changes_nothing(rig: Rig) -> None:
    engine = rig.engine()
    stack = stack_name()
    first = do_up(rig, engine, stack)
    rig.reset_log()

    second = do_up(rig, engine, stack)

    assert rig.commands("stack", "init") == []
    assert rig.commands("stack", "select") == [["stack", "select", "--stack", stack]]
    assert rig.commands("stack", "tag", "set") == []  # tags unchanged: not rewritten
    assert second.outputs == first.outputs
    assert second.changes == {"same": 5}
    assert len(second.resources) == len(first.resources) == 4


def test_file_event_log_for_clis_before_grpc_events(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_PULUMI_VERSION", "v3.200.0")
    stack = stack_name()
    result = do_up(rig, rig.engine(), stack)
    up_argv = rig.commands("up")[0]
    event_log = up_argv[up_argv.index("--event-log") + 1]
    assert not event_log.startswith("tcp://")
    assert event_log.endswith("eventlog.txt")
    assert len(result.resources) == 4


def test_preview_reports_changes_and_planned_types(rig: Rig) -> None:
    engine = rig.engine()
    stack = stack_name()
    result = engine.preview(
        stack=stack,
        program=rig.program,
        target=rig.target,
        metadata=make_metadata(stack),
        inputs=inputs_for(make_metadata(stack), target=rig.target),
    )
    assert rig.commands("preview")[0][0] == "preview"
    assert result.changes == {"create": 5}
    assert "aws:dynamodb/table:Table" in result.resource_types
    assert not any(t.startswith("pulumi:providers:") for t in result.resource_types)
    assert rig.commands("up") == []


def test_refresh_runs_refresh_against_the_target(rig: Rig) -> None:
    engine = rig.engine()
    stack = stack_name()
    do_up(rig, engine, stack)
    rig.reset_log()
    engine.refresh(stack=stack, program=rig.program, target=rig.target)
    refreshes = rig.commands("refresh")
    assert len(refreshes) == 1
    assert refreshes[0][:3] == ["refresh", "--skip-preview", "--yes"]
    assert rig.commands("stack", "init") == []


# --- reading stacks --------------------------------------------------------------------------


def test_outputs_are_parsed_and_secrets_masked(rig: Rig) -> None:
    engine = rig.engine()
    stack = stack_name()
    do_up(rig, engine, stack)
    rig.reset_log()

    outputs = engine.outputs(stack=stack, program=rig.program)

    assert outputs["tableName"] == f"{stack}-orders"
    assert outputs["apiToken"] == "[secret]"
    assert ["stack", "output", "--json", "--show-secrets", "--stack", stack] in rig.commands(
        "stack", "output"
    )


def test_outputs_of_a_missing_stack_is_stack_not_found(rig: Rig) -> None:
    with pytest.raises(StackNotFound) as caught:
        rig.engine().outputs(stack="int-missing", program=rig.program)
    assert "int-missing" in str(caught.value)
    assert caught.value.exit_code == 1


def test_list_stacks_reads_metadata_from_tags_and_leaves_unmanaged_stacks_none(
    rig: Rig,
) -> None:
    engine = rig.engine()
    managed = stack_name()
    do_up(rig, engine, managed)
    # Someone else's stack in the same backend, created with plain pulumi.
    passphrase = (rig.state_dir / "pulumi" / ".passphrase").read_text().strip()
    created = rig.run_cli(
        "--non-interactive",
        "stack",
        "init",
        "someone-elses",
        env={
            "PULUMI_BACKEND_URL": f"file://{rig.state_dir / 'pulumi'}",
            "PULUMI_CONFIG_PASSPHRASE": passphrase,
        },
    )
    assert created.returncode == 0, created.stderr

    summaries = {s.stack: s for s in engine.list_stacks(program=rig.program)}

    assert set(summaries) == {managed, "someone-elses"}
    assert summaries[managed].metadata == make_metadata(managed)
    assert summaries[managed].resource_count == 6
    assert summaries[managed].last_update is not None
    assert summaries[managed].tags["branchenv:managed-by"] == "branchenv"
    assert summaries["someone-elses"].metadata is None
    assert engine.metadata(stack=managed, program=rig.program) == make_metadata(managed)
    assert engine.metadata(stack="someone-elses", program=rig.program) is None


def test_backend_without_stack_tags_keeps_metadata_in_config(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_NO_TAGS", "1")
    engine = rig.engine()
    stack = stack_name()
    do_up(rig, engine, stack)

    assert rig.commands("stack", "tag", "set") == []
    assert engine.metadata(stack=stack, program=rig.program) == make_metadata(stack)
    assert [s.metadata for s in engine.list_stacks(program=rig.program)] == [make_metadata(stack)]
    assert ["config", "get", "branchenv:tags", "--json", "--stack", stack] in rig.commands(
        "config", "get"
    )


def test_set_metadata_rewrites_only_the_changed_tags_and_the_config(rig: Rig) -> None:
    engine = rig.engine()
    stack = stack_name()
    do_up(rig, engine, stack)
    rig.reset_log()
    pending = dataclasses.replace(make_metadata(stack), reap_pending=True)

    engine.set_metadata(stack=stack, program=rig.program, metadata=pending)

    assert rig.commands("stack", "tag", "set") == [
        ["stack", "tag", "set", "branchenv:reap-pending", "true", "--stack", stack]
    ]
    assert rig.commands("up") == []
    assert engine.metadata(stack=stack, program=rig.program) == pending
    written = json.loads((rig.project / f"Pulumi.{stack}.yaml").read_text())
    assert json.loads(written["config"]["branchenv:tags"]) == pending.to_tags()


def test_set_metadata_unmanaged_drops_the_marker_tag(rig: Rig) -> None:
    engine = rig.engine()
    stack = stack_name()
    do_up(rig, engine, stack)
    rig.reset_log()
    released = dataclasses.replace(make_metadata(stack), managed=False)

    engine.set_metadata(stack=stack, program=rig.program, metadata=released)

    assert rig.commands("stack", "tag", "rm") == [
        ["stack", "tag", "rm", "branchenv:managed-by", "--stack", stack]
    ]
    assert engine.metadata(stack=stack, program=rig.program) is None


def test_set_metadata_of_a_missing_stack_is_stack_not_found(rig: Rig) -> None:
    with pytest.raises(StackNotFound):
        rig.engine().set_metadata(
            stack="int-missing", program=rig.program, metadata=make_metadata("int-missing")
        )


def test_metadata_of_a_missing_stack_is_stack_not_found(rig: Rig) -> None:
    with pytest.raises(StackNotFound):
        rig.engine().metadata(stack="int-missing", program=rig.program)


# --- destroy ---------------------------------------------------------------------------------


def test_destroy_deletes_resources_then_removes_the_stack(rig: Rig) -> None:
    engine = rig.engine()
    stack = stack_name()
    do_up(rig, engine, stack)
    rig.reset_log()
    lines: list[str] = []

    result = engine.destroy(
        stack=stack, program=rig.program, target=rig.target, on_output=lines.append
    )

    order = [a[1] for a in rig.argvs() if a[1] in ("destroy", "stack")]
    assert order.index("destroy") < len(order) - 1
    assert rig.commands("stack", "rm") == [["stack", "rm", "--yes", stack]]
    destroy_argv = rig.commands("destroy")[0]
    assert destroy_argv[:3] == ["destroy", "--skip-preview", "--yes"]
    assert result.deleted == 5
    assert result.removed is True
    assert any("Destroying" in line for line in lines)
    assert stack not in {s.stack for s in engine.list_stacks(program=rig.program)}
    assert not (rig.project / f"Pulumi.{stack}.yaml").exists()
    with pytest.raises(StackNotFound):
        engine.outputs(stack=stack, program=rig.program)


def test_destroy_of_a_missing_stack_is_stack_not_found(rig: Rig) -> None:
    engine = rig.engine()
    with pytest.raises(StackNotFound):
        engine.destroy(stack="int-never", program=rig.program, target=rig.target)
    assert rig.commands("destroy") == []
    assert rig.commands("stack", "init") == []


def test_destroy_without_remove_keeps_the_stack(rig: Rig) -> None:
    engine = rig.engine()
    stack = stack_name()
    do_up(rig, engine, stack)
    result = engine.destroy(stack=stack, program=rig.program, target=rig.target, remove=False)
    assert result.removed is False
    assert rig.commands("stack", "rm") == []
    assert engine.outputs(stack=stack, program=rig.program) == {}


# --- locks -----------------------------------------------------------------------------------


def test_locked_once_is_retried_and_succeeds(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = rig.engine()
    stack = stack_name()
    do_up(rig, engine, stack)
    rig.plant_lock(stack, age=dt.timedelta(seconds=30))
    monkeypatch.setenv("STANDIN_LOCK_RELEASE_AFTER", "1")
    rig.reset_log()

    result = do_up(rig, engine, stack)

    assert len(rig.commands("up")) == 2
    assert len(rig.sleeps) == 1
    assert rig.commands("cancel") == []  # a fresh lock is never cancelled
    assert result.changes == {"same": 5}


def test_locked_always_is_stack_locked_after_the_attempts(rig: Rig) -> None:
    engine = rig.engine(max_attempts=3)
    stack = stack_name()
    do_up(rig, engine, stack)
    rig.plant_lock(stack, age=dt.timedelta(seconds=30))
    rig.reset_log()

    with pytest.raises(StackLocked) as caught:
        do_up(rig, engine, stack)

    message = str(caught.value)
    assert "alice@build-7 (pid 4242)" in message
    assert "pulumi cancel" in message
    assert "branchenv down" in message
    assert "after 3 attempt(s)" in message
    assert "\n" not in message
    assert len(rig.commands("up")) == 3
    assert len(rig.sleeps) == 2
    assert rig.sleeps == sorted(rig.sleeps)
    assert rig.commands("cancel") == []


def test_stale_lock_is_cancelled_once_then_retried(rig: Rig) -> None:
    engine = rig.engine(lock_stale_after_s=900)
    stack = stack_name()
    do_up(rig, engine, stack)
    lock = rig.plant_lock(stack, age=dt.timedelta(hours=2))
    rig.reset_log()

    result = do_up(rig, engine, stack)

    assert rig.commands("cancel") == [["cancel", "--yes", "--stack", stack]]
    assert not lock.exists()
    assert len(rig.commands("up")) == 2
    assert result.changes == {"same": 5}


def test_destroy_waits_for_a_lock_too(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = rig.engine()
    stack = stack_name()
    do_up(rig, engine, stack)
    rig.plant_lock(stack, age=dt.timedelta(seconds=5))
    monkeypatch.setenv("STANDIN_LOCK_RELEASE_AFTER", "2")
    rig.reset_log()

    result = engine.destroy(stack=stack, program=rig.program, target=rig.target)

    assert len(rig.commands("destroy")) == 3
    assert len(rig.sleeps) == 2
    assert result.removed


def test_cloud_conflict_is_stack_locked_without_cancel(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_CLOUD_CONFLICT_TIMES", "100")
    engine = rig.engine(backend_url="https://api.pulumi.com", max_attempts=2)
    stack = stack_name()
    with pytest.raises(StackLocked) as caught:
        do_up(rig, engine, stack)
    assert "another update" in str(caught.value)
    assert len(rig.commands("up")) == 2
    assert rig.commands("cancel") == []


# --- secrets and backends --------------------------------------------------------------------


def test_passphrase_never_appears_in_errors_or_output(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = rig.engine()
    stack = stack_name()
    do_up(rig, engine, stack)
    passphrase = (rig.state_dir / "pulumi" / ".passphrase").read_text().strip()
    monkeypatch.setenv("STANDIN_FAIL_ECHO_SECRET", "up")
    lines: list[str] = []

    with pytest.raises(EngineError) as caught:
        do_up(rig, engine, stack, lines)

    message = str(caught.value)
    assert passphrase not in message
    assert "[redacted]" in message
    assert "pulumi up failed" in message
    assert "error: plugin said the passphrase is [redacted]" in message  # stdout diagnostics
    assert lines, "the failing update still streamed its output"
    assert all(passphrase not in line for line in lines)
    assert any("[redacted]" in line for line in lines)


def test_explicit_passphrase_reaches_the_cli_and_is_scrubbed(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "correct-horse-battery-staple-42"
    engine = rig.engine(passphrase=secret)
    stack = stack_name()
    do_up(rig, engine, stack)
    import hashlib

    digests = {c["passphrase_sha256"] for c in rig.calls() if c["argv"] != ["version"]}
    assert digests == {hashlib.sha256(secret.encode()).hexdigest()}
    assert not (rig.state_dir / "pulumi" / ".passphrase").exists()

    monkeypatch.setenv("STANDIN_FAIL_ECHO_SECRET", "destroy")
    with pytest.raises(EngineError) as caught:
        engine.destroy(stack=stack, program=rig.program, target=rig.target)
    assert secret not in str(caught.value)
    assert secret not in repr(caught.value)


def test_passphrase_from_the_environment_is_used(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "from-env-passphrase")
    stack = stack_name()
    do_up(rig, rig.engine(), stack)
    import hashlib

    digests = {c["passphrase_sha256"] for c in rig.calls() if c["argv"] != ["version"]}
    assert digests == {hashlib.sha256(b"from-env-passphrase").hexdigest()}
    assert not (rig.state_dir / "pulumi" / ".passphrase").exists()


@pytest.mark.parametrize(
    ("backend_url", "expected"),
    [
        (None, "file://{state}/pulumi"),
        ("s3://team-bucket/branchenv", "s3://team-bucket/branchenv"),
        ("https://api.pulumi.com", "https://api.pulumi.com"),
    ],
)
def test_backend_url_default_and_override_reach_the_cli(
    rig: Rig, backend_url: str | None, expected: str
) -> None:
    engine = rig.engine(backend_url=backend_url, passphrase="team-passphrase")
    stack = stack_name()
    do_up(rig, engine, stack)
    wanted = expected.format(state=rig.state_dir)
    urls = {c["env"]["PULUMI_BACKEND_URL"] for c in rig.calls() if c["argv"] != ["version"]}
    assert urls == {wanted}
    assert engine.backend_url == wanted


# --- the stand-in itself ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--non-interactive", "up", "--yes", "--frobnicate"], "unknown flag: --frobnicate"),
        (["--non-interactive", "stack", "teleport"], 'unknown command "stack teleport"'),
        (["--non-interactive", "stack", "tag", "set", "only-one"], "accepts between 2 and 2"),
        (["stack", "ls", "--json"], "always passes --non-interactive"),
    ],
)
def test_standin_rejects_argv_the_real_cli_would_reject(
    rig: Rig, argv: list[str], expected: str
) -> None:
    result = rig.run_cli(*argv, env={"PULUMI_BACKEND_URL": "https://api.pulumi.com"})
    assert result.returncode == 255
    assert expected in result.stderr


@pytest.mark.standin
def test_resources_come_from_stack_export_without_secrets(rig: Rig) -> None:
    """`resources()` reads `pulumi stack export` (DeploymentV3 shape): custom resources with
    their provider's region; secret values are dropped before they leave the engine, and the
    cost estimate can price the stack."""
    from branchenv.cost.estimate import estimate_stack, inventory_from_engine
    from branchenv.cost.prices import load_prices

    engine = rig.engine()
    stack = stack_name()
    do_up(rig, engine, stack, [])
    items = engine.resources(stack=stack, program=rig.program)
    assert rig.commands("stack", "export") == [
        ["stack", "export", "--show-secrets", "--stack", stack]
    ]
    assert {i.type for i in items} == {
        "aws:s3/bucketV2:BucketV2",
        "aws:dynamodb/table:Table",
        "aws:sqs/queue:Queue",
        "aws:lambda/function:Function",
    }
    assert {i.region for i in items} == {"us-east-1"}
    fn = next(i for i in items if i.type == "aws:lambda/function:Function")
    assert fn.outputs["memorySize"] == 512
    assert fn.outputs["environment"]["variables"]["API_TOKEN"] == "[redacted]"
    assert "standin-env-secret" not in repr(items)
    inventory = inventory_from_engine(
        engine,
        stack=stack,
        program=rig.program,
        metadata=make_metadata(stack),
        default_region="us-east-1",
    )
    cost = estimate_stack(inventory, load_prices(), now=make_metadata(stack).created_at)
    assert cost.inventory_available and cost.hourly > 0
