"""Estimated cost of stacks: inventory x unit prices x hours alive.

The arithmetic (:func:`estimate_stack`) is a pure function over plain data; the helpers below it
build the inventory from an engine's state or from the tagging API and are what ``ls``, ``ci``
and ``reap`` call (:func:`stack_cost`, :func:`cost_of_tagged`).
Money stays a full-precision :class:`~decimal.Decimal`; only display rounds to cents.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from branchenv.cost.prices import PriceTable, load_prices

if TYPE_CHECKING:
    from branchenv.config import Settings
    from branchenv.engines.base import Engine, Program, ResourceSummary
    from branchenv.inventory import TaggedResource
    from branchenv.metadata import StackMetadata

ZERO = Decimal(0)
_US_PER_HOUR = Decimal(3_600_000_000)
PRECISION = 60
"""Significant digits of the cost arithmetic (Python's default 28 would round sums)."""
AMOUNT_QUANTUM = Decimal("1e-20")
"""Amounts and hours in results are exact up to divisions (by 730 hours a month, by 3,600
seconds an hour), which are carried to 60 digits and then kept to 20 decimal places (1e-20 USD):
far below any displayed figure, and the same whatever the order of the additions."""


def _q(value: Decimal) -> Decimal:
    with decimal.localcontext(prec=PRECISION):
        return value.quantize(AMOUNT_QUANTUM)


@dataclasses.dataclass(frozen=True)
class InventoryItem:
    """One resource to price: its type (token or short type), region and outputs."""

    type: str
    region: str
    name: str = ""
    outputs: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class StackInventory:
    """What one stack holds. ``available`` false: the engine cannot list it (``note`` says why)
    and the stack's cost is unknown, not zero."""

    stack: str
    items: tuple[InventoryItem, ...]
    branch: str | None = None
    owner: str | None = None
    created_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None
    engine: str | None = None
    available: bool = True
    note: str | None = None
    account: str | None = None
    """The account the stack lives in (its metadata); None: unknown."""
    region: str | None = None
    pool_idle: bool = False
    """A free warm-pool stack: kept ready, held by no branch (the pool's idle burn)."""


@dataclasses.dataclass(frozen=True)
class CostLine:
    """Resources of one type and region: how many and what they cost per hour together."""

    type: str
    region: str
    count: int
    hourly: Decimal | None  # None: unpriced


@dataclasses.dataclass(frozen=True)
class StackCost:
    """The estimated cost of one stack.

    ``hourly`` is the burn rate; ``so_far`` is hourly x hours alive; ``projected_to_expiry`` is
    what the stack will have cost when it reaches ``expires_at`` (``so_far`` once expired).
    These cover priced resources only: ``unpriced_types`` lists the types left out, so a
    non-empty list makes the figures a lower bound. ``inventory_available`` false means nothing
    could be priced (see ``note``).
    """

    stack: str
    branch: str | None
    owner: str | None
    hourly: Decimal
    so_far: Decimal
    projected_to_expiry: Decimal
    hours_alive: Decimal
    hours_to_expiry: Decimal | None
    unpriced_types: tuple[str, ...]
    lines: tuple[CostLine, ...]
    resource_count: int
    inventory_available: bool = True
    note: str | None = None
    account: str | None = None
    """The account the stack lives in (``cost --by account``); None: unknown."""
    region: str | None = None
    pool_idle: bool = False
    """A free warm-pool stack (no branch holds it): its burn is the pool's idle burn."""

    @property
    def complete(self) -> bool:
        """True when every resource was priced (the figures are not a lower bound)."""
        return self.inventory_available and not self.unpriced_types


def hours_between(start: dt.datetime, end: dt.datetime) -> Decimal:
    """Hours from ``start`` to ``end`` (0 when ``end`` is earlier), to :data:`PRECISION` digits."""
    micro = (end - start) // dt.timedelta(microseconds=1)
    with decimal.localcontext(prec=PRECISION):
        return Decimal(max(micro, 0)) / _US_PER_HOUR


def price_lines(
    items: Iterable[InventoryItem], prices: PriceTable
) -> tuple[tuple[CostLine, ...], tuple[str, ...]]:
    """Cost per hour grouped by (type, region) (unrounded), and the sorted unpriced types."""
    totals: dict[tuple[str, str], tuple[int, Decimal | None]] = {}
    unpriced: set[str] = set()
    with decimal.localcontext(prec=PRECISION):
        for item in items:
            hourly = prices.hourly(item.type, item.region, item.outputs)
            key = (item.type, item.region)
            count, amount = totals.get(key, (0, ZERO))
            if hourly is None:
                unpriced.add(item.type if prices.lookup(item.type) is None else key_label(key))
                amount = None
            elif amount is not None:
                amount += hourly
            totals[key] = (count + 1, amount)
    lines = tuple(
        CostLine(type=t, region=r, count=count, hourly=amount)
        for (t, r), (count, amount) in sorted(totals.items())
    )
    return lines, tuple(sorted(unpriced))


def key_label(key: tuple[str, str]) -> str:
    """``type@region`` for a type whose entry has no price in that region."""
    return f"{key[0]}@{key[1] or '?'}"


def estimate_stack(inventory: StackInventory, prices: PriceTable, *, now: dt.datetime) -> StackCost:
    """The pure cost arithmetic for one stack at ``now``."""
    if not inventory.available:
        return StackCost(
            stack=inventory.stack,
            branch=inventory.branch,
            owner=inventory.owner,
            hourly=ZERO,
            so_far=ZERO,
            projected_to_expiry=ZERO,
            hours_alive=ZERO,
            hours_to_expiry=None,
            unpriced_types=(),
            lines=(),
            resource_count=0,
            inventory_available=False,
            note=inventory.note,
            account=inventory.account,
            region=inventory.region,
            pool_idle=inventory.pool_idle,
        )
    lines, unpriced = price_lines(inventory.items, prices)
    with decimal.localcontext(prec=PRECISION):
        hourly = sum((line.hourly for line in lines if line.hourly is not None), ZERO)
        alive = hours_between(inventory.created_at, now) if inventory.created_at else ZERO
        to_expiry = hours_between(now, inventory.expires_at) if inventory.expires_at else None
        so_far = hourly * alive
        projected = so_far + hourly * to_expiry if to_expiry is not None else so_far
    return StackCost(
        stack=inventory.stack,
        branch=inventory.branch,
        owner=inventory.owner,
        hourly=_q(hourly),
        so_far=_q(so_far),
        projected_to_expiry=_q(projected),
        hours_alive=_q(alive),
        hours_to_expiry=_q(to_expiry) if to_expiry is not None else None,
        unpriced_types=unpriced,
        lines=tuple(
            dataclasses.replace(line, hourly=_q(line.hourly) if line.hourly is not None else None)
            for line in lines
        ),
        resource_count=len(inventory.items),
        note=inventory.note,
        account=inventory.account,
        region=inventory.region,
        pool_idle=inventory.pool_idle,
    )


def estimate_stacks(
    inventories: Sequence[StackInventory],
    *,
    prices: PriceTable | None = None,
    now: dt.datetime | None = None,
) -> list[StackCost]:
    """:func:`estimate_stack` for each inventory, one ``now`` for all."""
    prices = prices or load_prices()
    now = now or dt.datetime.now(dt.UTC)
    return [estimate_stack(inv, prices, now=now) for inv in inventories]


# --- inventories --------------------------------------------------------------------------------


def inventory_from_engine(
    engine: Engine,
    *,
    stack: str,
    program: Program,
    metadata: StackMetadata | None,
    default_region: str,
    resources: Sequence[ResourceSummary] | None = None,
) -> StackInventory:
    """The stack's resources from the engine's own state (``Engine.resources``; ``resources``:
    what that call returned a moment ago in this run, so it is not asked again)."""
    common: dict[str, Any] = {
        "stack": stack,
        "branch": metadata.branch if metadata else None,
        "owner": metadata.owner if metadata else None,
        "created_at": metadata.created_at if metadata else None,
        "expires_at": metadata.expires_at if metadata else None,
        "engine": engine.name,
        "account": metadata.account if metadata else None,
        "region": metadata.region if metadata else None,
        "pool_idle": metadata is not None
        and metadata.pool is not None
        and metadata.claimed_by is None,
    }
    # A resource without a region of its own lives in the stack's region (when recorded).
    home = (metadata.region if metadata else None) or default_region
    items = tuple(
        InventoryItem(
            type=entry.type,
            region=entry.region or home,
            name=entry.name,
            outputs=dict(entry.outputs),
        )
        for entry in (
            engine.resources(stack=stack, program=program) if resources is None else resources
        )
    )
    return StackInventory(items=items, **common)


def _arn_region(arn: str) -> str:
    parts = arn.split(":", 5)
    return parts[3] if len(parts) > 3 else ""


def inventory_from_tagged(
    resources: Sequence[TaggedResource],
    *,
    stack: str,
    metadata: StackMetadata | None,
    default_region: str,
) -> StackInventory:
    """An inventory from tagging-API resources (orphans the engine no longer knows). ARNs
    without a region (S3, IAM) are placed in ``default_region``."""
    items = tuple(
        InventoryItem(type=r.type, region=_arn_region(r.arn) or default_region, name=r.arn)
        for r in resources
    )
    if metadata is None:
        # Resources carry the identity tags only (no expiry): read who and since when.
        branch, owner, created_at = _identity_from_tags([r.tags for r in resources])
        return StackInventory(
            stack=stack, items=items, branch=branch, owner=owner, created_at=created_at
        )
    return StackInventory(
        stack=stack,
        items=items,
        branch=metadata.branch,
        owner=metadata.owner,
        created_at=metadata.created_at,
        expires_at=metadata.expires_at,
    )


def _identity_from_tags(
    tag_sets: Sequence[Mapping[str, str]],
) -> tuple[str | None, str | None, dt.datetime | None]:
    """Branch, owner and birth date from resources' identity tags (the first that reads)."""
    from branchenv.metadata import (
        KEY_BRANCH,
        KEY_CREATED_AT,
        KEY_OWNER,
        MANAGED_BY_KEY,
        MANAGED_BY_VALUE,
        decode_tag_value,
        parse_timestamp,
    )

    for tags in tag_sets:
        if tags.get(MANAGED_BY_KEY) != MANAGED_BY_VALUE:
            continue
        try:
            branch = decode_tag_value(tags[KEY_BRANCH])[0] if KEY_BRANCH in tags else None
            owner = decode_tag_value(tags[KEY_OWNER])[0] if KEY_OWNER in tags else None
            born = tags.get(KEY_CREATED_AT)
            return branch, owner, parse_timestamp(born) if born else None
        except ValueError:
            continue
    return None, None, None


# --- what ls, ci and reap call ------------------------------------------------------------------


def stack_cost(
    engine: Engine,
    *,
    stack: str,
    program: Program,
    metadata: StackMetadata | None,
    region: str,
    now: dt.datetime | None = None,
    prices: PriceTable | None = None,
    resources: Sequence[ResourceSummary] | None = None,
) -> StackCost:
    """The estimated cost of one stack an engine knows (for ``ls``: ``.so_far``;
    ``resources``: see :func:`inventory_from_engine`)."""
    inventory = inventory_from_engine(
        engine,
        stack=stack,
        program=program,
        metadata=metadata,
        default_region=region,
        resources=resources,
    )
    return estimate_stack(inventory, prices or load_prices(), now=now or dt.datetime.now(dt.UTC))


def cost_of_tagged(
    resources: Sequence[TaggedResource],
    *,
    stack: str,
    default_region: str,
    metadata: StackMetadata | None = None,
    now: dt.datetime | None = None,
    prices: PriceTable | None = None,
) -> StackCost:
    """The cost of resources found by tag (for ``reap``: ``.hourly`` is the burn reclaimed).

    ``metadata`` defaults to the one read back from the first resource's tags.
    """
    if metadata is None:
        metadata = _metadata_from_tags([r.tags for r in resources])
    inventory = inventory_from_tagged(
        resources, stack=stack, metadata=metadata, default_region=default_region
    )
    return estimate_stack(inventory, prices or load_prices(), now=now or dt.datetime.now(dt.UTC))


def _metadata_from_tags(tag_sets: Sequence[Mapping[str, str]]) -> StackMetadata | None:
    from branchenv.metadata import MetadataFormatError, StackMetadata

    for tags in tag_sets:
        try:
            md = StackMetadata.from_tags(tags)
        except MetadataFormatError:
            continue
        if md is not None:
            return md
    return None


def collect_stack_costs(
    settings: Settings,
    *,
    engines: Sequence[Engine],
    stacks: Iterable[str] | None = None,
    branches: Iterable[str] | None = None,
    now: dt.datetime | None = None,
    prices: PriceTable | None = None,
) -> list[StackCost]:
    """The estimate of every stack the engines list for every configured program (all of them,
    or those named in ``stacks`` or whose metadata branch is in ``branches``), each engine's
    stacks in its listing order."""
    prices = prices or load_prices()
    now = now or dt.datetime.now(dt.UTC)
    wanted_stacks = set(stacks) if stacks is not None else None
    wanted_branches = set(branches) if branches is not None else None
    filtered = wanted_stacks is not None or wanted_branches is not None
    from branchenv.programs import listing_pairs

    costs: list[StackCost] = []
    for program, engine in listing_pairs(settings, engines):
        for summary in engine.list_stacks(program=program):
            md = summary.metadata
            if summary.attention:
                continue  # its state cannot be read, so neither can its inventory
            if filtered and not (
                (wanted_stacks is not None and summary.stack in wanted_stacks)
                or (wanted_branches is not None and md is not None and md.branch in wanted_branches)
            ):
                continue
            inventory = inventory_from_engine(
                engine,
                stack=summary.stack,
                program=program,
                metadata=md,
                default_region=settings.region,
                resources=summary.resources,
            )
            costs.append(estimate_stack(inventory, prices, now=now))
    return costs
