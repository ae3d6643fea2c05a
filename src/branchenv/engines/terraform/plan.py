"""Terraform's JSON plan (``terraform show -json <planfile>``) as branchenv's planned steps.

Each managed ``resource_changes`` entry becomes a :class:`PlannedStep`: its op from the actions
(``["delete", "create"]`` and ``["create", "delete"]`` are a replace), the top-level properties
whose value changes (or becomes unknown), and the fixed physical name the module sets, read
from the planned value of the type's name argument (None when the module leaves it to the
provider, e.g. ``bucket_prefix`` or no name at all, or when it is unknown until apply).
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
