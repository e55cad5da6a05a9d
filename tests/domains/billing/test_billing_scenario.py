"""Issue 5's scenario, on both databases: a customer on a plan with a monthly fixed fee and a tiered
usage price, events across two periods, the period-closing job run with the clock moved past each
period end, and a plan change in the middle of a period. Amounts are computed by hand here, to the cent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest

from domains.billing import invoices, jobs, schedule
from domains.billing import subscriptions as subs
from domains.catalog import prices
from domains.clock import FixedClock
from domains.unit_of_work import UnitOfWork
from persistence.db import session_factory
from tests.domains.billing.billing_world import at, make_plan, make_subscription, send_tokens

# The job closes every organisation's periods; in the shared test database each test limits it to
# its own organisation (org_id), so other tests' subscriptions are left alone.
START = at(2031, 1, 1)


@pytest.fixture
async def unit(database) -> AsyncIterator[UnitOfWork]:
    uow = UnitOfWork(session_factory(database.engine), clock=FixedClock(START))
    yield uow
    await uow.close()


def _mine(issued, org_id):
    return [i for i in issued if i.org_id == org_id]


async def _lines(uow, principal, invoice_id):
    found = await invoices.line_items_by_invoice_ids(uow, principal=principal, ids=[invoice_id])
    return [(li.name, li.quantity, li.amount, li.start_date, li.end_date) for li in found[invoice_id]]


async def test_two_periods_close_into_numbered_invoices_of_hand_computed_amounts(unit, tenant):
    p = tenant.principal
    plan = await make_plan(unit, p, fee="49.99")  # tiers: 1,000 at 0.01, then 0.005
    sub = await make_subscription(unit, p, plan, START)
    sub_id = sub.id
    await send_tokens(unit, p, sub, at(2031, 1, 3), 400, "jan-1")
    await send_tokens(unit, p, sub, at(2031, 1, 20), 850, "jan-2")
    await send_tokens(unit, p, sub, at(2031, 1, 31, 23, 59), 3, "jan-3")
    # Nothing has ended yet: nothing is issued.
    assert _mine(await jobs.close_periods(unit, org_id=p.org_id), p.org_id) == []

    unit.clock.advance(at(2031, 2, 1) - unit.clock.now())
    await send_tokens(unit, p, sub, at(2031, 2, 1), 10, "feb-1")  # February's, not January's
    january = _mine(await jobs.close_periods(unit, org_id=p.org_id), p.org_id)
    # January: 49.99 fee; 400 + 850 + 3 = 1,253 tokens = 1,000 x 0.01 + 253 x 0.005 = 10.00 + 1.265 -> 11.27
    assert [(i.invoice_number, i.status, i.subtotal, i.total, i.amount_due) for i in january] == [
        (1, "issued", Decimal("61.26"), Decimal("61.26"), Decimal("61.26"))]
    first = january[0]
    assert (first.period_start, first.period_end, first.invoice_date, first.issued_at, first.due_date) == (
        at(2031, 1, 1), at(2031, 2, 1), at(2031, 2, 1), at(2031, 2, 1), at(2031, 2, 1) + timedelta(days=30))
    assert await _lines(unit, p, first.id) == [
        ("Platform fee", Decimal(1), Decimal("49.99"), at(2031, 1, 1), at(2031, 2, 1)),
        ("Tokens", Decimal(1253), Decimal("11.27"), at(2031, 1, 1), at(2031, 2, 1))]
    # Run again: nothing more.
    assert _mine(await jobs.close_periods(unit, org_id=p.org_id), p.org_id) == []

    # A late January event changes nothing issued; the draft now is February's.
    draft = await invoices.draft_invoice(unit, principal=p, subscription_id=sub_id)
    assert (draft.period.start, draft.subtotal) == (at(2031, 2, 1), Decimal("50.09"))  # 49.99 + 10 x 0.01

    await send_tokens(unit, p, sub, at(2031, 2, 27), 2000, "feb-2")
    # The worker was down for a while: the job catches up from where it left off.
    unit.clock.advance(at(2031, 3, 5) - unit.clock.now())
    february = _mine(await jobs.close_periods(unit, org_id=p.org_id), p.org_id)
    # February: 49.99; 2,010 tokens = 10.00 + 1,010 x 0.005 = 15.05 -> 65.04
    assert [(i.invoice_number, i.subtotal, i.period_start, i.period_end) for i in february] == [
        (2, Decimal("65.04"), at(2031, 2, 1), at(2031, 3, 1))]
    assert _mine(await jobs.close_periods(unit, org_id=p.org_id), p.org_id) == []
    listed = await invoices.list_invoices(unit, principal=p, subscription_id=sub_id)
    assert [(i.invoice_number, i.subtotal) for i in listed.items] == [(2, Decimal("65.04")), (1, Decimal("61.26"))]


async def test_a_cancelled_subscription_gets_a_prorated_final_invoice_once(unit, tenant):
    p = tenant.principal
    plan = await make_plan(unit, p, fee="31.00")
    sub = await make_subscription(unit, p, plan, START)
    await send_tokens(unit, p, sub, at(2031, 1, 5), 100, "a")
    await subs.cancel_subscription(unit, principal=p, subscription_id=sub.id, cancel_option="requested_date",
                                   cancellation_date=at(2031, 1, 11))
    unit.clock.advance(at(2031, 3, 1) - unit.clock.now())
    issued = _mine(await jobs.close_periods(unit, org_id=p.org_id), p.org_id)
    # 10 of 31 days of 31.00 = 10.00; 100 tokens = 1.00
    assert [(i.invoice_number, i.subtotal, i.period_start, i.period_end) for i in issued] == [
        (1, Decimal("11.00"), at(2031, 1, 1), at(2031, 1, 11))]
    assert _mine(await jobs.close_periods(unit, org_id=p.org_id), p.org_id) == []


async def test_two_workers_at_once_issue_each_period_once(database, tenant):
    p = tenant.principal
    setup = UnitOfWork(session_factory(database.engine), clock=FixedClock(START))
    plan = await make_plan(setup, p)
    for _ in range(3):
        await make_subscription(setup, p, plan, START)
    await setup.close()
    import asyncio

    async def worker():
        uow = UnitOfWork(session_factory(database.engine), clock=FixedClock(at(2031, 3, 1)))
        try:
            return _mine(await jobs.close_periods(uow, org_id=p.org_id), p.org_id)
        finally:
            await uow.close()

    first, second = await asyncio.gather(worker(), worker())
    numbers = sorted(i.invoice_number for i in first + second)
    assert numbers == list(range(1, 7))  # 3 subscriptions x 2 periods, each once, no gaps


async def test_a_mid_period_plan_change_bills_both_plans_by_day(unit, tenant):
    """The issue's scenario with its plan change: Pro (31.00 a month, tiered tokens) from January 1st,
    Scale (62.00 a month, tokens at 0.002) from January 11th, events on both sides of the change."""
    p = tenant.principal
    pro = await make_plan(unit, p, fee="31.00", name="Pro")
    scale = await make_plan(unit, p, fee="62.00", name="Scale",
                            usage={"model_type": "unit", "unit_config": {"unit_amount": "0.002"}})
    sub = await make_subscription(unit, p, pro, START)
    await send_tokens(unit, p, sub, at(2031, 1, 5), 500, "pro-1")
    await schedule.schedule_plan_change(unit, principal=p, subscription_id=sub.id, fields={
        "plan_id": scale.id, "change_option": "requested_date", "change_date": at(2031, 1, 11)})
    await send_tokens(unit, p, sub, at(2031, 1, 20), 1000, "scale-1")
    await send_tokens(unit, p, sub, at(2031, 2, 10), 300, "scale-2")

    unit.clock.advance(at(2031, 3, 1) - unit.clock.now())
    issued = _mine(await jobs.close_periods(unit, org_id=p.org_id), p.org_id)
    # January: Pro's fee for 10 of 31 days = 10.00; Scale's for the other 21 = 62.00 - 20.00 = 42.00;
    # 500 tokens on Pro's tiers = 5.00; 1,000 tokens on Scale at 0.002 = 2.00. Total 59.00.
    # February: Scale's fee 62.00 + 300 x 0.002 = 0.60 -> 62.60.
    assert [(i.invoice_number, i.subtotal, i.period_start, i.period_end) for i in issued] == [
        (1, Decimal("59.00"), at(2031, 1, 1), at(2031, 2, 1)), (2, Decimal("62.60"), at(2031, 2, 1), at(2031, 3, 1))]
    assert await _lines(unit, p, issued[0].id) == [
        ("Platform fee", Decimal(1), Decimal("10.00"), at(2031, 1, 1), at(2031, 1, 11)),
        ("Tokens", Decimal(500), Decimal("5.00"), at(2031, 1, 1), at(2031, 1, 11)),
        ("Platform fee", Decimal(1), Decimal("42.00"), at(2031, 1, 11), at(2031, 2, 1)),
        ("Tokens", Decimal(1000), Decimal("2.00"), at(2031, 1, 11), at(2031, 2, 1))]
    assert sum(amount for _, _, amount, _, _ in await _lines(unit, p, issued[0].id)) == issued[0].total
    assert _mine(await jobs.close_periods(unit, org_id=p.org_id), p.org_id) == []


async def test_a_fixed_fee_quantity_change_bills_each_quantity_for_its_days(unit, tenant):
    p = tenant.principal
    plan = await make_plan(unit, p, fee="31.00")
    sub = await make_subscription(unit, p, plan, START)
    fee = next(price for price in (await prices.prices_by_plan_ids(unit, principal=p, plan_ids=[plan.id]))[plan.id]
               if price.billable_metric_id is None)
    await schedule.change_fixed_fee_quantity(unit, principal=p, subscription_id=sub.id, fields={
        "price_id": fee.id, "quantity": "3", "change_option": "effective_date", "effective_date": at(2031, 1, 11)})
    unit.clock.advance(at(2031, 2, 1) - unit.clock.now())
    issued = _mine(await jobs.close_periods(unit, org_id=p.org_id), p.org_id)
    # 1 x 31.00 for 10 of 31 days = 10.00; 3 x 31.00 = 93.00 for the other 21 = 93.00 - 30.00 = 63.00
    assert await _lines(unit, p, issued[0].id) == [
        ("Platform fee", Decimal(1), Decimal("10.00"), at(2031, 1, 1), at(2031, 1, 11)),
        ("Platform fee", Decimal(3), Decimal("63.00"), at(2031, 1, 11), at(2031, 2, 1)),
        ("Tokens", Decimal(0), Decimal("0.00"), at(2031, 1, 1), at(2031, 2, 1))]
    assert issued[0].subtotal == Decimal("73.00")
