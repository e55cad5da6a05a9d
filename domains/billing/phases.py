"""Moving a subscription through its phased plan's phases by hand (Orb's trigger_phase).

A phased plan's phases follow each other by their durations from when the subscription entered the
plan (domains.catalog.plan_phases; derived in domains.billing.schedule). A trigger is stored as a phase
transition: a ``subscription_plan_changes`` row on the same plan naming the phase it starts
(``plan_phase_order``). The later phases then follow by their durations from it, so triggering early
shifts them all; a later pending plan change to another plan keeps its date.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import and_

from domains.billing import schedule, subscriptions
from domains.errors import ConstraintViolation, ValidationFailed
from domains.tenancy.service import Principal
from domains.text import refuse_unknown
from domains.unit_of_work import UnitOfWork
from persistence.ids import new_id
from persistence.tables import Subscription, SubscriptionPlanChange

_TRIGGER_FIELDS = frozenset({"effective_date", "allow_invoice_credit_or_void"})


async def trigger_phase(
    uow: UnitOfWork, *, principal: Principal, subscription_id: str, fields: Mapping[str, Any]
) -> Subscription:
    """Move the subscription to the next phase of its plan at ``effective_date`` (a date, midnight UTC,
    or a date-time; default now), shifting the phases after it.

    Refused: a plan without phases, the last phase already in effect, an ended subscription, an
    ``effective_date`` before the start of the phase in effect now (history of an earlier phase is not
    rewritten) or outside the subscription's life, a backdated trigger that would move invoiced
    billing periods (``schedule.refuse_rebilling_invoiced``), and any trigger, backdated or now, inside
    billing already invoiced (``subscriptions.refuse_before_invoiced``: with a fee billed in advance, up
    to the end of its invoiced service). ``allow_invoice_credit_or_void`` is taken and has nothing to
    guard: issued invoices are never changed here (a trigger changes the open period's draft and what
    follows).
    """
    refuse_unknown(fields, _TRIGGER_FIELDS, "a trigger_phase field")
    allow = fields.get("allow_invoice_credit_or_void")
    if allow is not None and not isinstance(allow, bool):  # not `in (None, True, False)`: 1 == True, 0 == False
        raise ValidationFailed("allow_invoice_credit_or_void", "must be true, false or null")
    given = fields.get("effective_date")
    requested = schedule.parse_effective_date(given) if given is not None else None
    now = uow.clock.now()
    async with uow.transaction():
        subscription = await subscriptions.lock_unended(uow, principal, subscription_id, now,
                                                         refusal="has ended; its phase cannot change")
        start = subscription.start_date
        at = requested if requested is not None else max(now, start)
        subscriptions.refuse_outside_life(subscription, "effective_date", at)
        changes = await schedule.plan_changes_of(uow, principal, subscription.id)
        defined = await schedule.phase_definitions(uow, principal, schedule.plan_ids_of(subscription, changes))
        phases = schedule.phases_of(subscription, changes, defined)
        phase = schedule.phase_at(phases, at)
        if phase.phase_order is None:
            raise ConstraintViolation(f"plan {phase.plan_id!r}, which the subscription is on at {at.isoformat()}, "
                                      "has no plan_phases", field="subscription_id")
        current = schedule.phase_at(phases, max(now, start))
        if at < current.start:
            raise ValidationFailed("effective_date", "is before the start of the phase in effect now "
                                                     f"({current.start.isoformat()})")
        if phase.phase_order >= len(defined[phase.plan_id]):
            raise ConstraintViolation(f"subscription {subscription_id!r} is in the last phase of its plan at "
                                      f"{at.isoformat()}; there is no next phase", field="subscription_id")
        # Transitions after it were timed from the old phases: dropped, up to the next change of plan.
        next_plan_change = min((c.effective_date for c in changes
                                if c.plan_phase_order is None and c.effective_date > at), default=None)
        proposed = schedule.ProposedChange(new_id(), phase.plan_id, at, now, plan_phase_order=phase.phase_order + 1)
        # An aligned phase re-anchors billing at its start (or, moved, no longer where it did): not in invoiced billing.
        await schedule.refuse_rebilling_invoiced(
            uow, principal, subscription, changes=changes, proposed=proposed, field="effective_date",
            keep=lambda c: c.plan_phase_order is None or c.effective_date < at
            or (next_plan_change is not None and c.effective_date >= next_plan_change))
        # Nor inside billing already invoiced: the close goes on from its end, so the next phase would never
        # bill the invoiced rest of that period.
        await subscriptions.refuse_before_invoiced(uow, principal, subscription, at=at, field="effective_date",
                                                   change="a phase trigger")
        condition = and_(SubscriptionPlanChange.plan_phase_order.is_not(None),  # type: ignore[union-attr]
                         SubscriptionPlanChange.effective_date >= at)  # type: ignore[operator]
        if next_plan_change is not None:
            condition = and_(condition, SubscriptionPlanChange.effective_date < next_plan_change)  # type: ignore[operator]
        await schedule.drop_changes(uow, principal, subscription.id, condition)
        uow.session.add(SubscriptionPlanChange(id=proposed.id, org_id=principal.org_id, subscription_id=subscription.id,
                                               plan_id=phase.plan_id, effective_date=at, created_at=now,
                                               plan_phase_order=proposed.plan_phase_order))
        subscription.updated_at = now
        await uow.session.flush()
    return subscription
