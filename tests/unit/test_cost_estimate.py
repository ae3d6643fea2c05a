"""Cost arithmetic: a seeded inventory against figures computed by hand."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from branchenv.cost.estimate import (
    AMOUNT_QUANTUM,
    InventoryItem,
    StackInventory,
    estimate_stack,
    hours_between,
)
from branchenv.cost.prices import load_prices

PRICES = load_prices()
CREATED = dt.datetime(2025, 3, 1, 8, 0, tzinfo=dt.UTC)


def demo_inventory(region: str, *, memory_mb: int | None = 256) -> tuple[InventoryItem, ...]:
    """The 18 resources of infra/aws (ephemeral profile: a 256 MB function)."""
    fn_outputs = {"memorySize": memory_mb} if memory_mb is not None else {}
    types = [
        "aws:dynamodb/table:Table",
        "aws:sqs/queue:Queue",
        "aws:sqs/queue:Queue",
        "aws:s3/bucket:Bucket",
        "aws:s3/bucketVersioning:BucketVersioning",
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "aws:cloudwatch/logGroup:LogGroup",
        "aws:iam/role:Role",
        "aws:iam/rolePolicy:RolePolicy",
        "aws:lambda/permission:Permission",
        "aws:apigatewayv2/api:Api",
        "aws:apigatewayv2/integration:Integration",
        "aws:apigatewayv2/route:Route",
        "aws:apigatewayv2/route:Route",
        "aws:apigatewayv2/route:Route",
        "aws:apigatewayv2/stage:Stage",
    ]
    items = [InventoryItem(type=t, region=region) for t in types]
    items.append(InventoryItem("aws:lambda/function:Function", region, "fn", fn_outputs))
    return tuple(items)


# Hand computation, us-east-1, USD per hour (quantity/hour x unit price; monthly prices / 730):
#   dynamodb  writes   1000 x 0.000000625                 = 0.000625
#             reads    1000 x 0.000000125                 = 0.000125
#             storage  1 GB x 0.25 / 730                  = 0.25/730
#   sqs x2    1000 x 0.0000004 = 0.0004 each              = 0.0008
#   s3        storage  1 GB x 0.023 / 730                 = 0.023/730
#             PUT      100 x 0.000005                     = 0.0005
#             GET      1000 x 0.0000004                   = 0.0004
#   logs      ingest   0.01 GB x 0.50                     = 0.005
#             storage  1 GB x 0.03 / 730                  = 0.03/730
#   lambda    requests 1000 x 0.0000002                   = 0.0002
#             compute  100 GB-s x (256/1024) x 0.0000166667 = 0.0004166675
#   api       1000 x 0.000001                             = 0.001
#   11 free resources (iam role + policy, 3 bucket settings, permission, integration,
#   3 routes, stage)                                       = 0
#   hourly = 0.0090666675 + 0.303/730
US_HOURLY = Fraction("0.0090666675") + Fraction("0.303") / 730
# eu-west-1: dynamodb 0.0007063 + 0.0001413 + 0.283/730; sqs 0.0008; s3 0.023/730 + 0.0009;
#   logs 0.0057 + 0.03/730; lambda 0.0006166675; api 0.00111
#   = 0.0008476 + 0.0008 + 0.0009 + 0.0057 + 0.0006166675 + 0.00111 = 0.0099742675, + 0.336/730
EU_HOURLY = Fraction("0.0099742675") + Fraction("0.336") / 730


def q(value: Fraction) -> Decimal:
    """The exact rational figure, kept to 20 places like the estimate (ROUND_HALF_EVEN)."""
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(AMOUNT_QUANTUM)


@pytest.mark.parametrize(
    "region, hourly, alive, ttl",
    [
        ("us-east-1", US_HOURLY, dt.timedelta(hours=10), dt.timedelta(hours=24)),
        ("eu-west-1", EU_HOURLY, dt.timedelta(hours=10), dt.timedelta(hours=24)),
        ("us-east-1", US_HOURLY, dt.timedelta(minutes=90), dt.timedelta(hours=2)),
        ("us-east-1", US_HOURLY, dt.timedelta(hours=1, seconds=37), dt.timedelta(hours=8)),
        # expired an hour ago: projection to expiry is the cost so far
        ("us-east-1", US_HOURLY, dt.timedelta(hours=25), dt.timedelta(hours=24)),
    ],
)
def test_seeded_inventory_gives_the_hand_computed_figures(
    region: str, hourly: Fraction, alive: dt.timedelta, ttl: dt.timedelta
) -> None:
    inv = StackInventory(
        stack="feature-x-1a2b",
        items=demo_inventory(region),
        branch="feature/x",
        owner="ana",
        created_at=CREATED,
        expires_at=CREATED + ttl,
    )
    cost = estimate_stack(inv, PRICES, now=CREATED + alive)
    hours_alive = Fraction(alive // dt.timedelta(microseconds=1), 3_600_000_000)
    hours_left = max(Fraction((ttl - alive) // dt.timedelta(microseconds=1), 3_600_000_000), 0)
    assert cost.hourly == q(hourly)
    assert cost.so_far == q(hourly * hours_alive)
    assert cost.projected_to_expiry == q(hourly * (hours_alive + hours_left))
    assert cost.hours_alive == q(hours_alive)
    assert cost.unpriced_types == () and cost.complete
    assert cost.resource_count == 18
    assert (cost.stack, cost.branch, cost.owner) == ("feature-x-1a2b", "feature/x", "ana")


def test_hand_figures_spelled_out() -> None:
    """The first case above in plain numbers, as a reader checks them: 10 h alive of 24."""
    inv = StackInventory(
        "s",
        demo_inventory("us-east-1"),
        created_at=CREATED,
        expires_at=CREATED + dt.timedelta(hours=24),
    )
    cost = estimate_stack(inv, PRICES, now=CREATED + dt.timedelta(hours=10))
    assert cost.hourly.quantize(Decimal("1e-10")) == Decimal(
        "0.0094817360"
    )  # 0.009066... + 0.000415...
    assert cost.so_far.quantize(Decimal("0.01")) == Decimal("0.09")
    assert cost.projected_to_expiry.quantize(Decimal("0.01")) == Decimal("0.23")


def test_lambda_memory_scales_compute_and_defaults_to_128_mb() -> None:
    def hourly(memory: int | None) -> Decimal:
        items = (
            InventoryItem(
                "aws:lambda/function:Function",
                "us-east-1",
                "f",
                {"memorySize": memory} if memory is not None else {},
            ),
        )
        return estimate_stack(StackInventory("s", items), PRICES, now=CREATED).hourly

    # requests 0.0002 + compute 100 x (MB/1024) x 0.0000166667
    assert hourly(1024) == Decimal("0.0002") + Decimal("0.00166667")
    assert hourly(None) == Decimal("0.0002") + Decimal("0.00166667") / 8
    assert hourly(128) == hourly(None)


def test_unknown_types_are_listed_unpriced_and_left_out() -> None:
    items = (
        InventoryItem("aws:sqs/queue:Queue", "us-east-1"),
        InventoryItem("aws:ec2/instance:Instance", "us-east-1"),
        InventoryItem("aws:sqs/queue:Queue", "ap-south-2"),
    )
    cost = estimate_stack(StackInventory("s", items), PRICES, now=CREATED)
    assert cost.hourly == Decimal("0.0004")
    assert cost.unpriced_types == ("aws:ec2/instance:Instance", "aws:sqs/queue:Queue@ap-south-2")
    assert not cost.complete
    unpriced_lines = [line for line in cost.lines if line.hourly is None]
    assert len(unpriced_lines) == 2


def test_unavailable_inventory_is_unknown_not_zero() -> None:
    inv = StackInventory("s", (), available=False, note="the pulumi engine offers no inventory")
    cost = estimate_stack(inv, PRICES, now=CREATED)
    assert not cost.inventory_available and not cost.complete
    assert cost.note == "the pulumi engine offers no inventory"


def test_tagged_short_types_price_like_their_tokens() -> None:
    tokens = estimate_stack(
        StackInventory(
            "s",
            tuple(
                i
                for i in demo_inventory("eu-west-1", memory_mb=None)
                if i.type != "aws:apigatewayv2/route:Route"
            ),
        ),
        PRICES,
        now=CREATED,
    )
    shorts = [
        ("dynamodb:table", 1),
        ("sqs", 2),
        ("s3", 1),
        ("logs:log-group", 1),
        ("lambda:function", 1),
        ("apigateway:apis", 1),
        ("iam:role", 1),
    ]
    items = tuple(InventoryItem(t, "eu-west-1") for t, n in shorts for _ in range(n))
    assert estimate_stack(StackInventory("s", items), PRICES, now=CREATED).hourly == tokens.hourly


@given(
    seconds=st.integers(min_value=0, max_value=10**9),
    micro=st.integers(min_value=0, max_value=999_999),
)
def test_hours_between_is_exact_to_60_digits(seconds: int, micro: int) -> None:
    end = CREATED + dt.timedelta(seconds=seconds, microseconds=micro)
    exact = Fraction(seconds * 1_000_000 + micro, 3_600_000_000)
    got = hours_between(CREATED, end)
    assert abs(Fraction(got) - exact) < Fraction(1, 10**50)
    assert hours_between(end, CREATED) == (0 if end > CREATED else got)


@given(st.lists(st.sampled_from(["sqs", "s3", "dynamodb:table", "iam:role", "x:y"]), max_size=30))
def test_hourly_is_order_independent_and_additive(types: list[str]) -> None:
    items = tuple(InventoryItem(t, "us-east-1") for t in types)
    forward = estimate_stack(StackInventory("s", items), PRICES, now=CREATED)
    backward = estimate_stack(StackInventory("s", items[::-1]), PRICES, now=CREATED)
    assert forward == dataclasses.replace(backward)
    assert forward.hourly >= 0
