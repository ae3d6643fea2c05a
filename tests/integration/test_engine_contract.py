"""One contract for every engine: what ``branchenv`` relies on, run against each engine the
registry holds that can run here, and against the tests' in-memory engine (tests/fakes.py,
registered for the case through the public registry: proof the contract is engine-neutral).

Each engine runs its kind's contract program (tests/programs/<kind>/contract: a bucket and a
table named from the stack's prefix, a secret output) against this session's local cloud.
``inprocess`` runs the Pulumi one on the SDK mock runtime; ``terraform`` the terraform module
with the real CLI (the demo stack runs once, in the e2e `ci` test); ``pulumi`` needs a real
``pulumi`` CLI on PATH (else skipped, its boundary proven by test_pulumi_engine_standin.py and
by ``pulumi-standin-s3`` here: the real pulumi.automation driving the stand-in CLI against an
s3:// DIY backend).

Every protocol method is covered: up (idempotent, no changes the second time), preview (changes
nothing), plan_check (a refusal leaves nothing), outputs and resources (secrets masked or
dropped), list_stacks, metadata, set_metadata, refresh (drift made behind the engine's back),
destroy (twice: the second is StackNotFound), locking (two concurrent updates never corrupt).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from branchenv.config import Settings
from branchenv.engines import engine_names, engine_spec, get_engine
from branchenv.engines.base import SECRET_MASK, Engine, PlannedStep, Program
from branchenv.errors import SafetyRefusal, StackLocked, StackNotFound
from branchenv.metadata import StackMetadata
from branchenv.naming import StackNames, names_for
from branchenv.targets import Target
from tests import fakes
from tests.conftest import inputs_for, program_at
from tests.tfsupport import PROGRAMS as TERRAFORM_PROGRAMS
from tests.tfsupport import find_mirror

PROGRAMS = Path(__file__).resolve().parents[1] / "programs"
CONTRACT_PROGRAMS = {
    "pulumi": PROGRAMS / "pulumi" / "contract",
    "terraform": TERRAFORM_PROGRAMS / "contract",
    fakes.KIND: PROGRAMS / "fake" / "contract",
}
"""The contract program of each program kind."""

NO_PULUMI = (
    "pulumi CLI not on PATH; the pulumi engine is proven at its boundary by "
    "test_pulumi_engine_standin.py and the pulumi-standin-s3 case"
)


@dataclass
class Case:
    engine: Engine
    target: Target
    engine_name: str
    program: Program
    drift: Callable[[StackNames], str]
    """Deletes the stack's bucket behind the engine's back; returns the bucket's name."""
    cleanup: list[Callable[[], None]] = field(default_factory=list)


def _params() -> list[Any]:
    marks = {
        "pulumi": [pytest.mark.realpulumi],
        "terraform": [pytest.mark.terraform],
    }
    names = [n for n in engine_names() if n != fakes.ENGINE]
    return [
        *(pytest.param(n, marks=marks.get(n, [])) for n in names),
        fakes.ENGINE,
        pytest.param("pulumi-standin-s3", marks=pytest.mark.standin),
    ]


def _delete_bucket(target: Target) -> Callable[[StackNames], str]:
    def drift(names: StackNames) -> str:
        bucket = f"{names.prefix}-data"
        target.client("s3").delete_bucket(Bucket=bucket)
        return bucket

    return drift


@pytest.fixture(params=_params())
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Case]:
    name = cast(str, request.param)
    if name == fakes.ENGINE:
        fakes.register()
        settings = Settings(project_dir=tmp_path)
        engine = get_engine(name, settings=settings)
        assert isinstance(engine, fakes.FakeEngine)
        target = Target("local", "us-east-1")  # the fake needs no cloud
        try:
            yield Case(
                engine=engine,
                target=target,
                engine_name=name,
                program=program_at(CONTRACT_PROGRAMS[fakes.KIND]),
                drift=lambda names: (
                    engine.delete_behind_its_back(f"{names.prefix}-data") or f"{names.prefix}-data"
                ),
            )
        finally:
            fakes.unregister()
        return
    if name == "pulumi" and shutil.which("pulumi") is None:
        pytest.skip(NO_PULUMI)
    settings = Settings(project_dir=tmp_path)
    if name == "terraform":
        mirror = find_mirror()
        if shutil.which("terraform") is None or mirror is None:
            pytest.skip("terraform CLI or provider mirror absent (see tests/tfsupport.py)")
        settings = Settings(project_dir=tmp_path, terraform_plugin_mirror=str(mirror))
    if name != "pulumi-standin-s3":
        spec = engine_spec(name)
        reason = spec.available()
        if reason is not None:
            pytest.skip(f"the {name} engine cannot run here: {reason}")
        kinds = [k for k in spec.program_kinds if k in CONTRACT_PROGRAMS]
        if not kinds:
            pytest.skip(f"no contract program for the {name} engine's kinds {spec.program_kinds}")
    # Requested lazily, so a skipped engine does not start the local cloud.
    target = cast(Target, request.getfixturevalue("local_cloud"))
    if name == "pulumi-standin-s3":
        yield standin_case(request, tmp_path, target)
        return
    yield Case(
        engine=get_engine(name, settings=settings, target=target),
        target=target,
        engine_name=name,
        program=program_at(CONTRACT_PROGRAMS[kinds[0]]),
        drift=_delete_bucket(target),
    )


def standin_case(request: pytest.FixtureRequest, tmp_path: Path, target: Target) -> Case:
    """The pulumi engine, through the real pulumi.automation, driving the stand-in CLI
    (tests/standin/pulumi) against an s3:// DIY backend in a bucket of the local cloud: the
    stand-in keeps state, tags and locks there as the DIY backend lays them out. It runs the
    stand-in's fixture program: what is proven is the engine's side."""
    from branchenv.engines.pulumi import PulumiEngine
    from tests.integration.pulumi_rig import make_rig, s3_backend

    monkeypatch = cast(pytest.MonkeyPatch, request.getfixturevalue("monkeypatch"))
    rig = make_rig(tmp_path, monkeypatch)
    clone = rig.clone("contract")
    engine = PulumiEngine(
        state_dir=tmp_path / ".branchenv",
        backend_url=s3_backend(target, monkeypatch),
        pulumi_command=rig.exe,
        sleep=rig.sleeps.append,
    )
    return Case(
        engine=engine,
        target=target,
        engine_name="pulumi",
        program=program_at(clone.root / "infra" / "aws"),
        drift=lambda names: pytest.skip("the stand-in CLI does not refresh against the target"),
    )


def standin(case: Case) -> bool:
    return case.program.project != "contract"


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


def up(
    case: Case,
    names: StackNames,
    metadata: StackMetadata,
    plan_check: Callable[[Sequence[PlannedStep]], None] | None = None,
) -> Any:
    return case.engine.up(
        stack=names.stack,
        program=case.program,
        target=case.target,
        metadata=metadata,
        inputs=inputs_for(metadata, {"branchenv:prefix": names.prefix}, target=case.target),
        plan_check=plan_check,
    )


def test_the_whole_life_of_a_stack(case: Case, names: StackNames) -> None:
    """up twice (the second changes nothing), every reader, set_metadata, preview, refresh after
    drift, destroy twice."""
    metadata = metadata_for(case, names)
    with cleaned_up(case, names):
        first = up(case, names, metadata)
        assert first.stack == names.stack
        assert first.outputs, first.outputs

        second = up(case, names, metadata)
        assert second.outputs == first.outputs
        for kind in ("create", "replace", "delete"):
            assert second.changes.get(kind, 0) == 0, second.changes
        addresses = [r.address for r in second.resources]
        assert len(addresses) == len(set(addresses)), "duplicate resources after a second up"
        assert set(addresses) == {r.address for r in first.resources}

        # Readers: outputs (secrets masked), resources (secrets dropped), listing, metadata.
        outputs = case.engine.outputs(stack=names.stack, program=case.program)
        assert outputs == first.outputs
        if not standin(case):
            assert outputs["bucket_name"] == f"{names.prefix}-data"
            assert outputs["token"] == SECRET_MASK
        resources = case.engine.resources(stack=names.stack, program=case.program)
        assert resources and all(r.address and r.type for r in resources)
        assert "token-of-" not in repr(resources)
        listed = {s.stack: s for s in case.engine.list_stacks(program=case.program)}
        assert listed[names.stack].metadata == metadata
        assert listed[names.stack].attention is None
        assert case.engine.metadata(stack=names.stack, program=case.program) == metadata

        # set_metadata replaces the stack's metadata and touches no resource.
        pending = dataclasses.replace(metadata, reap_pending=True)
        case.engine.set_metadata(stack=names.stack, program=case.program, metadata=pending)
        assert case.engine.metadata(stack=names.stack, program=case.program) == pending
        after = case.engine.resources(stack=names.stack, program=case.program)
        assert {r.address for r in after} == {r.address for r in resources}

        # preview of an unchanged program plans no create/replace/delete and changes nothing.
        preview = case.engine.preview(
            stack=names.stack,
            program=case.program,
            target=case.target,
            metadata=pending,
            inputs=inputs_for(pending, {"branchenv:prefix": names.prefix}, target=case.target),
        )
        for kind in ("create", "replace", "delete"):
            assert preview.changes.get(kind, 0) == 0, preview.changes

        # refresh finds what was deleted behind the engine's back and drops it.
        if not standin(case):
            bucket = case.drift(names)
            refreshed = case.engine.refresh(
                stack=names.stack, program=case.program, target=case.target
            )
            assert refreshed.stack == names.stack
            gone = {r.address for r in resources if r.id == bucket or r.name == "data"}
            assert set(refreshed.missing) == gone, (refreshed.missing, gone)
            left = case.engine.resources(stack=names.stack, program=case.program)
            assert not {r.address for r in left} & gone

        result = case.engine.destroy(stack=names.stack, program=case.program, target=case.target)
        assert result.stack == names.stack and result.removed is True and result.failed == ()
        assert names.stack not in {s.stack for s in case.engine.list_stacks(program=case.program)}
        with pytest.raises(StackNotFound):
            case.engine.destroy(stack=names.stack, program=case.program, target=case.target)


def test_a_plan_check_refusal_leaves_nothing(case: Case, names: StackNames) -> None:
    seen: list[PlannedStep] = []

    def refuse(steps: Sequence[PlannedStep]) -> None:
        seen.extend(steps)
        raise SafetyRefusal("refused by the test's plan check")

    metadata = metadata_for(case, names)
    with cleaned_up(case, names), pytest.raises(SafetyRefusal, match="test's plan check"):
        up(case, names, metadata, plan_check=refuse)
    assert seen and {s.op for s in seen} == {"create"}
    if not standin(case):
        assert f"{names.prefix}-data" in {s.physical_name for s in seen}
    with contextlib.suppress(StackNotFound):
        assert case.engine.resources(stack=names.stack, program=case.program) == []


def test_two_concurrent_updates_never_corrupt_the_stack(case: Case, names: StackNames) -> None:
    """Each update either completes or is refused with StackLocked (a TransientError); after
    both, the stack holds each resource once."""
    metadata = metadata_for(case, names)
    errors: list[BaseException] = []

    def one() -> None:
        try:
            up(case, names, metadata)
        except StackLocked as exc:
            errors.append(exc)
        except BaseException as exc:  # reported below
            errors.append(exc)

    with cleaned_up(case, names):
        threads = [threading.Thread(target=one) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
        assert all(isinstance(e, StackLocked) for e in errors), errors
        assert len(errors) < 2, "both updates refused"
        resources = case.engine.resources(stack=names.stack, program=case.program)
        addresses = [r.address for r in resources]
        assert addresses and len(addresses) == len(set(addresses))


def test_a_missing_stack_is_not_found(case: Case, names: StackNames) -> None:
    with pytest.raises(StackNotFound):
        case.engine.outputs(stack=names.stack, program=case.program)
    with pytest.raises(StackNotFound):
        case.engine.destroy(stack=names.stack, program=case.program, target=case.target)
    with contextlib.suppress(StackNotFound):  # or, for a listing engine, nothing
        assert case.engine.resources(stack=names.stack, program=case.program) == []
    assert names.stack not in {s.stack for s in case.engine.list_stacks(program=case.program)}
