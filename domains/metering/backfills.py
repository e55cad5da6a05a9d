"""Backfills, as Orb has them: events for a past timeframe are ingested into a pending backfill (past
the grace period, invisible to usage), then closing it makes them count in one transaction, replacing
the timeframe's existing events if asked; reverting puts everything back as it was.

Visibility is one nullable column, `events.deprecated_by`: NULL for events that count. A pending
backfill's events carry its id there; on close, the events it replaces take its id and its own
events are cleared; a revert does the opposite. Events are never deleted.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, select, update

from domains.errors import Conflict, NotFound, ValidationFailed
from domains.pagination import Page, page_size
from domains.tenancy.service import Principal
from domains.text import one_of, refuse_unknown
from domains.unit_of_work import UnitOfWork
from persistence.ids import new_id
from persistence.tables import Customer, Event, EventBackfill

# Orb's default limits: a backfill spans at most 31 days and accepts events for one day unless told.
MAX_TIMEFRAME = timedelta(days=31)
DEFAULT_CLOSE_AFTER = timedelta(days=1)
STATUSES = ("pending", "reflected", "pending_revert", "reverted")
_FIELDS = frozenset({"timeframe_start", "timeframe_end", "close_time", "customer_id", "external_customer_id",
                     "replace_existing_events", "deprecation_filter"})


def _instant(fields: Mapping[str, Any], name: str, *, required: bool) -> datetime | None:
    value = fields.get(name)
    if value is None:
        if required:
            raise ValidationFailed(name, "is required")
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValidationFailed(name, "must be an ISO 8601 date-time with a UTC offset")
    return value


async def _customer_in_scope(uow: UnitOfWork, principal: Principal, column: Any, value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationFailed(field, "must be a non-empty string")
    statement = select(Customer.id).where(Customer.org_id == principal.org_id, column == value)
    if principal.reseller_id is not None:
        statement = statement.where(Customer.reseller_id == principal.reseller_id)
    rows = await uow.rows(statement)
    if not rows:
        raise ValidationFailed(field, f"no customer with {field} {value!r} exists")
    return str(rows[0][0])


async def create_backfill(uow: UnitOfWork, *, principal: Principal, fields: Mapping[str, Any]) -> EventBackfill:
    """Open a pending backfill over [timeframe_start, timeframe_end), for one customer or all."""
    refuse_unknown(fields, _FIELDS, "a backfill field")
    now = uow.clock.now()
    start = _instant(fields, "timeframe_start", required=True)
    end = _instant(fields, "timeframe_end", required=True)
    assert start is not None and end is not None
    if end <= start:
        raise ValidationFailed("timeframe_end", "must be after timeframe_start")
    if end - start > MAX_TIMEFRAME:
        raise ValidationFailed("timeframe_end", f"a backfill spans at most {MAX_TIMEFRAME.days} days")
    if start > now:
        raise ValidationFailed("timeframe_start", "must not be in the future")
    close_time = _instant(fields, "close_time", required=False) or now + DEFAULT_CLOSE_AFTER
    if close_time <= now:
        raise ValidationFailed("close_time", "must be in the future")
    if fields.get("deprecation_filter") is not None:
        raise ValidationFailed("deprecation_filter", "is not supported: a replacing backfill replaces every event "
                                                     "of its timeframe (and customer)")
    replace = fields.get("replace_existing_events", False)
    if replace is None:
        replace = False
    if not isinstance(replace, bool):
        raise ValidationFailed("replace_existing_events", "must be a boolean")
    customer_id, external_id = fields.get("customer_id"), fields.get("external_customer_id")
    if customer_id is not None and external_id is not None:
        raise ValidationFailed("customer_id", "give at most one of customer_id and external_customer_id")
    if customer_id is not None:
        customer_id = await _customer_in_scope(uow, principal, Customer.id, customer_id, "customer_id")
    elif external_id is not None:
        customer_id = await _customer_in_scope(uow, principal, Customer.external_customer_id, external_id,
                                               "external_customer_id")
    elif principal.reseller_id is not None:
        # A backfill of all customers would touch customers this key may not see.
        raise ValidationFailed("customer_id", "a key limited to a reseller must scope its backfills to a customer")
    backfill = EventBackfill(
        id=new_id(), org_id=principal.org_id, status="pending", timeframe_start=start, timeframe_end=end,
        customer_id=customer_id, replace_existing_events=replace, deprecation_filter=None, close_time=close_time,
        events_ingested=0, created_at=now,
    )
    async with uow.transaction():
        uow.session.add(backfill)
    return backfill


def _scoped(principal: Principal) -> list[Any]:
    conditions = [EventBackfill.org_id == principal.org_id]
    if principal.reseller_id is not None:
        conditions.append(EventBackfill.customer_id.in_(  # type: ignore[union-attr]
            select(Customer.id).where(Customer.org_id == principal.org_id,
                                      Customer.reseller_id == principal.reseller_id)))
    return conditions


async def get_backfill(uow: UnitOfWork, *, principal: Principal, backfill_id: str, lock: bool = False) -> EventBackfill:
    """One backfill of the organisation; `lock` (inside a transaction) holds it until commit."""
    statement = select(EventBackfill).where(*_scoped(principal), EventBackfill.id == backfill_id)
    if lock:
        result = await uow.session.execute(statement.with_for_update().execution_options(populate_existing=True))
        backfill = result.scalar_one_or_none()
    else:
        rows = await uow.rows(select(*EventBackfill.__table__.columns).where(  # type: ignore[attr-defined]
            *_scoped(principal), EventBackfill.id == backfill_id))
        backfill = rows[0] if rows else None  # type: ignore[assignment]
    if backfill is None:
        raise NotFound(f"backfill {backfill_id!r} was not found", field="backfill_id")
    return backfill


async def list_backfills(
    uow: UnitOfWork, *, principal: Principal, limit: int | None = None, after_id: str | None = None,
    status: str | None = None, customer_id: str | None = None,
) -> Page[EventBackfill]:
    """Newest first, by keyset on the time-ordered id."""
    limit = page_size(limit)
    if status is not None:
        one_of("status", status, STATUSES)
    statement = select(*EventBackfill.__table__.columns).where(*_scoped(principal))  # type: ignore[attr-defined]
    if after_id is not None:
        statement = statement.where(EventBackfill.id < after_id)
    if status is not None:
        statement = statement.where(EventBackfill.status == status)
    if customer_id is not None:
        statement = statement.where(EventBackfill.customer_id == customer_id)
    statement = statement.order_by(EventBackfill.id.desc()).limit(limit + 1)  # type: ignore[attr-defined]
    return Page.from_rows(await uow.rows(statement), limit)


def _in_timeframe(backfill: EventBackfill) -> list[Any]:
    conditions = [Event.org_id == backfill.org_id, Event.timestamp >= backfill.timeframe_start,
                  Event.timestamp < backfill.timeframe_end]
    if backfill.customer_id is not None:
        conditions.append(Event.customer_id == backfill.customer_id)
    return conditions


def _refuse_transition(backfill: EventBackfill, verb: str) -> Conflict:
    return Conflict(f"backfill {backfill.id!r} is {backfill.status} and cannot be {verb}", field="backfill_id")


async def close_backfill(uow: UnitOfWork, *, principal: Principal, backfill_id: str) -> EventBackfill:
    """Reflect a pending backfill: its events count from now on and, if it replaces, the timeframe's
    other events stop counting, all in one transaction."""
    async with uow.transaction():
        backfill = await get_backfill(uow, principal=principal, backfill_id=backfill_id, lock=True)
        if backfill.status != "pending":
            raise _refuse_transition(backfill, "closed")
        if backfill.replace_existing_events:
            # Only events that count now: the backfill's own are still hidden under its id.
            await uow.session.execute(
                update(Event).where(*_in_timeframe(backfill), Event.deprecated_by.is_(None))  # type: ignore[union-attr]
                .values(deprecated_by=backfill.id).execution_options(synchronize_session=False))
        await uow.session.execute(
            update(Event).where(Event.org_id == backfill.org_id, Event.backfill_id == backfill.id,
                                Event.deprecated_by == backfill.id)
            .values(deprecated_by=None).execution_options(synchronize_session=False))
        now = uow.clock.now()
        backfill.status = "reflected"
        # Orb: a close time in the past is when the backfill was closed.
        backfill.close_time = min(backfill.close_time, now)
    return backfill


async def revert_backfill(uow: UnitOfWork, *, principal: Principal, backfill_id: str) -> EventBackfill:
    """Undo a backfill: a pending one is discarded; a reflected one's events stop counting and the
    events it replaced count again."""
    async with uow.transaction():
        backfill = await get_backfill(uow, principal=principal, backfill_id=backfill_id, lock=True)
        if backfill.status not in ("pending", "reflected"):
            raise _refuse_transition(backfill, "reverted")
        if backfill.status == "reflected":
            reverted = select(EventBackfill.id).where(EventBackfill.org_id == backfill.org_id,
                                                      EventBackfill.status == "reverted")
            # What it replaced counts again, except events of backfills reverted since, which go
            # back under their own backfill's id.
            await uow.session.execute(
                update(Event).where(Event.org_id == backfill.org_id, Event.deprecated_by == backfill.id)
                .values(deprecated_by=case((and_(Event.backfill_id.is_not(None),  # type: ignore[union-attr]
                                                 Event.backfill_id.in_(reverted)),  # type: ignore[union-attr]
                                            Event.backfill_id), else_=None))
                .execution_options(synchronize_session=False))
            # Its own events (and amendments of them) that still count stop counting.
            await uow.session.execute(
                update(Event).where(Event.org_id == backfill.org_id, Event.backfill_id == backfill.id,
                                    Event.deprecated_by.is_(None))  # type: ignore[union-attr]
                .values(deprecated_by=backfill.id).execution_options(synchronize_session=False))
        backfill.status = "reverted"
        backfill.reverted_at = uow.clock.now()
    return backfill


async def backfill_accepting_events(uow: UnitOfWork, *, principal: Principal, backfill_id: str) -> EventBackfill:
    """The pending backfill an ingest request names; refused once closed, reverted or past its close time."""
    if not isinstance(backfill_id, str) or not backfill_id:
        raise ValidationFailed("backfill_id", "must be a backfill id")
    backfill = await get_backfill(uow, principal=principal, backfill_id=backfill_id)
    check_accepting(backfill, uow.clock.now())
    return backfill


def check_accepting(backfill: EventBackfill, now: datetime) -> None:
    if backfill.status != "pending":
        raise Conflict(f"backfill {backfill.id!r} is {backfill.status} and accepts no more events",
                       field="backfill_id")
    if backfill.close_time <= now:
        raise Conflict(f"backfill {backfill.id!r} stopped accepting events at its close_time "
                       f"({backfill.close_time.isoformat()}); close it to reflect it", field="backfill_id")


async def count_ingested(uow: UnitOfWork, *, backfill: EventBackfill, stored: int) -> None:
    """Inside the ingest transaction: lock the backfill (a concurrent close waits for this batch),
    re-check that it still accepts events, and add the batch to its count."""
    statement = (select(EventBackfill).where(EventBackfill.org_id == backfill.org_id,
                                             EventBackfill.id == backfill.id)
                 .with_for_update().execution_options(populate_existing=True))
    current = (await uow.session.execute(statement)).scalar_one()
    check_accepting(current, uow.clock.now())
    current.events_ingested += stored
