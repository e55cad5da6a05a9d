"""Prices: a pricing model and its config, a cadence and a currency, for one of our items.

A price with a billable metric is a usage price (its quantity comes from events); one without is a
fixed price (its quantity is `fixed_price_quantity`, default 1), as in Orb.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.exc import IntegrityError

from domains.amounts import bounded
from domains.billing.periods import CADENCE_MONTHS, CADENCES  # noqa: F401  (CADENCE_MONTHS: the graph reads it here)
from domains.catalog.config_parsing import parse_config
from domains.catalog.items import items_by_ids
from domains.catalog.price_configs import MODEL_TYPES, PriceConfig, config_to_json
from domains.currencies import currency
from domains.errors import DuplicateResource, NotFound, ValidationFailed
from domains.metadata import merge_metadata
from domains.pagination import Page, page_size
from domains.tenancy.service import Principal
from domains.text import identifier, refuse_unknown, text
from domains.unit_of_work import UnitOfWork
from persistence.ids import new_id
from persistence.tables import BillableMetric, Price

_CONFIG_FIELDS = frozenset(f"{model}_config" for model in MODEL_TYPES)
_FIELDS = frozenset({"name", "item_id", "cadence", "currency", "model_type", "billable_metric_id",
                     "external_price_id", "fixed_price_quantity", "metadata"}) | _CONFIG_FIELDS
_READ_COLUMNS = [
    column.label("price_metadata") if column.name == "metadata" else column
    for column in Price.__table__.columns  # type: ignore[attr-defined]
]


def price_type(price: Price) -> str:
    return "usage_price" if price.billable_metric_id else "fixed_price"


def billing_mode(price: Price) -> str:
    """Fixed fees are billed at the start of their period, usage at its end."""
    return "in_arrear" if price.billable_metric_id else "in_advance"


def price_config(price: Price) -> PriceConfig:
    """The stored config as its typed model (stored JSON round-trips exactly)."""
    return parse_config(price.model_type, price.config)


@cache
def _read_statement(*, key: str | None = None, many: bool = False, after: bool = False) -> Select[Any]:
    statement = select(*_READ_COLUMNS).where(Price.org_id == bindparam("org_id"))
    if key is not None:
        column = Price.__table__.c[key]  # type: ignore[attr-defined]
        return statement.where(column.in_(bindparam("keys", expanding=True)) if many else column == bindparam("key"))
    if after:
        statement = statement.where(Price.id < bindparam("after_id"))
    return statement.order_by(Price.id.desc()).limit(bindparam("limit"))  # type: ignore[attr-defined]


def _quantity(value: Any) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str, Decimal)):
        raise ValidationFailed("fixed_price_quantity", "must be a number written as a string or an integer")
    try:
        quantity = Decimal(str(value))
    except ArithmeticError:
        raise ValidationFailed("fixed_price_quantity", f"{value!r} is not a number") from None
    if bounded("fixed_price_quantity", quantity) < 0:
        raise ValidationFailed("fixed_price_quantity", "must be at least 0")
    return quantity


async def create_price(uow: UnitOfWork, *, principal: Principal, fields: Mapping[str, Any]) -> Price:
    """Create a price. Exactly the `<model_type>_config` object is required, validated for its model."""
    async with uow.transaction():
        price = await build_price(uow, principal=principal, fields=fields)
        await save_prices(uow, [price])
    return price


async def build_price(
    uow: UnitOfWork,
    *,
    principal: Principal,
    fields: Mapping[str, Any],
    plan_id: str | None = None,
    plan_currency: str | None = None,
    field_prefix: str = "",
) -> Price:
    """A validated, unsaved price (inside the caller's transaction). In a plan, the currency defaults
    to the plan's and must equal it; errors name the field under `field_prefix` (`prices[2].`)."""
    try:
        return await _build_price(uow, principal, fields, plan_id, plan_currency)
    except (ValidationFailed, DuplicateResource) as exc:
        if field_prefix:
            exc.field = field_prefix + (exc.field or "")
        raise


async def save_prices(uow: UnitOfWork, prices: Sequence[Price]) -> None:
    uow.session.add_all(prices)
    try:
        await uow.session.flush()
    except IntegrityError:  # a concurrent create took an external id first
        raise DuplicateResource("a price with this external_price_id already exists", field="external_price_id") from None


async def _build_price(
    uow: UnitOfWork, principal: Principal, fields: Mapping[str, Any], plan_id: str | None, plan_currency: str | None
) -> Price:
    if not isinstance(fields, Mapping):
        raise ValidationFailed("price", "must be an object")
    refuse_unknown(fields, _FIELDS, "a price field")
    model_type = fields.get("model_type")
    if model_type not in MODEL_TYPES:
        raise ValidationFailed("model_type", f"must be one of {', '.join(MODEL_TYPES)}")
    config_key = f"{model_type}_config"
    others = sorted(key for key in _CONFIG_FIELDS & set(fields) if key != config_key and fields[key] is not None)
    if others:
        raise ValidationFailed(others[0], f"does not belong to a {model_type} price (it takes {config_key})")
    if fields.get(config_key) is None:
        raise ValidationFailed(config_key, f"is required for a {model_type} price")
    config = parse_config(model_type, fields[config_key])
    cadence = fields.get("cadence")
    if cadence not in CADENCES:
        raise ValidationFailed("cadence", f"must be one of {', '.join(CADENCES)}")
    given_currency = fields.get("currency")
    if given_currency is None and plan_currency is None:
        raise ValidationFailed("currency", "is required")
    price_currency = currency("currency", given_currency) if given_currency is not None else plan_currency
    if plan_currency is not None and price_currency != plan_currency:
        raise ValidationFailed("currency", f"must be the plan's currency, {plan_currency}")
    metric_id = fields.get("billable_metric_id")
    quantity = _quantity(fields.get("fixed_price_quantity"))
    if metric_id is not None and quantity is not None:
        raise ValidationFailed("fixed_price_quantity", "only a fixed price (no billable_metric_id) has a fixed quantity")
    external_id = identifier("external_price_id", fields.get("external_price_id"))
    item_id = fields.get("item_id")
    if not isinstance(item_id, str) or not item_id:
        raise ValidationFailed("item_id", "is required")
    price = Price(
        id=new_id(), org_id=principal.org_id, item_id=item_id, billable_metric_id=metric_id, plan_id=plan_id,
        external_price_id=external_id, name=text("name", fields.get("name"), required=True),  # type: ignore[arg-type]
        model_type=model_type,
        config=config_to_json(config), cadence=cadence, currency=price_currency,  # type: ignore[arg-type]
        # A fixed price bills one unit unless told otherwise; a usage price's quantity comes from events.
        fixed_price_quantity=quantity if quantity is not None or metric_id else Decimal(1),
        price_metadata=merge_metadata("metadata", fields.get("metadata")), created_at=uow.clock.now(),
    )
    # Another organisation's item or metric is as unknown as a made-up id.
    if item_id not in await items_by_ids(uow, principal=principal, ids=[item_id]):
        raise ValidationFailed("item_id", f"no item {item_id!r} exists")
    if metric_id is not None and not await _metric_exists(uow, principal, metric_id):
        raise ValidationFailed("billable_metric_id", f"no billable metric {metric_id!r} exists")
    if external_id is not None and await _one(uow, principal, "external_price_id", external_id) is not None:
        raise DuplicateResource(f"a price with external_price_id {external_id!r} already exists",
                                field="external_price_id")
    return price


async def _metric_exists(uow: UnitOfWork, principal: Principal, metric_id: Any) -> bool:
    if not isinstance(metric_id, str):
        raise ValidationFailed("billable_metric_id", "must be a billable metric id")
    found = await uow.rows(select(BillableMetric.id).where(BillableMetric.org_id == principal.org_id,
                                                           BillableMetric.id == metric_id))
    return bool(found)


async def _one(uow: UnitOfWork, principal: Principal, key: str, value: str) -> Price | None:
    rows = await uow.rows(_read_statement(key=key), {"org_id": principal.org_id, "key": value})
    return rows[0] if rows else None  # type: ignore[return-value]


async def get_price(uow: UnitOfWork, *, principal: Principal, price_id: str) -> Price:
    price = await _one(uow, principal, "id", price_id)
    if price is None:
        raise NotFound(f"price {price_id!r} was not found", field="price_id")
    return price


async def get_price_by_external_id(uow: UnitOfWork, *, principal: Principal, external_price_id: str) -> Price:
    price = await _one(uow, principal, "external_price_id", external_price_id)
    if price is None:
        raise NotFound(f"price with external_price_id {external_price_id!r} was not found", field="external_price_id")
    return price


async def prices_by_ids(uow: UnitOfWork, *, principal: Principal, ids: Sequence[str]) -> dict[str, Price]:
    if not ids:
        return {}
    rows = await uow.rows(_read_statement(key="id", many=True), {"org_id": principal.org_id, "keys": list(set(ids))})
    return {row.id: row for row in rows}  # type: ignore[misc]


async def prices_by_plan_ids(uow: UnitOfWork, *, principal: Principal, plan_ids: Sequence[str]) -> dict[str, list[Price]]:
    """The prices of many plans in one statement, in the order they were added."""
    grouped: dict[str, list[Price]] = {plan_id: [] for plan_id in plan_ids}
    if plan_ids:
        rows = await uow.rows(_read_statement(key="plan_id", many=True),
                              {"org_id": principal.org_id, "keys": list(set(plan_ids))})
        for row in sorted(rows, key=lambda r: r.id):
            grouped[row.plan_id].append(row)  # type: ignore[index]
    return grouped


async def list_prices(
    uow: UnitOfWork, *, principal: Principal, limit: int | None = None, after_id: str | None = None
) -> Page[Price]:
    """Newest first, by keyset on the time-ordered id."""
    limit = page_size(limit)
    params: dict[str, Any] = {"org_id": principal.org_id, "limit": limit + 1}
    if after_id is not None:
        params["after_id"] = after_id
    return Page.from_rows(await uow.rows(_read_statement(after=after_id is not None), params), limit)
