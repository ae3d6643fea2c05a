"""Actual cost from AWS Cost Explorer, per stack, by the ``branchenv:stack`` cost-allocation tag.

``get_cost_and_usage`` grouped by the tag returns one group per tag value (``Keys`` like
``["branchenv:stack$feature-x-1a2b"]``; ``branchenv:stack$`` is usage without the tag), per time
period, paginated with ``NextPageToken``. :func:`sum_cost_pages` is the pure part.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any

from branchenv.errors import OperationFailed

STACK_TAG = "branchenv:stack"
DEFAULT_METRIC = "UnblendedCost"
ACTIVATION_HINT = (
    "Cost Explorer returned no cost for the `branchenv:stack` tag. Cost-allocation tags take up "
    "to ~24 h to appear after activation, and only count usage from then on: activate the tag "
    "with `aws ce update-cost-allocation-tags-status --cost-allocation-tags-status "
    "TagKey=branchenv:stack,Status=Active` (or Billing console > Cost allocation tags), then "
    "check again tomorrow"
)


@dataclasses.dataclass(frozen=True)
class ActualCosts:
    """Cost Explorer's figures per stack for ``start``..``end`` (end exclusive)."""

    start: dt.date
    end: dt.date
    metric: str
    unit: str
    by_stack: Mapping[str, Decimal]
    untagged: Decimal
    estimated: bool
    pages: int
    note: str | None = None

    @property
    def total(self) -> Decimal:
        return sum(self.by_stack.values(), Decimal(0)) + self.untagged


@dataclasses.dataclass(frozen=True)
class _Sums:
    by_stack: dict[str, Decimal]
    untagged: Decimal
    unit: str
    estimated: bool
    pages: int


def _stack_of(keys: Iterable[str], tag_key: str) -> str | None:
    """The tag value of a group (``None`` for the untagged group)."""
    for key in keys:
        prefix = f"{tag_key}$"
        if key.startswith(prefix):
            return key[len(prefix) :] or None
    return None


def sum_cost_pages(
    pages: Iterable[Mapping[str, Any]], *, metric: str = DEFAULT_METRIC, tag_key: str = STACK_TAG
) -> _Sums:
    """Add up grouped ``get_cost_and_usage`` pages per tag value (pure)."""
    by_stack: dict[str, Decimal] = {}
    untagged = Decimal(0)
    unit = "USD"
    estimated = False
    count = 0
    for page in pages:
        count += 1
        for period in page.get("ResultsByTime", []):
            estimated = estimated or bool(period.get("Estimated"))
            for group in period.get("Groups", []):
                figure = group.get("Metrics", {}).get(metric)
                if figure is None:
                    continue
                amount = Decimal(str(figure.get("Amount", "0")))
                unit = str(figure.get("Unit", unit))
                stack = _stack_of(group.get("Keys", []), tag_key)
                if stack is None:
                    untagged += amount
                else:
                    by_stack[stack] = by_stack.get(stack, Decimal(0)) + amount
    return _Sums(by_stack, untagged, unit, estimated, count)


def _pages(client: Any, request: dict[str, Any]) -> Iterator[Mapping[str, Any]]:
    from botocore.exceptions import BotoCoreError, ClientError

    token: str | None = None
    while True:
        args = dict(request)
        if token:
            args["NextPageToken"] = token
        try:
            page = client.get_cost_and_usage(**args)
        except (ClientError, BotoCoreError) as exc:
            raise OperationFailed(
                f"Cost Explorer get_cost_and_usage failed: {exc}; check credentials "
                "(ce:GetCostAndUsage) or drop `--actual`"
            ) from exc
        yield page
        token = page.get("NextPageToken")
        if not token:
            return


def fetch_actuals(
    client: Any,
    *,
    start: dt.date,
    end: dt.date,
    stacks: Iterable[str] | None = None,
    metric: str = DEFAULT_METRIC,
    granularity: str = "DAILY",
    tag_key: str = STACK_TAG,
) -> ActualCosts:
    """Actual cost per stack from a boto3 ``ce`` client, every page followed.

    ``stacks`` limits the result to those stacks (the query itself covers every tag value).
    An empty result carries :data:`ACTIVATION_HINT` as its ``note``.
    """
    request: dict[str, Any] = {
        "TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()},
        "Granularity": granularity,
        "Metrics": [metric],
        "GroupBy": [{"Type": "TAG", "Key": tag_key}],
    }
    sums = sum_cost_pages(_pages(client, request), metric=metric, tag_key=tag_key)
    by_stack = sums.by_stack
    if stacks is not None:
        wanted = set(stacks)
        by_stack = {s: a for s, a in by_stack.items() if s in wanted}
    note = ACTIVATION_HINT if not sums.by_stack else None
    return ActualCosts(
        start=start,
        end=end,
        metric=metric,
        unit=sums.unit,
        by_stack=dict(sorted(by_stack.items())),
        untagged=sums.untagged,
        estimated=sums.estimated,
        pages=sums.pages,
        note=note,
    )
