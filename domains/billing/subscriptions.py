"""Subscriptions: a customer on a plan from a start date, until cancelled. One function per verb.

Status is derived, never stored: ``upcoming`` before the start, ``active`` from the start until the
end date, ``ended`` from the end date on (or at once when it ends the moment it starts). Billing
periods are anchored on ``billing_anchor`` (``start_date`` unless a billing_cycle_anchor_configuration
said otherwise) until a plan change re-anchors them (see domains.billing.periods and cycles).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, bindparam, delete, func, or_, select, update

from domains.billing import cycles
from domains.billing.periods import CADENCE_MONTHS, Period
from domains.catalog import plans
from domains.customers import service as customers
from domains.errors import ConstraintViolation, NotFound, ValidationFailed
from domains.metadata import merge_metadata
from domains.pagination import Page, page_size
from domains.tenancy.service import Principal
from domains.text import one_of, refuse_unknown, text
from domains.unit_of_work import UnitOfWork
from persistence.ids import new_id
from persistence.tables import (
    Customer,
    Invoice,
    InvoiceLineItem,
    Plan,
    Price,
    Subscription,
    SubscriptionPlanChange,
    SubscriptionPriceQuantity,
)
from persistence.types import UTCDateTime

STATUSES = ("active", "ended", "upcoming")
CANCEL_OPTIONS = ("end_of_subscription_term", "immediate", "requested_date")
_CREATE_FIELDS = frozenset({"customer_id", "external_customer_id", "plan_id", "external_plan_id", "start_date",
                            "net_terms", "auto_collection", "metadata", "end_date", "billing_cycle_anchor_configuration",
                            "align_billing_with_subscription_start_date", "default_invoice_memo",
                            "trial_duration_days", "currency", "plan_version_number", "initial_phase_order"})
_UPDATE_FIELDS = frozenset({"metadata", "net_terms", "auto_collection", "default_invoice_memo"})
_ANCHOR_FIELDS = frozenset({"day", "month", "year"})
MAX_TRIAL_DAYS = 3650
_READ_COLUMNS = [
    column.label("subscription_metadata") if column.name == "metadata" else column
    for column in Subscription.__table__.columns  # type: ignore[attr-defined]
]


def subscription_status(subscription: Subscription, now: datetime) -> str:
    """upcoming / active / ended at ``now`` (a subscription ending at its start never runs: ended)."""
    end = subscription.end_date
    if end is not None and (end <= now or end <= subscription.start_date):
        return "ended"
    return "upcoming" if subscription.start_date > now else "active"


def _status_condition(status: str, now: Any) -> ColumnElement[bool]:
    """The SQL twin of subscription_status, so lists filter in the database."""
    start, end = Subscription.start_date, Subscription.end_date
    ended = and_(end.is_not(None), or_(end <= now, end <= start))  # type: ignore[union-attr,operator]
    if status == "ended":
        return ended
    open_after = or_(end.is_(None), and_(end > now, end > start))  # type: ignore[union-attr,operator]
    if status == "upcoming":
        return and_(start > now, open_after)  # type: ignore[operator]
    return and_(start <= now, open_after)  # type: ignore[operator]


def parse_instant(field: str, value: Any) -> datetime:
    """An aware instant (a datetime, or ISO 8601 text with a timezone), in UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValidationFailed(field, f"{value!r} is not an ISO 8601 date-time") from None
    if not isinstance(value, datetime):
        raise ValidationFailed(field, "must be an ISO 8601 date-time")
    if value.tzinfo is None:
        raise ValidationFailed(field, "needs a timezone (Z or an offset)")
    try:
        value = value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC (9999-12-31...-01:00 after 9999)
        value = EARLIEST - timedelta(days=1)
    return within_range(field, value)


# Billing periods, phases (up to 50 of ten years), anchors and trials are computed from a subscription's
# dates: bounded so that arithmetic stays inside Python's years 1 to 9999 (a 500 past them).
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def within_range(field: str, instant: datetime) -> datetime:
    if not EARLIEST <= instant < LATEST:
        raise ValidationFailed(field, f"must be from {EARLIEST.date().isoformat()} and before "
                                      f"{LATEST.date().isoformat()}")
    return instant


def refuse_outside_life(subscription: Subscription, field: str, at: datetime) -> None:
    """A change dated ``at`` must fall in the subscription's life: from its start, before its end."""
    if at < subscription.start_date:
        raise ValidationFailed(field, f"is before the subscription's start_date ({subscription.start_date.isoformat()})")
    if subscription.end_date is not None and at >= subscription.end_date:
        raise ValidationFailed(field, f"is not before the subscription's end_date ({subscription.end_date.isoformat()})")


async def last_invoiced(uow: UnitOfWork, principal: Principal, subscription_id: str) -> datetime | None:
    """Where the subscription's invoiced billing ends (None: nothing invoiced): billing is not re-anchored before.

    A voided invoice counts: the period close goes on from the end of the last invoice, void or not (a
    voided period is not billed again), so that end must stay a period boundary. What the invoices still
    standing hold back is ``invoiced_through``'s."""
    rows = await uow.rows(select(func.max(Invoice.period_end).label("until")).where(
        Invoice.org_id == principal.org_id, Invoice.subscription_id == subscription_id))
    return rows[0].until if rows else None  # type: ignore[no-any-return]


async def invoiced_through(uow: UnitOfWork, principal: Principal, subscription_id: str, *,
                           price_id: str | None = None) -> tuple[datetime | None, datetime | None]:
    """What the subscription's standing (not void) invoices billed: where their billing periods end, and where
    the service their line items billed ends (None: nothing invoiced). A fee billed in advance for longer than
    the billing period (an annual fee on a monthly plan) is on one invoice for its whole service period, so
    the service may end after the periods do. ``price_id``: the service of that price's lines only."""
    standing = and_(Invoice.org_id == principal.org_id, Invoice.subscription_id == subscription_id,
                    Invoice.status != "void")
    lines = select(func.max(InvoiceLineItem.end_date)).join(Invoice, Invoice.id == InvoiceLineItem.invoice_id).where(
        standing, InvoiceLineItem.org_id == principal.org_id)
    if price_id is not None:
        lines = lines.where(InvoiceLineItem.price_id == price_id)
    periods = select(func.max(Invoice.period_end)).where(standing)
    rows = await uow.rows(select(periods.scalar_subquery().label("periods"), lines.scalar_subquery().label("service")))
    return (rows[0].periods, rows[0].service) if rows else (None, None)


async def refuse_before_invoiced(uow: UnitOfWork, principal: Principal, subscription: Subscription, *,
                                 at: datetime, field: str, change: str, price_id: str | None = None) -> None:
    """A change dated ``at`` inside billing already invoiced would change issued invoices, which are never
    credited or voided here (Orb would, with ``allow_invoice_credit_or_void``; for a fee billed in advance it
    credits the unused time): refused, naming ``field``. Invoiced billing runs to the end of the standing
    invoices' periods, or of the service their lines billed in advance when that is later (``price_id``: of
    that price's lines, for a change to that price alone; ``invoiced_through``).
    Voided invoices do not count: they stay void, and the period close does not bill their periods again."""
    periods, service = await invoiced_through(uow, principal, subscription.id, price_id=price_id)
    if periods is None:
        return
    until = periods if service is None else max(periods, service)
    if at < until:
        advance = " (a fee billed in advance through then)" if until > periods else ""
        raise ConstraintViolation(f"billing is invoiced up to {until.isoformat()}{advance}; {change} before that "
                                  "would change issued invoices", field=field)


def net_terms_of(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 365:
        raise ValidationFailed("net_terms", "must be a whole number of days from 0 to 365")
    return value


def auto_collection_of(value: Any) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise ValidationFailed("auto_collection", "must be true, false or null")
    return value  # type: ignore[no-any-return]


def memo_of(value: Any) -> str | None:
    return text("default_invoice_memo", value, max_length=10_000)


def trial_days_of(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TRIAL_DAYS:
        raise ValidationFailed("trial_duration_days", f"must be a whole number of days from 0 to {MAX_TRIAL_DAYS}")
    return value


def _billing_anchor(fields: Mapping[str, Any], start: datetime) -> tuple[datetime | None, int | None]:
    """The anchor a billing_cycle_anchor_configuration asks for (None: the start date), and its month
    (None when it gave none: the anchor's month is then derived, not configured, and reads back null).

    ``day``: periods start on that day of the month (UTC midnight; a shorter month's last day), the
    first one on the first such day at or after the start; the stretch before it is a short, prorated
    period. ``month`` sets which months longer cadences start in (a quarterly price anchored in
    February starts February, May, August, November). ``year`` picks among multi-year cycles, which no
    cadence here has, so it is refused rather than ignored."""
    config = fields.get("billing_cycle_anchor_configuration")
    aligned = fields.get("align_billing_with_subscription_start_date")
    if aligned is not None and not isinstance(aligned, bool):
        raise ValidationFailed("align_billing_with_subscription_start_date", "must be true or false")
    if config is None:
        return None, None
    if aligned:
        raise ValidationFailed("align_billing_with_subscription_start_date",
                               "give it or billing_cycle_anchor_configuration, not both")
    field = "billing_cycle_anchor_configuration"
    if not isinstance(config, Mapping):
        raise ValidationFailed(field, "must be an object with a day")
    refuse_unknown(config, _ANCHOR_FIELDS, "a billing cycle anchor field", prefix=field)
    if config.get("year") is not None:
        raise ValidationFailed(f"{field}.year", "is not supported: no cadence here is longer than a year")
    day, month = config.get("day"), config.get("month")
    if isinstance(day, bool) or not isinstance(day, int) or not 1 <= day <= 31:
        raise ValidationFailed(f"{field}.day", "must be a day of the month from 1 to 31")
    if month is None:
        return cycles.day_anchor(start, day), None
    if isinstance(month, bool) or not isinstance(month, int) or not 1 <= month <= 12:
        raise ValidationFailed(f"{field}.month", "must be a month from 1 to 12")
    if day > calendar.monthrange(2024, month)[1]:  # a leap year: Feb 29 is a day February can have
        raise ValidationFailed(f"{field}.day", f"month {month} has no day {day}")
    # Any year: the grid extends both ways; the month sets which months longer cadences start in.
    return datetime(start.year, month, day, tzinfo=UTC), month


def _one_of_ids(fields: Mapping[str, Any], by_id: str, by_external: str) -> tuple[str, str]:
    """Exactly one of an id and an external id: (the field given, its value)."""
    given = [key for key in (by_id, by_external) if fields.get(key) is not None]
    if not given:
        raise ValidationFailed(by_id, f"{by_id} or {by_external} is required")
    if len(given) == 2:
        raise ValidationFailed(by_external, f"give {by_id} or {by_external}, not both")
    key = given[0]
    if not isinstance(fields[key], str) or not fields[key]:
        raise ValidationFailed(key, "must be a non-empty string")
    return key, fields[key]


async def _customer_of(uow: UnitOfWork, principal: Principal, fields: Mapping[str, Any]) -> Customer:
    key, value = _one_of_ids(fields, "customer_id", "external_customer_id")
    try:
        if key == "customer_id":
            return await customers.get_customer(uow, principal=principal, customer_id=value)
        return await customers.get_customer_by_external_id(uow, principal=principal, external_customer_id=value)
    except NotFound:
        # A reference in the body: bad input naming the field, like an unknown item_id on a price.
        raise ValidationFailed(key, f"no customer with {key} {value!r} exists") from None


def _plan_version(value: Any) -> None:
    """Plans keep no versions here: each is version 1, so that is the only version to subscribe to."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed("plan_version_number", "must be a whole number")
    if value != 1:
        raise ValidationFailed("plan_version_number", "plans have one version here (1); no other is kept")


async def active_plan_of(uow: UnitOfWork, principal: Principal, fields: Mapping[str, Any]) -> Plan:
    """The active plan ``plan_id`` or ``external_plan_id`` names (at ``plan_version_number``, if given)."""
    _plan_version(fields.get("plan_version_number"))
    key, value = _one_of_ids(fields, "plan_id", "external_plan_id")
    try:
        if key == "plan_id":
            plan = await plans.get_plan(uow, principal=principal, plan_id=value)
        else:
            plan = await plans.get_plan_by_external_id(uow, principal=principal, external_plan_id=value)
    except NotFound:
        raise ValidationFailed(key, f"no plan with {key} {value!r} exists") from None
    if plan.status != "active":
        raise ValidationFailed(key, f"plan {plan.id!r} is {plan.status}; only an active plan can be subscribed to")
    return plan


async def create_subscription(uow: UnitOfWork, *, principal: Principal, fields: Mapping[str, Any]) -> Subscription:
    """Subscribe a customer (by id or external id) to a plan (by id or external_plan_id).

    ``start_date`` defaults to now and may be in the past (backdated) or the future (upcoming);
    ``end_date`` (after the start) schedules its end. ``initial_phase_order`` starts a phased plan in a
    later phase. ``net_terms`` defaults to the plan's (0 when it has none); ``auto_collection`` left
    null follows the customer's setting. A customer with no currency yet takes the plan's (as Orb
    does); one with another currency is refused, naming the plan field, and so is a ``currency`` other
    than the plan's. ``trial_duration_days`` overrides the plan's trial (0: none).
    ``billing_cycle_anchor_configuration`` anchors the billing periods (see ``_billing_anchor``);
    ``default_invoice_memo`` is the memo of its issued invoices.
    """
    refuse_unknown(fields, _CREATE_FIELDS, "a subscription field")
    now = uow.clock.now()
    start = now if fields.get("start_date") is None else parse_instant("start_date", fields["start_date"])
    end = None if fields.get("end_date") is None else parse_instant("end_date", fields["end_date"])
    if end is not None and end <= start:
        raise ValidationFailed("end_date", f"must be after the start_date ({start.isoformat()})")
    auto_collection = auto_collection_of(fields.get("auto_collection"))
    anchor, anchor_month = _billing_anchor(fields, start)
    memo = memo_of(fields.get("default_invoice_memo"))
    trial_days = None if fields.get("trial_duration_days") is None else trial_days_of(fields["trial_duration_days"])
    metadata = merge_metadata("metadata", fields.get("metadata"))
    customer = await _customer_of(uow, principal, fields)
    plan = await active_plan_of(uow, principal, fields)
    plan_field = "plan_id" if fields.get("plan_id") is not None else "external_plan_id"
    if fields.get("currency") is not None and fields["currency"] != plan.currency:
        raise ValidationFailed("currency", f"the plan bills in {plan.currency}; a subscription bills in its "
                                           "plan's currency")
    if customer.currency is not None and customer.currency != plan.currency:
        raise ValidationFailed(plan_field, f"the plan bills in {plan.currency}; the customer is billed in "
                                           f"{customer.currency}")
    net_terms = net_terms_of(fields["net_terms"]) if fields.get("net_terms") is not None else (plan.net_terms or 0)
    initial_phase = _initial_phase_order(fields.get("initial_phase_order"), plan)
    if trial_days is None:
        trial_days = plan.trial_period_days or 0
    subscription = Subscription(
        id=new_id(), org_id=principal.org_id, customer_id=customer.id, plan_id=plan.id, currency=plan.currency,
        start_date=start, end_date=end, net_terms=net_terms, auto_collection=auto_collection,
        subscription_metadata=metadata, created_at=now, updated_at=now, billing_anchor=anchor,
        billing_anchor_month=anchor_month, default_invoice_memo=memo,
        trial_end_date=start + timedelta(days=trial_days) if trial_days else None,
    )
    async with uow.transaction():
        if customer.currency is None:
            # Only if still unset: a concurrent subscription in another currency must not be overwritten.
            claimed = await uow.session.execute(
                update(Customer)
                .where(Customer.org_id == principal.org_id, Customer.id == customer.id,
                       Customer.currency.is_(None))  # type: ignore[union-attr]
                .values(currency=plan.currency, updated_at=now)
            )
            if claimed.rowcount == 0:  # type: ignore[attr-defined]
                current = await customers.get_customer(uow, principal=principal, customer_id=customer.id)
                if current.currency != plan.currency:
                    raise ValidationFailed(plan_field, f"the plan bills in {plan.currency}; the customer is billed "
                                                      f"in {current.currency}")
        uow.session.add(subscription)
        if initial_phase is not None and initial_phase > 1:
            # A phase transition at the start: the subscription enters the plan in that phase.
            uow.session.add(SubscriptionPlanChange(id=new_id(), org_id=principal.org_id, subscription_id=subscription.id,
                                                   plan_id=plan.id, effective_date=start, created_at=now,
                                                   plan_phase_order=initial_phase))
        await uow.session.flush()
    return subscription


def _initial_phase_order(value: Any, plan: Plan) -> int | None:
    """Orb's initial_phase_order: the phase of a phased plan the subscription starts in (default 1)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed("initial_phase_order", "must be a whole number (a phase's order)")
    count = len(plan.plan_phases or ())
    if not count:
        raise ValidationFailed("initial_phase_order", f"plan {plan.id!r} has no plan_phases")
    if not 1 <= value <= count:
        raise ValidationFailed("initial_phase_order", f"no phase {value}: the plan's phases are 1 to {count}")
    return value


@cache
def _read_statement(
    *, key: bool = False, many: bool = False, reseller: bool = False, customer: bool = False,
    status: str | None = None, after: bool = False, page: bool = False,
) -> Select[Any]:
    """Read statements built once per shape, with bound parameters (the readers prepare them once)."""
    statement = select(*_READ_COLUMNS).where(Subscription.org_id == bindparam("org_id"))
    if reseller:
        # A reseller's key sees only its customers' subscriptions.
        statement = statement.join(Customer, Customer.id == Subscription.customer_id).where(
            Customer.org_id == bindparam("org_id"), Customer.reseller_id == bindparam("reseller_id"))
    if key:
        column = Subscription.__table__.c.id  # type: ignore[attr-defined]
        statement = statement.where(column.in_(bindparam("keys", expanding=True)) if many else column == bindparam("key"))
    if customer:
        statement = statement.where(Subscription.customer_id == bindparam("customer_id"))
    if status is not None:
        statement = statement.where(_status_condition(status, bindparam("now", type_=UTCDateTime)))
    if after:
        statement = statement.where(Subscription.id < bindparam("after_id"))
    if page:
        statement = statement.order_by(Subscription.id.desc()).limit(bindparam("limit"))  # type: ignore[attr-defined]
    return statement


def _scope(principal: Principal, **params: Any) -> dict[str, Any]:
    params["org_id"] = principal.org_id
    if principal.reseller_id is not None:
        params["reseller_id"] = principal.reseller_id
    return params


async def get_subscription(uow: UnitOfWork, *, principal: Principal, subscription_id: str) -> Subscription:
    """The subscription with this id in the caller's organisation, or NotFound."""
    statement = _read_statement(key=True, reseller=principal.reseller_id is not None)
    rows = await uow.rows(statement, _scope(principal, key=subscription_id))
    if not rows:
        raise NotFound(f"subscription {subscription_id!r} was not found", field="subscription_id")
    return rows[0]  # type: ignore[return-value]


async def subscriptions_by_ids(
    uow: UnitOfWork, *, principal: Principal, ids: Sequence[str]
) -> dict[str, Subscription]:
    """One statement for many ids (the dataloaders' batch)."""
    if not ids:
        return {}
    statement = _read_statement(key=True, many=True, reseller=principal.reseller_id is not None)
    rows = await uow.rows(statement, _scope(principal, keys=list(set(ids))))
    return {row.id: row for row in rows}  # type: ignore[misc]


async def list_subscriptions(
    uow: UnitOfWork,
    *,
    principal: Principal,
    customer_id: str | None = None,
    external_customer_id: str | None = None,
    status: str | None = None,
    limit: int | None = None,
    after_id: str | None = None,
) -> Page[Subscription]:
    """Newest first, by keyset on the time-ordered id; filters combine (an unknown customer lists nothing)."""
    limit = page_size(limit)
    if status is not None:
        one_of("status", status, STATUSES)
    params = _scope(principal, limit=limit + 1)
    customer_ids = {customer_id} if customer_id is not None else set()
    if external_customer_id is not None:
        try:
            customer = await customers.get_customer_by_external_id(
                uow, principal=principal, external_customer_id=external_customer_id)
        except NotFound:
            return Page(items=[], has_more=False, next_cursor=None)
        customer_ids.add(customer.id)
    if len(customer_ids) > 1:  # two filters naming different customers
        return Page(items=[], has_more=False, next_cursor=None)
    if customer_ids:
        params["customer_id"] = customer_ids.pop()
    if status is not None:
        params["now"] = uow.clock.now()
    if after_id is not None:
        params["after_id"] = after_id
    statement = _read_statement(reseller=principal.reseller_id is not None, customer="customer_id" in params,
                                status=status, after=after_id is not None, page=True)
    return Page.from_rows(await uow.rows(statement, params), limit)


async def lock_subscription(uow: UnitOfWork, principal: Principal, subscription_id: str) -> Subscription:
    """The ORM instance to change, locked on PostgreSQL until the transaction ends."""
    await get_subscription(uow, principal=principal, subscription_id=subscription_id)  # scope (reseller) check
    statement = select(Subscription).where(Subscription.org_id == principal.org_id, Subscription.id == subscription_id)
    if uow.is_postgres:
        statement = statement.with_for_update()
    subscription = (await uow.session.execute(statement)).scalar_one_or_none()
    if subscription is None:
        raise NotFound(f"subscription {subscription_id!r} was not found", field="subscription_id")
    return subscription


async def lock_unended(uow: UnitOfWork, principal: Principal, subscription_id: str, now: datetime, *,
                       refusal: str = "has already ended") -> Subscription:
    """``lock_subscription`` for a change an ended subscription cannot take: refused naming it, ``refusal``
    saying why."""
    subscription = await lock_subscription(uow, principal, subscription_id)
    if subscription_status(subscription, now) == "ended":
        raise ConstraintViolation(f"subscription {subscription_id!r} {refusal}", field="subscription_id")
    return subscription


async def update_subscription(
    uow: UnitOfWork, *, principal: Principal, subscription_id: str, fields: Mapping[str, Any]
) -> Subscription:
    """Change a subscription's metadata (keys given are set, a key given null is removed), its
    ``net_terms`` (for invoices issued from now on), ``auto_collection`` (null: the customer's setting)
    or ``default_invoice_memo`` (null removes it)."""
    refuse_unknown(fields, _UPDATE_FIELDS, "a subscription field that can be updated")
    changes: dict[str, Any] = {}
    if fields.get("net_terms") is not None:
        changes["net_terms"] = net_terms_of(fields["net_terms"])
    if "auto_collection" in fields:
        changes["auto_collection"] = auto_collection_of(fields["auto_collection"])
    if "default_invoice_memo" in fields:
        changes["default_invoice_memo"] = memo_of(fields["default_invoice_memo"])
    async with uow.transaction():
        subscription = await lock_subscription(uow, principal, subscription_id)
        if "metadata" in fields:
            given = fields["metadata"]
            current = subscription.subscription_metadata if given is not None else None
            subscription.subscription_metadata = merge_metadata("metadata", given, current)
        for name, value in changes.items():
            setattr(subscription, name, value)
        if changes or "metadata" in fields:
            subscription.updated_at = uow.clock.now()
        await uow.session.flush()
    return subscription


def term_cadence(cadences: Iterable[str]) -> str:
    """A plan's term: its longest recurring price cadence (monthly when it has none), as in Orb's
    "monthly usage + annual platform fee = an annual term"."""
    recurring = [c for c in cadences if c != "one_time"]
    return max(recurring, key=CADENCE_MONTHS.__getitem__, default="monthly")


def billing_cadence(cadences: Iterable[str]) -> str:
    """How often a plan invoices: its shortest recurring price cadence (monthly when it has none)."""
    recurring = [c for c in cadences if c != "one_time"]
    return min(recurring, key=CADENCE_MONTHS.__getitem__, default="monthly")


def current_billing_period(subscription: Subscription, cadences: Iterable[str], now: datetime,
                           changes: Iterable[SubscriptionPlanChange] = (),
                           phase_starts: Iterable[datetime] = ()) -> Period | None:
    """The billing period (of the plan's billing cadence) holding ``now``, cut to its billing cycle and
    at the end date; None unless the subscription is active (as Orb leaves it null for upcoming and
    ended ones). ``changes``: its plan change rows (those re-anchoring billing move the periods);
    ``phase_starts``: where phases aligning billing begin (schedule.aligned_phase_starts)."""
    if subscription_status(subscription, now) != "active":
        return None
    return cycles.period_at(cycles.subscription_cycles(subscription, changes, phase_starts=phase_starts),
                            billing_cadence(cadences), now)


async def _term_cadence(uow: UnitOfWork, principal: Principal, plan_id: str) -> str:
    rows = await uow.rows(select(Price.cadence).where(Price.org_id == principal.org_id, Price.plan_id == plan_id))
    return term_cadence(row.cadence for row in rows)


async def plan_id_at(uow: UnitOfWork, principal: Principal, subscription: Subscription, at: datetime) -> str:
    """The plan the subscription is on at ``at``: the last plan change in effect then, else the plan it
    started on (``subscriptions.plan_id`` is that starting plan; the phases are in domains.billing.schedule)."""
    rows = await uow.rows(
        select(SubscriptionPlanChange.plan_id)
        .where(SubscriptionPlanChange.org_id == principal.org_id,
               SubscriptionPlanChange.subscription_id == subscription.id,
               SubscriptionPlanChange.effective_date <= at)  # type: ignore[arg-type]
        .order_by(SubscriptionPlanChange.effective_date.desc()).limit(1))  # type: ignore[attr-defined]
    return rows[0].plan_id if rows else subscription.plan_id


async def term_end(uow: UnitOfWork, principal: Principal, subscription: Subscription, now: datetime) -> datetime:
    """End of the current term: the billing period of the current plan's longest recurring cadence
    holding now (holding the start for an upcoming subscription), on the billing cycle holding it."""
    at = max(now, subscription.start_date)
    cadence = await _term_cadence(uow, principal, await plan_id_at(uow, principal, subscription, at))
    # The term runs on its grid past a scheduled end (a cancellation at term end replaces that end).
    # Phases aligning billing re-anchor it too: schedule derives them (and imports this module).
    from domains.billing import schedule
    cycle_list = await schedule.subscription_billing_cycles(uow, principal, subscription, open_ended=True)
    return cycles.period_at(cycle_list, cadence, at).end


async def cancel_subscription(
    uow: UnitOfWork,
    *,
    principal: Principal,
    subscription_id: str,
    cancel_option: Any,
    cancellation_date: Any = None,
) -> Subscription:
    """Schedule (or make) the subscription's end.

    ``end_of_subscription_term``: at the end of the current term (the billing period of the plan's
    longest recurring cadence holding now, or holding the start for an upcoming subscription).
    ``immediate``: now (an upcoming subscription then ends at its start: it never runs).
    ``requested_date``: at ``cancellation_date``, which may be backdated but not before the start.
    Whatever the option, not inside billing already invoiced (``refuse_before_invoiced``: with a fee billed in
    advance, up to the end of its invoiced service, which is never credited).
    An ended subscription cannot be cancelled; a scheduled cancellation is replaced. Plan changes at
    or after the end, and fixed fee quantity changes, are dropped (unscheduling the cancellation does not
    bring them back).
    """
    one_of("cancel_option", cancel_option, CANCEL_OPTIONS)
    if cancel_option == "requested_date":
        if cancellation_date is None:
            raise ValidationFailed("cancellation_date", "is required when cancel_option is requested_date")
        requested = parse_instant("cancellation_date", cancellation_date)
    elif cancellation_date is not None:
        raise ValidationFailed("cancellation_date", "is only taken when cancel_option is requested_date")
    now = uow.clock.now()
    async with uow.transaction():
        subscription = await lock_unended(uow, principal, subscription_id, now)
        if cancel_option == "requested_date":
            if requested < subscription.start_date:
                raise ValidationFailed("cancellation_date", "is before the subscription's start_date "
                                       f"({subscription.start_date.isoformat()})")
            end = requested
        elif cancel_option == "immediate":
            end = max(now, subscription.start_date)
        else:
            end = await term_end(uow, principal, subscription, now)
        # Any option: now or the term's end may still be inside the service of a fee billed in advance.
        field = "cancellation_date" if cancel_option == "requested_date" else "cancel_option"
        await refuse_before_invoiced(uow, principal, subscription, at=end, field=field, change="a cancellation")
        subscription.end_date = end
        # The schedule stops at the end: plan and quantity changes from then on would never take effect.
        for change in (SubscriptionPlanChange, SubscriptionPriceQuantity):
            await uow.session.execute(delete(change).where(
                change.org_id == principal.org_id, change.subscription_id == subscription.id,  # type: ignore[attr-defined]
                change.effective_date >= end))  # type: ignore[attr-defined]
        subscription.updated_at = now
        await uow.session.flush()
    return subscription


async def unschedule_cancellation(uow: UnitOfWork, *, principal: Principal, subscription_id: str) -> Subscription:
    """Drop a scheduled cancellation whose date has not come yet: the subscription runs on, open-ended."""
    now = uow.clock.now()
    async with uow.transaction():
        subscription = await lock_unended(uow, principal, subscription_id, now)
        if subscription.end_date is None:
            raise ConstraintViolation(f"subscription {subscription_id!r} has no scheduled cancellation",
                                      field="subscription_id")
        subscription.end_date = None
        subscription.updated_at = now
        await uow.session.flush()
    return subscription


async def update_trial(
    uow: UnitOfWork, *, principal: Principal, subscription_id: str, trial_end_date: Any, shift: Any = True,
) -> Subscription:
    """Move the end of the subscription's free trial (Orb's update_trial): to ``trial_end_date`` (a
    date-time, not before the start nor after the end) or ``"immediate"`` (now). Fixed fees are not
    billed before it. With ``shift`` (the default), pending plan and fixed-fee quantity changes from
    the old trial end on move by as much as the trial end did (so a change "after the trial" stays so);
    not when that would move billing periods already invoiced (``schedule.refuse_shifting_invoiced``).
    Neither end, the old or the new, may fall inside billing already invoiced (``refuse_before_invoiced``).
    """
    if not isinstance(shift, bool):
        raise ValidationFailed("shift", "must be true or false")
    if trial_end_date is None:
        raise ValidationFailed("trial_end_date", "is required: a date-time or \"immediate\"")
    now = uow.clock.now()
    requested = None if trial_end_date == "immediate" else parse_instant("trial_end_date", trial_end_date)
    async with uow.transaction():
        subscription = await lock_unended(uow, principal, subscription_id, now)
        new_end = max(now, subscription.start_date) if requested is None else requested
        if new_end < subscription.start_date:
            raise ValidationFailed("trial_end_date", "is before the subscription's start_date "
                                   f"({subscription.start_date.isoformat()})")
        if subscription.end_date is not None and new_end > subscription.end_date:
            raise ValidationFailed("trial_end_date", f"is after the subscription's end_date "
                                   f"({subscription.end_date.isoformat()})")
        old_end = subscription.trial_end_date
        if shift and old_end is not None and new_end != old_end:
            await _shift_pending_changes(uow, principal, subscription, since=max(old_end, now), by=new_end - old_end)
        # Fixed fees are billed from the trial end (no trial: from the start): moved inside billing already
        # invoiced, the fees of the stretch between the two ends would be billed twice or never.
        billed_from = subscription.start_date if old_end is None else old_end
        if new_end != billed_from:
            await refuse_before_invoiced(uow, principal, subscription, at=min(new_end, billed_from),
                                         field="trial_end_date", change="a trial end")
        subscription.trial_end_date = new_end
        subscription.updated_at = now
        await uow.session.flush()
    return subscription


async def _shift_pending_changes(uow: UnitOfWork, principal: Principal, subscription: Subscription, *,
                                 since: datetime, by: timedelta) -> None:
    for change in (SubscriptionPlanChange, SubscriptionPriceQuantity):
        rows = (await uow.session.execute(select(change).where(
            change.org_id == principal.org_id, change.subscription_id == subscription.id,  # type: ignore[attr-defined]
            change.effective_date >= since))).scalars().all()  # type: ignore[attr-defined]
        if change is SubscriptionPlanChange:
            # Plan changes may re-anchor billing (their own alignment, or a phase aligning billing):
            # moved back into invoiced billing, they would re-bill it. Phases are schedule's (which imports this module).
            from domains.billing import schedule
            await schedule.refuse_shifting_invoiced(uow, principal, subscription, shifted=rows, by=by, field="shift")
        for row in rows:
            moved = row.effective_date + by
            if moved <= subscription.start_date or (subscription.end_date is not None
                                                    and moved >= subscription.end_date):
                raise ValidationFailed("shift", "would move a scheduled change outside the subscription's life; "
                                                "pass shift: false")
            row.effective_date = moved
