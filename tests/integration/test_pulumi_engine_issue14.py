"""Issue 14: the pulumi engine on a real CLI's terms and on a shared backend.

Each numbered defect of the issue is reproduced here against the stand-in CLI, which behaves as
pulumi/pulumi's source does where these defects live (see tests/standin/pulumi): stack config is a
local file that `config set-all` only adds to and that `stack init` reads the salt from; DIY stack
tags exist only from v3.211.0 and are an unlocked read-modify-write; an unreadable tags file lists
as `null`; `stack ls` counts the Stack and provider entries. Two "clones" share nothing but the
backend URL and the passphrase, as a developer's checkout and a fresh CI checkout do.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import pytest

from branchenv.errors import (
    ConfigError,
    EngineError,
    EngineUnavailable,
    SafetyRefusal,
)
from branchenv.metadata import StackMetadata
from tests.integration.pulumi_rig import (
    AWS,
    LOCAL,
    PROJECT,
    Rig,
    backend_root,
    do_up,
    last_update_config,
    make_rig,
    stack_name,
    stack_tags,
)
from tests.integration.pulumi_rig import make_metadata as metadata

pytestmark = pytest.mark.standin


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Rig:
    return make_rig(tmp_path, monkeypatch)


# --- 1. stack config shared across targets and backends, never cleared ------------------------


def test_stack_config_is_never_written_to_the_checkout_root(rig: Rig) -> None:
    clone = rig.clone("dev")
    stack = stack_name()
    do_up(rig.engine(clone), clone, stack)
    assert list(clone.root.glob("Pulumi.*.yaml")) == []


def test_each_up_writes_the_whole_desired_config(rig: Rig) -> None:
    clone = rig.clone("dev")
    engine = rig.engine(clone)
    stack = stack_name()
    do_up(engine, clone, stack, template={"branchenv:retired": "yes"})
    assert "branchenv:retired" in last_update_config(backend_root(engine), stack)

    do_up(engine, clone, stack)

    assert "branchenv:retired" not in last_update_config(backend_root(engine), stack)


def test_up_for_aws_on_a_stack_created_for_local_is_refused_and_changes_nothing(rig: Rig) -> None:
    clone = rig.clone("dev")
    engine = rig.engine(clone)
    stack = stack_name()
    do_up(engine, clone, stack)  # kept, as after `up --target local --keep`
    root = backend_root(engine)
    tags_before = stack_tags(root, stack)
    state_before = (root / ".pulumi" / "stacks" / PROJECT / f"{stack}.json").read_bytes()
    rig.reset_log()

    with pytest.raises(SafetyRefusal) as caught:
        do_up(engine, clone, stack, target=AWS)

    message = str(caught.value)
    assert caught.value.exit_code == 3
    assert "local" in message and "aws" in message
    assert "branchenv down" in message  # the fix: destroy it first (or use another branch)
    for words in (("up",), ("config", "set-all"), ("config", "set"), ("stack", "tag", "set")):
        assert rig.commands(*words) == [], words
    assert stack_tags(root, stack) == tags_before
    assert (root / ".pulumi" / "stacks" / PROJECT / f"{stack}.json").read_bytes() == state_before


def test_a_stack_name_on_a_second_backend_with_an_env_passphrase_works(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkout-root Pulumi.<stack>.yaml kept the first backend's salt, so `stack init` on
    the team backend with PULUMI_CONFIG_PASSPHRASE failed with "incorrect passphrase"."""
    clone = rig.clone("dev")
    stack = stack_name()
    do_up(rig.engine(clone), clone, stack)  # default file backend, generated passphrase
    team = rig.tmp / "team-backend"
    team.mkdir()
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "team-passphrase")

    result = do_up(rig.engine(clone, backend_url=f"file://{team}"), clone, stack)

    assert result.outputs["tableName"] == f"{stack}-orders"


# --- 2. DIY stack tags only from 3.211: metadata must be in the backend -----------------------


def test_an_old_cli_on_a_diy_backend_is_refused_naming_the_minimum(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_PULUMI_VERSION", "v3.210.0")
    clone = rig.clone("dev")
    engine = rig.engine(clone)
    with pytest.raises(EngineUnavailable) as caught:
        do_up(engine, clone, stack_name())
    assert "3.211" in str(caught.value)
    assert "v3.210.0" in str(caught.value)
    assert rig.commands("stack", "init") == []


def test_an_old_cli_on_pulumi_cloud_is_fine(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STANDIN_PULUMI_VERSION", "v3.210.0")
    clone = rig.clone("dev")
    engine = rig.engine(clone, backend_url="https://api.pulumi.com")
    stack = stack_name()
    do_up(engine, clone, stack)
    assert engine.metadata(stack=stack, program=clone.program) == metadata(stack)


def test_a_fresh_checkout_sharing_only_the_backend_finds_reads_and_destroys_the_stack(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "shared-passphrase")
    backend = rig.tmp / "shared-backend"
    backend.mkdir()
    dev, ci = rig.clone("dev"), rig.clone("ci")
    stack = stack_name()
    do_up(rig.engine(dev, backend_url=f"file://{backend}"), dev, stack)

    fresh = rig.engine(ci, backend_url=f"file://{backend}")
    listed = {s.stack: s for s in fresh.list_stacks(program=ci.program)}
    assert listed[stack].metadata == metadata(stack)
    assert fresh.metadata(stack=stack, program=ci.program) == metadata(stack)
    result = fresh.destroy(stack=stack, program=ci.program, target=LOCAL)
    assert result.removed
    assert fresh.list_stacks(program=ci.program) == []


# --- 4. null tag listings, unlocked tag writers, resource counts, passphrase source ----------


def test_unreadable_stack_tags_are_an_engine_error_not_a_crash(rig: Rig) -> None:
    clone = rig.clone("dev")
    engine = rig.engine(clone)
    stack = stack_name()
    do_up(engine, clone, stack)
    tags_file = backend_root(engine) / ".pulumi" / "stacks" / PROJECT / f"{stack}.pulumi-tags"
    tags_file.write_text("{ truncated")  # `stack tag ls --json` now prints null

    with pytest.raises(EngineError) as caught:
        engine.metadata(stack=stack, program=clone.program)
    assert stack in str(caught.value)
    assert "tags" in str(caught.value)


def test_concurrent_metadata_writers_never_mix_their_tags(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two writers of one stack's metadata (an `up` and the reaper's mark, say): the stack ends
    with one writer's complete tag set, never a mix of both."""
    monkeypatch.setenv("STANDIN_TAG_RMW_DELAY_S", "0.15")
    clone = rig.clone("dev")
    stack = stack_name()
    first = metadata(stack)
    do_up(rig.engine(clone, sleep=time.sleep), clone, stack, meta=first)
    one = dataclasses.replace(first, owner="one@example.com", commit="1" * 16, reap_pending=True)
    two = dataclasses.replace(first, owner="two@example.com", commit="2" * 16)
    errors: list[BaseException] = []

    def write(meta: StackMetadata) -> None:
        try:
            engine = rig.engine(clone, sleep=time.sleep, retry_deadline_s=60)
            engine.set_metadata(stack=stack, program=clone.program, metadata=meta)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(m,)) for m in (one, two)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    written = rig.engine(clone).metadata(stack=stack, program=clone.program)
    assert written in (one, two)


def test_listed_resource_counts_are_the_programs_resources(rig: Rig) -> None:
    clone = rig.clone("dev")
    engine = rig.engine(clone)
    stack = stack_name()
    do_up(engine, clone, stack)
    (listed,) = engine.list_stacks(program=clone.program)
    assert listed.resource_count == 4  # the fixture's resources, not the Stack and provider


def test_a_changed_passphrase_source_is_refused(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    clone = rig.clone("dev")
    stack = stack_name()
    do_up(rig.engine(clone), clone, stack)  # generated passphrase file
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "appeared-later")
    rig.reset_log()

    with pytest.raises(ConfigError) as caught:
        do_up(rig.engine(clone), clone, stack)

    message = str(caught.value)
    assert "PULUMI_CONFIG_PASSPHRASE" in message
    assert ".passphrase" in message
    assert "appeared-later" not in message
    assert rig.commands("up") == []


def test_a_stack_keeps_the_env_passphrase_it_was_created_with(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    clone = rig.clone("dev")
    stack = stack_name()
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "from-env")
    do_up(rig.engine(clone), clone, stack)
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")

    with pytest.raises(ConfigError) as caught:
        do_up(rig.engine(clone), clone, stack)
    assert "PULUMI_CONFIG_PASSPHRASE" in str(caught.value)


def test_the_checkout_root_stack_file_of_a_user_is_left_alone(rig: Rig) -> None:
    """A user's own Pulumi.<stack>.yaml for another purpose is neither read nor removed."""
    clone = rig.clone("dev")
    engine = rig.engine(clone)
    stack = stack_name()
    mine = clone.root / f"Pulumi.{stack}.yaml"
    mine.write_text('{"config": {"aws:region": "eu-west-3"}}')
    do_up(engine, clone, stack)
    engine.destroy(stack=stack, program=clone.program, target=LOCAL)
    assert mine.read_text() == '{"config": {"aws:region": "eu-west-3"}}'
