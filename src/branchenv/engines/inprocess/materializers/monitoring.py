"""Materializers for monitoring: CloudWatch metric alarms."""

from __future__ import annotations

from typing import Any

from branchenv.engines.inprocess.materializers.base import (
    Applied,
    Context,
    Materializer,
    Prior,
    as_int,
    aws_tags_list,
    found,
    register,
    require,
    tag_changes,
)

_ALARM_ARGS = {
    "comparisonOperator": "ComparisonOperator",
    "evaluationPeriods": "EvaluationPeriods",
    "metricName": "MetricName",
    "namespace": "Namespace",
    "period": "Period",
    "statistic": "Statistic",
    "extendedStatistic": "ExtendedStatistic",
    "threshold": "Threshold",
    "alarmDescription": "AlarmDescription",
    "alarmActions": "AlarmActions",
    "okActions": "OKActions",
    "insufficientDataActions": "InsufficientDataActions",
    "actionsEnabled": "ActionsEnabled",
    "treatMissingData": "TreatMissingData",
    "datapointsToAlarm": "DatapointsToAlarm",
    "unit": "Unit",
    "dimensions": "Dimensions",
}
_INTEGERS = {"evaluationPeriods", "period", "datapointsToAlarm"}


@register
class MetricAlarm(Materializer):
    """aws.cloudwatch.MetricAlarm: a single-metric alarm (operator, threshold, periods,
    statistic, dimensions, actions, missing-data treatment) and its tags."""

    type_token = "aws:cloudwatch/metricAlarm:MetricAlarm"
    name_max_len = 255
    replace_on_change = frozenset({"name"})
    honours = frozenset(_ALARM_ARGS)

    def _describe(self, ctx: Context, name: str) -> dict[str, Any] | None:
        alarms = ctx.client("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"]
        return alarms[0] if alarms else None

    def lookup(self, ctx: Context, *, inputs: dict[str, Any]) -> str | None:
        name = inputs["name"]
        return str(name) if self._describe(ctx, name) else None

    def _put(self, ctx: Context, inputs: dict[str, Any], tags: dict[str, str] | None) -> Applied:
        args: dict[str, Any] = {"AlarmName": inputs["name"]}
        for key, arg in _ALARM_ARGS.items():
            value = inputs.get(key)
            if value is None or value == "" or value == []:
                continue
            if key in _INTEGERS:
                value = as_int(value)
            elif key == "threshold":
                value = float(value)
            elif key == "dimensions":
                value = [{"Name": k, "Value": str(v)} for k, v in sorted(value.items())]
            args[arg] = value
        if tags:
            args["Tags"] = aws_tags_list(tags)
        cw = ctx.client("cloudwatch")
        cw.put_metric_alarm(**args)
        alarm = self._describe(ctx, inputs["name"]) or {}
        name = inputs["name"]
        return Applied(id=name, outputs={**inputs, "id": name, "arn": alarm.get("AlarmArn")})

    def create(self, ctx: Context, *, inputs: dict[str, Any], tags: dict[str, str]) -> Applied:
        # PutMetricAlarm creates or overwrites: check first, never adopt.
        self.fail_if_exists(ctx, inputs)
        return self._put(ctx, inputs, tags)

    def update(
        self,
        ctx: Context,
        *,
        prior: Prior,
        inputs: dict[str, Any],
        tags: dict[str, str],
        changed: frozenset[str],
    ) -> Applied:
        if changed - {"tags"}:
            applied = self._put(ctx, inputs, None)
        else:
            applied = Applied(id=prior.id, outputs={**prior.outputs, **inputs})
        if "tags" in changed:
            cw = ctx.client("cloudwatch")
            arn = applied.outputs.get("arn") or prior.outputs.get("arn")
            to_set, to_remove = tag_changes(prior.tags, tags)
            if to_set:
                cw.tag_resource(ResourceARN=arn, Tags=aws_tags_list(to_set))
            if to_remove:
                cw.untag_resource(ResourceARN=arn, TagKeys=to_remove)
        return applied

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        # DeleteAlarms succeeds for names that do not exist: ask first.
        if self._describe(ctx, id) is None:
            return False
        ctx.client("cloudwatch").delete_alarms(AlarmNames=[id])
        return True

    def exists(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        return found((), lambda: require(self._describe(ctx, id)))
