"""A subscription's charges for a billing period, on both databases: fixed fees prorated by day,
usage priced from ingested events, and plan phases (a hand-made two-phase schedule) splitting both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from domains.billing import charges, schedule
from domains.billing import subscriptions as subs
from domains.billing.periods import Period
from domains.billing.schedule import PlanPhase
from domains.clock import FixedClock
from domains.unit_of_work import UnitOfWork
from persistence.db import session_factory
from tests.domains.billing.billing_world import at, make_plan, make_subscription, send_tokens, tiered_amount

JANUARY = Period(at(2024, 1, 1), at(2024, 2, 1))


@pytest.fixture
async def unit(database) -> AsyncIterator[UnitOfWork]:
    uow = UnitOfWork(session_factory(database.engine), clock=FixedClock(at(2024, 1, 1)))
    yield uow
    await uow.close()


def _lines(found):
    return [(c.name, c.quantity, c.amount, c.start_date, c.end_date) for c in found]


async def test_a_full_period_bills_the_fee_and_the_tiered_usage_of_its_events(unit, tenant):
    p = tenant.principal
    plan = await make_plan(unit, p)
    sub = await make_subscription(unit, p, plan, at(2024, 1, 1))
    await send_tokens(unit, p, sub, at(2024, 1, 5), 700, "a")
    await send_tokens(unit, p, sub, at(2024, 1, 20), 600, "b")
    await send_tokens(unit, p, sub, at(2024, 2, 1), 999, "february")  # the next period's
    found = await charges.period_charges(unit, principal=p, subscription=sub, period=JANUARY)
    # 1,300 tokens: 1,000 x 0.01 + 300 x 0.005 = 11.50
    assert tiered_amount(1300) == Decimal("11.50")
    assert _lines(found) == [
        ("Platform fee", Decimal(1), Decimal("20.00"), at(2024, 1, 1), at(2024, 2, 1)),
        ("Tokens", Decimal(1300), Decimal("11.50"), at(2024, 1, 1), at(2024, 2, 1)),
    ]
    assert {c.price_id for c in found} == {price.id for price in
                                           (await charges.price_service.prices_by_plan_ids(
                                               unit, principal=p, plan_ids=[plan.id]))[plan.id]}


async def test_the_period_is_found_from_the_clock_and_cut_at_a_cancellation(unit, tenant):
    p = tenant.principal
    plan = await make_plan(unit, p)
    sub = await make_subscription(unit, p, plan, at(2024, 1, 1))
    unit.clock.advance(at(2024, 1, 15) - unit.clock.now())
    await send_tokens(unit, p, sub, at(2024, 1, 15), 100, "a")
    sub = await subs.cancel_subscription(unit, principal=p, subscription_id=sub.id, cancel_option="requested_date",
                                         cancellation_date=at(2024, 1, 21))
    period = await charges.billing_period_at(unit, principal=p, subscription=sub, at=at(2024, 1, 15))
    assert period == Period(at(2024, 1, 1), at(2024, 1, 21))
    assert await charges.billing_period_at(unit, principal=p, subscription=sub, at=at(2024, 1, 21)) is None
    found = await charges.period_charges(unit, principal=p, subscription=sub, period=period)
    # 20 of January's 31 days of a 20.00 fee: 20 x 20 / 31 = 12.903... -> 12.90
    assert _lines(found) == [
        ("Platform fee", Decimal(1), Decimal("12.90"), at(2024, 1, 1), at(2024, 1, 21)),
        ("Tokens", Decimal(100), Decimal("1.00"), at(2024, 1, 1), at(2024, 1, 21)),
    ]


async def test_a_plan_change_mid_period_prorates_both_fees_and_splits_the_usage(unit, tenant, monkeypatch):
    p = tenant.principal
    basic = await make_plan(unit, p, fee="31.00", name="Basic")
    pro = await make_plan(unit, p, fee="62.00", name="Pro",
                          usage={"model_type": "unit", "unit_config": {"unit_amount": "0.02"}})
    sub = await make_subscription(unit, p, basic, at(2024, 1, 1))
    await send_tokens(unit, p, sub, at(2024, 1, 5), 1200, "before")
    await send_tokens(unit, p, sub, at(2024, 1, 11), 50, "at-the-change")
    await send_tokens(unit, p, sub, at(2024, 1, 31, 23), 25, "after")

    async def two_phases(uow, *, principal, subscription, changes=None):
        return [PlanPhase(basic.id, at(2024, 1, 1), at(2024, 1, 11)), PlanPhase(pro.id, at(2024, 1, 11), None)]

    monkeypatch.setattr(schedule, "plan_phases", two_phases)
    found = await charges.period_charges(unit, principal=p, subscription=sub, period=JANUARY)
    # Basic for 10 of 31 days: 31.00 x 10/31 = 10.00; Pro for 21 days: 62.00 x 21/31 = 42.00.
    # Usage: 1,200 tokens on Basic's tiers = 10.00 + 1.00; 75 on Pro's unit price at 0.02 = 1.50.
    assert _lines(found) == [
        ("Platform fee", Decimal(1), Decimal("10.00"), at(2024, 1, 1), at(2024, 1, 11)),
        ("Tokens", Decimal(1200), Decimal("11.00"), at(2024, 1, 1), at(2024, 1, 11)),
        ("Platform fee", Decimal(1), Decimal("42.00"), at(2024, 1, 11), at(2024, 2, 1)),
        ("Tokens", Decimal(75), Decimal("1.50"), at(2024, 1, 11), at(2024, 2, 1)),
    ]
    # The next period bills Pro alone, in full.
    february = Period(at(2024, 2, 1), at(2024, 3, 1))
    assert [(c.name, c.amount) for c in await charges.period_charges(unit, principal=p, subscription=sub,
                                                                     period=february)] == [
        ("Platform fee", Decimal("62.00")), ("Tokens", Decimal("0.00"))]


async def test_an_annual_fee_on_a_monthly_plan_bills_once_a_year(unit, tenant):
    p = tenant.principal
    plan = await make_plan(unit, p, fee="1200.00", fee_cadence="annual")
    sub = await make_subscription(unit, p, plan, at(2024, 1, 1))
    first = await charges.period_charges(unit, principal=p, subscription=sub, period=JANUARY)
    second = await charges.period_charges(unit, principal=p, subscription=sub,
                                          period=Period(at(2024, 2, 1), at(2024, 3, 1)))
    assert [(c.name, c.amount, c.end_date) for c in first] == [
        ("Platform fee", Decimal("1200.00"), at(2025, 1, 1)), ("Tokens", Decimal("0.00"), at(2024, 2, 1))]
    assert [c.name for c in second] == ["Tokens"]
