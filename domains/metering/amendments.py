"""Amending and deprecating one event, as Orb does: audit-safe, nothing overwritten or deleted.

An amendment is a new row under the same idempotency key (the next `amendment` number) and the row
it replaces stops counting (`deprecated_by` names the new row); a deprecated event names itself.
Both are refused outside the organisation's grace period: older usage changes through a backfill.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from domains.errors import Conflict, NotFound, ValidationFailed
from domains.metering.events import EventRefused, checked_properties
from domains.tenancy.service import Principal, event_grace_period
from domains.unit_of_work import UnitOfWork
from persistence.ids import new_id
from persistence.tables import Customer, Event


async def _counted_event(uow: UnitOfWork, principal: Principal, event_id: str) -> Event:
    """The version of the event that counts now, locked until the transaction ends."""
    statement = (select(Event).where(Event.org_id == principal.org_id, Event.idempotency_key == event_id,
                                     Event.deprecated_by.is_(None))  # type: ignore[union-attr]
                 .with_for_update().execution_options(populate_existing=True))
    if principal.reseller_id is not None:
        statement = statement.where(Event.customer_id.in_(  # type: ignore[union-attr]
            select(Customer.id).where(Customer.org_id == principal.org_id,
                                      Customer.reseller_id == principal.reseller_id)))
    event = (await uow.session.execute(statement)).scalars().first()
    if event is None:
        raise NotFound(f"event {event_id!r} was not found (or no longer counts)", field="event_id")
    return event


async def _within_grace(uow: UnitOfWork, principal: Principal, moment: datetime, field: str) -> None:
    grace = await event_grace_period(uow, org_id=principal.org_id)
    if moment < uow.clock.now() - grace:
        raise ValidationFailed(field, f"the event's timestamp is older than the grace period ({grace}); "
                                      "change it through a backfill")


async def amend_event(
    uow: UnitOfWork, *, principal: Principal, event_id: str, fields: Mapping[str, Any]
) -> str:
    """Replace the event `event_id` (its idempotency key) for usage with the amended one; the
    timestamp and customer must stay those of the event. Returns the event id."""
    name = fields.get("event_name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise ValidationFailed("event_name", "is required (a string of 1 to 255 characters)")
    timestamp = fields.get("timestamp")
    if not isinstance(timestamp, datetime) or timestamp.tzinfo is None:
        raise ValidationFailed("timestamp", "must be an ISO 8601 date-time in UTC")
    try:
        properties = checked_properties(fields.get("properties"))
    except EventRefused as exc:
        raise ValidationFailed("properties", str(exc)) from None
    customer_id, external_id = fields.get("customer_id"), fields.get("external_customer_id")
    if (customer_id is None) == (external_id is None):
        raise ValidationFailed("customer_id", "exactly one of customer_id and external_customer_id is required")
    async with uow.transaction():
        event = await _counted_event(uow, principal, event_id)
        if timestamp != event.timestamp:
            raise ValidationFailed("timestamp", f"must be the event's timestamp ({event.timestamp.isoformat()})")
        await _within_grace(uow, principal, timestamp, "timestamp")
        # Orb: the customer must exist (even for events sent before it did) and may not change.
        if event.customer_id is None:
            field = "customer_id" if customer_id is not None else "external_customer_id"
            raise ValidationFailed(field, "the event's customer does not exist; an event can only be amended "
                                          "once its customer exists")
        if customer_id is not None and customer_id != event.customer_id:
            raise ValidationFailed("customer_id", "must be the event's customer (an amendment cannot move usage)")
        if external_id is not None and external_id != event.external_customer_id:
            owner = (await uow.session.execute(select(Customer.external_customer_id).where(
                Customer.org_id == principal.org_id, Customer.id == event.customer_id))).scalar_one_or_none()
            if external_id != owner:
                raise ValidationFailed("external_customer_id",
                                       "must be the event's customer (an amendment cannot move usage)")
        amended = Event(
            id=new_id(), org_id=event.org_id, customer_id=event.customer_id,
            external_customer_id=event.external_customer_id, event_name=name, timestamp=event.timestamp,
            properties=properties, idempotency_key=event.idempotency_key, ingested_at=uow.clock.now(),
            amendment=event.amendment + 1, backfill_id=event.backfill_id, deprecated_by=None,
        )
        await _hide(uow, event, by=amended.id)
        uow.session.add(amended)
        try:
            await uow.session.flush()
        except IntegrityError:  # a concurrent amendment took this version number
            raise Conflict(f"event {event_id!r} was amended concurrently; retry", field="event_id") from None
    return event.idempotency_key


async def deprecate_event(uow: UnitOfWork, *, principal: Principal, event_id: str) -> str:
    """Stop counting the event `event_id` (kept for audit). Returns the event id."""
    async with uow.transaction():
        event = await _counted_event(uow, principal, event_id)
        await _within_grace(uow, principal, event.timestamp, "event_id")
        if event.customer_id is None:
            raise ValidationFailed("event_id", "the event's customer does not exist; only events of existing "
                                               "customers can be deprecated")
        await _hide(uow, event, by=event.id)
    return event.idempotency_key


async def _hide(uow: UnitOfWork, event: Event, *, by: str) -> None:
    # Compare-and-set: of two concurrent changes to one event, only the first hides it.
    result = await uow.session.execute(
        update(Event).where(Event.id == event.id, Event.deprecated_by.is_(None))  # type: ignore[union-attr]
        .values(deprecated_by=by).execution_options(synchronize_session=False))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"event {event.idempotency_key!r} was changed concurrently; retry", field="event_id")
