"""Billing jobs: work that runs on its own, driven by the Clock, idempotent and safe to run twice.

``close_periods`` issues, for every subscription, the invoice of each billing period that has ended
and has none yet. It is safe against itself: on PostgreSQL each subscription is taken with
``FOR UPDATE SKIP LOCKED`` (a second worker skips it rather than waiting), and everywhere the unique
(subscription, period start) index turns a second issue of a period into a no-op.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from domains.billing import charges, invoices, schedule, subscriptions
from domains.catalog.plan_phases import PhaseDefinition
from domains.tenancy.service import Principal
from domains.unit_of_work import UnitOfWork
from persistence.tables import Invoice, Price, Subscription, SubscriptionPlanChange

log = logging.getLogger("accrual.jobs")
JOBS_KEY_ID = "accrual-jobs"  # the principal the jobs act as, in each subscription's organisation
_COLUMNS = [
    column.label("subscription_metadata") if column.name == "metadata" else column
    for column in Subscription.__table__.columns  # type: ignore[attr-defined]
]


async def close_periods(uow: UnitOfWork, now: datetime | None = None, *, org_id: str | None = None) -> list[Invoice]:
    """Issue the invoices of every billing period ended at or before ``now`` (the clock's by default).

    ``org_id`` limits the run to one organisation (an operator closing one tenant; tests sharing a
    database); by default every organisation's subscriptions are closed.

    A subscription's periods are closed in order from the end of its last invoiced period (or its
    start), so a worker that was down catches up. One transaction per subscription: a failure in one
    leaves the others' invoices issued (and is logged, then raised after the rest are done).
    """
    now = now or uow.clock.now()
    statement = select(*_COLUMNS).where(Subscription.start_date < now)
    if org_id is not None:
        statement = statement.where(Subscription.org_id == org_id)
    candidates = await uow.rows(statement.order_by(Subscription.org_id, Subscription.id))
    if not candidates:
        return []
    last_invoiced = select(Invoice.subscription_id, func.max(Invoice.period_end).label("until")).where(
        Invoice.subscription_id.is_not(None))  # type: ignore[union-attr]
    if org_id is not None:
        last_invoiced = last_invoiced.where(Invoice.org_id == org_id)
    invoiced_until = {row.subscription_id: row.until
                      for row in await uow.rows(last_invoiced.group_by(Invoice.subscription_id))}
    plan_cadences = await _plan_cadences(uow, {row.plan_id for row in candidates})
    plan_changes = await _plan_changes(uow, org_id)
    catalog = charges.Catalog()  # prices, phases and metrics, read once for the whole run
    issued: list[Invoice] = []
    failure: BaseException | None = None
    for subscription in candidates:
        cadences = plan_cadences.get(subscription.plan_id, [])
        start = invoiced_until.get(subscription.id) or subscription.start_date
        changes = plan_changes.get(subscription.id, [])
        # The phases of its plans (kept by the catalog: read once per plan in the run, not per subscription).
        defined = await catalog.phase_definitions(uow, Principal(org_id=subscription.org_id, key_id=JOBS_KEY_ID),
                                                  schedule.plan_ids_of(subscription, changes))  # type: ignore[arg-type]
        period = charges.subscription_billing_period(subscription, cadences, start, changes,  # type: ignore[arg-type]
                                                     defined)
        if period is None or period.end > now:
            continue  # nothing closed since the last invoice: no transaction, no lock
        try:
            issued += await _close_subscription(uow, subscription, cadences, now, catalog, changes, defined)
        except Exception as exc:  # one bad subscription must not stop the others' invoices
            log.exception("closing the periods of subscription %s failed", subscription.id)
            failure = failure or exc
    if failure is not None:
        raise failure
    return issued


async def _plan_cadences(uow: UnitOfWork, plan_ids: set[str]) -> dict[str, list[str]]:
    rows = await uow.rows(select(Price.plan_id, Price.cadence).where(Price.plan_id.in_(plan_ids)))  # type: ignore[union-attr]
    found: dict[str, list[str]] = {}
    for row in rows:
        found.setdefault(row.plan_id, []).append(row.cadence)
    return found


async def _plan_changes(uow: UnitOfWork, org_id: str | None) -> dict[str, list[Any]]:
    """The plan changes, by subscription, in one statement: the billing cycles need the re-anchoring ones and,
    as a phase may align billing with its start, every change saying which plan (and phase) is in effect."""
    statement = select(SubscriptionPlanChange.subscription_id, SubscriptionPlanChange.id,
                       SubscriptionPlanChange.plan_id, SubscriptionPlanChange.effective_date,
                       SubscriptionPlanChange.created_at, SubscriptionPlanChange.plan_phase_order,
                       SubscriptionPlanChange.billing_cycle_alignment)
    if org_id is not None:
        statement = statement.where(SubscriptionPlanChange.org_id == org_id)
    found: dict[str, list[Any]] = {}
    for row in await uow.rows(statement):
        found.setdefault(row.subscription_id, []).append(row)
    return found


async def _close_subscription(uow: UnitOfWork, subscription: Subscription, cadences: list[str], now: datetime,
                              catalog: charges.Catalog, changes: list[Any],
                              defined: dict[str, list[PhaseDefinition]]) -> list[Invoice]:
    principal = Principal(org_id=subscription.org_id, key_id=JOBS_KEY_ID)
    issued = []
    async with uow.transaction():
        if uow.is_postgres:
            locked = await uow.session.execute(
                select(Subscription.id).where(Subscription.org_id == subscription.org_id,
                                              Subscription.id == subscription.id)
                .with_for_update(skip_locked=True))
            if locked.first() is None:
                return []  # another worker is closing it
        # Read again under the lock: another worker may have closed periods since the first read.
        cursor = await subscriptions.last_invoiced(uow, principal, subscription.id) or subscription.start_date
        while True:
            period = charges.subscription_billing_period(subscription, cadences, cursor, changes, defined)
            if period is None or period.end > now:
                break
            invoice = await invoices.issue_subscription_invoice(uow, principal=principal, subscription=subscription,
                                                                period=period, catalog=catalog)
            if invoice is not None:
                issued.append(invoice)
            cursor = period.end
    return issued
