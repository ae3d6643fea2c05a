"""Budget gates, report grouping and formats, and the Cost Explorer page arithmetic."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import pytest

from branchenv.cost.actual import sum_cost_pages
from branchenv.cost.budget import budget_violations, check_budget
from branchenv.cost.estimate import StackCost
from branchenv.cost.report import build_report, render, table_rows
from branchenv.errors import BudgetExceeded


def cost(
    stack: str,
    hourly: str,
    so_far: str = "0",
    projected: str = "0",
    *,
    branch: str | None = None,
    owner: str | None = None,
    unpriced: tuple[str, ...] = (),
    available: bool = True,
    pool_idle: bool = False,
) -> StackCost:
    return StackCost(
        stack=stack,
        branch=branch,
        owner=owner,
        hourly=Decimal(hourly),
        so_far=Decimal(so_far),
        projected_to_expiry=Decimal(projected),
        hours_alive=Decimal(1),
        hours_to_expiry=Decimal(1),
        unpriced_types=unpriced,
        lines=(),
        resource_count=1,
        inventory_available=available,
        note=None if available else "no inventory",
        pool_idle=pool_idle,
    )


@pytest.mark.parametrize(
    "hourly, projected, max_hourly, max_total, expected",
    [
        ("0.01", "0.24", None, None, []),
        ("0.01", "0.24", "0.01", "0.24", []),  # equal is within budget
        ("0.0101", "0.24", "0.01", None, [("max_hourly", "0.01", "0.0101")]),
        ("0.01", "0.25", None, "0.24", [("max_total", "0.24", "0.25")]),
        ("1", "30", "0.5", "10", [("max_hourly", "0.5", "1"), ("max_total", "10", "30")]),
    ],
)
def test_budget_violations_table(
    hourly: str,
    projected: str,
    max_hourly: str | None,
    max_total: str | None,
    expected: list[tuple[str, str, str]],
) -> None:
    found = budget_violations(
        [cost("s", hourly, projected=projected)],
        max_hourly=Decimal(max_hourly) if max_hourly else None,
        max_total=Decimal(max_total) if max_total else None,
    )
    assert [(v.limit_name, str(v.limit), str(v.value)) for v in found] == expected


def test_check_budget_message_names_stack_limit_and_value() -> None:
    with pytest.raises(BudgetExceeded) as info:
        check_budget(
            cost("feature-x-1a2b", "0.0123", projected="0.3"),
            max_hourly=Decimal("0.01"),
            max_total=None,
        )
    msg = str(info.value)
    assert info.value.exit_code == 1
    assert "stack feature-x-1a2b" in msg
    assert "$0.0123/h" in msg and "--max-hourly $0.0100/h" in msg
    assert "\n" not in msg


def test_check_budget_counts_every_stack_over_and_flags_lower_bounds() -> None:
    costs = [cost("a", "1", projected="5", unpriced=("x:y",)), cost("b", "2", projected="9")]
    with pytest.raises(BudgetExceeded, match=r"stack a: projected cost .*at least.*1 more"):
        check_budget(costs, max_hourly=None, max_total=Decimal("4"))
    check_budget(costs, max_hourly=Decimal("2"), max_total=Decimal("9"))  # no raise


COSTS = [
    cost("s1", "0.01", "0.10", "0.24", branch="feature/a", owner="ana"),
    cost("s2", "0.02", "0.40", "0.48", branch="feature/b", owner="ana"),
    cost("s3", "0.005", "0.05", "0.12", branch="feature/c", owner="bo", unpriced=("x:y",)),
    cost("s4", "0", branch="feature/d", owner=None, available=False),
]


@pytest.mark.parametrize(
    "by, expected",
    [
        (
            "stack",
            [("s2", 1, "0.02"), ("s1", 1, "0.01"), ("s3", 1, "0.005"), ("s4", 1, "0")],
        ),
        (
            "owner",
            [("ana", 2, "0.03"), ("bo", 1, "0.005"), ("(unknown)", 1, "0")],
        ),
        (
            "branch",
            [
                ("feature/b", 1, "0.02"),
                ("feature/a", 1, "0.01"),
                ("feature/c", 1, "0.005"),
                ("feature/d", 1, "0"),
            ],
        ),
    ],
)
def test_report_groups_and_totals(by: str, expected: list[tuple[str, int, str]]) -> None:
    report = build_report(COSTS, by=by)
    assert [(r.key, r.stacks, str(r.hourly)) for r in report.rows] == expected
    assert report.totals.hourly == Decimal("0.035")
    assert report.totals.so_far == Decimal("0.55")
    assert report.totals.projected_to_expiry == Decimal("0.84")
    assert report.totals.unpriced_types == ("x:y",)
    assert report.totals.unavailable == 1
    assert any("s4: no inventory" in n for n in report.notes)


def test_report_formats_agree() -> None:
    report = build_report(COSTS, by="owner", actuals={"s1": Decimal("0.07"), "s3": Decimal("1")})
    data = json.loads(render(report, "json"))
    assert data["totals"]["actual"] == "1.07"
    assert [r["owner"] for r in data["rows"]] == ["ana", "bo", "(unknown)"]
    assert data["rows"][0]["so_far"] == "0.50"
    rows = list(csv.reader(io.StringIO(render(report, "csv"))))
    assert rows[0] == [
        "owner",
        "stacks",
        "hourly",
        "so_far",
        "projected_to_expiry",
        "actual",
        "unpriced",
    ]
    assert rows[1] == ["ana", "2", "0.0300", "0.50", "0.72", "0.07", ""]
    assert rows[-1][:6] == ["total", "4", "0.0350", "0.55", "0.84", "1.07"]
    assert rows[1:] == table_rows(report)
    md = render(report, "markdown")
    lines = md.splitlines()
    assert lines[0].startswith("### branchenv cost by owner")
    assert (
        lines[2] == "| owner | stacks | hourly | so far | projected to expiry | actual | unpriced |"
    )
    assert (
        "| **total** | 4 | 0.0350 | 0.55 | 0.84 | 1.07 | x:y, 1 stack without inventory |" in lines
    )


def test_idle_pool_stacks_get_their_own_row_after_the_totals() -> None:
    costs = [
        cost("feature-a", "0.02", "0.10", "0.20", branch="feature/a"),
        cost("pool-1", "0.0095", "0.30", "1.50", branch="pool/p", pool_idle=True),
        cost("pool-2", "0.0095", "0.30", "1.50", branch="pool/p", pool_idle=True),
        cost("pool-3", "0.0095", "0.05", "0.10", branch="feature/b"),  # claimed: not idle
    ]
    report = build_report(costs, by="stack")
    assert report.idle_pool is not None
    idle = report.idle_pool
    assert (idle.key, idle.stacks, idle.hourly) == ("of which idle pool", 2, Decimal("0.019"))
    assert (idle.so_far, idle.projected_to_expiry) == (Decimal("0.60"), Decimal("3.00"))
    assert report.totals.stacks == 4  # the idle stacks stay counted in the totals
    assert table_rows(report)[-1][:3] == ["of which idle pool", "2", "0.0190"]
    assert table_rows(report)[-2][0] == "total"
    data = json.loads(render(report, "json"))
    assert data["idle_pool"]["stacks"] == 2 and Decimal(data["idle_pool"]["hourly"]) == Decimal(
        "0.019"
    )
    assert "| _of which idle pool_ | 2 | 0.0190 |" in render(report, "markdown")
    assert list(csv.reader(io.StringIO(render(report, "csv"))))[-1][0] == "of which idle pool"


def test_no_idle_pool_row_without_free_pool_stacks() -> None:
    report = build_report(COSTS, by="stack")
    assert report.idle_pool is None
    assert table_rows(report)[-1][0] == "total"
    assert json.loads(render(report, "json"))["idle_pool"] is None


def test_cost_explorer_pages_sum_per_stack() -> None:
    def group(stack: str, amount: str) -> dict[str, object]:
        return {
            "Keys": [f"branchenv:stack${stack}"],
            "Metrics": {"UnblendedCost": {"Amount": amount, "Unit": "USD"}},
        }

    pages = [
        {
            "ResultsByTime": [{"Groups": [group("a", "0.10"), group("", "5")], "Estimated": False}],
            "NextPageToken": "t1",
        },
        {
            "ResultsByTime": [
                {"Groups": [group("a", "0.0200000001"), group("b", "3")], "Estimated": True}
            ]
        },
    ]
    sums = sum_cost_pages(pages)
    assert sums.by_stack == {"a": Decimal("0.1200000001"), "b": Decimal("3")}
    assert sums.untagged == Decimal("5")
    assert sums.estimated and sums.pages == 2


def test_a_stack_without_cost_explorer_figures_is_na_not_zero() -> None:
    costs = [cost("a", hourly="0.01"), cost("b", hourly="0.02")]
    report = build_report(costs, by="stack", actuals={"a": Decimal("1.50")})
    rows = {r.key: r for r in report.rows}
    assert rows["a"].actual == Decimal("1.50")
    assert rows["b"].actual is None  # unknown, not $0
    assert report.totals.actual == Decimal("1.50")
    assert any("no Cost Explorer figures for b" in n for n in report.notes)
    assert "n/a" in [cell for row in table_rows(report) for cell in row]
    nothing = build_report(costs, by="stack", actuals={})
    assert nothing.totals.actual is None


def test_grouping_by_account_and_region() -> None:
    import dataclasses

    costs = [
        dataclasses.replace(cost("a1", "0.5"), account="111111111111", region="us-east-1"),
        dataclasses.replace(cost("a2", "0.25"), account="111111111111", region="eu-west-1"),
        dataclasses.replace(cost("b1", "1"), account="222222222222", region="us-east-1"),
        cost("old", "0.125"),  # made before stacks recorded where they live
    ]
    by_account = build_report(costs, by="account")
    assert [(r.key, r.stacks, r.hourly) for r in by_account.rows] == [
        ("222222222222", 1, Decimal("1")),
        ("111111111111", 2, Decimal("0.75")),
        ("(unknown)", 1, Decimal("0.125")),
    ]
    by_region = build_report(costs, by="region")
    assert [r.key for r in by_region.rows] == [
        "222222222222/us-east-1",
        "111111111111/us-east-1",
        "111111111111/eu-west-1",
        "(unknown)/(unknown)",
    ]
