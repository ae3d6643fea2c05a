"""What exists in a target, by tag: the Resource Groups Tagging API plus, for the types it
misses, each service's own listing.

The tagging API is the one call that lists tagged resources across services, but it does not
cover everything (IAM is global and left out by some implementations, the local cloud's among
them; API Gateway v2 APIs likewise), so those are listed through their own APIs and merged in,
each ARN once. Orphan sweeps, cost estimates and tests all take their inventory from here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from branchenv.targets import Target


@dataclasses.dataclass(frozen=True)
class TaggedResource:
    """One resource: its ARN, a short type (``s3``, ``sqs``, ``iam:role``, ...) and its tags."""

    arn: str
    type: str
    tags: dict[str, str]


def resource_type(arn: str) -> str:
    """Short type of an ARN: the service, plus the resource kind where the service has several."""
    parts = arn.split(":", 5)
    service = parts[2] if len(parts) > 2 else ""
    rest = parts[5] if len(parts) > 5 else ""
    if service in ("s3", "sqs", "sns"):
        return service
    if service == "apigateway":
        # /apis/<id> is an API, /apis/<id>/stages/<name> one of its stages
        parts = rest.strip("/").split("/")
        return "apigateway:" + (parts[2] if len(parts) >= 4 else parts[0])
    kind = rest.split("/")[0].split(":")[0]
    return f"{service}:{kind}" if kind else service


def _matches(tags: dict[str, str], key: str, values: set[str] | None) -> bool:
    return key in tags and (values is None or tags[key] in values)


def _from_tagging_api(
    target: Target, key: str, values: set[str] | None
) -> Iterator[TaggedResource]:
    client = target.client("resourcegroupstaggingapi")
    tag_filter: dict[str, Any] = {"Key": key}
    if values is not None:
        tag_filter["Values"] = sorted(values)
    for page in client.get_paginator("get_resources").paginate(TagFilters=[tag_filter]):
        for item in page.get("ResourceTagMappingList", []):
            tags = {t["Key"]: t["Value"] for t in item.get("Tags", [])}
            yield TaggedResource(
                arn=item["ResourceARN"], type=resource_type(item["ResourceARN"]), tags=tags
            )


def _iam_roles(target: Target, key: str, values: set[str] | None) -> Iterator[TaggedResource]:
    iam = target.client("iam")
    for page in iam.get_paginator("list_roles").paginate():
        for role in page["Roles"]:
            try:
                listed = iam.list_role_tags(RoleName=role["RoleName"]).get("Tags", [])
            except iam.exceptions.NoSuchEntityException:
                continue  # deleted since the listing (another stack's down)
            tags = {t["Key"]: t["Value"] for t in listed}
            if _matches(tags, key, values):
                yield TaggedResource(arn=role["Arn"], type="iam:role", tags=tags)


def _http_apis(target: Target, key: str, values: set[str] | None) -> Iterator[TaggedResource]:
    apigw = target.client("apigatewayv2")
    token: str | None = None
    while True:
        page = apigw.get_apis(**({"NextToken": token} if token else {}))
        for api in page.get("Items", []):
            tags = dict(api.get("Tags") or {})
            if _matches(tags, key, values):
                arn = f"arn:aws:apigateway:{target.region}::/apis/{api['ApiId']}"
                yield TaggedResource(arn=arn, type="apigateway:apis", tags=tags)
        token = page.get("NextToken")
        if not token:
            break


def _http_api_stages(target: Target, key: str, values: set[str] | None) -> Iterator[TaggedResource]:
    """Stages carry tags of their own (the tagging API lists none): a stage can outlive what
    deleted its API's tags, and every stage of every API is looked at, tagged API or not."""
    apigw = target.client("apigatewayv2")
    token: str | None = None
    while True:
        page = apigw.get_apis(**({"NextToken": token} if token else {}))
        for api in page.get("Items", []):
            try:
                stages = apigw.get_stages(ApiId=api["ApiId"]).get("Items", [])
            except apigw.exceptions.NotFoundException:
                continue  # deleted since the listing (another stack's down): so are its stages
            for stage in stages:
                tags = dict(stage.get("Tags") or {})
                if _matches(tags, key, values):
                    arn = (
                        f"arn:aws:apigateway:{target.region}::/apis/{api['ApiId']}"
                        f"/stages/{stage['StageName']}"
                    )
                    yield TaggedResource(arn=arn, type="apigateway:stages", tags=tags)
        token = page.get("NextToken")
        if not token:
            break


def _event_rules(target: Target, key: str, values: set[str] | None) -> Iterator[TaggedResource]:
    events = target.client("events")
    for page in events.get_paginator("list_rules").paginate():
        for rule in page.get("Rules", []):
            try:
                listed = events.list_tags_for_resource(ResourceARN=rule["Arn"]).get("Tags", [])
            except events.exceptions.ResourceNotFoundException:
                continue  # deleted since the listing (another stack's down)
            tags = {t["Key"]: t["Value"] for t in listed}
            if _matches(tags, key, values):
                yield TaggedResource(arn=rule["Arn"], type="events:rule", tags=tags)


SUPPLEMENTS: dict[str, Callable[[Target, str, set[str] | None], Iterator[TaggedResource]]] = {
    "iam:role": _iam_roles,
    "apigateway:apis": _http_apis,
    "apigateway:stages": _http_api_stages,
    "events:rule": _event_rules,
}
"""Types listed through their own service API in addition to the tagging API."""


def find_tagged(
    target: Target, *, key: str, values: set[str] | None = None
) -> list[TaggedResource]:
    """Every resource carrying tag ``key`` (with one of ``values``, when given), each once."""
    seen: dict[str, TaggedResource] = {}
    for res in _from_tagging_api(target, key, values):
        seen.setdefault(res.arn, res)
    for lister in SUPPLEMENTS.values():
        for res in lister(target, key, values):
            seen.setdefault(res.arn, res)
    return sorted(seen.values(), key=lambda r: r.arn)
