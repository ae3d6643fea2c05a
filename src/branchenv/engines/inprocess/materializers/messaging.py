"""Materializers for messaging and orchestration: SNS topics and subscriptions, EventBridge
rules and targets, Step Functions state machines."""

from __future__ import annotations

import json
from typing import Any

from branchenv.engines.inprocess.materializers.base import (
    Applied,
    Context,
    Materializer,
    Prior,
    aws_tags_list,
    error_code,
    found,
    register,
    require,
    tag_changes,
)

_SNS_MISSING = ("NotFound", "NotFoundException")
_TOPIC_ATTRS = {
    "displayName": "DisplayName",
    "policy": "Policy",
    "deliveryPolicy": "DeliveryPolicy",
    "kmsMasterKeyId": "KmsMasterKeyId",
    "contentBasedDeduplication": "ContentBasedDeduplication",
}


def _attr_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


@register
class SNSTopic(Materializer):
    """aws.sns.Topic: a standard or FIFO topic, its display name, policies, KMS key, content
    based deduplication and tags."""

    type_token = "aws:sns/topic:Topic"
    name_max_len = 256
    replace_on_change = frozenset({"name", "namePrefix", "fifoTopic"})
    honours = frozenset({"fifoTopic", *_TOPIC_ATTRS})

    def lookup(self, ctx: Context, *, inputs: dict[str, Any]) -> str | None:
        suffix = f":{inputs['name']}"
        paginator = ctx.client("sns").get_paginator("list_topics")
        for page in paginator.paginate():
            for topic in page.get("Topics", []):
                if topic["TopicArn"].endswith(suffix):
                    return str(topic["TopicArn"])
        return None

    def create(self, ctx: Context, *, inputs: dict[str, Any], tags: dict[str, str]) -> Applied:
        # CreateTopic answers an existing name with that topic's ARN: check first, never adopt.
        self.fail_if_exists(ctx, inputs)
        attrs = {
            attr: _attr_text(inputs[key])
            for key, attr in _TOPIC_ATTRS.items()
            if inputs.get(key) not in (None, "")
        }
        if inputs.get("fifoTopic"):
            attrs["FifoTopic"] = "true"
        args: dict[str, Any] = {"Name": inputs["name"], "Attributes": attrs}
        if tags:
            args["Tags"] = aws_tags_list(tags)
        arn = ctx.client("sns").create_topic(**args)["TopicArn"]
        return Applied(id=arn, outputs={**inputs, "id": arn, "arn": arn})

    def update(
        self,
        ctx: Context,
        *,
        prior: Prior,
        inputs: dict[str, Any],
        tags: dict[str, str],
        changed: frozenset[str],
    ) -> Applied:
        sns = ctx.client("sns")
        for key in sorted(changed & set(_TOPIC_ATTRS)):
            sns.set_topic_attributes(
                TopicArn=prior.id,
                AttributeName=_TOPIC_ATTRS[key],
                AttributeValue=_attr_text(inputs.get(key)),
            )
        if "tags" in changed:
            to_set, to_remove = tag_changes(prior.tags, tags)
            if to_set:
                sns.tag_resource(ResourceArn=prior.id, Tags=aws_tags_list(to_set))
            if to_remove:
                sns.untag_resource(ResourceArn=prior.id, TagKeys=to_remove)
        return Applied(id=prior.id, outputs={**inputs, "id": prior.id, "arn": prior.id})

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        # DeleteTopic succeeds on a topic that is gone: ask first, so a deletion is a real one.
        if not self.exists(ctx, id=id, outputs=outputs):
            return False
        ctx.client("sns").delete_topic(TopicArn=id)
        return True

    def exists(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        return found(_SNS_MISSING, lambda: ctx.client("sns").get_topic_attributes(TopicArn=id))


_SUBSCRIPTION_ATTRS = {
    "filterPolicy": "FilterPolicy",
    "filterPolicyScope": "FilterPolicyScope",
    "rawMessageDelivery": "RawMessageDelivery",
    "redrivePolicy": "RedrivePolicy",
    "deliveryPolicy": "DeliveryPolicy",
    "subscriptionRoleArn": "SubscriptionRoleArn",
}


@register
class SNSTopicSubscription(Materializer):
    """aws.sns.TopicSubscription: a topic's subscription (sqs, lambda, https, ...) with its
    filter policy, raw delivery, redrive and delivery policies."""

    type_token = "aws:sns/topicSubscription:TopicSubscription"
    recovered_by = "its topic, protocol and endpoint"
    name_property = None
    taggable = False
    replace_on_change = frozenset(
        {"topic", "protocol", "endpoint", "endpointAutoConfirms", "confirmationTimeoutInMinutes"}
    )
    honours = frozenset({"topic", "protocol", "endpoint", *_SUBSCRIPTION_ATTRS})

    def lookup(self, ctx: Context, *, inputs: dict[str, Any]) -> str | None:
        # Subscribe answers an existing (topic, protocol, endpoint) with that subscription.
        from botocore.exceptions import ClientError

        paginator = ctx.client("sns").get_paginator("list_subscriptions_by_topic")
        try:
            for page in paginator.paginate(TopicArn=inputs["topic"]):
                for sub in page.get("Subscriptions", []):
                    if (sub.get("Protocol"), sub.get("Endpoint")) == (
                        inputs["protocol"],
                        inputs["endpoint"],
                    ):
                        return str(sub["SubscriptionArn"])
        except ClientError as exc:
            if error_code(exc) in _SNS_MISSING:
                return None
            raise
        return None

    def create(self, ctx: Context, *, inputs: dict[str, Any], tags: dict[str, str]) -> Applied:
        self.fail_if_exists(ctx, inputs)
        attrs = {
            attr: _attr_text(inputs[key])
            for key, attr in _SUBSCRIPTION_ATTRS.items()
            if inputs.get(key) not in (None, "")
        }
        arn = ctx.client("sns").subscribe(
            TopicArn=inputs["topic"],
            Protocol=inputs["protocol"],
            Endpoint=inputs["endpoint"],
            Attributes=attrs,
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
        return Applied(id=arn, outputs={**inputs, "id": arn, "arn": arn})

    def update(
        self,
        ctx: Context,
        *,
        prior: Prior,
        inputs: dict[str, Any],
        tags: dict[str, str],
        changed: frozenset[str],
    ) -> Applied:
        sns = ctx.client("sns")
        for key in sorted(changed & set(_SUBSCRIPTION_ATTRS)):
            sns.set_subscription_attributes(
                SubscriptionArn=prior.id,
                AttributeName=_SUBSCRIPTION_ATTRS[key],
                AttributeValue=_attr_text(inputs.get(key)),
            )
        return Applied(id=prior.id, outputs={**inputs, "id": prior.id, "arn": prior.id})

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        if not self.exists(ctx, id=id, outputs=outputs):
            return False
        ctx.client("sns").unsubscribe(SubscriptionArn=id)
        return True

    def exists(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        get = ctx.client("sns").get_subscription_attributes
        return found(_SNS_MISSING, lambda: get(SubscriptionArn=id))


_EVENTS_MISSING = ("ResourceNotFoundException",)


def _bus(inputs: dict[str, Any]) -> str:
    return str(inputs.get("eventBusName") or "default")


@register
class EventRule(Materializer):
    """aws.cloudwatch.EventRule: an EventBridge rule (schedule or event pattern) on a bus, its
    state, description, role and tags."""

    type_token = "aws:cloudwatch/eventRule:EventRule"
    name_max_len = 64
    replace_on_change = frozenset({"name", "namePrefix", "eventBusName"})
    honours = frozenset(
        {"scheduleExpression", "eventPattern", "description", "roleArn", "state", "eventBusName"}
    )

    def lookup(self, ctx: Context, *, inputs: dict[str, Any]) -> str | None:
        name = inputs["name"]
        describe = ctx.client("events").describe_rule
        if found(_EVENTS_MISSING, lambda: describe(Name=name, EventBusName=_bus(inputs))):
            return self._id(inputs)
        return None

    @staticmethod
    def _id(inputs: dict[str, Any]) -> str:
        bus = _bus(inputs)
        return str(inputs["name"]) if bus == "default" else f"{bus}/{inputs['name']}"

    def _put(self, ctx: Context, inputs: dict[str, Any], tags: dict[str, str] | None) -> Applied:
        args: dict[str, Any] = {
            "Name": inputs["name"],
            "EventBusName": _bus(inputs),
            "State": inputs.get("state") or "ENABLED",
        }
        for key, arg in (
            ("scheduleExpression", "ScheduleExpression"),
            ("eventPattern", "EventPattern"),
            ("description", "Description"),
            ("roleArn", "RoleArn"),
        ):
            if inputs.get(key):
                value = inputs[key]
                args[arg] = json.dumps(value) if isinstance(value, dict) else value
        if tags:
            args["Tags"] = aws_tags_list(tags)
        arn = ctx.client("events").put_rule(**args)["RuleArn"]
        rid = self._id(inputs)
        return Applied(id=rid, outputs={**inputs, "id": rid, "arn": arn})

    def create(self, ctx: Context, *, inputs: dict[str, Any], tags: dict[str, str]) -> Applied:
        # PutRule creates or overwrites: check first, never adopt.
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
        applied = (
            self._put(ctx, inputs, None)
            if changed - {"tags"}
            else Applied(
                id=prior.id, outputs={**inputs, "id": prior.id, "arn": prior.outputs["arn"]}
            )
        )
        if "tags" in changed:
            events = ctx.client("events")
            arn = applied.outputs["arn"]
            to_set, to_remove = tag_changes(prior.tags, tags)
            if to_set:
                events.tag_resource(ResourceARN=arn, Tags=aws_tags_list(to_set))
            if to_remove:
                events.untag_resource(ResourceARN=arn, TagKeys=to_remove)
        return applied

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        if not self.exists(ctx, id=id, outputs=outputs):
            return False
        ctx.client("events").delete_rule(Name=outputs["name"], EventBusName=_bus(outputs))
        return True

    def exists(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        describe = ctx.client("events").describe_rule
        return found(
            _EVENTS_MISSING, lambda: describe(Name=outputs["name"], EventBusName=_bus(outputs))
        )


@register
class EventTarget(Materializer):
    """aws.cloudwatch.EventTarget: what an EventBridge rule invokes (an ARN), with its input,
    input path and role."""

    type_token = "aws:cloudwatch/eventTarget:EventTarget"
    recovered_by = "its rule and target id"
    name_property = "targetId"
    taggable = False
    unique_name = False  # unique per rule only
    replace_on_change = frozenset({"rule", "targetId", "eventBusName"})
    honours = frozenset({"rule", "arn", "input", "inputPath", "roleArn", "eventBusName"})

    @staticmethod
    def _targets(ctx: Context, inputs: dict[str, Any]) -> list[dict[str, Any]] | None:
        from botocore.exceptions import ClientError

        try:
            got = ctx.client("events").list_targets_by_rule(
                Rule=inputs["rule"], EventBusName=_bus(inputs)
            )
        except ClientError as exc:
            if error_code(exc) in _EVENTS_MISSING:
                return None
            raise
        targets: list[dict[str, Any]] = got.get("Targets", [])
        return targets

    def lookup(self, ctx: Context, *, inputs: dict[str, Any]) -> str | None:
        targets = self._targets(ctx, inputs) or []
        if any(t["Id"] == inputs["targetId"] for t in targets):
            return f"{inputs['rule']}-{inputs['targetId']}"
        return None

    def _put(self, ctx: Context, inputs: dict[str, Any]) -> Applied:
        target: dict[str, Any] = {"Id": inputs["targetId"], "Arn": inputs["arn"]}
        for key, arg in (("input", "Input"), ("inputPath", "InputPath"), ("roleArn", "RoleArn")):
            if inputs.get(key):
                target[arg] = inputs[key]
        result = ctx.client("events").put_targets(
            Rule=inputs["rule"], EventBusName=_bus(inputs), Targets=[target]
        )
        if result.get("FailedEntryCount"):
            entry = result["FailedEntries"][0]
            raise RuntimeError(
                f"PutTargets failed: {entry.get('ErrorCode')}: {entry.get('ErrorMessage')}"
            )
        tid = f"{inputs['rule']}-{inputs['targetId']}"
        return Applied(id=tid, outputs={**inputs, "id": tid})

    def create(self, ctx: Context, *, inputs: dict[str, Any], tags: dict[str, str]) -> Applied:
        self.fail_if_exists(ctx, inputs)
        return self._put(ctx, inputs)

    def update(
        self,
        ctx: Context,
        *,
        prior: Prior,
        inputs: dict[str, Any],
        tags: dict[str, str],
        changed: frozenset[str],
    ) -> Applied:
        return self._put(ctx, inputs)

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        if not self.exists(ctx, id=id, outputs=outputs):
            return False
        ctx.client("events").remove_targets(
            Rule=outputs["rule"], EventBusName=_bus(outputs), Ids=[outputs["targetId"]]
        )
        return True

    def exists(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        def target() -> Any:
            targets = self._targets(ctx, outputs) or []
            return require([t for t in targets if t["Id"] == outputs["targetId"]])

        return found(_EVENTS_MISSING, target)


_SFN_MISSING = ("StateMachineDoesNotExist", "ResourceNotFound")


@register
class StateMachine(Materializer):
    """aws.sfn.StateMachine: a Step Functions state machine (STANDARD or EXPRESS), its
    definition, role and tags."""

    type_token = "aws:sfn/stateMachine:StateMachine"
    name_max_len = 80
    replace_on_change = frozenset({"name", "namePrefix", "type"})
    honours = frozenset({"definition", "roleArn", "type"})

    def lookup(self, ctx: Context, *, inputs: dict[str, Any]) -> str | None:
        paginator = ctx.client("stepfunctions").get_paginator("list_state_machines")
        for page in paginator.paginate():
            for machine in page.get("stateMachines", []):
                if machine["name"] == inputs["name"]:
                    return str(machine["stateMachineArn"])
        return None

    @staticmethod
    def _definition(inputs: dict[str, Any]) -> str:
        value = inputs["definition"]
        return value if isinstance(value, str) else json.dumps(value)

    def create(self, ctx: Context, *, inputs: dict[str, Any], tags: dict[str, str]) -> Applied:
        self.fail_if_exists(ctx, inputs)
        args: dict[str, Any] = {
            "name": inputs["name"],
            "definition": self._definition(inputs),
            "roleArn": inputs["roleArn"],
            "type": inputs.get("type") or "STANDARD",
        }
        if tags:
            args["tags"] = [{"key": k, "value": v} for k, v in sorted(tags.items())]
        arn = ctx.client("stepfunctions").create_state_machine(**args)["stateMachineArn"]
        return Applied(id=arn, outputs={**inputs, "id": arn, "arn": arn})

    def update(
        self,
        ctx: Context,
        *,
        prior: Prior,
        inputs: dict[str, Any],
        tags: dict[str, str],
        changed: frozenset[str],
    ) -> Applied:
        sfn = ctx.client("stepfunctions")
        if changed & {"definition", "roleArn"}:
            sfn.update_state_machine(
                stateMachineArn=prior.id,
                definition=self._definition(inputs),
                roleArn=inputs["roleArn"],
            )
        if "tags" in changed:
            to_set, to_remove = tag_changes(prior.tags, tags)
            if to_set:
                sfn.tag_resource(
                    resourceArn=prior.id,
                    tags=[{"key": k, "value": v} for k, v in sorted(to_set.items())],
                )
            if to_remove:
                sfn.untag_resource(resourceArn=prior.id, tagKeys=to_remove)
        return Applied(id=prior.id, outputs={**inputs, "id": prior.id, "arn": prior.id})

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        # DeleteStateMachine succeeds on one that is gone: ask first.
        if not self.exists(ctx, id=id, outputs=outputs):
            return False
        ctx.client("stepfunctions").delete_state_machine(stateMachineArn=id)
        return True

    def exists(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        describe = ctx.client("stepfunctions").describe_state_machine
        return found(_SFN_MISSING, lambda: describe(stateMachineArn=id))
