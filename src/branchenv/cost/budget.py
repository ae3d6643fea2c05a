"""Budget gates: a stack whose estimate is over ``--max-hourly`` or ``--max-total`` fails.

``max_hourly`` limits the burn rate (:attr:`StackCost.hourly`); ``max_total`` limits what the
stack will have cost by its expiry (:attr:`StackCost.projected_to_expiry`, which is at least the
cost so far), so a gate run right after provisioning already catches a stack that would
overspend over its TTL.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from decimal import Decimal

from branchenv.cost.estimate import StackCost
from branchenv.errors import BudgetExceeded


@dataclasses.dataclass(frozen=True)
class BudgetViolation:
    """One stack over one limit."""

    stack: str
    limit_name: str  # "max_hourly" | "max_total"
    limit: Decimal
    value: Decimal
    lower_bound: bool  # some resources were unpriced: the real value is higher still

    def message(self) -> str:
        if self.limit_name == "max_hourly":
            what, flag, env, unit = "hourly burn", "--max-hourly", "BRANCHENV_MAX_HOURLY", "/h"
        else:
            what, flag, env, unit = (
                "projected cost to expiry",
                "--max-total",
                "BRANCHENV_MAX_TOTAL",
                "",
            )
        bound = " (at least: some resources are unpriced)" if self.lower_bound else ""
        # as precise as the limit was given, so the two never read as equal
        exponent = self.limit.normalize().as_tuple().exponent
        places = max(4, -exponent if isinstance(exponent, int) else 4)
        return (
            f"stack {self.stack}: {what} ${money(self.value, places)}{unit}{bound} exceeds "
            f"{flag} ${money(self.limit, places)}{unit}; shrink or shorten the stack (--ttl), or "
            f"raise the limit ({flag}, setting {self.limit_name}, {env})"
        )


def money(value: Decimal, places: int = 2) -> str:
    """``value`` rounded for display only (cents by default)."""
    return str(value.quantize(Decimal(1).scaleb(-places)))


def budget_violations(
    costs: Sequence[StackCost], *, max_hourly: Decimal | None, max_total: Decimal | None
) -> list[BudgetViolation]:
    """Every (stack, limit) pair over its limit, in input order (pure)."""
    found: list[BudgetViolation] = []
    for cost in costs:
        lower = not cost.complete
        if max_hourly is not None and cost.hourly > max_hourly:
            found.append(BudgetViolation(cost.stack, "max_hourly", max_hourly, cost.hourly, lower))
        if max_total is not None and cost.projected_to_expiry > max_total:
            found.append(
                BudgetViolation(cost.stack, "max_total", max_total, cost.projected_to_expiry, lower)
            )
    return found


def check_budget(
    estimate: StackCost | Sequence[StackCost],
    *,
    max_hourly: Decimal | None,
    max_total: Decimal | None,
) -> None:
    """Raise :class:`~branchenv.errors.BudgetExceeded` (exit 1) naming stack, limit and value
    when any stack is over a limit; do nothing when both limits are None."""
    costs = [estimate] if isinstance(estimate, StackCost) else list(estimate)
    violations = budget_violations(costs, max_hourly=max_hourly, max_total=max_total)
    if not violations:
        return
    first = violations[0].message()
    more = f" (and {len(violations) - 1} more over budget)" if len(violations) > 1 else ""
    raise BudgetExceeded(first + more)
