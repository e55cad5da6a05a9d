"""A subscription's plan schedule: which plan it is on over time, and changing it.

Storage: ``subscriptions.plan_id`` is the plan the subscription *started* on; each plan change is a
row (``subscription_plan_changes``) saying "from ``effective_date`` on, plan X". The phases are
derived from both and the end date, so a scheduled change takes effect by the clock, with no job,
and the current plan (what the faces show as the subscription's plan) is the plan of the phase
holding now: ``current_plan_id``.

Rules (as Orb's schedule_plan_change): ``immediate`` changes at now (at the start for an upcoming
subscription), ``end_of_subscription_term`` at the end of the current term (as cancellation computes
it), ``requested_date`` at ``change_date`` (backdating allowed, not before the start nor at/after the
end). At most one change is pending (in the future): a new change replaces it, and also supersedes
every change at or after its own date (a backdated change rewrites the history after it). The plan
must be active and bill in the subscription's currency.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select

from domains.billing import subscriptions
from domains.errors import ConstraintViolation, ValidationFailed
from domains.pagination import Page, page_size
from domains.tenancy.service import Principal
from domains.unit_of_work import UnitOfWork
from persistence.ids import new_id
from persistence.tables import Subscription, SubscriptionPlanChange

CHANGE_OPTIONS = ("requested_date", "end_of_subscription_term", "immediate")
_CHANGE_FIELDS = frozenset({"change_option", "change_date", "plan_id", "external_plan_id"})
_CHANGE_COLUMNS = list(SubscriptionPlanChange.__table__.columns)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class PlanPhase:
    plan_id: str
    start: datetime
    end: datetime | None   # None = open-ended


@dataclass(frozen=True)
class ScheduledPlan:
    """One entry of Orb's subscription schedule: a phase and when the change that began it was made.

    ``id`` is the plan change's id (the subscription's for the starting plan): the page cursor."""

    id: str
    plan_id: str
    start_date: datetime
    end_date: datetime | None
    created_at: datetime


def _entries(subscription: Subscription, changes: Iterable[SubscriptionPlanChange]) -> list[ScheduledPlan]:
    """The phases tiling [start_date, end_date), in order: changes at or after the end are cut off,
    a change at the start replaces the starting plan, and a change to the plan already in effect
    does not split a phase."""
    end = subscription.end_date
    entries: list[ScheduledPlan] = []
    key, plan_id, start, made = subscription.id, subscription.plan_id, subscription.start_date, subscription.created_at
    for change in sorted(changes, key=lambda c: c.effective_date):
        if end is not None and change.effective_date >= end:
            break
        if change.effective_date <= start:
            key, plan_id, made = change.id, change.plan_id, change.created_at
            continue
        if change.plan_id == plan_id:
            continue
        entries.append(ScheduledPlan(key, plan_id, start, change.effective_date, made))
        key, plan_id, start, made = change.id, change.plan_id, change.effective_date, change.created_at
    entries.append(ScheduledPlan(key, plan_id, start, end, made))
    return entries


def phases_of(subscription: Subscription, changes: Iterable[SubscriptionPlanChange]) -> list[PlanPhase]:
    """Pure: the plan phases of a subscription given its plan change rows."""
    return [PlanPhase(e.plan_id, e.start_date, e.end_date) for e in _entries(subscription, changes)]


def current_plan_id(phases: Sequence[PlanPhase], now: datetime) -> str:
    """The plan of the phase holding now; the first plan before the start, the last one after the end."""
    for phase in phases:
        if phase.start <= now and (phase.end is None or now < phase.end):
            return phase.plan_id
    return phases[0].plan_id if now < phases[0].start else phases[-1].plan_id


async def plan_changes_by_subscription_ids(
    uow: UnitOfWork, *, principal: Principal, subscription_ids: Sequence[str]
) -> dict[str, list[SubscriptionPlanChange]]:
    """The plan change rows of many subscriptions in one statement, oldest first (the loaders' batch)."""
    if not subscription_ids:
        return {}
    rows = await uow.rows(
        select(*_CHANGE_COLUMNS)
        .where(SubscriptionPlanChange.org_id == principal.org_id,
               SubscriptionPlanChange.subscription_id.in_(list(set(subscription_ids))))  # type: ignore[attr-defined]
        .order_by(SubscriptionPlanChange.effective_date))  # type: ignore[arg-type]
    grouped: dict[str, list[SubscriptionPlanChange]] = {}
    for row in rows:
        grouped.setdefault(row.subscription_id, []).append(row)  # type: ignore[arg-type]
    return grouped


async def _changes(uow: UnitOfWork, principal: Principal, subscription_id: str) -> list[SubscriptionPlanChange]:
    grouped = await plan_changes_by_subscription_ids(uow, principal=principal, subscription_ids=[subscription_id])
    return grouped.get(subscription_id, [])


async def plan_phases(uow: UnitOfWork, *, principal: Principal, subscription: Subscription) -> list[PlanPhase]:
    """The plans a subscription is on over time, in order, tiling [start_date, end_date)."""
    return phases_of(subscription, await _changes(uow, principal, subscription.id))


async def list_schedule(
    uow: UnitOfWork, *, principal: Principal, subscription_id: str, limit: int | None = None,
    after_id: str | None = None,
) -> Page[ScheduledPlan]:
    """The subscription's schedule (Orb's GET /subscriptions/{id}/schedule), oldest phase first."""
    limit = page_size(limit)
    subscription = await subscriptions.get_subscription(uow, principal=principal, subscription_id=subscription_id)
    entries = _entries(subscription, await _changes(uow, principal, subscription.id))
    if after_id is not None:
        keys = [entry.id for entry in entries]
        # A cursor past a phase a later change removed restarts nowhere rather than repeating phases.
        entries = entries[keys.index(after_id) + 1:] if after_id in keys else []
    return Page.from_rows(entries[:limit + 1], limit)


def _change_date(fields: Mapping[str, Any]) -> datetime | None:
    option = fields.get("change_option")
    if option not in CHANGE_OPTIONS:
        raise ValidationFailed("change_option", f"must be one of {', '.join(CHANGE_OPTIONS)}")
    given = fields.get("change_date")
    if option == "requested_date":
        if given is None:
            raise ValidationFailed("change_date", "is required when change_option is requested_date")
        return subscriptions.parse_instant("change_date", given)
    if given is not None:
        raise ValidationFailed("change_date", "is only taken when change_option is requested_date")
    return None


async def schedule_plan_change(
    uow: UnitOfWork, *, principal: Principal, subscription_id: str, fields: Mapping[str, Any]
) -> Subscription:
    """Move the subscription to another plan (by ``plan_id`` or ``external_plan_id``) at the date the
    ``change_option`` says, replacing any pending change (see the module's rules)."""
    unknown = sorted(set(fields) - _CHANGE_FIELDS)
    if unknown:
        raise ValidationFailed(unknown[0], "is not a plan change field")
    requested = _change_date(fields)
    plan = await subscriptions.active_plan_of(uow, principal, fields)
    plan_field = "plan_id" if fields.get("plan_id") is not None else "external_plan_id"
    now = uow.clock.now()
    async with uow.transaction():
        subscription = await subscriptions.lock_subscription(uow, principal, subscription_id)
        if subscriptions.subscription_status(subscription, now) == "ended":
            raise ConstraintViolation(f"subscription {subscription_id!r} has ended; its plan cannot change",
                                      field="subscription_id")
        if plan.currency != subscription.currency:
            raise ValidationFailed(plan_field, f"the plan bills in {plan.currency}; the subscription bills in "
                                               f"{subscription.currency}")
        end = subscription.end_date
        if requested is not None:
            if requested < subscription.start_date:
                raise ValidationFailed("change_date", "is before the subscription's start_date "
                                       f"({subscription.start_date.isoformat()})")
            if end is not None and requested >= end:
                raise ValidationFailed("change_date", f"is not before the subscription's end_date ({end.isoformat()})")
            at = requested
        elif fields["change_option"] == "immediate":
            at = max(now, subscription.start_date)
        else:
            at = await subscriptions.term_end(uow, principal, subscription, now)
            if end is not None and at >= end:
                raise ConstraintViolation(f"subscription {subscription_id!r} ends ({end.isoformat()}) before its "
                                          "term does; there is no next term to change plan at", field="change_option")
        await _drop_changes(uow, principal, subscription.id, or_(
            SubscriptionPlanChange.effective_date >= at, SubscriptionPlanChange.effective_date > now))  # type: ignore[operator]
        uow.session.add(SubscriptionPlanChange(id=new_id(), org_id=principal.org_id, subscription_id=subscription.id,
                                               plan_id=plan.id, effective_date=at, created_at=now))
        subscription.updated_at = now
        await uow.session.flush()
    return subscription


async def _drop_changes(uow: UnitOfWork, principal: Principal, subscription_id: str, condition: Any) -> int:
    result = await uow.session.execute(delete(SubscriptionPlanChange).where(
        SubscriptionPlanChange.org_id == principal.org_id, SubscriptionPlanChange.subscription_id == subscription_id,
        condition))
    return result.rowcount  # type: ignore[attr-defined,no-any-return]


async def unschedule_pending_plan_changes(
    uow: UnitOfWork, *, principal: Principal, subscription_id: str
) -> Subscription:
    """Drop the plan change that has not taken effect yet: the subscription stays on its current plan."""
    now = uow.clock.now()
    async with uow.transaction():
        subscription = await subscriptions.lock_subscription(uow, principal, subscription_id)
        if subscriptions.subscription_status(subscription, now) == "ended":
            raise ConstraintViolation(f"subscription {subscription_id!r} has already ended", field="subscription_id")
        dropped = await _drop_changes(uow, principal, subscription.id,
                                      SubscriptionPlanChange.effective_date > now)  # type: ignore[operator]
        if not dropped:
            raise ConstraintViolation(f"subscription {subscription_id!r} has no pending plan change",
                                      field="subscription_id")
        subscription.updated_at = now
        await uow.session.flush()
    return subscription

