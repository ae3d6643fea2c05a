"""Unit prices: a table shipped as data (``prices.json`` beside this module), one entry per
resource type, and its refresh from the AWS Price List API.

Each entry names its type token (``aws:dynamodb/table:Table``) and the short types the tagging
API gives for the same resource (``dynamodb:table``), the page its figures come from and the date
they were taken. A priced entry has dimensions: a unit price per region times an explicit usage
assumption per hour (``1,000 requests/hour``), optionally scaled by one of the resource's outputs
(a function's memory). A free entry says why it costs nothing. A type without an entry is
*unpriced*, never zero.

The table is a registry of price entries; the meta-test in tests/unit/test_cost_prices.py loops
over every entry and every resource type the demo program creates.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from branchenv.errors import ConfigError, OperationFailed

PRICES_PATH = Path(__file__).with_name("prices.json")
SCHEMA = 1


@dataclasses.dataclass(frozen=True)
class Scale:
    """Multiply a dimension's hourly quantity by ``outputs[output] / divisor`` (``default``
    standing in for a missing output), e.g. a function's memory in GB. ``also`` names the same
    output as other engines spell it (terraform's ``memory_size`` for Pulumi's ``memorySize``);
    the first one present is read."""

    output: str
    divisor: Decimal
    default: Decimal
    also: tuple[str, ...] = ()

    def factor(self, outputs: Mapping[str, Any] | None) -> Decimal:
        found = outputs or {}
        raw = next((found[k] for k in (self.output, *self.also) if found.get(k) is not None), None)
        try:
            value = Decimal(str(raw)) if raw is not None and not isinstance(raw, bool) else None
        except InvalidOperation:
            value = None
        if value is None or not value.is_finite() or value < 0:
            value = self.default
        return value / self.divisor


@dataclasses.dataclass(frozen=True)
class PriceListQuery:
    """How to find a dimension's price in the AWS Price List API (``pricing.get_products``)."""

    service_code: str
    filters: Mapping[str, str]
    unit: str
    usagetype_suffix: str | None = None


@dataclasses.dataclass(frozen=True)
class PriceDimension:
    """One billed quantity of a resource: unit price by region x quantity per hour."""

    name: str
    unit: str
    per_hour: Decimal
    assumption: str
    prices: Mapping[str, Decimal]
    monthly: bool = False
    scale: Scale | None = None
    price_list: PriceListQuery | None = None

    def hourly(
        self, region: str, outputs: Mapping[str, Any] | None, hours_per_month: Decimal
    ) -> Decimal | None:
        """This dimension's cost per hour in ``region``; None when the region has no price."""
        price = self.prices.get(region)
        if price is None:
            return None
        amount = price * self.per_hour
        if self.scale is not None:
            amount *= self.scale.factor(outputs)
        if self.monthly:
            amount /= hours_per_month
        return amount


@dataclasses.dataclass(frozen=True)
class PriceEntry:
    """The price of one resource type. ``free`` (the reason) marks a type with no charge."""

    type: str
    aliases: tuple[str, ...]
    source: str
    date: str
    dimensions: tuple[PriceDimension, ...] = ()
    free: str | None = None

    @property
    def regions(self) -> frozenset[str]:
        """Regions priced for every dimension (every region for a free type is implied)."""
        if not self.dimensions:
            return frozenset()
        sets = [frozenset(d.prices) for d in self.dimensions]
        return functools.reduce(frozenset.__and__, sets)


@dataclasses.dataclass(frozen=True)
class PriceTable:
    """Every price entry, looked up by type token or tagging-API short type."""

    entries: tuple[PriceEntry, ...]
    currency: str = "USD"
    hours_per_month: Decimal = Decimal(730)
    note: str = ""
    _index: Mapping[str, PriceEntry] = dataclasses.field(
        default_factory=dict, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        index: dict[str, PriceEntry] = {}
        for entry in self.entries:
            for key in (entry.type, *entry.aliases):
                if key in index:
                    raise ConfigError(f"price table: type {key!r} appears twice; keep one entry")
                index[key] = entry
        object.__setattr__(self, "_index", index)

    def lookup(self, type_: str) -> PriceEntry | None:
        """The entry for a type token or short type, or None (unpriced)."""
        return self._index.get(type_)

    def hourly(
        self, type_: str, region: str, outputs: Mapping[str, Any] | None = None
    ) -> Decimal | None:
        """Cost per hour of one resource; ``Decimal(0)`` for a free type; None when unpriced
        (no entry, or no price for ``region``)."""
        entry = self.lookup(type_)
        if entry is None:
            return None
        if entry.free is not None:
            return Decimal(0)
        total = Decimal(0)
        for dim in entry.dimensions:
            part = dim.hourly(region, outputs, self.hours_per_month)
            if part is None:
                return None
            total += part
        return total


# --- loading and saving -----------------------------------------------------------------------


def plain(value: Decimal) -> str:
    """A Decimal as positional digits (``0.0000004``, never ``4E-7``)."""
    return format(value, "f")


def _decimal(value: Any, where: str) -> Decimal:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ConfigError(f"price table: {where} is {value!r}, not a number") from None
    if not amount.is_finite() or amount < 0:
        raise ConfigError(f"price table: {where} must be a finite number >= 0, got {value!r}")
    return amount


def _dimension(data: Mapping[str, Any], where: str) -> PriceDimension:
    scale = data.get("scale")
    query = data.get("price_list")
    return PriceDimension(
        name=str(data["name"]),
        unit=str(data["unit"]),
        per_hour=_decimal(data["per_hour"], f"{where}.per_hour"),
        assumption=str(data["assumption"]),
        prices={
            str(r): _decimal(p, f"{where}.prices[{r}]") for r, p in dict(data["prices"]).items()
        },
        monthly=bool(data.get("monthly", False)),
        scale=Scale(
            output=str(scale["output"]),
            divisor=_decimal(scale["divisor"], f"{where}.scale.divisor"),
            default=_decimal(scale["default"], f"{where}.scale.default"),
            also=tuple(str(k) for k in scale.get("also", ())),
        )
        if scale
        else None,
        price_list=PriceListQuery(
            service_code=str(query["service_code"]),
            filters={str(k): str(v) for k, v in dict(query.get("filters", {})).items()},
            unit=str(query["unit"]),
            usagetype_suffix=query.get("usagetype_suffix"),
        )
        if query
        else None,
    )


def table_from_json(data: Mapping[str, Any], origin: str = "prices.json") -> PriceTable:
    """Build a :class:`PriceTable` from the JSON document; malformed data is a ConfigError."""
    if data.get("schema") != SCHEMA:
        raise ConfigError(f"{origin}: unknown schema {data.get('schema')!r}; expected {SCHEMA}")
    entries: list[PriceEntry] = []
    try:
        for i, raw in enumerate(data["entries"]):
            where = f"{origin} entries[{i}] ({raw.get('type')})"
            dims = tuple(
                _dimension(d, f"{where}.dimensions[{j}]")
                for j, d in enumerate(raw.get("dimensions", []))
            )
            free = raw.get("free")
            if (free is None) == (not dims):
                raise ConfigError(f"{where}: give either dimensions or a `free` reason")
            entries.append(
                PriceEntry(
                    type=str(raw["type"]),
                    aliases=tuple(str(a) for a in raw.get("aliases", [])),
                    source=str(raw["source"]),
                    date=str(raw["date"]),
                    dimensions=dims,
                    free=str(free) if free is not None else None,
                )
            )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{origin}: malformed price entry ({exc!r}); fix the file") from exc
    return PriceTable(
        entries=tuple(entries),
        currency=str(data.get("currency", "USD")),
        hours_per_month=_decimal(data.get("hours_per_month", "730"), "hours_per_month"),
        note=str(data.get("note", "")),
    )


def table_to_json(table: PriceTable) -> dict[str, Any]:
    """The JSON document for ``table`` (the inverse of :func:`table_from_json`)."""

    def dim(d: PriceDimension) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": d.name,
            "unit": d.unit,
            "per_hour": plain(d.per_hour),
        }
        if d.monthly:
            out["monthly"] = True
        if d.scale:
            out["scale"] = {
                "output": d.scale.output,
                "divisor": plain(d.scale.divisor),
                "default": plain(d.scale.default),
            }
            if d.scale.also:
                out["scale"]["also"] = list(d.scale.also)
        out["assumption"] = d.assumption
        out["prices"] = {r: plain(p) for r, p in sorted(d.prices.items())}
        if d.price_list:
            q: dict[str, Any] = {
                "service_code": d.price_list.service_code,
                "filters": dict(d.price_list.filters),
            }
            if d.price_list.usagetype_suffix:
                q["usagetype_suffix"] = d.price_list.usagetype_suffix
            q["unit"] = d.price_list.unit
            out["price_list"] = q
        return out

    entries = []
    for e in table.entries:
        item: dict[str, Any] = {
            "type": e.type,
            "aliases": list(e.aliases),
            "source": e.source,
            "date": e.date,
        }
        if e.free is not None:
            item["free"] = e.free
        else:
            item["dimensions"] = [dim(d) for d in e.dimensions]
        entries.append(item)
    return {
        "schema": SCHEMA,
        "currency": table.currency,
        "hours_per_month": plain(table.hours_per_month),
        "note": table.note,
        "entries": entries,
    }


def load_prices(path: Path | None = None) -> PriceTable:
    """The price table at ``path`` (default: the one shipped with branchenv)."""
    if path is None:
        return _shipped()
    return _read(path)


def _read(path: Path) -> PriceTable:
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read price table {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigError(f"price table {path} is not valid JSON ({exc}); fix it") from exc
    return table_from_json(data, origin=str(path))


@functools.cache
def _shipped() -> PriceTable:
    return _read(PRICES_PATH)


# --- refresh from the AWS Price List API --------------------------------------------------------

ProductFetcher = Callable[[str, Sequence[Mapping[str, str]]], Iterable[str]]
"""``(service_code, filters) -> PriceList items`` (each a JSON string, as ``get_products``
returns them); filters are ``{"Type": "TERM_MATCH", "Field": ..., "Value": ...}``."""


@dataclasses.dataclass(frozen=True)
class RefreshResult:
    """The refreshed table, what changed, and what could not be refreshed (and why)."""

    table: PriceTable
    updated: tuple[str, ...]
    unchanged: tuple[str, ...]
    problems: tuple[str, ...]


def price_from_items(items: Iterable[str], query: PriceListQuery) -> Decimal | None:
    """The on-demand USD price per ``query.unit`` in PriceList ``items`` (JSON strings).

    Products are kept when their ``usagetype`` ends with ``query.usagetype_suffix`` (if set);
    of their on-demand price dimensions in that unit, the first *paid* tier (lowest
    ``beginRange`` with a price above zero) is taken, since free tiers are ignored throughout.
    None when nothing matches.
    """
    per_product: dict[str, Decimal] = {}
    for raw in items:
        doc = json.loads(raw) if isinstance(raw, str) else raw
        attrs = doc.get("product", {}).get("attributes", {})
        sku = str(doc.get("product", {}).get("sku") or len(per_product))
        candidates: list[tuple[Decimal, Decimal]] = []
        if query.usagetype_suffix and not str(attrs.get("usagetype", "")).endswith(
            query.usagetype_suffix
        ):
            continue
        for term in doc.get("terms", {}).get("OnDemand", {}).values():
            for dim in term.get("priceDimensions", {}).values():
                if dim.get("unit") != query.unit:
                    continue
                usd = dim.get("pricePerUnit", {}).get("USD")
                if usd is None:
                    continue
                price = Decimal(usd)
                if price <= 0:
                    continue
                begin = Decimal(str(dim.get("beginRange", "0")))
                candidates.append((begin, price))
        if candidates:
            per_product[sku] = min(candidates)[1]  # this product's first paid tier
    distinct = set(per_product.values())
    if not distinct:
        return None
    if len(distinct) > 1:
        # Several products matched the query with different prices: taking any one (the
        # cheapest, say) would misprice silently. The query needs a narrower filter.
        raise AmbiguousPrice(
            f"{len(per_product)} products match with different prices "
            f"({', '.join(sorted(plain(p) for p in distinct))}); narrow the price_list filters"
        )
    return distinct.pop()


class AmbiguousPrice(ValueError):
    """The Price List API answered a query with several differently priced products."""


def refresh_prices(
    table: PriceTable,
    *,
    regions: Sequence[str],
    fetch: ProductFetcher,
    today: dt.date | None = None,
) -> RefreshResult:
    """Re-read every dimension's price for ``regions`` through ``fetch``; keep the old figure
    (and report a problem) where the Price List API gives none."""
    today = today or dt.datetime.now(dt.UTC).date()
    updated: list[str] = []
    unchanged: list[str] = []
    problems: list[str] = []
    new_entries: list[PriceEntry] = []
    for entry in table.entries:
        touched = False
        dims: list[PriceDimension] = []
        for dim in entry.dimensions:
            prices = dict(dim.prices)
            q = dim.price_list
            for region in regions:
                label = f"{entry.type} {dim.name} {region}"
                if q is None:
                    problems.append(f"{label}: no price_list query in the table")
                    continue
                filters = [
                    {"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in q.filters.items()
                ]
                filters.append({"Type": "TERM_MATCH", "Field": "regionCode", "Value": region})
                try:
                    price = price_from_items(fetch(q.service_code, filters), q)
                except AmbiguousPrice as exc:
                    problems.append(f"{label}: {exc}; kept the old price")
                    continue
                if price is None:
                    problems.append(f"{label}: no on-demand price in {q.unit} found")
                    continue
                if prices.get(region) == price:
                    unchanged.append(label)
                else:
                    old = prices.get(region)
                    updated.append(
                        f"{label}: {plain(old) if old is not None else '-'} -> {plain(price)}"
                    )
                prices[region] = price
                touched = True
            dims.append(dataclasses.replace(dim, prices=prices))
        new_entries.append(
            dataclasses.replace(
                entry,
                dimensions=tuple(dims),
                date=today.isoformat() if touched else entry.date,
            )
        )
    return RefreshResult(
        table=dataclasses.replace(table, entries=tuple(new_entries)),
        updated=tuple(updated),
        unchanged=tuple(unchanged),
        problems=tuple(problems),
    )


def price_list_fetcher(client: Any) -> ProductFetcher:
    """A :data:`ProductFetcher` over a boto3 ``pricing`` client (paginated ``get_products``)."""

    def fetch(service_code: str, filters: Sequence[Mapping[str, str]]) -> Iterable[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            for page in client.get_paginator("get_products").paginate(
                ServiceCode=service_code, Filters=list(filters), FormatVersion="aws_v1"
            ):
                yield from page.get("PriceList", [])
        except (ClientError, BotoCoreError) as exc:
            raise OperationFailed(
                f"the AWS Price List API failed for {service_code}: {exc}; check credentials "
                "(pricing:GetProducts) or keep the shipped table"
            ) from exc

    return fetch
