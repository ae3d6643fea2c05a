"""The price table (a registry of entries: every one checked) and its Price List refresh."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from typing import Any

import pytest

from branchenv.cost.prices import (
    PriceListQuery,
    load_prices,
    price_from_items,
    price_list_fetcher,
    refresh_prices,
    table_from_json,
    table_to_json,
)
from branchenv.errors import ConfigError

TABLE = load_prices()
# Every type the demo program (infra/aws) creates, and the short types the tagging API gives.
DEMO_TYPES = [
    "aws:dynamodb/table:Table",
    "aws:sqs/queue:Queue",
    "aws:s3/bucket:Bucket",
    "aws:s3/bucketVersioning:BucketVersioning",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "aws:iam/role:Role",
    "aws:iam/rolePolicy:RolePolicy",
    "aws:cloudwatch/logGroup:LogGroup",
    "aws:lambda/function:Function",
    "aws:lambda/permission:Permission",
    "aws:apigatewayv2/api:Api",
    "aws:apigatewayv2/integration:Integration",
    "aws:apigatewayv2/route:Route",
    "aws:apigatewayv2/stage:Stage",
]
TAGGED_TYPES = [
    "dynamodb:table",
    "sqs",
    "s3",
    "iam:role",
    "logs:log-group",
    "lambda:function",
    "apigateway:apis",
]
REQUEST_PRICED = ["dynamodb", "sqs", "s3", "lambda", "apigateway"]


NOT_PRICED_YET = {
    # Standing charges known (a secret $0.40/month, an alarm $0.10/month) but no Price List
    # query verified for them yet: unpriced, never guessed (cost shows them as unpriced).
    "aws:sns/topic:Topic",
    "aws:secretsmanager/secret:Secret",
    "aws:cloudwatch/metricAlarm:MetricAlarm",
    "aws:sfn/stateMachine:StateMachine",
}


def test_every_inprocess_type_is_priced_or_knowingly_unpriced() -> None:
    from branchenv.engines.inprocess.materializers import REGISTRY

    assert set(DEMO_TYPES) <= set(REGISTRY)
    for token in REGISTRY:
        if token in NOT_PRICED_YET:
            assert TABLE.hourly(token, "us-east-1") is None, f"{token} is priced now: drop it"
        else:
            assert TABLE.hourly(token, "us-east-1") is not None, f"{token} has no price entry"


@pytest.mark.parametrize("type_", DEMO_TYPES + TAGGED_TYPES)
@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_every_demo_type_is_priced_in_both_regions(type_: str, region: str) -> None:
    assert TABLE.lookup(type_) is not None, f"{type_} has no price entry"
    assert TABLE.hourly(type_, region) is not None


@pytest.mark.parametrize("entry", TABLE.entries, ids=lambda e: e.type)
def test_every_entry_has_source_date_and_reason_or_assumptions(entry: Any) -> None:
    assert re.fullmatch(r"https://[a-z0-9.\-]+/\S*", entry.source)
    dt.date.fromisoformat(entry.date)
    if entry.free is not None:
        assert entry.free.strip() and not entry.dimensions
        assert TABLE.hourly(entry.type, "us-east-1") == 0
        return
    assert entry.dimensions
    for dim in entry.dimensions:
        assert re.search(r"\d", dim.assumption), dim.assumption  # a stated quantity
        assert {"us-east-1", "eu-west-1"} <= set(dim.prices)
        assert dim.price_list is not None and dim.price_list.service_code
        assert TABLE.hourly(entry.type, "us-east-1") > 0


@pytest.mark.parametrize("short", REQUEST_PRICED)
def test_request_priced_services_state_a_per_hour_request_assumption(short: str) -> None:
    entry = next(e for e in TABLE.entries if any(a.startswith(short) for a in e.aliases))
    assert any("/hour" in d.assumption for d in entry.dimensions)


@pytest.mark.parametrize(
    "type_, region",
    [
        ("aws:ec2/instance:Instance", "us-east-1"),  # no entry at all
        ("kinesis:stream", "us-east-1"),
        ("aws:sqs/queue:Queue", "ap-south-2"),  # an entry, but not for that region
    ],
)
def test_unknown_types_and_regions_are_unpriced_not_zero(type_: str, region: str) -> None:
    assert TABLE.hourly(type_, region) is None


def test_json_round_trip_is_identity() -> None:
    again = table_from_json(json.loads(json.dumps(table_to_json(TABLE))))
    assert again.entries == TABLE.entries
    assert again.hours_per_month == TABLE.hours_per_month == 730


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.update(schema=9), "schema"),
        (lambda d: d["entries"][0]["dimensions"][0].update(per_hour="lots"), "not a number"),
        (lambda d: d["entries"][0]["dimensions"][0]["prices"].update({"us-east-1": "-1"}), ">= 0"),
        (lambda d: d["entries"][0].pop("dimensions"), "either dimensions or a `free` reason"),
        (lambda d: d["entries"].append(dict(d["entries"][0])), "appears twice"),
        (lambda d: d["entries"][0].pop("source"), "malformed"),
    ],
)
def test_malformed_tables_are_config_errors(mutate: Any, message: str) -> None:
    data = table_to_json(TABLE)
    mutate(data)
    with pytest.raises(ConfigError, match=re.escape(message)):
        table_from_json(data)


# --- Price List API responses, recorded in AWS's shape (each item a JSON *string*) -----------


def item(usagetype: str, dims: list[tuple[str, str, str, str]], **attrs: str) -> str:
    """One PriceList entry: product attributes and OnDemand price dimensions
    (unit, beginRange, endRange, USD)."""
    return json.dumps(
        {
            "product": {
                "productFamily": attrs.pop("productFamily", "API Request"),
                "attributes": {"usagetype": usagetype, **attrs},
                "sku": "SKU" + usagetype,
            },
            "serviceCode": "X",
            "terms": {
                "OnDemand": {
                    "SKU.JRTCKXETXF": {
                        "priceDimensions": {
                            f"SKU.JRTCKXETXF.{i}": {
                                "unit": unit,
                                "beginRange": begin,
                                "endRange": end,
                                "pricePerUnit": {"USD": usd},
                                "description": "recorded",
                            }
                            for i, (unit, begin, end, usd) in enumerate(dims)
                        },
                        "sku": "SKU",
                        "effectiveDate": "2024-11-01T00:00:00Z",
                    }
                }
            },
            "version": "20241101",
            "publicationDate": "2024-11-01T00:00:00Z",
        }
    )


SQS_ITEMS = [  # the first million requests a month are free: the paid tier is taken
    item(
        "Requests-Tier1",
        [
            ("Requests", "0", "1000000", "0.0000000000"),
            ("Requests", "100000000000", "Inf", "0.0000003200"),
            ("Requests", "1000000", "100000000000", "0.0000004000"),
        ],
    )
]
LAMBDA_ITEMS = [
    item("USE1-Lambda-GB-Second-ARM", [("Lambda-GB-Second", "0", "Inf", "0.0000133334")]),
    item(
        "USE1-Lambda-GB-Second",
        [
            ("Lambda-GB-Second", "0", "6000000000", "0.0000166667"),
            ("Lambda-GB-Second", "6000000000", "15000000000", "0.0000150000"),
        ],
    ),
]


@pytest.mark.parametrize(
    "items, query, expected",
    [
        (SQS_ITEMS, PriceListQuery("AWSQueueService", {}, "Requests"), Decimal("0.0000004")),
        (
            LAMBDA_ITEMS,
            PriceListQuery("AWSLambda", {}, "Lambda-GB-Second", "Lambda-GB-Second"),
            Decimal("0.0000166667"),
        ),
        (
            LAMBDA_ITEMS,
            PriceListQuery("AWSLambda", {}, "Lambda-GB-Second", "Lambda-GB-Second-ARM"),
            Decimal("0.0000133334"),
        ),
        (SQS_ITEMS, PriceListQuery("AWSQueueService", {}, "GB-Mo"), None),  # unit mismatch
        ([], PriceListQuery("AWSQueueService", {}, "Requests"), None),
    ],
)
def test_price_from_recorded_price_list_items(
    items: list[str], query: PriceListQuery, expected: Decimal | None
) -> None:
    assert price_from_items(items, query) == expected


def test_refresh_updates_keeps_and_reports() -> None:
    calls: list[tuple[str, list[dict[str, str]]]] = []

    def fetch(service: str, filters: Any) -> list[str]:
        calls.append((service, list(filters)))
        region = next(f["Value"] for f in filters if f["Field"] == "regionCode")
        if service == "AWSQueueService" and region == "us-east-1":
            return [item("Requests-Tier1", [("Requests", "1000000", "Inf", "0.00000045")])]
        if service == "AWSQueueService":
            return SQS_ITEMS  # eu-west-1: same price as the table
        return []  # nothing for every other service

    result = refresh_prices(
        TABLE, regions=["us-east-1", "eu-west-1"], fetch=fetch, today=dt.date(2030, 1, 2)
    )
    sqs = result.table.lookup("sqs")
    assert sqs is not None
    assert sqs.dimensions[0].prices["us-east-1"] == Decimal("0.00000045")
    assert sqs.date == "2030-01-02"
    assert result.updated == ("aws:sqs/queue:Queue requests us-east-1: 0.0000004 -> 0.00000045",)
    assert result.unchanged == ("aws:sqs/queue:Queue requests eu-west-1",)
    # Every other dimension kept its figure and is reported, not silently dropped.
    ddb = result.table.lookup("dynamodb:table")
    assert ddb == TABLE.lookup("dynamodb:table")
    priced_dims = sum(len(e.dimensions) for e in TABLE.entries)
    assert len(result.problems) == 2 * (priced_dims - 1)
    # Each query is filtered by region and by the entry's own attributes.
    sqs_call = next(c for c in calls if c[0] == "AWSQueueService")
    assert {"Type": "TERM_MATCH", "Field": "queueType", "Value": "Standard"} in sqs_call[1]


class FakePricingClient:
    """Stands in for boto3's ``pricing`` client: two pages of recorded PriceList strings."""

    def __init__(self, pages: list[list[str]]) -> None:
        self.pages = pages
        self.requests: list[dict[str, Any]] = []

    def get_paginator(self, name: str) -> FakePricingClient:
        assert name == "get_products"
        return self

    def paginate(self, **request: Any) -> list[dict[str, Any]]:
        self.requests.append(request)
        return [{"PriceList": page, "FormatVersion": "aws_v1"} for page in self.pages]


def test_price_list_fetcher_follows_every_page() -> None:
    client = FakePricingClient([LAMBDA_ITEMS[:1], LAMBDA_ITEMS[1:]])
    fetch = price_list_fetcher(client)
    filters = [{"Type": "TERM_MATCH", "Field": "regionCode", "Value": "us-east-1"}]
    assert list(fetch("AWSLambda", filters)) == LAMBDA_ITEMS
    assert client.requests == [
        {"ServiceCode": "AWSLambda", "Filters": filters, "FormatVersion": "aws_v1"}
    ]


def test_several_products_with_different_prices_are_ambiguous_never_the_cheapest() -> None:
    from branchenv.cost.prices import AmbiguousPrice

    query = PriceListQuery("AmazonS3", {}, "GB-Mo", "TimedStorage-ByteHrs")
    standard = item("USE1-TimedStorage-ByteHrs", [("GB-Mo", "0", "Inf", "0.023")])
    glacier = item("USE1-TimedStorage-GlacierByteHrs", [("GB-Mo", "0", "Inf", "0.004")])
    other = item("USE1-X-TimedStorage-ByteHrs", [("GB-Mo", "0", "Inf", "0.0125")])
    assert price_from_items([standard, glacier], query) == Decimal("0.023")  # suffix filters
    with pytest.raises(AmbiguousPrice, match="2 products match"):
        price_from_items([standard, other], query)
    same = item("USE1-Y-TimedStorage-ByteHrs", [("GB-Mo", "0", "Inf", "0.023")])
    assert price_from_items([standard, same], query) == Decimal("0.023")


def _terraform_demo_types() -> list[str]:
    """Every resource type the Terraform demo module (infra/terraform/aws) declares."""
    from pathlib import Path

    import hcl2

    module = Path(__file__).resolve().parents[2] / "infra" / "terraform" / "aws"
    found: set[str] = set()
    for path in module.glob("*.tf"):
        for block in hcl2.load(path.open()).get("resource", []):
            found.update(key.strip('"') for key in block)
    return sorted(found)


@pytest.mark.parametrize("type_", _terraform_demo_types())
@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_every_terraform_demo_type_is_priced_in_both_regions(type_: str, region: str) -> None:
    assert TABLE.lookup(type_) is not None, f"{type_} has no price entry"
    assert TABLE.hourly(type_, region) is not None


def test_a_terraform_function_is_priced_by_its_memory_size() -> None:
    small = TABLE.hourly("aws_lambda_function", "us-east-1", {"memory_size": 128})
    large = TABLE.hourly("aws_lambda_function", "us-east-1", {"memory_size": 1024})
    pulumi_large = TABLE.hourly("aws:lambda/function:Function", "us-east-1", {"memorySize": 1024})
    assert small is not None and large is not None and large > small
    assert large == pulumi_large
