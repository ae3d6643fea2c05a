"""The inprocess engine on small programs of the test's own, against the session's local cloud:
unsupported types, auto-naming, default tags, partial failure, refresh, the registry itself."""

from __future__ import annotations

import datetime as dt
import re
import textwrap
import uuid
from pathlib import Path

import pytest

from branchenv.engines.base import Program
from branchenv.engines.inprocess.engine import InProcessEngine
from branchenv.engines.inprocess.materializers import REGISTRY
from branchenv.errors import EngineError, SafetyRefusal, StackNotFound, UnsupportedResource
from branchenv.metadata import StackMetadata
from branchenv.targets import Target
from tests.conftest import inputs_for, program_at

PROVIDER = """
import json
import pulumi
import pulumi_aws as aws

cfg = pulumi.Config("branchenv")
provider = aws.Provider(
    "aws", region="us-east-1",
    default_tags=aws.ProviderDefaultTagsArgs(tags=json.loads(cfg.require("tags"))),
)
opts = pulumi.ResourceOptions(provider=provider)
"""


def write_program(root: Path, body: str) -> Program:
    prog = root / f"prog-{uuid.uuid4().hex[:6]}"
    prog.mkdir()
    (prog / "Pulumi.yaml").write_text("name: engine-test\nruntime: python\n")
    (prog / "__main__.py").write_text(PROVIDER + textwrap.dedent(body))
    return program_at(prog)


def metadata(stack: str) -> StackMetadata:
    return StackMetadata.create(
        stack=stack,
        branch=f"test/{stack}",
        owner="tests",
        commit="0" * 40,
        ttl=dt.timedelta(hours=1),
        now=dt.datetime.now(dt.UTC),
        target="local",
        engine="inprocess",
    )


def bucket_names(target: Target) -> set[str]:
    return {b["Name"] for b in target.client("s3").list_buckets()["Buckets"]}


def test_unsupported_types_fail_before_anything_is_created(
    tmp_path: Path, local_cloud: Target
) -> None:
    name = f"unsup-{uuid.uuid4().hex[:8]}"
    prog = write_program(
        tmp_path,
        f"""
        aws.s3.Bucket("b", bucket="{name}", opts=opts)
        aws.ec2.Instance("i", ami="ami-12345678", instance_type="t3.micro", opts=opts)
        aws.ecs.Cluster("c", opts=opts)
        aws.ec2.Instance("i2", ami="ami-12345678", instance_type="t3.micro", opts=opts)
        """,
    )
    engine = InProcessEngine(state_dir=tmp_path / "state")
    before = bucket_names(local_cloud)
    with pytest.raises(UnsupportedResource) as err:
        engine.up(
            stack="s1",
            program=prog,
            target=local_cloud,
            metadata=metadata("s1"),
            inputs=inputs_for(metadata("s1")),
        )
    assert err.value.types == ["aws:ec2/instance:Instance", "aws:ecs/cluster:Cluster"]
    assert "aws:ec2/instance:Instance" in str(err.value)
    assert "nothing was created" in str(err.value)
    assert err.value.exit_code == 2
    assert bucket_names(local_cloud) == before
    with pytest.raises(StackNotFound):
        engine.outputs(stack="s1", program=prog)


def test_auto_naming_default_tags_and_idempotency(tmp_path: Path, local_cloud: Target) -> None:
    prog = write_program(
        tmp_path,
        """
        b = aws.s3.Bucket("auto", tags={"team": "payments", "branchenv:owner": "override"},
                          opts=opts)
        q = aws.sqs.Queue("jobs", opts=opts)
        pulumi.export("bucket", b.bucket)
        pulumi.export("queue_url", q.url)
        """,
    )
    engine = InProcessEngine(state_dir=tmp_path / "state")
    md = metadata("s2")
    first = engine.up(
        stack="s2", program=prog, target=local_cloud, metadata=md, inputs=inputs_for(md)
    )
    try:
        bucket = first.outputs["bucket"]
        assert re.fullmatch(r"auto-[0-9a-f]{7}", bucket)  # Pulumi's auto-naming shape
        assert first.outputs["queue_url"].endswith("/" + first.outputs["queue_url"].split("/")[-1])
        tags = {
            t["Key"]: t["Value"]
            for t in local_cloud.client("s3").get_bucket_tagging(Bucket=bucket)["TagSet"]
        }
        assert tags["team"] == "payments"  # the resource's own tag
        assert tags["branchenv:stack"] == "s2"  # the provider's default tags
        assert tags["branchenv:owner"] == "override"  # own tags win over default tags
        second = engine.up(
            stack="s2", program=prog, target=local_cloud, metadata=md, inputs=inputs_for(md)
        )
        assert second.outputs == first.outputs  # same auto-name, no new bucket
        assert second.changes["create"] == 0
        assert sum(1 for n in bucket_names(local_cloud) if n.startswith("auto-")) >= 1
        assert bucket in bucket_names(local_cloud)
    finally:
        engine.destroy(stack="s2", program=prog, target=local_cloud)
    assert bucket not in bucket_names(local_cloud)
    with pytest.raises(StackNotFound):
        engine.destroy(stack="s2", program=prog, target=local_cloud)


def test_removed_resources_are_deleted_on_next_up(tmp_path: Path, local_cloud: Target) -> None:
    name = f"keep-{uuid.uuid4().hex[:8]}"
    gone = f"gone-{uuid.uuid4().hex[:8]}"
    prog = write_program(
        tmp_path,
        f"""
        aws.s3.Bucket("keep", bucket="{name}", opts=opts)
        if pulumi.Config("branchenv").get_bool("extra"):
            aws.s3.Bucket("gone", bucket="{gone}", opts=opts)
        """,
    )
    engine = InProcessEngine(state_dir=tmp_path / "state")
    md = metadata("s3")
    engine.up(
        stack="s3",
        program=prog,
        target=local_cloud,
        metadata=md,
        inputs=inputs_for(md, {"branchenv:extra": "true"}),
    )
    assert {name, gone} <= bucket_names(local_cloud)
    result = engine.up(
        stack="s3", program=prog, target=local_cloud, metadata=md, inputs=inputs_for(md)
    )
    try:
        assert result.changes["delete"] == 1
        assert name in bucket_names(local_cloud) and gone not in bucket_names(local_cloud)
    finally:
        engine.destroy(stack="s3", program=prog, target=local_cloud)


def test_failure_midway_is_recorded_and_destroyable(tmp_path: Path, local_cloud: Target) -> None:
    name = f"first-{uuid.uuid4().hex[:8]}"
    prog = write_program(
        tmp_path,
        f"""
        b = aws.s3.Bucket("first", bucket="{name}", opts=opts)
        # Depends on the bucket, then fails in the cloud: a key with no attribute definition.
        aws.dynamodb.Table("bad", name=b.bucket.apply(lambda n: n + "-t"), hash_key="id",
                           billing_mode="PAY_PER_REQUEST", attributes=[], opts=opts)
        """,
    )
    engine = InProcessEngine(state_dir=tmp_path / "state")
    with pytest.raises(EngineError, match="branchenv down"):
        engine.up(
            stack="s4",
            program=prog,
            target=local_cloud,
            metadata=metadata("s4"),
            inputs=inputs_for(metadata("s4")),
        )
    assert name in bucket_names(local_cloud)
    recorded = engine.resources(stack="s4", program=prog)
    assert [r.type for r in recorded] == ["aws:s3/bucket:Bucket"]
    result = engine.destroy(stack="s4", program=prog, target=local_cloud)
    assert result.deleted == 1 and name not in bucket_names(local_cloud)


def test_refresh_forgets_what_is_gone_and_destroy_tolerates_it(
    tmp_path: Path, local_cloud: Target
) -> None:
    a, b = f"ra-{uuid.uuid4().hex[:8]}", f"rb-{uuid.uuid4().hex[:8]}"
    prog = write_program(
        tmp_path,
        f"""
        aws.s3.Bucket("a", bucket="{a}", opts=opts)
        aws.s3.Bucket("b", bucket="{b}", opts=opts)
        """,
    )
    engine = InProcessEngine(state_dir=tmp_path / "state")
    engine.up(
        stack="s5",
        program=prog,
        target=local_cloud,
        metadata=metadata("s5"),
        inputs=inputs_for(metadata("s5")),
    )
    local_cloud.client("s3").delete_bucket(Bucket=a)  # deleted behind the engine's back
    engine.refresh(stack="s5", program=prog, target=local_cloud)
    assert [r.id for r in engine.resources(stack="s5", program=prog)] == [b]
    local_cloud.client("s3").delete_bucket(Bucket=b)
    assert engine.destroy(stack="s5", program=prog, target=local_cloud).removed


def test_refuses_any_target_but_local(tmp_path: Path) -> None:
    prog = write_program(tmp_path, "pass\n")
    engine = InProcessEngine(state_dir=tmp_path / "state")
    aws_target = Target(name="aws", region="us-east-1")
    with pytest.raises(SafetyRefusal) as err:
        engine.up(
            stack="s6",
            program=prog,
            target=aws_target,
            metadata=metadata("s6"),
            inputs=inputs_for(metadata("s6")),
        )
    assert err.value.exit_code == 3
    with pytest.raises(SafetyRefusal):
        engine.destroy(stack="s6", program=prog, target=aws_target)


def test_list_stacks_and_set_metadata(tmp_path: Path, local_cloud: Target) -> None:
    import dataclasses

    prog = write_program(tmp_path, 'aws.sqs.Queue("q", opts=opts)\n')
    engine = InProcessEngine(state_dir=tmp_path / "state")
    md = metadata("s7")
    engine.up(stack="s7", program=prog, target=local_cloud, metadata=md, inputs=inputs_for(md))
    try:
        [summary] = engine.list_stacks(program=prog)
        assert summary.stack == "s7" and summary.metadata == md and summary.resource_count == 1
        engine.set_metadata(
            stack="s7", program=prog, metadata=dataclasses.replace(md, reap_pending=True)
        )
        got = engine.metadata(stack="s7", program=prog)
        assert got is not None and got.reap_pending
    finally:
        engine.destroy(stack="s7", program=prog, target=local_cloud)
    assert engine.list_stacks(program=prog) == []


def test_every_registry_entry_is_a_real_pulumi_aws_type() -> None:
    """Meta-test over the materializer registry: each entry is documented, and its type token
    is one pulumi-aws really registers (so a typo can never silently mark a type supported)."""
    import pulumi_aws

    root = Path(pulumi_aws.__file__).parent
    assert len(REGISTRY) >= 15
    for token, materializer in REGISTRY.items():
        assert type(materializer).__doc__, f"{token}: no docstring"
        module = token.split(":")[1].split("/")[0]
        folder = "lambda_" if module == "lambda" else module
        sources = " ".join(p.read_text() for p in (root / folder).glob("*.py"))
        assert f"'{token}'" in sources or f'"{token}"' in sources, token


def test_demo_program_types_are_all_supported(repo_root: Path) -> None:
    """Every custom resource type the demo program declares has a materializer."""
    import json as _json

    from branchenv.mockruntime import run_program

    run = run_program(
        program_dir=repo_root / "infra" / "aws",
        project="branchenv-demo",
        stack="types",
        config={
            "branchenv:prefix": "types-check",
            "branchenv:tags": _json.dumps({"branchenv:stack": "types"}),
            "aws:region": "us-east-1",
        },
        new_resource=lambda reg: (f"{reg.name}-id", dict(reg.inputs)),
        preview=True,
    )
    declared = {r.type for r in run.registrations if r.custom} - {"pulumi:providers:aws"}
    assert len(declared) >= 14
    assert declared <= set(REGISTRY), declared - set(REGISTRY)


def test_program_helper_modules_do_not_leak_between_runs(tmp_path: Path) -> None:
    """Two programs with a same-named helper module each import their own."""
    from branchenv.mockruntime import run_program

    outputs = []
    for value in ("one", "two"):
        prog = tmp_path / value
        prog.mkdir()
        (prog / "helper.py").write_text(f"VALUE = {value!r}\n")
        (prog / "__main__.py").write_text(
            "import pulumi\nimport helper\npulumi.export('value', helper.VALUE)\n"
        )
        run = run_program(
            program_dir=prog,
            project="p",
            stack="s",
            config={},
            new_resource=lambda reg: ("id", {}),
            preview=False,
        )
        outputs.append(run.outputs["value"])
    assert outputs == ["one", "two"]


def test_kubernetes_program_points_at_render(tmp_path: Path, repo_root: Path) -> None:
    """The k8s program cannot be materialized on the local cloud: the error says what can."""
    engine = InProcessEngine(state_dir=tmp_path / "state")
    md = metadata("k8s")
    target = Target(name="local", region="us-east-1", endpoint_url="http://127.0.0.1:9")
    with pytest.raises(UnsupportedResource) as err:
        engine.up(
            stack="k8s",
            program=program_at(repo_root / "infra" / "k8s"),
            target=target,
            metadata=md,
            inputs=inputs_for(md, {"branchenv:prefix": "k8s-check"}),
        )
    assert "kubernetes:core/v1:Namespace" in err.value.types
    assert "branchenv render" in str(err.value)


def test_secret_outputs_are_masked_and_never_stored(tmp_path: Path, local_cloud: Target) -> None:
    prog = write_program(
        tmp_path,
        """
        q = aws.sqs.Queue("q", opts=opts)
        aws.iam.Role(
            "r",
            assume_role_policy='{"Version": "2012-10-17", "Statement": []}',
            description=pulumi.Output.secret("hunter3-input-do-not-leak"),
            opts=opts,
        )
        pulumi.export("password", pulumi.Output.secret("hunter2-do-not-leak"))
        pulumi.export("queue_url", q.url)
        """,
    )
    state = tmp_path / "state"
    engine = InProcessEngine(state_dir=state)
    result = engine.up(
        stack="s8",
        program=prog,
        target=local_cloud,
        metadata=metadata("s8"),
        inputs=inputs_for(metadata("s8")),
    )
    try:
        assert result.outputs["password"] == "[secret]"
        assert result.outputs["queue_url"].startswith("http://127.0.0.1:")
        assert engine.outputs(stack="s8", program=prog)["password"] == "[secret]"
        stored = "".join(p.read_text() for p in state.rglob("*.json"))
        assert "hunter2-do-not-leak" not in stored and "hunter3" not in stored
    finally:
        engine.destroy(stack="s8", program=prog, target=local_cloud)


def test_a_listing_asks_each_resource_once_and_prices_what_it_found(
    tmp_path: Path, local_cloud: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ls` (provision.list_stacks) asks the local cloud whether each resource of each stack
    still exists once, not once to count what is missing and again per stack to price it
    (2-3 s an `ls` on the shared CI box); the stacks are priced from that same answer."""
    from branchenv import provision
    from branchenv.config import Settings

    prog = write_program(
        tmp_path,
        """
        aws.s3.Bucket("a", bucket=f"{pulumi.get_stack()}-a", opts=opts)
        aws.s3.Bucket("b", bucket=f"{pulumi.get_stack()}-b", opts=opts)
        """,
    )
    engine = InProcessEngine(state_dir=tmp_path / "state", target=local_cloud)
    stacks = [f"ls{i}-{uuid.uuid4().hex[:8]}" for i in range(2)]
    for stack in stacks:
        md = metadata(stack)
        engine.up(stack=stack, program=prog, target=local_cloud, metadata=md, inputs=inputs_for(md))
    try:
        local_cloud.client("s3").delete_bucket(Bucket=f"{stacks[0]}-a")  # behind its back
        materializer = REGISTRY["aws:s3/bucket:Bucket"]
        original = materializer.exists
        asked: list[str] = []

        def exists(ctx: object, *, id: str, outputs: dict[str, object]) -> bool:
            asked.append(id)
            return original(ctx, id=id, outputs=outputs)  # type: ignore[arg-type]

        monkeypatch.setattr(materializer, "exists", exists)
        settings = Settings(project_dir=tmp_path, program=prog.path.name)
        rows = {r.stack: r for r in provision.list_stacks(settings, engines=[engine])}
        assert sorted(asked) == sorted(f"{s}-{n}" for s in stacks for n in "ab"), asked
        assert [rows[s].missing for s in stacks] == [1, 0]
        assert [rows[s].resource_count for s in stacks] == [2, 2]

        # What the listing hands on is what Engine.resources answers: less what is gone.
        listed = {s.stack: s for s in engine.list_stacks(program=prog)}
        for stack in stacks:
            assert listed[stack].resources == tuple(engine.resources(stack=stack, program=prog))
        assert listed[stacks[0]].resources is not None
        assert [r.id for r in listed[stacks[0]].resources] == [f"{stacks[0]}-b"]
        # Not counting what is missing: nothing asked, nothing handed on.
        asked.clear()
        quiet = engine.list_stacks(program=prog, count_missing=False)
        assert not asked and all(s.resources is None and s.missing is None for s in quiet)
    finally:
        for stack in stacks:
            engine.destroy(stack=stack, program=prog, target=local_cloud)
