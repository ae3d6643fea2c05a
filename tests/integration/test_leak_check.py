"""The leak check after every teardown: the stack's tag looked up in the target itself.

A teardown whose engine reports success while something carrying the stack's tag is still in
the target has leaked: it is named by ARN, and `down` (here), `ci` and `reap` (the e2e tests in
tests/e2e/test_leaks.py) fail on it. The lookup covers what the tagging API misses (IAM roles,
HTTP APIs and their stages, EventBridge rules), and every taggable type a materializer creates
is proven found by it."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pytest

from branchenv.config import Settings
from branchenv.engines.base import DestroyResult, Program
from branchenv.errors import OperationFailed, StackNotFound
from branchenv.gitinfo import BranchInfo
from branchenv.harness.teardown import destroy_stack
from branchenv.inventory import find_tagged, resource_type
from branchenv.metadata import StackMetadata
from branchenv.naming import names_for
from branchenv.provision import StackContext
from branchenv.targets import Target


def _metadata(stack: str) -> StackMetadata:
    return StackMetadata.create(
        stack=stack,
        branch=f"leak/{stack}",
        owner="ada",
        commit="abc1234",
        ttl=dt.timedelta(hours=2),
        now=dt.datetime.now(dt.UTC),
        target="local",
        engine="inprocess",
    )


class ForgetfulEngine:
    """Destroys "everything" it knows, which is nothing: whatever is in the target stays."""

    name = "inprocess"

    def __init__(self, metadata: StackMetadata) -> None:
        self.md: StackMetadata | None = metadata

    def destroy(self, *, stack: str, **_: Any) -> DestroyResult:
        if self.md is None:
            raise StackNotFound(f"no stack {stack}")
        self.md = None
        return DestroyResult(stack=stack, deleted=0, removed=True, duration_s=0.0)

    def metadata(self, **_: Any) -> StackMetadata:
        if self.md is None:
            raise StackNotFound("gone")
        return self.md

    def set_metadata(self, *, metadata: StackMetadata, **_: Any) -> None:
        self.md = metadata


def _program(tmp_path: Path) -> Program:
    return Program(name="default", path=tmp_path, kind="pulumi", project="p", project_dir=tmp_path)


def _tagged_queue(target: Target, stack: str) -> tuple[str, str]:
    """A queue carrying the stack's tag, made behind the engine's back: (url, arn)."""
    sqs = target.client("sqs")
    url = sqs.create_queue(
        QueueName=f"{stack}-left-{uuid.uuid4().hex[:6]}",
        tags={"branchenv:stack": stack, "branchenv:managed-by": "branchenv"},
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def test_a_teardown_that_leaves_a_tagged_resource_has_leaked(
    tmp_path: Path, local_cloud: Target
) -> None:
    stack = f"int-{uuid.uuid4().hex[:8]}"
    url, arn = _tagged_queue(local_cloud, stack)
    said: list[str] = []
    try:
        done = destroy_stack(
            ForgetfulEngine(_metadata(stack)),
            stack=stack,
            program=_program(tmp_path),
            target=local_cloud,
            metadata=_metadata(stack),
            on_output=said.append,
        )
    finally:
        local_cloud.client("sqs").delete_queue(QueueUrl=url)
    assert done.status == "leaked" and not done.ok
    assert done.leaked == (arn,)
    assert any(arn in line and "leaked: 1" in line for line in said)


def test_a_clean_teardown_says_leaked_0(tmp_path: Path, local_cloud: Target) -> None:
    stack = f"int-{uuid.uuid4().hex[:8]}"
    said: list[str] = []
    done = destroy_stack(
        ForgetfulEngine(_metadata(stack)),
        stack=stack,
        program=_program(tmp_path),
        target=local_cloud,
        metadata=_metadata(stack),
        on_output=said.append,
    )
    assert done.status == "destroyed" and done.ok and done.leaked == ()
    assert any("leaked: 0" in line for line in said)


def test_down_exits_1_naming_what_leaked(tmp_path: Path, local_cloud: Target) -> None:
    from branchenv import provision

    branch = f"leak/{uuid.uuid4().hex[:6]}"
    names = names_for(branch)
    engine = ForgetfulEngine(dataclasses.replace(_metadata(names.stack), branch=branch))
    ctx = StackContext(
        settings=Settings(project_dir=tmp_path),
        branch=BranchInfo(name=branch, source="flag", detached=False),
        names=names,
        target=local_cloud,
        engine=engine,  # type: ignore[arg-type]
        engine_note=None,
        program=_program(tmp_path),
    )
    url, arn = _tagged_queue(local_cloud, names.stack)
    try:
        with pytest.raises(OperationFailed) as caught:
            provision.down(ctx, sleep=lambda _s: None)
    finally:
        local_cloud.client("sqs").delete_queue(QueueUrl=url)
    assert caught.value.exit_code == 1
    assert arn in str(caught.value) and "leaked: 1" in str(caught.value)


def test_the_leak_check_looks_again_while_the_target_still_lists_a_deleted_resource(
    local_cloud: Target,
) -> None:
    """AWS's tagging API lists a deleted resource for a while: on AWS the check looks again
    before it calls anything leaked (here: the queue goes between the first and second look)."""
    from branchenv.harness.teardown import LeakPolicy, check_leaks

    stack = f"int-{uuid.uuid4().hex[:8]}"
    url, _ = _tagged_queue(local_cloud, stack)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        local_cloud.client("sqs").delete_queue(QueueUrl=url)

    check = check_leaks(local_cloud, stack, policy=LeakPolicy(looks=3, wait_s=10.0), sleep=sleep)
    assert check.clean and waits == [10.0]
    still = _tagged_queue(local_cloud, stack)
    try:
        check = check_leaks(
            local_cloud, stack, policy=LeakPolicy(looks=3, wait_s=1.0), sleep=waits.append
        )
    finally:
        local_cloud.client("sqs").delete_queue(QueueUrl=still[0])
    assert check.leaked == (still[1],) and waits == [10.0, 1.0, 1.0]


def test_a_leak_check_that_cannot_look_is_unknown_never_clean() -> None:
    from branchenv.harness.teardown import check_leaks

    nowhere = Target(name="local", region="us-east-1", endpoint_url="http://127.0.0.1:9")
    check = check_leaks(nowhere, "int-nowhere")
    assert not check.clean and check.leaked == () and "could not list" in (check.error or "")


def test_a_stage_is_found_by_its_own_tags(local_cloud: Target) -> None:
    """The tagging API lists no HTTP API stages: a tagged stage of an untagged API is still
    found (as ``apigateway:stages``, which the orphan sweep can delete)."""
    stack = f"int-{uuid.uuid4().hex[:8]}"
    apigw = local_cloud.client("apigatewayv2")
    api = apigw.create_api(Name=f"{stack}-untagged", ProtocolType="HTTP")["ApiId"]
    try:
        apigw.create_stage(
            ApiId=api, StageName="live", Tags={"branchenv:stack": stack, "branchenv:x": "y"}
        )
        found = find_tagged(local_cloud, key="branchenv:stack", values={stack})
        arn = f"arn:aws:apigateway:{local_cloud.region}::/apis/{api}/stages/live"
        assert [(r.arn, r.type) for r in found] == [(arn, "apigateway:stages")]
    finally:
        apigw.delete_api(ApiId=api)


def test_an_api_deleted_while_stages_are_listed_is_skipped(local_cloud: Target) -> None:
    """Another stack's `down` deleting its HTTP API between the listing of APIs and the
    listing of that API's stages: the inventory goes on (a leak check of a killed `ci` once
    failed on GetStages NotFoundException this way), and still finds what is tagged."""
    stack = f"int-{uuid.uuid4().hex[:8]}"
    real = local_cloud.client("apigatewayv2")
    doomed = real.create_api(Name=f"{stack}-doomed", ProtocolType="HTTP")["ApiId"]
    kept = real.create_api(Name=f"{stack}-kept", ProtocolType="HTTP")["ApiId"]
    real.create_stage(ApiId=kept, StageName="live", Tags={"branchenv:stack": stack})

    class Racing:
        exceptions = real.exceptions

        def get_apis(self, **kwargs: Any) -> Any:
            page = real.get_apis(**kwargs)
            real.delete_api(ApiId=doomed)  # gone once listed
            return page

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    target: Any = dataclasses.replace(local_cloud)
    try:
        from branchenv import inventory

        found = list(
            inventory._http_api_stages(
                _ClientOverride(target, "apigatewayv2", Racing()), "branchenv:stack", {stack}
            )
        )
        assert [r.arn.rsplit("/apis/", 1)[1] for r in found] == [f"{kept}/stages/live"]
    finally:
        real.delete_api(ApiId=kept)
        with contextlib.suppress(real.exceptions.NotFoundException):
            real.delete_api(ApiId=doomed)


def _doomed_role(target: Target, stack: str) -> tuple[str, str]:
    iam = target.client("iam")
    doc = '{"Version":"2012-10-17","Statement":[]}'
    for name in ("doomed", "kept"):
        iam.create_role(
            RoleName=f"{stack}-{name}",
            AssumeRolePolicyDocument=doc,
            Tags=[{"Key": "branchenv:stack", "Value": stack}],
        )
    return "list_role_tags", "RoleName"


def _doomed_rule(target: Target, stack: str) -> tuple[str, str]:
    events = target.client("events")
    for name in ("doomed", "kept"):
        events.put_rule(
            Name=f"{stack}-{name}",
            ScheduleExpression="rate(5 minutes)",
            Tags=[{"Key": "branchenv:stack", "Value": stack}],
        )
    return "list_tags_for_resource", "ResourceARN"


def _delete(target: Target, service: str, stack: str, name: str) -> None:
    client = target.client(service)
    with contextlib.suppress(Exception):
        if service == "iam":
            client.delete_role(RoleName=f"{stack}-{name}")
        else:
            client.delete_rule(Name=f"{stack}-{name}")


@pytest.mark.parametrize(
    ("service", "lister", "make"),
    [("iam", "_iam_roles", _doomed_role), ("events", "_event_rules", _doomed_rule)],
)
def test_a_resource_deleted_between_its_listing_and_its_tags_is_skipped(
    local_cloud: Target, service: str, lister: str, make: Any
) -> None:
    """The IAM role or EventBridge rule another stack's `down` deletes after the listing named
    it and before its tags are asked for: skipped, and the rest still found (a leak check of a
    killed `ci` in the clean-clone CI failed on ListRoleTags NoSuchEntity this way)."""
    from branchenv import inventory

    stack = f"int-{uuid.uuid4().hex[:8]}"
    tag_call, key = make(local_cloud, stack)
    real = local_cloud.client(service)

    class Racing:
        exceptions = real.exceptions

        def __getattr__(self, name: str) -> Any:
            if name != tag_call:
                return getattr(real, name)

            def racing(**kwargs: Any) -> Any:
                if kwargs[key].endswith(f"{stack}-doomed"):
                    _delete(local_cloud, service, stack, "doomed")  # gone once listed
                return getattr(real, tag_call)(**kwargs)

            return racing

    try:
        found = list(
            getattr(inventory, lister)(
                _ClientOverride(local_cloud, service, Racing()), "branchenv:stack", {stack}
            )
        )
        assert [r.arn.rsplit("/", 1)[1] for r in found] == [f"{stack}-kept"]
    finally:
        for name in ("doomed", "kept"):
            _delete(local_cloud, service, stack, name)


class _ClientOverride:
    """A target whose client for one service is the given object."""

    def __init__(self, target: Target, service: str, client: Any) -> None:
        self._target, self._service, self._client = target, service, client
        self.region = target.region

    def client(self, service: str) -> Any:
        return self._client if service == self._service else self._target.client(service)


@pytest.mark.parametrize(
    ("arn", "kind"),
    [
        ("arn:aws:apigateway:us-east-1::/apis/abc", "apigateway:apis"),
        ("arn:aws:apigateway:us-east-1::/apis/abc/stages/$default", "apigateway:stages"),
        ("arn:aws:apigateway:us-east-1::/restapis/abc/stages/prod", "apigateway:stages"),
    ],
)
def test_resource_type_tells_stages_from_apis(arn: str, kind: str) -> None:
    assert resource_type(arn) == kind


def test_every_taggable_type_a_materializer_creates_is_found_by_the_leak_check(
    tmp_path: Path, local_cloud: Target
) -> None:
    """A registry meta-test: the demo stack plus the coverage program hold one of every
    taggable type the inprocess engine creates; each one's ARN must be found by tag. A new
    materializer whose type the lookup misses fails here (add a lister to
    ``branchenv.inventory.SUPPLEMENTS``); a new type neither program holds fails too."""
    from branchenv.engines.inprocess.materializers.base import REGISTRY
    from tests.conftest import REPO_ROOT, inputs_for, program_at
    from tests.integration.inprocess_harness import Stack
    from tests.integration.test_inprocess_coverage import PROGRAM

    coverage = Stack(root=tmp_path / "coverage", target=local_cloud)
    coverage.write(PROGRAM)
    demo_engine = coverage.engine
    demo_program = program_at(REPO_ROOT / "infra" / "aws")
    demo = f"int-{uuid.uuid4().hex[:8]}"
    demo_md = _metadata(demo)
    try:
        held = list(coverage.up(n=uuid.uuid4().hex[:6]).resources)
        held += demo_engine.up(
            stack=demo,
            program=demo_program,
            target=local_cloud,
            metadata=demo_md,
            inputs=inputs_for(demo_md, target=local_cloud),
        ).resources
        taggable = {token for token, m in REGISTRY.items() if m.taggable}
        assert taggable <= {r.type for r in held}, "types no program here creates"
        found = {
            r.arn
            for stack in (coverage.stack, demo)
            for r in find_tagged(local_cloud, key="branchenv:stack", values={stack})
        }
        missed = {
            (r.type, r.outputs.get("arn"))
            for r in held
            if r.type in taggable and r.outputs.get("arn") not in found
        }
        assert missed == set()
    finally:
        coverage.cleanup()
        demo_engine.destroy(stack=demo, program=demo_program, target=local_cloud)
