"""Terraform's plan as branchenv's planned steps: from the JSON plan (``terraform show -json
<planfile>``), or, when they say enough, from the planned actions ``plan -json`` streams.

Each managed ``resource_changes`` entry becomes a :class:`PlannedStep`: its op from the actions
(``["delete", "create"]`` and ``["create", "delete"]`` are a replace), the top-level properties
whose value changes (or becomes unknown), and the fixed physical name the module sets, read
from the planned value of the type's name argument (None when the module leaves it to the
provider, e.g. ``bucket_prefix`` or no name at all, or when it is unknown until apply).

``show -json`` starts the provider once more (seconds of CPU: a fifth of a pool claim's time),
so :func:`steps_from_messages` builds the same steps from ``plan -json``'s ``planned_change``
messages and the state whenever that is exact: every resource whose name the isolation check
reads is either unchanged or updated in place with a type whose name cannot change in place
(:data:`NAME_FIXED_ON_UPDATE`), so its planned name is the one in the state. A changed pool
claim (new function code) is such a plan. Anything else (a named resource created or replaced,
an update of a type that renames in place, an address the state does not hold, an import, a plan
that changes no resource) is read from ``show -json``, as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from branchenv.engines.base import CHANGE_KINDS, PlannedStep

NAME_PROPERTIES: Mapping[str, str] = MappingProxyType(
    {
        "aws_s3_bucket": "bucket",
        "aws_sqs_queue": "name",
        "aws_dynamodb_table": "name",
        "aws_iam_role": "name",
        "aws_iam_policy": "name",
        "aws_iam_user": "name",
        "aws_lambda_function": "function_name",
        "aws_cloudwatch_log_group": "name",
        "aws_apigatewayv2_api": "name",
        "aws_sns_topic": "name",
        "aws_ssm_parameter": "name",
        "aws_secretsmanager_secret": "name",
        "aws_sfn_state_machine": "name",
        "aws_cloudwatch_metric_alarm": "alarm_name",
        "aws_cloudwatch_event_rule": "name",
        "aws_cloudwatch_event_bus": "name",
        "aws_kinesis_stream": "name",
        "aws_ecr_repository": "name",
        "aws_ecs_cluster": "name",
        "aws_elasticache_cluster": "cluster_id",
        "aws_db_instance": "identifier",
        "aws_kms_alias": "name",
    }
)
"""Per resource type, the argument holding its account-unique physical name: what the branch
isolation check reads. Types not listed carry no name of their own (or one scoped to a parent,
like an inline role policy)."""


NAME_FIXED_ON_UPDATE: frozenset[str] = frozenset(
    {
        "aws_s3_bucket",
        "aws_sqs_queue",
        "aws_dynamodb_table",
        "aws_iam_role",
        "aws_iam_policy",
        "aws_lambda_function",
        "aws_cloudwatch_log_group",
        "aws_sns_topic",
        "aws_ssm_parameter",
        "aws_secretsmanager_secret",
        "aws_sfn_state_machine",
        "aws_cloudwatch_event_rule",
        "aws_cloudwatch_event_bus",
        "aws_kinesis_stream",
        "aws_ecr_repository",
        "aws_ecs_cluster",
    }
)
"""Types of :data:`NAME_PROPERTIES` whose name argument forces a replacement when it changes
(``ForceNew`` in terraform-provider-aws): an in-place update keeps the name in the state. Left
out on purpose: ``aws_iam_user``, ``aws_apigatewayv2_api`` and ``aws_db_instance`` rename in
place, and the types not checked against the provider's source (their plans are read from
``show -json``)."""

_STREAM_OPS: Mapping[str, str] = MappingProxyType(
    {
        "noop": "same",
        "create": "create",
        "update": "update",
        "replace": "replace",
        "delete": "delete",
        "read": "read",
    }
)
"""``plan -json``'s ``planned_change`` actions, as step ops (``move``, ``import``, ``remove``
and anything later are not: such a plan is read from ``show -json``)."""


def step_op(actions: Iterable[str]) -> str:
    """The step op for terraform's ``change.actions``."""
    acts = tuple(actions)
    if acts in (("delete", "create"), ("create", "delete")):
        return "replace"
    if acts == ("create",):
        return "create"
    if acts == ("update",):
        return "update"
    if acts == ("delete",):
        return "delete"
    if acts == ("read",):
        return "read"
    return "same"  # ("no-op",) and anything terraform adds later that changes nothing


def _changed_properties(change: Mapping[str, Any]) -> tuple[str, ...]:
    """Top-level properties whose planned value differs from the current one, or becomes
    unknown (terraform's "(known after apply)")."""

    def as_dict(value: Any) -> dict[str, Any]:
        return value if isinstance(value, dict) else {}

    before, after = as_dict(change.get("before")), as_dict(change.get("after"))
    unknown = as_dict(change.get("after_unknown"))
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    changed |= {k for k, v in unknown.items() if v is True and before.get(k) is not None}
    if "tags" in changed:
        changed.discard("tags_all")  # follows tags (plus default tags): said once is enough
    return tuple(sorted(changed))


def steps_from_plan(plan: Mapping[str, Any]) -> tuple[PlannedStep, ...]:
    """Every managed resource change of the plan, in the plan's order."""
    steps = []
    for rc in plan.get("resource_changes") or []:
        if rc.get("mode") != "managed":
            continue
        change = rc.get("change") or {}
        op = step_op(change.get("actions") or ())
        name_property = NAME_PROPERTIES.get(rc.get("type", ""))
        physical = None
        after = change.get("after")
        if name_property is not None and isinstance(after, dict) and op != "delete":
            value = after.get(name_property)
            physical = value if isinstance(value, str) and value else None
        steps.append(
            PlannedStep(
                address=rc.get("address", ""),
                type=rc.get("type", ""),
                name=rc.get("name", ""),
                op=op,
                diff=_changed_properties(change) if op in ("update", "replace") else (),
                physical_name=physical,
                name_property=name_property if physical is not None else None,
            )
        )
    return tuple(steps)


def change_counts(steps: Iterable[PlannedStep]) -> dict[str, int]:
    """Counts per change kind (every key of CHANGE_KINDS present; reads are not changes)."""
    counts = dict.fromkeys(CHANGE_KINDS, 0)
    for step in steps:
        if step.op in counts:
            counts[step.op] += 1
    return counts


def steps_from_messages(
    messages: Iterable[Mapping[str, Any]], state_instances: Mapping[str, Mapping[str, Any]]
) -> tuple[PlannedStep, ...] | None:
    """The plan's steps from ``plan -json``'s messages and the state's managed instances (by
    address, each with its ``type``, ``name`` and ``attributes``), or None when they do not say
    enough (see the module docstring): then :func:`steps_from_plan` reads ``show -json``.
    Resources the plan does not mention are unchanged (``same``), with the state's name.
    Updates carry no ``diff`` (the messages name no properties)."""
    planned: dict[str, tuple[str, str, str]] = {}  # address -> (op, type, name)
    summary: Mapping[str, Any] | None = None
    for message in messages:
        kind = message.get("type")
        if kind == "version" and not str(message.get("ui", "")).startswith("1."):
            return None  # a machine-readable UI this reader was not written against
        if kind == "change_summary":
            summary = message.get("changes") or {}
        elif kind == "planned_change":
            change = message.get("change") or {}
            resource = change.get("resource") or {}
            address = resource.get("addr")
            op = _STREAM_OPS.get(str(change.get("action")))
            if not isinstance(address, str) or op is None or change.get("previous_resource"):
                return None
            rtype = str(resource.get("resource_type") or "")
            planned[address] = (op, rtype, str(resource.get("resource_name") or ""))
    if summary is None or summary.get("operation") != "plan" or summary.get("import"):
        return None
    steps = []
    for address, (op, rtype, name) in planned.items():
        if op == "read":
            continue  # a data source: no managed change (steps_from_plan skips them too)
        if op != "create" and address not in state_instances:
            return None
        if rtype in NAME_PROPERTIES and (
            op in ("create", "replace") or (op == "update" and rtype not in NAME_FIXED_ON_UPDATE)
        ):
            return None
        inst = state_instances.get(address) if op != "delete" else None
        steps.append(_state_step(address, rtype, name, op, inst))
    for address, inst in state_instances.items():
        if address not in planned:
            rtype, name = str(inst.get("type", "")), str(inst.get("name", ""))
            steps.append(_state_step(address, rtype, name, "same", inst))
    return tuple(steps)


def _state_step(
    address: str, rtype: str, name: str, op: str, inst: Mapping[str, Any] | None
) -> PlannedStep:
    """A step whose physical name is the state's (an unchanged or updated instance)."""
    name_property = NAME_PROPERTIES.get(rtype)
    physical = None
    if name_property is not None and inst is not None:
        value = (inst.get("attributes") or {}).get(name_property)
        physical = value if isinstance(value, str) and value else None
    return PlannedStep(
        address=address,
        type=rtype,
        name=name,
        op=op,
        physical_name=physical,
        name_property=name_property if physical is not None else None,
    )


def messages_change_nothing(messages: Iterable[Mapping[str, Any]]) -> bool:
    """Whether ``plan -json``'s messages say the plan changes nothing: no resource added,
    changed or removed, and every output's action ``noop`` (a module without outputs gets no
    ``outputs`` message). Unsure (no summary) counts as a change: the plan is applied."""
    summary: Mapping[str, Any] | None = None
    outputs: Mapping[str, Any] = {}
    for message in messages:
        if message.get("type") == "change_summary":
            summary = message.get("changes") or {}
        elif message.get("type") == "outputs":
            outputs = message.get("outputs") or {}
    if summary is None:
        return False
    resources_same = all(not summary.get(key) for key in ("add", "change", "remove", "import"))
    return resources_same and all(
        isinstance(o, Mapping) and o.get("action") == "noop" for o in outputs.values()
    )
