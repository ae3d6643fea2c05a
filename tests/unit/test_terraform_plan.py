"""The terraform engine's pure readers: plan JSON -> planned steps, state -> instances and
outputs, lock times, apply summaries (table-driven; no terraform needed)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from branchenv.engines.terraform.engine import (
    _changes_nothing,
    _counts_from_summary,
    _instances,
    _outputs,
    _summaries,
    parse_lock_created,
)
from branchenv.engines.terraform.plan import (
    change_counts,
    messages_change_nothing,
    step_op,
    steps_from_messages,
    steps_from_plan,
)


@pytest.mark.parametrize(
    ("actions", "op"),
    [
        (["create"], "create"),
        (["update"], "update"),
        (["delete", "create"], "replace"),
        (["create", "delete"], "replace"),
        (["delete"], "delete"),
        (["read"], "read"),
        (["no-op"], "same"),
    ],
)
def test_actions_map_to_step_ops(actions: list[str], op: str) -> None:
    assert step_op(actions) == op


def _rc(
    address: str, type_: str, actions: list[str], before: Any, after: Any, **extra: Any
) -> dict[str, Any]:
    return {
        "address": address,
        "mode": "managed",
        "type": type_,
        "name": address.split(".")[-1],
        "change": {"actions": actions, "before": before, "after": after, **extra},
    }


PLAN = {
    "resource_changes": [
        _rc("aws_s3_bucket.fixed", "aws_s3_bucket", ["create"], None, {"bucket": "pfx-data"},
            after_unknown={"arn": True}),
        _rc("aws_s3_bucket.auto", "aws_s3_bucket", ["create"], None, {"bucket_prefix": "x-"},
            after_unknown={"bucket": True}),
        _rc("aws_sqs_queue.q", "aws_sqs_queue", ["update"],
            {"name": "pfx-q", "tags": {"a": "1"}, "tags_all": {"a": "1"}, "delay_seconds": 0},
            {"name": "pfx-q", "tags": {"a": "2"}, "tags_all": {"a": "2"}, "delay_seconds": 0}),
        _rc("aws_lambda_function.f", "aws_lambda_function", ["delete", "create"],
            {"function_name": "old", "memory_size": 128},
            {"function_name": "pfx-fn", "memory_size": 128}, after_unknown={"arn": True}),
        _rc("aws_iam_role_policy.p", "aws_iam_role_policy", ["create"], None, {"name": "inline"}),
        _rc("aws_dynamodb_table.gone", "aws_dynamodb_table", ["delete"], {"name": "pfx-t"}, None),
        {"address": "data.aws_region.current", "mode": "data", "type": "aws_region",
         "name": "current", "change": {"actions": ["read"]}},
    ]
}  # fmt: skip


def test_steps_carry_op_diff_and_the_planned_physical_name() -> None:
    steps = {s.address: s for s in steps_from_plan(PLAN)}
    assert "data.aws_region.current" not in steps  # data sources are not resources
    fixed = steps["aws_s3_bucket.fixed"]
    assert (fixed.op, fixed.physical_name, fixed.name_property) == ("create", "pfx-data", "bucket")
    auto = steps["aws_s3_bucket.auto"]
    assert auto.physical_name is None and auto.name_property is None  # the provider names it
    queue = steps["aws_sqs_queue.q"]
    assert queue.op == "update" and queue.diff == ("tags",)  # tags_all follows tags
    fn = steps["aws_lambda_function.f"]
    assert fn.op == "replace" and fn.physical_name == "pfx-fn"
    assert set(fn.diff) == {"function_name"}
    assert steps["aws_iam_role_policy.p"].physical_name is None  # scoped to its role: no check
    assert steps["aws_dynamodb_table.gone"].physical_name is None  # deleted: claims nothing
    assert change_counts(steps.values()) == {
        "create": 3, "update": 1, "replace": 1, "delete": 1, "same": 0,
    }  # fmt: skip


def test_a_plan_of_no_ops_and_unchanged_outputs_changes_nothing() -> None:
    quiet = {
        "resource_changes": [_rc("a.b", "a", ["no-op"], {}, {})],
        "output_changes": {"x": {"actions": ["no-op"]}},
    }
    assert _changes_nothing(quiet)
    assert not _changes_nothing({**quiet, "output_changes": {"x": {"actions": ["create"]}}})
    assert not _changes_nothing({"resource_changes": [_rc("a.b", "a", ["update"], {}, {})]})


STATE = {
    "version": 4,
    "outputs": {
        "url": {"value": "http://x", "type": "string"},
        "token": {"value": "s3cr3t", "type": "string", "sensitive": True},
    },
    "resources": [
        {"mode": "data", "type": "aws_region", "name": "current", "instances": [{"attributes": {}}]},
        {"mode": "managed", "type": "aws_s3_bucket", "name": "b",
         "instances": [{"attributes": {"id": "bkt", "bucket": "bkt", "tags_all": {"k": "v"}}}]},
        {"mode": "managed", "type": "aws_apigatewayv2_route", "name": "r",
         "instances": [{"index_key": "health", "attributes": {"id": "r1"}},
                       {"index_key": "get", "attributes": {"id": "r2"}}]},
        {"module": "module.net", "mode": "managed", "type": "aws_vpc", "name": "v",
         "instances": [{"index_key": 0, "attributes": {"id": "vpc-1", "password": "p"},
                        "sensitive_attributes": [[{"type": "get_attr", "value": "password"}]]}]},
    ],
}  # fmt: skip


def test_state_instances_outputs_and_summaries() -> None:
    assert sorted(_instances(STATE)) == [
        'aws_apigatewayv2_route.r["get"]',
        'aws_apigatewayv2_route.r["health"]',
        "aws_s3_bucket.b",
        "module.net.aws_vpc.v[0]",
    ]
    assert _outputs(STATE) == {"url": "http://x", "token": "[secret]"}
    summaries = {s.address: s for s in _summaries(STATE)}
    assert summaries["aws_s3_bucket.b"].id == "bkt"
    assert summaries["aws_s3_bucket.b"].outputs["tags_all"] == {"k": "v"}
    assert "password" not in summaries["module.net.aws_vpc.v[0]"].outputs  # sensitive dropped
    assert _instances(None) == {} and _outputs(None) == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01T22:50:00.123456789Z", dt.datetime(2026, 12, 1, 22, 50, tzinfo=dt.UTC)),
        ("2026-12-01T22:50:00Z", dt.datetime(2026, 12, 1, 22, 50, tzinfo=dt.UTC)),
        ("2026-12-01T23:50:00+01:00", dt.datetime(2026, 12, 1, 22, 50, tzinfo=dt.UTC)),
        ("yesterday", None),
        ("", None),
    ],
)
def test_lock_created_times(text: str, expected: dt.datetime | None) -> None:
    assert parse_lock_created(text) == expected


def test_apply_summary_counts() -> None:
    out = "...\nApply complete! Resources: 3 added, 1 changed, 2 destroyed.\n"
    assert _counts_from_summary(out) == {
        "create": 3, "update": 1, "replace": 0, "delete": 2, "same": 0,
    }  # fmt: skip
    assert _counts_from_summary("no summary")["create"] == 0


# --- plan -json's planned actions (messages as terraform 1.11 writes them, ui 1.2) -------------


def _change(address: str, action: str, **extra: Any) -> dict[str, Any]:
    rtype, name = address.split("[")[0].split(".")[-2:]
    resource = {
        "addr": address,
        "module": "",
        "resource": address,
        "implied_provider": "aws",
        "resource_type": rtype,
        "resource_name": name,
        "resource_key": None,
    }
    return {
        "@level": "info",
        "@message": f"{address}: Plan to {action}",
        "type": "planned_change",
        "change": {"resource": resource, "action": action, **extra},
    }


def _summary(add: int = 0, change: int = 0, remove: int = 0, imported: int = 0) -> dict[str, Any]:
    return {
        "@message": "Plan: ...",
        "type": "change_summary",
        "changes": {
            "add": add,
            "change": change,
            "import": imported,
            "remove": remove,
            "operation": "plan",
        },
    }


def _outputs_message(**actions: str) -> dict[str, Any]:
    return {
        "@message": f"Outputs: {len(actions)}",
        "type": "outputs",
        "outputs": {k: {"sensitive": False, "action": v} for k, v in actions.items()},
    }


VERSION = {"@message": "Terraform 1.11.4", "type": "version", "terraform": "1.11.4", "ui": "1.2"}

STATE_INSTANCES = {
    "aws_lambda_function.fn": {
        "type": "aws_lambda_function",
        "name": "fn",
        "attributes": {"function_name": "pool-1-api", "memory_size": 128},
    },
    "terraform_data.zip": {"type": "terraform_data", "name": "zip", "attributes": {"id": "x"}},
    "aws_sqs_queue.q": {"type": "aws_sqs_queue", "name": "q", "attributes": {"name": "pool-1-q"}},
    "aws_apigatewayv2_api.api": {
        "type": "aws_apigatewayv2_api",
        "name": "api",
        "attributes": {"name": "pool-1-api"},
    },
}


def test_a_changed_code_plan_is_read_from_its_planned_actions_and_the_state() -> None:
    messages = [
        VERSION,
        _change("terraform_data.zip", "replace", reason="cannot_update"),
        _change("aws_lambda_function.fn", "update"),
        _summary(add=1, change=1, remove=1),
        _outputs_message(endpoint="noop"),
    ]
    steps = steps_from_messages(messages, STATE_INSTANCES)
    assert steps is not None
    by = {s.address: s for s in steps}
    assert set(by) == set(STATE_INSTANCES)
    assert (
        by["aws_lambda_function.fn"].op,
        by["aws_lambda_function.fn"].physical_name,
        by["aws_lambda_function.fn"].name_property,
    ) == ("update", "pool-1-api", "function_name")
    assert (by["terraform_data.zip"].op, by["terraform_data.zip"].physical_name) == (
        "replace",
        None,
    )
    assert (by["aws_sqs_queue.q"].op, by["aws_sqs_queue.q"].physical_name) == ("same", "pool-1-q")
    assert by["aws_apigatewayv2_api.api"].op == "same"
    assert change_counts(steps) == {
        **dict.fromkeys(change_counts(()), 0),
        "update": 1,
        "replace": 1,
        "same": 2,
    }
    assert not messages_change_nothing(messages)


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ([_change("aws_s3_bucket.new", "create")], "a named resource created: its name is planned"),
        ([_change("aws_sqs_queue.q", "replace")], "a named resource replaced"),
        ([_change("aws_apigatewayv2_api.api", "update")], "a type that renames in place"),
        ([_change("aws_sqs_queue.other", "update")], "an address the state does not hold"),
        (
            [_change("aws_sqs_queue.q", "update", previous_resource={"addr": "aws_sqs_queue.old"})],
            "a move",
        ),
        ([_change("aws_sqs_queue.q", "move")], "an action this reader does not know"),
    ],
)
def test_plans_the_planned_actions_do_not_say_exactly_are_read_from_show_json(
    changes: list[dict[str, Any]], why: str
) -> None:
    assert steps_from_messages([VERSION, *changes, _summary(change=1)], STATE_INSTANCES) is None, (
        why
    )


def test_without_a_summary_an_import_or_a_newer_ui_the_plan_json_is_read() -> None:
    update = _change("aws_lambda_function.fn", "update")
    assert steps_from_messages([VERSION, update], STATE_INSTANCES) is None
    assert (
        steps_from_messages([VERSION, update, _summary(change=1, imported=1)], STATE_INSTANCES)
        is None
    )
    newer = {**VERSION, "ui": "2.0"}
    assert steps_from_messages([newer, update, _summary(change=1)], STATE_INSTANCES) is None
    # Unnamed types may be created: their steps carry no name either way.
    created = _change("terraform_data.more", "create")
    steps = steps_from_messages([VERSION, created, _summary(add=1)], STATE_INSTANCES)
    assert steps is not None and {"terraform_data.more"} <= {s.address for s in steps}


def test_a_kept_name_another_branch_shares_is_refused_on_the_planned_actions_path() -> None:
    from branchenv.engines.base import ProgramInputs
    from branchenv.errors import SafetyRefusal
    from branchenv.safety import check_isolation

    messages = [VERSION, _change("aws_lambda_function.fn", "update"), _summary(change=1)]
    shared = {
        **STATE_INSTANCES,
        "aws_sqs_queue.q": {"type": "aws_sqs_queue", "name": "q", "attributes": {"name": "orders"}},
    }
    steps = steps_from_messages(messages, shared)
    assert steps is not None
    inputs = ProgramInputs(prefix="pool-1", profile="test", tags={}, region="us-east-1")
    with pytest.raises(SafetyRefusal, match="'orders'"):
        check_isolation(steps, inputs)
    check_isolation(steps_from_messages(messages, STATE_INSTANCES) or (), inputs)


def test_planned_actions_say_when_a_plan_changes_nothing() -> None:
    assert messages_change_nothing([VERSION, _summary(), _outputs_message(a="noop", b="noop")])
    assert messages_change_nothing([VERSION, _summary()])  # a module without outputs
    assert not messages_change_nothing(
        [VERSION, _summary(), _outputs_message(a="noop", b="update")]
    )
    assert not messages_change_nothing([VERSION, _summary(change=1), _outputs_message(a="noop")])
    assert not messages_change_nothing([VERSION, _outputs_message(a="noop")])  # no summary: unsure
