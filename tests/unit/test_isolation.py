"""Branch isolation (issue 13 item 3, the core's part): the PlanCheck every engine runs on its
plan before changing anything. A fixed physical name not derived from the stack's prefix would
be claimed by every branch's stack of the project, so one branch's `down` could delete
another's resource."""

from __future__ import annotations

import pytest

from branchenv.engines.base import PlannedStep, ProgramInputs
from branchenv.errors import EXIT_REFUSED, SafetyRefusal, UsageError
from branchenv.provision import check_allow_shared
from branchenv.safety import check_isolation, derived_from_prefix

PREFIX = "feature-x-1a2b3c4d"


def inputs(*shared: str) -> ProgramInputs:
    return ProgramInputs(
        prefix=PREFIX,
        profile="ephemeral",
        tags={},
        region="us-east-1",
        allow_shared=frozenset(shared),
    )


def step(name: str, physical: str | None, op: str = "create") -> PlannedStep:
    return PlannedStep(
        address=f"urn:pulumi:s::p::aws:s3/bucket:Bucket::{name}",
        type="aws:s3/bucket:Bucket",
        name=name,
        op=op,
        physical_name=physical,
        name_property="bucket" if physical else None,
    )


@pytest.mark.parametrize(
    ("name", "derived"),
    [
        (f"{PREFIX}-orders", True),
        (f"/aws/lambda/{PREFIX}-orders-api", True),
        (f"{PREFIX}-artifacts-123456789012", True),
        (PREFIX, True),
        (f"{PREFIX.upper()}-Orders", True),
        (f"{PREFIX}0-orders", False),  # another stack's prefix that starts the same way
        (f"x{PREFIX}-orders", False),
        ("orders", False),
        ("shared-artifacts", False),
    ],
)
def test_derived_from_prefix(name: str, derived: bool) -> None:
    assert derived_from_prefix(name, PREFIX) is derived


def test_auto_named_and_prefixed_resources_pass() -> None:
    check_isolation(
        [step("auto", None), step("mine", f"{PREFIX}-files"), step("old", "legacy", op="delete")],
        inputs(),
    )


@pytest.mark.parametrize("op", ["create", "replace", "update", "same"])
def test_a_fixed_name_every_branch_would_claim_is_refused(op: str) -> None:
    with pytest.raises(SafetyRefusal) as caught:
        check_isolation(
            [step("mine", f"{PREFIX}-ok"), step("uploads", "shared-uploads", op)], inputs()
        )
    message = str(caught.value)
    assert caught.value.exit_code == EXIT_REFUSED
    assert "'uploads'" in message and "'shared-uploads'" in message and "`bucket`" in message
    assert PREFIX in message and "--allow-shared NAME" in message
    assert "'mine'" not in message
    assert "\n" not in message


def test_allow_shared_lets_a_deliberately_shared_name_through() -> None:
    check_isolation([step("uploads", "shared-uploads")], inputs("shared-uploads"))
    with pytest.raises(SafetyRefusal, match="'other-shared'"):
        check_isolation(
            [step("uploads", "shared-uploads"), step("b", "other-shared")], inputs("shared-uploads")
        )


def test_the_prefix_rule_can_be_replaced() -> None:
    check_isolation(
        [step("uploads", "team-uploads")],
        inputs(),
        project_prefix_rule=lambda n, _p: n.startswith("team-"),
    )


@pytest.mark.parametrize("bad", ["", " ", " team-uploads", "team-uploads\n"])
def test_an_allow_shared_name_that_cannot_be_a_physical_name_is_bad_input(bad: str) -> None:
    with pytest.raises(UsageError, match="--allow-shared"):
        check_allow_shared(["team-uploads", bad])


def test_allow_shared_names_are_kept_exactly() -> None:
    assert check_allow_shared(["team-uploads", "shared-logs"]) == {"team-uploads", "shared-logs"}
