"""The inprocess engine's pure decisions (engines/inprocess/plan.py), from tables of cases:
change kinds, replacement ordering, normalization, auto-names, dependency order."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from branchenv.engines.inprocess.materializers import REGISTRY
from branchenv.engines.inprocess.plan import (
    UNKNOWN,
    Step,
    autoname,
    changed_properties,
    decide,
    normalize,
    reverse_dependency_order,
    unhonoured,
)

TABLE = REGISTRY["aws:dynamodb/table:Table"]
QUEUE = REGISTRY["aws:sqs/queue:Queue"]
SUBNET = REGISTRY["aws:ec2/subnet:Subnet"]


@dataclasses.dataclass
class Entry:
    inputs: dict[str, Any] | None
    outputs: dict[str, Any] = dataclasses.field(default_factory=dict)
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    autonamed: bool = False


OLD_TABLE = Entry(inputs={"name": "t-1a2b3c4", "hashKey": "id", "billingMode": "PAY_PER_REQUEST"})
TAGS = {"branchenv:stack": "s"}


@pytest.mark.parametrize(
    ("old", "new", "tags", "autonamed", "expected"),
    [
        (None, {"name": "t"}, {}, False, Step("create")),
        (OLD_TABLE, dict(OLD_TABLE.inputs or {}), {}, True, Step("same")),
        (
            OLD_TABLE,
            {**(OLD_TABLE.inputs or {}), "billingMode": "PROVISIONED"},
            {},
            True,
            Step("update", ("billingMode",)),
        ),
        # A forcing change of an auto-named resource: create the new one first.
        (
            OLD_TABLE,
            {**(OLD_TABLE.inputs or {}), "hashKey": "pk"},
            {},
            True,
            Step("replace", ("hashKey",), delete_before_replace=False),
        ),
        # The same change with a name the program fixes: both cannot coexist.
        (
            OLD_TABLE,
            {**(OLD_TABLE.inputs or {}), "hashKey": "pk"},
            {},
            False,
            Step("replace", ("hashKey",), delete_before_replace=True),
        ),
        # A rename is a forcing change too.
        (
            OLD_TABLE,
            {**(OLD_TABLE.inputs or {}), "name": "t-v2"},
            {},
            False,
            Step("replace", ("name",), delete_before_replace=True),
        ),
        # Effective tags are the `tags` property.
        (OLD_TABLE, dict(OLD_TABLE.inputs or {}), TAGS, True, Step("update", ("tags",))),
        # A value the preview cannot know yet counts as changed.
        (
            OLD_TABLE,
            {**(OLD_TABLE.inputs or {}), "billingMode": UNKNOWN},
            {},
            True,
            Step("update", ("billingMode",)),
        ),
        # A removed input is a change.
        (
            OLD_TABLE,
            {"name": "t-1a2b3c4", "hashKey": "id"},
            {},
            True,
            Step("update", ("billingMode",)),
        ),
        # The engine's own keys never count.
        (
            OLD_TABLE,
            {**(OLD_TABLE.inputs or {}), "__clientRequestToken": "x"},
            {},
            True,
            Step("same"),
        ),
    ],
)
def test_decide(
    old: Entry | None, new: dict[str, Any], tags: dict[str, str], autonamed: bool, expected: Step
) -> None:
    assert decide(TABLE, old, new, tags, autonamed=autonamed) == expected


def test_a_type_without_a_name_replaces_create_first() -> None:
    old = Entry(inputs={"vpcId": "vpc-1", "cidrBlock": "10.0.1.0/24"})
    step = decide(SUBNET, old, {"vpcId": "vpc-2", "cidrBlock": "10.0.1.0/24"}, {}, autonamed=False)
    assert step == Step("replace", ("vpcId",), delete_before_replace=False)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"ignore_changes": ["billingMode"]}, Step("same")),
        ({"replace_on_changes": ["billingMode"]}, Step("replace", ("billingMode",), True)),
        ({"replace_on_changes": ["*"]}, Step("replace", ("billingMode",), True)),
        (
            {"replace_on_changes": ["billingMode"], "delete_before_replace": True},
            Step("replace", ("billingMode",), True),
        ),
    ],
)
def test_resource_options(options: dict[str, Any], expected: Step) -> None:
    new = {**(OLD_TABLE.inputs or {}), "billingMode": "PROVISIONED"}
    assert decide(TABLE, OLD_TABLE, new, {}, autonamed=False, **options) == expected


def test_format_1_entries_compare_their_outputs() -> None:
    old = Entry(inputs=None, outputs={"name": "q-1", "visibilityTimeoutSeconds": 30, "arn": "a"})
    assert decide(
        QUEUE, old, {"name": "q-1", "visibilityTimeoutSeconds": 30}, {}, autonamed=True
    ) == (Step("same"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (30.0, 30),
        (0.5, 0.5),
        ((1, 2.0), [1, 2]),
        ({"a": {"b": 3.0}}, {"a": {"b": 3}}),
        (True, True),
        (None, None),
    ],
)
def test_normalize(value: Any, expected: Any) -> None:
    assert normalize(value) == expected


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda kids: st.lists(kids) | st.dictionaries(st.text(), kids),
    )
)
def test_normalize_is_idempotent(value: Any) -> None:
    assert normalize(normalize(value)) == normalize(value)


def test_changed_properties_ignores_what_it_is_told() -> None:
    assert changed_properties(
        {"a": 1, "tags": {}}, {"a": 2, "tags": {"x": "y"}}, ignore={"tags"}
    ) == {"a"}


def test_autoname_has_pulumis_shape_and_keeps_fifo_suffixes() -> None:
    name = autoname("jobs", QUEUE, {})
    assert re.fullmatch(r"jobs-[0-9a-f]{7}", name)
    fifo = autoname("x" * 100, QUEUE, {"fifoQueue": True})
    assert fifo.endswith(".fifo") and len(fifo) <= QUEUE.name_max_len


def test_unhonoured_lists_only_what_the_type_does_not_act_on() -> None:
    assert unhonoured(
        QUEUE, {"name": "q", "visibilityTimeoutSeconds": 1, "tags": {}, "acl": "x"}
    ) == ["acl"]


@dataclasses.dataclass
class Node:
    urn: str
    dependencies: list[str]


def test_reverse_dependency_order_puts_dependents_first() -> None:
    a, b, c = Node("a", []), Node("b", ["a"]), Node("c", ["b", "a"])
    order = [n.urn for n in reverse_dependency_order([c, a, b])]
    assert order.index("c") < order.index("b") < order.index("a")
