"""Plans: the prices a subscription bills, created with them inline, in one currency."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.exc import IntegrityError

from domains.catalog import plan_phases
from domains.catalog.prices import build_price, save_prices
from domains.currencies import currency
from domains.errors import DuplicateResource, NotFound, ValidationFailed
from domains.metadata import merge_metadata
from domains.pagination import Page, page_size
from domains.tenancy.service import Principal
from domains.text import identifier, refuse_unknown, text
from domains.unit_of_work import UnitOfWork
from persistence.ids import new_id
from persistence.tables import Plan

CREATE_STATUSES = ("active", "draft")
STATUSES = ("active", "archived", "draft")
MAX_PRICES = 100
_CREATE_FIELDS = frozenset({"name", "currency", "prices", "external_plan_id", "net_terms", "metadata", "description",
                            "status", "trial_config", "plan_phases"})
MAX_TRIAL_DAYS = 3650
_UPDATE_FIELDS = frozenset({"metadata", "external_plan_id", "name", "description"})
_READ_COLUMNS = [
    column.label("plan_metadata") if column.name == "metadata" else column
    for column in Plan.__table__.columns  # type: ignore[attr-defined]
]


@cache
def _read_statement(*, key: str | None = None, after: bool = False) -> Select[Any]:
    statement = select(*_READ_COLUMNS).where(Plan.org_id == bindparam("org_id"))
    if key is not None:
        return statement.where(Plan.__table__.c[key] == bindparam("key"))  # type: ignore[attr-defined]
    if after:
        statement = statement.where(Plan.id < bindparam("after_id"))
    return statement.order_by(Plan.id.desc()).limit(bindparam("limit"))  # type: ignore[attr-defined]


def _net_terms(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 365:
        raise ValidationFailed("net_terms", "must be a whole number of days from 0 to 365")
    return value


async def create_plan(uow: UnitOfWork, *, principal: Principal, fields: Mapping[str, Any]) -> Plan:
    """Create a plan with its prices; any bad price refuses the whole plan, naming `prices[i].field`."""
    refuse_unknown(fields, _CREATE_FIELDS, "a plan field")
    if fields.get("currency") is None:
        raise ValidationFailed("currency", "is required")
    status = fields.get("status") or "active"
    if status not in CREATE_STATUSES:
        raise ValidationFailed("status", f"a new plan is one of {', '.join(CREATE_STATUSES)}")
    entries = fields.get("prices") or []
    if not isinstance(entries, list):
        raise ValidationFailed("prices", "must be a list")
    if len(entries) > MAX_PRICES:
        raise ValidationFailed("prices", f"a plan has at most {MAX_PRICES} prices")
    phases = plan_phases.parse_phases(fields.get("plan_phases"))
    plan = Plan(
        id=new_id(), org_id=principal.org_id, name=text("name", fields.get("name"), required=True),  # type: ignore[arg-type]
        description=text("description", fields.get("description"), max_length=10_000),
        external_plan_id=identifier("external_plan_id", fields.get("external_plan_id")),
        status=status, currency=currency("currency", fields["currency"]), net_terms=_net_terms(fields.get("net_terms")),
        plan_metadata=merge_metadata("metadata", fields.get("metadata")), created_at=uow.clock.now(),
        trial_period_days=_trial_days(fields.get("trial_config")), plan_phases=phases,
    )
    # Each price's phase, checked before anything is written (field-named, like the prices themselves).
    orders = [plan_phases.phase_order_of_price(_phase_order(entry, index), index, len(phases or ()))
              for index, entry in enumerate(entries)]
    async with uow.transaction():
        if plan.external_plan_id is not None:
            await _ensure_external_id_free(uow, principal, plan.external_plan_id)
        uow.session.add(plan)
        prices = [
            await build_price(uow, principal=principal, fields=_price_fields(entry, index), plan_id=plan.id,
                              plan_currency=plan.currency, field_prefix=f"prices[{index}].")
            for index, entry in enumerate(entries)
        ]
        for price, order in zip(prices, orders, strict=True):
            price.plan_phase_order = order
        await _flush(uow, plan)
        await save_prices(uow, prices)
    return plan


def _trial_days(config: Any) -> int | None:
    """Orb's trial_config {trial_period, trial_period_unit: "days"}: the days of a new subscription's free trial."""
    if config is None:
        return None
    if not isinstance(config, Mapping):
        raise ValidationFailed("trial_config", "must be an object")
    refuse_unknown(config, {"trial_period", "trial_period_unit"}, "a trial_config field", prefix="trial_config")
    if config.get("trial_period_unit", "days") not in (None, "days"):
        raise ValidationFailed("trial_config.trial_period_unit", "must be days")
    period = config.get("trial_period")
    if period is None:
        return None
    if isinstance(period, bool) or not isinstance(period, int) or not 0 <= period <= MAX_TRIAL_DAYS:
        raise ValidationFailed("trial_config.trial_period", f"must be a whole number of days from 0 to {MAX_TRIAL_DAYS}")
    return period or None


def _price_fields(entry: Any, index: int) -> Mapping[str, Any]:
    """Orb's SDKs send `{"price": {...}}` (room for allocation prices and phases); the API
    reference shows the price object itself. Both are accepted."""
    if not isinstance(entry, Mapping):
        raise ValidationFailed(f"prices[{index}]", "must be an object")
    if "price" in entry:
        refuse_unknown(entry, {"price", "plan_phase_order"}, "supported in a plan's price entry", prefix=f"prices[{index}]")
        return entry["price"] if entry["price"] is not None else {}
    # The API reference's flat shape may carry the phase beside the price's own fields.
    return {key: value for key, value in entry.items() if key != "plan_phase_order"}


def _phase_order(entry: Any, index: int) -> Any:
    if not isinstance(entry, Mapping):
        raise ValidationFailed(f"prices[{index}]", "must be an object")
    return entry.get("plan_phase_order")


async def update_plan(uow: UnitOfWork, *, principal: Principal, plan_id: str, fields: Mapping[str, Any]) -> Plan:
    """Change a plan's name, description, metadata or external_plan_id (its prices are fixed)."""
    refuse_unknown(fields, _UPDATE_FIELDS, "a plan field that can be updated")
    async with uow.transaction():
        statement = select(Plan).where(Plan.org_id == principal.org_id, Plan.id == plan_id)
        if uow.is_postgres:
            statement = statement.with_for_update()
        plan = (await uow.session.execute(statement)).scalar_one_or_none()
        if plan is None:
            raise NotFound(f"plan {plan_id!r} was not found", field="plan_id")
        if "name" in fields:
            plan.name = text("name", fields["name"], required=True)  # type: ignore[assignment]
        if "description" in fields:
            plan.description = text("description", fields["description"], max_length=10_000)
        if "metadata" in fields:
            given = fields["metadata"]
            plan.plan_metadata = merge_metadata("metadata", given, plan.plan_metadata if given is not None else None)
        if "external_plan_id" in fields:
            external_id = identifier("external_plan_id", fields["external_plan_id"])
            if external_id is not None and external_id != plan.external_plan_id:
                await _ensure_external_id_free(uow, principal, external_id)
            plan.external_plan_id = external_id
        await _flush(uow, plan)
    return plan


async def _ensure_external_id_free(uow: UnitOfWork, principal: Principal, external_id: str) -> None:
    if await uow.rows(_read_statement(key="external_plan_id"), {"org_id": principal.org_id, "key": external_id}):
        raise DuplicateResource(f"a plan with external_plan_id {external_id!r} already exists", field="external_plan_id")


async def _flush(uow: UnitOfWork, plan: Plan) -> None:
    try:
        await uow.session.flush()
    except IntegrityError:  # a concurrent request took the external id first
        raise DuplicateResource(f"a plan with external_plan_id {plan.external_plan_id!r} already exists",
                                field="external_plan_id") from None


async def get_plan(uow: UnitOfWork, *, principal: Principal, plan_id: str) -> Plan:
    rows = await uow.rows(_read_statement(key="id"), {"org_id": principal.org_id, "key": plan_id})
    if not rows:
        raise NotFound(f"plan {plan_id!r} was not found", field="plan_id")
    return rows[0]  # type: ignore[return-value]


async def get_plan_by_external_id(uow: UnitOfWork, *, principal: Principal, external_plan_id: str) -> Plan:
    rows = await uow.rows(_read_statement(key="external_plan_id"), {"org_id": principal.org_id, "key": external_plan_id})
    if not rows:
        raise NotFound(f"plan with external_plan_id {external_plan_id!r} was not found", field="external_plan_id")
    return rows[0]  # type: ignore[return-value]


async def list_plans(
    uow: UnitOfWork, *, principal: Principal, limit: int | None = None, after_id: str | None = None
) -> Page[Plan]:
    """Newest first, by keyset on the time-ordered id."""
    limit = page_size(limit)
    params: dict[str, Any] = {"org_id": principal.org_id, "limit": limit + 1}
    if after_id is not None:
        params["after_id"] = after_id
    return Page.from_rows(await uow.rows(_read_statement(after=after_id is not None), params), limit)


async def plans_by_ids(uow: UnitOfWork, *, principal: Principal, ids: list[str] | tuple[str, ...]) -> dict[str, Plan]:
    """One statement for many ids (the dataloaders' batch)."""
    if not ids:
        return {}
    rows = await uow.rows(_many_statement(), {"org_id": principal.org_id, "keys": list(set(ids))})
    return {row.id: row for row in rows}  # type: ignore[misc]


@cache
def _many_statement() -> Select[Any]:
    return select(*_READ_COLUMNS).where(Plan.org_id == bindparam("org_id"),
                                        Plan.id.in_(bindparam("keys", expanding=True)))  # type: ignore[attr-defined]
