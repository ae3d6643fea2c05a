"""One contract for every engine: what ``branchenv`` relies on, run against each engine that can
run here.

``inprocess`` runs the real program (infra/aws) on the SDK mock runtime against this session's
local cloud. ``terraform`` runs the real terraform CLI on a small contract module
(tests/programs/terraform/contract: the demo module's apply costs about a minute, most of it the
aws provider's fixed waits after each SQS queue; the demo stack runs once, in the e2e `ci`
test). ``pulumi`` runs only when a real ``pulumi`` CLI is on PATH (it deploys the same program to
the same local cloud); without one it is skipped, and its boundary is proven by
test_pulumi_engine_standin.py instead.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest

from branchenv.config import Settings
from branchenv.engines import get_engine
from branchenv.engines.base import Engine, Program
from branchenv.errors import StackNotFound
from branchenv.metadata import StackMetadata
from branchenv.naming import StackNames, names_for
from branchenv.targets import Target
from tests.conftest import inputs_for, program_at
from tests.tfsupport import PROGRAMS as TERRAFORM_PROGRAMS
from tests.tfsupport import find_mirror

REPO_ROOT = Path(__file__).resolve().parents[2]
PROGRAM = program_at(REPO_ROOT / "infra" / "aws")
NO_PULUMI = (
    "pulumi CLI not on PATH; the pulumi engine is proven at its boundary by "
    "test_pulumi_engine_standin.py"
)


@dataclass(frozen=True)
class Case:
    engine: Engine
    target: Target
    engine_name: str
    program: Program = PROGRAM
    """The engine's contract program: one of the kind it runs."""


@pytest.fixture(
    params=[
        "inprocess",
        pytest.param("pulumi", marks=pytest.mark.realpulumi),
        pytest.param("pulumi-standin-s3", marks=pytest.mark.standin),
        pytest.param("terraform", marks=pytest.mark.terraform),
    ],
)
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Case:
    name = cast(str, request.param)
    if name == "pulumi" and shutil.which("pulumi") is None:
        pytest.skip(NO_PULUMI)
    settings = Settings(project_dir=tmp_path)
    program = PROGRAM
    if name == "terraform":
        mirror = find_mirror()
        if shutil.which("terraform") is None or mirror is None:
            pytest.skip("terraform CLI or provider mirror absent (see tests/tfsupport.py)")
        settings = Settings(project_dir=tmp_path, terraform_plugin_mirror=str(mirror))
        program = program_at(TERRAFORM_PROGRAMS / "contract")
    # Requested lazily, so a skipped engine does not start the local cloud.
    target = cast(Target, request.getfixturevalue("local_cloud"))
    if name == "pulumi-standin-s3":
        return standin_case(request, tmp_path, target)
    return Case(
        engine=get_engine(name, settings=settings, target=target),
        target=target,
        engine_name=name,
        program=program,
    )


def standin_case(request: pytest.FixtureRequest, tmp_path: Path, target: Target) -> Case:
    """The pulumi engine, through the real pulumi.automation, driving the stand-in CLI
    (tests/standin/pulumi) against an s3:// DIY backend in a bucket of the local cloud: the
    stand-in keeps state, tags and locks there as the DIY backend lays them out. It runs the
    stand-in's fixture program, not infra/aws: what is proven is the engine's side."""
    from branchenv.engines.pulumi import PulumiEngine
    from tests.integration.pulumi_rig import make_rig, s3_backend

    monkeypatch = cast(pytest.MonkeyPatch, request.getfixturevalue("monkeypatch"))
    rig = make_rig(tmp_path, monkeypatch)
    engine = PulumiEngine(
        state_dir=tmp_path / ".branchenv",
        backend_url=s3_backend(target, monkeypatch),
        pulumi_command=rig.exe,
        sleep=rig.sleeps.append,
    )
    return Case(engine=engine, target=target, engine_name="pulumi")


@pytest.fixture
def names() -> StackNames:
    return names_for(f"int-{uuid.uuid4().hex[:8]}")


def metadata_for(case: Case, names: StackNames) -> StackMetadata:
    return StackMetadata.create(
        stack=names.stack,
        branch=names.branch,
        owner="contract@example.com",
        commit="c0ffee0",
        ttl=dt.timedelta(hours=2),
        now=dt.datetime.now(dt.UTC),
        target="local",
        engine=case.engine_name,
    )


@contextlib.contextmanager
def cleaned_up(case: Case, names: StackNames) -> Iterator[None]:
    """Destroy (and remove) the stack afterwards, even when the test failed."""
    try:
        yield
    finally:
        with contextlib.suppress(StackNotFound):
            case.engine.destroy(stack=names.stack, program=case.program, target=case.target)


def up(case: Case, names: StackNames, metadata: StackMetadata) -> object:
    return case.engine.up(
        stack=names.stack,
        program=case.program,
        target=case.target,
        metadata=metadata,
        inputs=inputs_for(metadata, {"branchenv:prefix": names.prefix}, target=case.target),
    )


def test_up_is_idempotent_and_its_results_are_readable(case: Case, names: StackNames) -> None:
    metadata = metadata_for(case, names)
    with cleaned_up(case, names):
        first = case.engine.up(
            stack=names.stack,
            program=case.program,
            target=case.target,
            metadata=metadata,
            inputs=inputs_for(metadata, {"branchenv:prefix": names.prefix}, target=case.target),
        )
        assert first.stack == names.stack
        assert first.outputs.get("endpoint"), first.outputs

        second = case.engine.up(
            stack=names.stack,
            program=case.program,
            target=case.target,
            metadata=metadata,
            inputs=inputs_for(metadata, {"branchenv:prefix": names.prefix}, target=case.target),
        )
        assert second.outputs == first.outputs
        assert second.changes.get("create", 0) == 0, second.changes
        urns = [r.address for r in second.resources]
        assert len(urns) == len(set(urns)), "duplicate resources after a second up"
        assert set(urns) == {r.address for r in first.resources}

        assert case.engine.outputs(stack=names.stack, program=case.program) == first.outputs
        listed = {s.stack: s for s in case.engine.list_stacks(program=case.program)}
        assert names.stack in listed
        assert listed[names.stack].metadata == metadata
        assert case.engine.metadata(stack=names.stack, program=case.program) == metadata


def test_destroy_removes_the_stack_and_a_second_destroy_is_not_found(
    case: Case, names: StackNames
) -> None:
    with cleaned_up(case, names):
        up(case, names, metadata_for(case, names))

        result = case.engine.destroy(stack=names.stack, program=case.program, target=case.target)

        assert result.stack == names.stack
        assert result.removed is True
        assert names.stack not in {s.stack for s in case.engine.list_stacks(program=case.program)}
        with pytest.raises(StackNotFound):
            case.engine.destroy(stack=names.stack, program=case.program, target=case.target)


def test_a_missing_stack_is_not_found(case: Case, names: StackNames) -> None:
    with pytest.raises(StackNotFound):
        case.engine.outputs(stack=names.stack, program=case.program)
    with pytest.raises(StackNotFound):
        case.engine.destroy(stack=names.stack, program=case.program, target=case.target)
