"""The pulumi engine at its boundary: the REAL ``pulumi.automation`` library against a STAND-IN CLI.

There is no ``pulumi`` CLI on the test machines, so these tests do not run the Pulumi engine.
They run branchenv's :class:`PulumiEngine` and the unmodified automation library from
site-packages, which start ``tests/standin/pulumi`` — a script that validates argv strictly
(unknown command or flag -> exit 255, like cobra), logs every invocation, keeps stack state,
tags and locks in the DIY backend's layout, and answers with the output shapes of
pulumi/pulumi's source (``stack ls --json``, ``stack tag ls --json``, engine events over the gRPC
Events service, the DIY "the stack is currently locked by" error). What is proven: the argv,
working directories and environment the engine makes automation use, and how the engine reads
the answers and errors. What is not: that a real CLI deploys the program (see
test_engine_contract.py, which runs the pulumi engine on a real CLI when one is on PATH).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from branchenv.engines.base import PlannedStep
from branchenv.engines.pulumi import PulumiEngine
from branchenv.errors import (
    ConfigError,
    EngineError,
    EngineUnavailable,
    SafetyRefusal,
    StackLocked,
    StackNotFound,
    UsageError,
)
from tests.integration.pulumi_rig import (
    ENDPOINT,
    FIXTURES,
    LOCAL,
    PROJECT,
    Clone,
    Rig,
    backend_root,
    do_up,
    identity_tags,
    make_metadata,
    make_rig,
    plant_lock,
    stack_name,
    stack_tags,
)

pytestmark = pytest.mark.standin

USER_TYPES = {
    "aws:s3/bucketV2:BucketV2",
    "aws:dynamodb/table:Table",
    "aws:sqs/queue:Queue",
    "aws:lambda/function:Function",
}


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Rig:
    return make_rig(tmp_path, monkeypatch)


@pytest.fixture
def clone(rig: Rig) -> Clone:
    return rig.clone("dev")


def settings_dir(engine: PulumiEngine) -> Path:
    (found,) = (engine.state_dir / "pulumi-settings").glob(f"*/{PROJECT}")
    return found


def program_fixture(tmp: Path, **changes: Any) -> Path:
    """The default fixture program with resource ``changes`` applied (name -> new inputs, or
    None to drop the resource)."""
    data = json.loads((FIXTURES / "up.json").read_text())
    resources = []
    for res in data["resources"]:
        change = changes.get(res["name"], {})
        if change is None:
            continue
        resources.append({**res, "inputs": {**res["inputs"], **change}})
    path = tmp / f"fixture-{len(list(tmp.glob('fixture-*')))}.json"
    path.write_text(json.dumps({**data, "resources": resources}))
    return path


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
    rig: Rig, clone: Clone, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_PULUMI_VERSION", "v3.0.0")
    with pytest.raises(EngineUnavailable) as caught:
        rig.engine(clone).outputs(stack="anything", program=clone.program)
    assert "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK" in str(caught.value)


def test_the_diy_version_check_asks_the_cli_when_automation_skipped_its_own(
    rig: Rig, clone: Clone, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK", "true")
    monkeypatch.setenv("STANDIN_PULUMI_VERSION", "v3.199.0")
    with pytest.raises(EngineUnavailable, match=r"v3\.199\.0.*v3\.211\.0"):
        rig.engine(clone).metadata(stack="anything", program=clone.program)


def test_explicit_command_outside_a_bin_dir_is_rejected(rig: Rig, clone: Clone) -> None:
    engine = rig.engine(clone, pulumi_command=rig.tmp / "somewhere" / "pulumi-cli")
    with pytest.raises(UsageError, match="bin"):
        engine.outputs(stack="anything", program=clone.program)


# --- up --------------------------------------------------------------------------------------


def test_up_creates_the_stack_writes_its_config_and_tags_and_streams_output(
    rig: Rig, clone: Clone
) -> None:
    engine = rig.engine(clone)
    stack = stack_name()
    lines: list[str] = []

    result = do_up(engine, clone, stack, lines=lines)

    home = settings_dir(engine)
    # create: reading its tags finds no stack, then init; both in the settings directory.
    looked = rig.calls_of("stack", "tag", "ls")[0]
    (init,) = rig.calls_of("stack", "init")
    assert looked["argv"][-2:] == ["--stack", stack]
    assert init["argv"][-1] == stack
    assert looked["cwd"] == init["cwd"] == str(home)
    assert rig.commands("stack", "select") == []
    # The config file is the engine's, beside its minimal project; none in the checkout.
    assert list(clone.root.glob("Pulumi.*.yaml")) == []
    written = yaml.safe_load((home / f"Pulumi.{stack}.yaml").read_text())
    assert written["encryptionsalt"]
    config = written["config"]
    assert config["branchenv:prefix"] == stack
    assert config["aws:region"] == "us-east-1"
    assert config["aws:endpoints"][0]["sqs"] == ENDPOINT  # a list of maps, not a JSON string
    assert json.loads(config["branchenv:tags"]) == identity_tags(make_metadata(stack))
    assert set(config["aws:secretKey"]) == {"secure"}
    (set_all,) = rig.commands("config", "set-all")
    assert set_all[set_all.index("--config-file") + 1] == str(home / f"Pulumi.{stack}.yaml")
    assert set_all[set_all.index("--secret") + 1] == "aws:secretKey=branchenv-local-secret"
    # Tags: in the backend, written once as a whole.
    tags = stack_tags(backend_root(engine), stack)
    assert tags == {"pulumi:project": PROJECT, **make_metadata(stack).to_tags()}
    assert rig.commands("stack", "tag", "set") == []

    (up,) = rig.calls_of("up")
    up_argv = up["argv"]
    assert up["cwd"] == str(clone.root)
    assert up_argv[up_argv.index("--stack") + 1] == stack
    assert up_argv[up_argv.index("--config-file") + 1] == str(home / f"Pulumi.{stack}.yaml")
    assert up_argv[up_argv.index("--event-log") + 1].startswith("tcp://127.0.0.1:")
    assert "--yes" in up_argv and "--skip-preview" in up_argv

    assert any(f"Updating ({stack})" in line for line in lines)
    assert any("aws:dynamodb/table:Table orders" in line for line in lines)
    assert result.stack == stack
    assert result.outputs == {
        "endpoint": f"https://{stack}.execute-api.us-east-1.example/",
        "tableName": f"{stack}-orders",
        "apiToken": "[secret]",
    }
    assert result.changes == {"create": 4}  # the program's resources: no Stack, no provider
    assert sorted(r.name for r in result.resources) == [
        "artifacts",
        "orders",
        "orders-fn",
        "orders-queue",
    ]
    assert all(r.address.startswith(f"urn:pulumi:{stack}::{PROJECT}::") for r in result.resources)


def test_the_users_checkout_and_its_selected_stack_are_never_touched(
    rig: Rig, clone: Clone
) -> None:
    engine = rig.engine(clone)
    stack = stack_name()
    do_up(engine, clone, stack)
    engine.outputs(stack=stack, program=clone.program)
    engine.list_stacks(program=clone.program)
    engine.destroy(stack=stack, program=clone.program, target=LOCAL)

    in_checkout = [c for c in rig.calls() if c["cwd"] == str(clone.root)]
    ran = {tuple(a for a in c["argv"] if a != "--non-interactive")[:2] for c in in_checkout}
    assert ran <= {("up", "--yes"), ("destroy", "--skip-preview"), ("config", "set-all")} | {
        (c[0], c[1]) for c in ran if c[0] in ("stack",) and c[1] in ("output", "history")
    }
    assert not any(c["argv"][1:3] == ["stack", "select"] for c in in_checkout)
    assert sorted(p.name for p in clone.root.iterdir()) == [".branchenv", "Pulumi.yaml", "infra"]


def test_up_passes_backend_passphrase_and_only_the_region_to_the_cli(
    rig: Rig, clone: Clone
) -> None:
    engine = rig.engine(clone)
    do_up(engine, clone, stack_name())

    calls = [c for c in rig.calls() if c["argv"] != ["version"]]
    assert calls
    backend = f"file://{clone.state_dir / 'pulumi'}"
    passphrase_file = clone.state_dir / "pulumi" / ".passphrase"
    for call in calls:
        assert call["env"]["PULUMI_BACKEND_URL"] == backend
        assert call["env"]["PULUMI_SKIP_UPDATE_CHECK"] == "true"
        assert call["env"]["PULUMI_AUTOMATION_API"] == "true"
        assert call["env"]["PULUMI_CONFIG_PASSPHRASE_FILE"] == str(passphrase_file)
    (up,) = rig.calls_of("up")
    assert up["env"]["AWS_REGION"] == "us-east-1"
    # The local cloud's keys and endpoint are in the provider's config, never in the CLI's
    # environment (where they would also redirect its own backend access).
    assert up["env"]["AWS_ENDPOINT_URL"] is None
    assert up["env"]["AWS_ACCESS_KEY_ID"] is None
    assert stat.S_IMODE(passphrase_file.stat().st_mode) == 0o600


def test_generated_passphrase_is_kept_and_reused(rig: Rig, clone: Clone) -> None:
    stack = stack_name()
    do_up(rig.engine(clone), clone, stack)
    first = {c["passphrase_sha256"] for c in rig.calls() if c["argv"] != ["version"]}
    rig.reset_log()
    # A new engine (a later branchenv run) must decrypt the same stack: same passphrase.
    result = do_up(rig.engine(clone), clone, stack)
    again = {c["passphrase_sha256"] for c in rig.calls() if c["argv"] != ["version"]}
    assert len(first) == 1
    assert first == again
    assert result.changes == {"same": 4}


def test_second_up_selects_and_changes_nothing(rig: Rig, clone: Clone) -> None:
    engine = rig.engine(clone)
    stack = stack_name()
    first = do_up(engine, clone, stack)
    tags_file = backend_root(engine) / ".pulumi" / "stacks" / PROJECT / f"{stack}.pulumi-tags"
    written_at = tags_file.stat().st_mtime_ns
    rig.reset_log()

    second = do_up(engine, clone, stack)

    assert rig.commands("stack", "init") == []
    assert tags_file.stat().st_mtime_ns == written_at  # tags unchanged: not rewritten
    assert not any((backend_root(engine) / ".pulumi" / "locks").rglob("*.json"))
    assert second.outputs == first.outputs
    assert second.changes == {"same": 4}
    assert len(second.resources) == len(first.resources) == 4


def test_file_event_log_for_clis_before_grpc_events(
    rig: Rig, clone: Clone, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pulumi Cloud: an older CLI is fine there (DIY backends need v3.211 for their tags).
    monkeypatch.setenv("STANDIN_PULUMI_VERSION", "v3.200.0")
    engine = rig.engine(clone, backend_url="https://api.pulumi.com")
    result = do_up(engine, clone, stack_name())
    up_argv = rig.commands("up")[0]
    event_log = up_argv[up_argv.index("--event-log") + 1]
    assert not event_log.startswith("tcp://")
    assert event_log.endswith("eventlog.txt")
    assert len(result.resources) == 4


# --- plan check and preview --------------------------------------------------------------------


def test_up_hands_the_plan_check_every_planned_physical_name_before_changing_anything(
    rig: Rig, clone: Clone
) -> None:
    engine = rig.engine(clone)
    stack = stack_name()
    seen: list[PlannedStep] = []

    def check(steps: Any) -> None:
        seen.extend(steps)
        assert rig.commands("up") == []  # called before the update

    do_up(engine, clone, stack, plan_check=check)

    by_name = {s.name: s for s in seen}
    assert set(by_name) == {"artifacts", "orders", "orders-queue", "orders-fn"}
    assert by_name["artifacts"].physical_name == f"{stack}-artifacts"
    assert by_name["artifacts"].name_property == "bucket"
    assert by_name["orders-queue"].physical_name == f"{stack}-orders"
    assert {s.op for s in seen} == {"create"}
    assert all(s.address.startswith("urn:pulumi:") for s in seen)
    assert len(rig.commands("preview")) == 1 and len(rig.commands("up")) == 1


def test_a_refused_plan_changes_nothing_and_leaves_no_new_stack(rig: Rig, clone: Clone) -> None:
    engine = rig.engine(clone)
    stack = stack_name()

    def refuse(steps: Any) -> None:
        raise SafetyRefusal("refused by the test")

    with pytest.raises(SafetyRefusal):
        do_up(engine, clone, stack, plan_check=refuse)

    assert rig.commands("up") == []
    assert engine.list_stacks(program=clone.program) == []
    assert not (settings_dir(engine) / f"Pulumi.{stack}.yaml").exists()


def test_a_refused_plan_leaves_an_existing_stack_as_it_was(rig: Rig, clone: Clone) -> None:
    engine = rig.engine(clone)
    stack = stack_name()
    do_up(engine, clone, stack)
    tags = stack_tags(backend_root(engine), stack)
    rig.reset_log()

    with pytest.raises(SafetyRefusal):
        do_up(
            engine,
            clone,
            stack,
            meta=make_metadata(stack, owner="someone@else.example"),
            plan_check=lambda steps: (_ for _ in ()).throw(SafetyRefusal("no")),
        )

    assert rig.commands("up") == []
    assert stack_tags(backend_root(engine), stack) == tags
    assert engine.metadata(stack=stack, program=clone.program) == make_metadata(stack)


def test_auto_named_resources_have_no_physical_name(
    rig: Rig, clone: Clone, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = json.loads((FIXTURES / "up.json").read_text())
    queue = next(r for r in data["resources"] if r["name"] == "orders-queue")
    del queue["inputs"]["name"]
    queue["autoName"] = "name"
    fixture = rig.tmp / "auto.json"
    fixture.write_text(json.dumps(data))
    monkeypatch.setenv("STANDIN_FIXTURE", str(fixture))
    seen: list[PlannedStep] = []
    do_up(rig.engine(clone), clone, stack_name(), plan_check=seen.extend)
    step = next(s for s in seen if s.name == "orders-queue")
    assert step.physical_name is None
    assert step.name_property == "name"


def test_preview_reports_each_resources_change_kind_and_changed_properties(
    rig: Rig, clone: Clone, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = rig.engine(clone)
    stack = stack_name()
    do_up(engine, clone, stack)
    changed = program_fixture(
        rig.tmp,
        artifacts={"bucket": f"{stack}-artifacts-v2"},
        **{"orders-queue": {"messageRetentionSeconds": 86400}, "orders-fn": None},
    )
    monkeypatch.setenv("STANDIN_FIXTURE", str(changed))
    rig.reset_log()

    result = engine.preview(
        stack=stack,
        program=clone.program,
        target=LOCAL,
        metadata=make_metadata(stack),
        inputs=do_inputs(stack),
    )

    steps = {s.name: s for s in result.steps}
    assert steps["artifacts"].op == "replace"
    assert steps["artifacts"].diff == ("bucket",)
    assert steps["artifacts"].physical_name == f"{stack}-artifacts-v2"
    assert steps["orders-queue"].op == "update"
    assert steps["orders-queue"].diff == ("messageRetentionSeconds",)
    assert steps["orders"].op == "same" and steps["orders"].diff == ()
    assert steps["orders-fn"].op == "delete"
    assert result.changes == {"replace": 1, "update": 1, "same": 1, "delete": 1}
    assert set(result.resource_types) == USER_TYPES
    assert rig.commands("up") == []
    assert stack_tags(backend_root(engine), stack)["branchenv:owner"] == "dev@example.com"


def do_inputs(stack: str) -> Any:
    from tests.integration.pulumi_rig import make_inputs

    return make_inputs(stack)


def test_preview_of_a_new_stack_leaves_no_stack_behind(rig: Rig, clone: Clone) -> None:
    engine = rig.engine(clone)
    stack = stack_name()
    result = engine.preview(
        stack=stack,
        program=clone.program,
        target=LOCAL,
        metadata=make_metadata(stack),
        inputs=do_inputs(stack),
    )
    assert result.changes == {"create": 4}
    assert not any(t.startswith("pulumi:") for t in result.resource_types)
    assert engine.list_stacks(program=clone.program) == []


def test_up_reports_replacements_and_deletions_honestly(
    rig: Rig, clone: Clone, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = rig.engine(clone)
    stack = stack_name()
    do_up(engine, clone, stack)
    changed = program_fixture(
        rig.tmp, artifacts={"bucket": f"{stack}-artifacts-v2"}, **{"orders-fn": None}
    )
    monkeypatch.setenv("STANDIN_FIXTURE", str(changed))
    result = do_up(engine, clone, stack)
    assert result.changes == {"replace": 1, "same": 2, "delete": 1}
    assert len(result.resources) == 3


def test_refresh_runs_refresh_against_the_target(rig: Rig, clone: Clone) -> None:
    engine = rig.engine(clone)
    stack = stack_name()
    do_up(engine, clone, stack)
    rig.reset_log()
    result = engine.refresh(stack=stack, program=clone.program, target=LOCAL)
    (refresh,) = rig.commands("refresh")
    assert "--skip-preview" in refresh and "--yes" in refresh and "--config-file" in refresh
    assert rig.commands("stack", "init") == []
    assert result.stack == stack
    assert result.missing == () and result.changed == ()


# --- reading stacks --------------------------------------------------------------------------


def test_outputs_are_read_without_decrypting_and_secrets_masked(rig: Rig, clone: Clone) -> None:
    engine = rig.engine(clone)
    stack = stack_name()
    do_up(engine, clone, stack)
    rig.reset_log()

    outputs = engine.outputs(stack=stack, program=clone.program)

    assert outputs["tableName"] == f"{stack}-orders"
    assert outputs["apiToken"] == "[secret]"
    assert rig.commands("stack", "output") == [["stack", "output", "--json", "--stack", stack]]


def test_outputs_of_a_missing_stack_is_stack_not_found(rig: Rig, clone: Clone) -> None:
    with pytest.raises(StackNotFound) as caught:
        rig.engine(clone).outputs(stack="int-missing", program=clone.program)
    assert "int-missing" in str(caught.value)
    assert caught.value.exit_code == 1


def test_list_stacks_reads_metadata_from_tags_and_leaves_unmanaged_stacks_none(
    rig: Rig, clone: Clone
) -> None:
    engine = rig.engine(clone)
    managed = stack_name()
    do_up(engine, clone, managed)
    # Someone else's stack in the same backend, created with plain pulumi in their checkout.
    theirs = rig.clone("theirs")
    passphrase = (clone.state_dir / "pulumi" / ".passphrase").read_text().strip()
    created = rig.run_cli(
        theirs.root,
        "--non-interactive",
        "stack",
        "init",
        "someone-elses",
        env={
            "PULUMI_BACKEND_URL": f"file://{clone.state_dir / 'pulumi'}",
            "PULUMI_CONFIG_PASSPHRASE": passphrase + "-not-ours",
        },
    )
    assert created.returncode == 0, created.stderr

    summaries = {s.stack: s for s in engine.list_stacks(program=clone.program)}

    assert set(summaries) == {managed, "someone-elses"}
    assert summaries[managed].metadata == make_metadata(managed)
    assert summaries[managed].resource_count == 4
    assert summaries[managed].last_update is not None
    assert summaries[managed].tags["branchenv:managed-by"] == "branchenv"
    assert summaries[managed].attention is None
    # Listing needs no passphrase: another passphrase's stack is listed, unmanaged.
    assert summaries["someone-elses"].metadata is None
    assert summaries["someone-elses"].resource_count == 0
    assert engine.metadata(stack=managed, program=clone.program) == make_metadata(managed)
    assert engine.metadata(stack="someone-elses", program=clone.program) is None


def test_a_stack_with_unreadable_tags_is_listed_needing_attention(rig: Rig, clone: Clone) -> None:
    engine = rig.engine(clone)
    stack = stack_name()
    do_up(engine, clone, stack)
    tags_file = backend_root(engine) / ".pulumi" / "stacks" / PROJECT / f"{stack}.pulumi-tags"
    tags_file.write_text("garbage")

    (summary,) = engine.list_stacks(program=clone.program)

    assert summary.metadata is None
    assert summary.attention is not None and "tags" in summary.attention
    assert summary.resource_count == 4


def test_up_on_an_unmanaged_stack_is_refused(rig: Rig, clone: Clone) -> None:
    engine = rig.engine(clone, unmarked_settle_s=0.5)
    stack = stack_name()
    do_up(engine, clone, stack)
    engine.set_metadata(
        stack=stack,
        program=clone.program,
        metadata=dataclasses.replace(make_metadata(stack), managed=False),
    )
    rig.reset_log()
    with pytest.raises(SafetyRefusal, match="managed-by marker"):
        do_up(engine, clone, stack)
    assert rig.commands("up") == []
    assert len(rig.commands("stack", "tag", "ls")) >= 2, "looked again within the window"


def test_a_stack_marked_within_the_settle_window_is_updated_not_refused(
    rig: Rig, clone: Clone
) -> None:
    """A concurrent first `up` creates the stack (`stack init`) and tags it in a second step;
    another run reading in between must wait for the marker, not refuse the stack."""
    engine = rig.engine(clone, unmarked_settle_s=30)
    stack = stack_name()
    do_up(engine, clone, stack)
    marked = make_metadata(stack)
    engine.set_metadata(
        stack=stack, program=clone.program, metadata=dataclasses.replace(marked, managed=False)
    )
    timer = threading.Timer(
        1.0, lambda: engine.set_metadata(stack=stack, program=clone.program, metadata=marked)
    )
    timer.start()
    try:
        do_up(engine, clone, stack)
    finally:
        timer.cancel()
    assert engine.metadata(stack=stack, program=clone.program) == marked


def test_set_metadata_rewrites_the_tags_in_one_write_under_the_stack_lock(
    rig: Rig, clone: Clone
) -> None:
    engine = rig.engine(clone)
    stack = stack_name()
    do_up(engine, clone, stack)
    rig.reset_log()
    pending = dataclasses.replace(make_metadata(stack), reap_pending=True)

    engine.set_metadata(stack=stack, program=clone.program, metadata=pending)

    assert rig.commands("stack", "tag", "set") == []
    assert rig.commands("up") == []
    assert engine.metadata(stack=stack, program=clone.program) == pending
    assert not any((backend_root(engine) / ".pulumi" / "locks").rglob("*.json"))


def test_set_metadata_waits_for_a_lock_held_by_an_update(rig: Rig, clone: Clone) -> None:
    engine = rig.engine(clone, max_attempts=2)
    stack = stack_name()
    do_up(engine, clone, stack)
    plant_lock(backend_root(engine), stack, age=dt.timedelta(seconds=10))
    pending = dataclasses.replace(make_metadata(stack), reap_pending=True)

    with pytest.raises(StackLocked, match="alice@build-7"):
        engine.set_metadata(stack=stack, program=clone.program, metadata=pending)

    assert engine.metadata(stack=stack, program=clone.program) == make_metadata(stack)
    assert rig.sleeps, "it waited between attempts"


def test_set_metadata_unmanaged_drops_the_marker_tag(rig: Rig, clone: Clone) -> None:
    engine = rig.engine(clone)
    stack = stack_name()
    do_up(engine, clone, stack)
    released = dataclasses.replace(make_metadata(stack), managed=False)

    engine.set_metadata(stack=stack, program=clone.program, metadata=released)

    assert "branchenv:managed-by" not in stack_tags(backend_root(engine), stack)
    assert engine.metadata(stack=stack, program=clone.program) is None


def test_set_metadata_of_a_missing_stack_is_stack_not_found(rig: Rig, clone: Clone) -> None:
    with pytest.raises(StackNotFound):
        rig.engine(clone).set_metadata(
            stack="int-missing", program=clone.program, metadata=make_metadata("int-missing")
        )


def test_metadata_of_a_missing_stack_is_stack_not_found(rig: Rig, clone: Clone) -> None:
    with pytest.raises(StackNotFound):
        rig.engine(clone).metadata(stack="int-missing", program=clone.program)


# --- destroy ---------------------------------------------------------------------------------


def test_destroy_deletes_resources_then_removes_the_stack(rig: Rig, clone: Clone) -> None:
    engine = rig.engine(clone)
    stack = stack_name()
    do_up(engine, clone, stack)
    home = settings_dir(engine)
    rig.reset_log()
    lines: list[str] = []

    result = engine.destroy(
        stack=stack, program=clone.program, target=LOCAL, on_output=lines.append
    )

    (destroy,) = rig.commands("destroy")
    assert "--continue-on-error" in destroy and "--config-file" in destroy
    (rm,) = rig.calls_of("stack", "rm")
    assert rm["argv"][-3:] == ["rm", "--yes", stack]
    assert rm["cwd"] == str(home)  # removes the engine's settings file, never the user's
    assert result.deleted == 4
    assert result.removed is True
    assert result.failed == ()
    assert any("Destroying" in line for line in lines)
    assert engine.list_stacks(program=clone.program) == []
    assert not (home / f"Pulumi.{stack}.yaml").exists()
    assert not (home / f"{stack}.branchenv.json").exists()
    with pytest.raises(StackNotFound):
        engine.outputs(stack=stack, program=clone.program)


def test_destroy_of_a_missing_stack_is_stack_not_found(rig: Rig, clone: Clone) -> None:
    engine = rig.engine(clone)
    with pytest.raises(StackNotFound):
        engine.destroy(stack="int-never", program=clone.program, target=LOCAL)
    assert rig.commands("destroy") == []
    assert rig.commands("stack", "init") == []


def test_destroy_without_remove_keeps_the_stack(rig: Rig, clone: Clone) -> None:
    engine = rig.engine(clone)
    stack = stack_name()
    do_up(engine, clone, stack)
    result = engine.destroy(stack=stack, program=clone.program, target=LOCAL, remove=False)
    assert result.removed is False
    assert rig.commands("stack", "rm") == []
    assert engine.outputs(stack=stack, program=clone.program) == {}


def test_destroy_goes_past_a_failing_delete_and_reports_what_is_left(
    rig: Rig, clone: Clone, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = rig.engine(clone)
    stack = stack_name()
    do_up(engine, clone, stack)
    monkeypatch.setenv("STANDIN_FAIL_DELETE", "orders-queue")

    with pytest.raises(EngineError) as caught:
        engine.destroy(stack=stack, program=clone.program, target=LOCAL)

    partial = caught.value.result  # type: ignore[attr-defined]
    queue = f"urn:pulumi:{stack}::{PROJECT}::aws:sqs/queue:Queue::orders-queue"
    assert partial.failed == (queue,)
    assert partial.deleted == 3
    assert partial.removed is False
    assert queue in str(caught.value)
    assert [r.name for r in engine.resources(stack=stack, program=clone.program)] == [
        "orders-queue"
    ]
    monkeypatch.delenv("STANDIN_FAIL_DELETE")
    assert engine.destroy(stack=stack, program=clone.program, target=LOCAL).removed


# --- locks -----------------------------------------------------------------------------------


def test_locked_once_is_retried_and_succeeds(
    rig: Rig, clone: Clone, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = rig.engine(clone)
    stack = stack_name()
    do_up(engine, clone, stack)
    plant_lock(backend_root(engine), stack, age=dt.timedelta(seconds=30))
    monkeypatch.setenv("STANDIN_LOCK_RELEASE_AFTER", "1")
    rig.reset_log()

    result = do_up(engine, clone, stack)

    assert len(rig.commands("up")) == 2
    assert len(rig.sleeps) == 1
    assert rig.commands("cancel") == []  # a fresh lock is never cancelled
    assert result.changes == {"same": 4}


def test_locked_always_is_stack_locked_after_the_attempts(rig: Rig, clone: Clone) -> None:
    engine = rig.engine(clone, max_attempts=3)
    stack = stack_name()
    do_up(engine, clone, stack)
    plant_lock(backend_root(engine), stack, age=dt.timedelta(seconds=30))
    rig.reset_log()

    with pytest.raises(StackLocked) as caught:
        do_up(engine, clone, stack)

    message = str(caught.value)
    assert "alice@build-7 (pid 4242)" in message
    assert "pulumi cancel" in message
    assert "branchenv down" in message
    assert "after 3 attempts" in message
    assert "\n" not in message
    assert len(rig.commands("up")) == 3
    assert len(rig.sleeps) == 2
    assert rig.sleeps == sorted(rig.sleeps)
    assert rig.commands("cancel") == []


def test_an_update_waits_for_the_holder_however_many_attempts_that_takes(
    rig: Rig, clone: Clone, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loser of two updates waits for the winner (bounded by the lock wait, long enough for
    one update), not a fixed few attempts: here the other update holds the lock for 12."""
    engine = rig.engine(clone)
    stack = stack_name()
    do_up(engine, clone, stack)
    plant_lock(backend_root(engine), stack, age=dt.timedelta(seconds=30))
    monkeypatch.setenv("STANDIN_LOCK_RELEASE_AFTER", "12")
    rig.reset_log()
    lines: list[str] = []

    result = do_up(engine, clone, stack, lines=lines)

    assert len(rig.commands("up")) == 13
    assert result.changes == {"same": 4}
    waiting = [line for line in lines if "waiting up to" in line]
    assert len(waiting) == 1 and "alice@build-7" in waiting[0]


def test_a_first_up_waits_for_a_lock_on_the_stack_it_creates(
    rig: Rig, clone: Clone, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`stack init` takes the stack's lock too: a concurrent first up holding it is waited for
    (two first ups racing there could both be refused)."""
    engine = rig.engine(clone)
    stack = stack_name()
    plant_lock(backend_root(engine), stack, age=dt.timedelta(seconds=5))
    monkeypatch.setenv("STANDIN_LOCK_RELEASE_AFTER", "1")

    result = do_up(engine, clone, stack)

    assert len(rig.commands("stack", "init")) == 2
    assert result.changes == {"create": 4}


def test_the_lock_wait_is_bounded(rig: Rig, clone: Clone) -> None:
    engine = rig.engine(clone, retry_deadline_s=0)
    stack = stack_name()
    do_up(engine, clone, stack)
    plant_lock(backend_root(engine), stack, age=dt.timedelta(seconds=30))
    rig.reset_log()

    with pytest.raises(StackLocked, match="after 1 attempt"):
        do_up(engine, clone, stack)
    assert len(rig.commands("up")) == 1


def test_stale_lock_is_cancelled_once_then_retried(rig: Rig, clone: Clone) -> None:
    engine = rig.engine(clone, lock_stale_after_s=900)
    stack = stack_name()
    do_up(engine, clone, stack)
    lock = plant_lock(backend_root(engine), stack, age=dt.timedelta(hours=2))
    rig.reset_log()

    result = do_up(engine, clone, stack)

    assert rig.commands("cancel") == [["cancel", "--yes", "--stack", stack]]
    assert not lock.exists()
    assert len(rig.commands("up")) == 2
    assert result.changes == {"same": 4}


def test_destroy_waits_for_a_lock_too(
    rig: Rig, clone: Clone, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = rig.engine(clone)
    stack = stack_name()
    do_up(engine, clone, stack)
    plant_lock(backend_root(engine), stack, age=dt.timedelta(seconds=5))
    monkeypatch.setenv("STANDIN_LOCK_RELEASE_AFTER", "2")
    rig.reset_log()

    result = engine.destroy(stack=stack, program=clone.program, target=LOCAL)

    assert len(rig.commands("destroy")) == 3
    assert len(rig.sleeps) == 2
    assert result.removed


def test_pulumi_cloud_stacks_keep_working_without_a_passphrase(rig: Rig, clone: Clone) -> None:
    engine = rig.engine(clone, backend_url="https://api.pulumi.com")
    stack = stack_name()
    do_up(engine, clone, stack)
    again = do_up(rig.engine(clone, backend_url="https://api.pulumi.com"), clone, stack)
    assert again.changes == {"same": 4}
    assert {c["passphrase_sha256"] for c in rig.calls() if c["argv"] != ["version"]} == {None}


def test_cloud_conflict_is_stack_locked_without_cancel(
    rig: Rig, clone: Clone, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_CLOUD_CONFLICT_TIMES", "100")
    engine = rig.engine(clone, backend_url="https://api.pulumi.com", max_attempts=2)
    with pytest.raises(StackLocked) as caught:
        do_up(engine, clone, stack_name())
    assert "another update" in str(caught.value)
    assert len(rig.commands("up")) == 2
    assert rig.commands("cancel") == []


# --- secrets and backends --------------------------------------------------------------------


def test_passphrase_never_appears_in_errors_or_output(
    rig: Rig, clone: Clone, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = rig.engine(clone)
    stack = stack_name()
    do_up(engine, clone, stack)
    passphrase = (clone.state_dir / "pulumi" / ".passphrase").read_text().strip()
    monkeypatch.setenv("STANDIN_FAIL_ECHO_SECRET", "up")
    lines: list[str] = []

    with pytest.raises(EngineError) as caught:
        do_up(rig.engine(clone), clone, stack, lines=lines)

    message = str(caught.value)
    assert passphrase not in message
    assert "[redacted]" in message
    assert "pulumi up failed" in message
    assert "error: plugin said the passphrase is [redacted]" in message  # stdout diagnostics
    assert lines, "the failing update still streamed its output"
    assert all(passphrase not in line for line in lines)
    assert any("[redacted]" in line for line in lines)


def test_explicit_passphrase_reaches_the_cli_and_is_scrubbed(
    rig: Rig, clone: Clone, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "correct-horse-battery-staple-42"
    engine = rig.engine(clone, passphrase=secret)
    stack = stack_name()
    do_up(engine, clone, stack)

    digests = {c["passphrase_sha256"] for c in rig.calls() if c["argv"] != ["version"]}
    assert digests == {hashlib.sha256(secret.encode()).hexdigest()}
    assert not (clone.state_dir / "pulumi" / ".passphrase").exists()

    monkeypatch.setenv("STANDIN_FAIL_ECHO_SECRET", "destroy")
    with pytest.raises(EngineError) as caught:
        engine.destroy(stack=stack, program=clone.program, target=LOCAL)
    assert secret not in str(caught.value)
    assert secret not in repr(caught.value)


def test_passphrase_from_the_environment_is_used(
    rig: Rig, clone: Clone, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "from-env-passphrase")
    do_up(rig.engine(clone), clone, stack_name())
    digests = {c["passphrase_sha256"] for c in rig.calls() if c["argv"] != ["version"]}
    assert digests == {hashlib.sha256(b"from-env-passphrase").hexdigest()}
    assert not (clone.state_dir / "pulumi" / ".passphrase").exists()


def test_a_wrong_passphrase_from_a_fresh_checkout_cannot_read_the_state(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = rig.tmp / "shared"
    backend.mkdir()
    dev, ci = rig.clone("dev"), rig.clone("ci")
    stack = stack_name()
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "the-team-passphrase")
    do_up(rig.engine(dev, backend_url=f"file://{backend}"), dev, stack)
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "a-wrong-one")

    fresh = rig.engine(ci, backend_url=f"file://{backend}")
    with pytest.raises(EngineError, match="incorrect passphrase"):
        fresh.destroy(stack=stack, program=ci.program, target=LOCAL)
    assert fresh.metadata(stack=stack, program=ci.program) == make_metadata(stack)  # tags: no key
    assert "a-wrong-one" not in repr(fresh.list_stacks(program=ci.program))


@pytest.mark.parametrize(
    ("backend_url", "expected"),
    [
        (None, "file://{state}/pulumi"),
        ("https://api.pulumi.com", "https://api.pulumi.com"),
    ],
)
def test_backend_url_default_and_override_reach_the_cli(
    rig: Rig, clone: Clone, backend_url: str | None, expected: str
) -> None:
    engine = rig.engine(clone, backend_url=backend_url, passphrase="team-passphrase")
    do_up(engine, clone, stack_name())
    wanted = expected.format(state=clone.state_dir)
    urls = {c["env"]["PULUMI_BACKEND_URL"] for c in rig.calls() if c["argv"] != ["version"]}
    assert urls == {wanted}
    assert engine.backend_url == wanted


def test_a_shared_diy_backend_without_a_passphrase_is_a_config_error(
    rig: Rig, clone: Clone
) -> None:
    # A file backend gets branchenv's generated passphrase; a team's bucket needs the team's.
    remote = rig.engine(clone, backend_url="gs://team-bucket/branchenv")
    with pytest.raises(ConfigError, match="PULUMI_CONFIG_PASSPHRASE") as caught:
        do_up(remote, clone, stack_name())
    assert caught.value.exit_code == 2
    assert rig.commands("stack", "init") == []


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
    rig: Rig, clone: Clone, argv: list[str], expected: str
) -> None:
    result = rig.run_cli(clone.root, *argv, env={"PULUMI_BACKEND_URL": "https://api.pulumi.com"})
    assert result.returncode == 255
    assert expected in result.stderr


def test_standin_stack_init_honours_the_checkout_files_salt(rig: Rig, clone: Clone) -> None:
    """What made issue 14's backend switch fail: the real CLI's stack init reads the salt of
    an existing Pulumi.<stack>.yaml beside Pulumi.yaml."""
    env = {"PULUMI_BACKEND_URL": f"file://{rig.tmp}", "PULUMI_CONFIG_PASSPHRASE": "one"}
    first = rig.run_cli(clone.root, "--non-interactive", "stack", "init", "s1", env=env)
    assert first.returncode == 0, first.stderr
    other = rig.tmp / "other"
    other.mkdir()
    again = rig.run_cli(
        clone.root,
        "--non-interactive",
        "stack",
        "init",
        "s1",
        env={"PULUMI_BACKEND_URL": f"file://{other}", "PULUMI_CONFIG_PASSPHRASE": "two"},
    )
    assert again.returncode == 255
    assert "incorrect passphrase" in again.stderr


def test_resources_come_from_stack_export_without_secrets(rig: Rig, clone: Clone) -> None:
    """`resources()` reads `pulumi stack export` (DeploymentV3 shape) without --show-secrets:
    custom resources with their provider's region; secret values never leave the engine, and
    the cost estimate can price the stack."""
    from branchenv.cost.estimate import estimate_stack, inventory_from_engine
    from branchenv.cost.prices import load_prices

    engine = rig.engine(clone)
    stack = stack_name()
    do_up(engine, clone, stack)
    rig.reset_log()
    items = engine.resources(stack=stack, program=clone.program)
    assert rig.commands("stack", "export") == [["stack", "export", "--stack", stack]]
    assert {i.type for i in items} == USER_TYPES
    assert {i.region for i in items} == {"us-east-1"}
    fn = next(i for i in items if i.type == "aws:lambda/function:Function")
    assert fn.outputs["memorySize"] == 512
    assert fn.outputs["environment"]["variables"]["API_TOKEN"] == "[redacted]"
    assert "standin-env-secret" not in repr(items)
    assert "ciphertext" not in repr(items)
    inventory = inventory_from_engine(
        engine,
        stack=stack,
        program=clone.program,
        metadata=make_metadata(stack),
        default_region="us-east-1",
    )
    cost = estimate_stack(inventory, load_prices(), now=make_metadata(stack).created_at)
    assert cost.inventory_available and cost.hourly > 0
