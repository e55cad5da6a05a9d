"""domains.billing.usage on both databases: every aggregate per day, periodic and cumulative, by hand,
and the window's default (the current billing period at the clock)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from domains.billing import usage
from domains.catalog import items, plans
from domains.clock import FixedClock
from domains.errors import ValidationFailed
from domains.metering import metrics
from domains.unit_of_work import UnitOfWork
from persistence.db import session_factory
from tests.domains.billing.billing_world import at, make_subscription, send_tokens

AGGREGATES = ("MAX", "MIN", "AVG", "COUNT")


@pytest.fixture
async def unit(database) -> AsyncIterator[UnitOfWork]:
    uow = UnitOfWork(session_factory(database.engine), clock=FixedClock(at(2031, 1, 1)))
    yield uow
    await uow.close()


async def _subscribed(uow, principal):
    item = await items.create_item(uow, principal=principal, fields={"name": "Tokens"})
    prices = []
    for aggregate in AGGREGATES:
        argument = "*" if aggregate == "COUNT" else "tokens"
        metric = await metrics.create_metric(uow, principal=principal, fields={
            "name": aggregate.lower(), "item_id": item.id,
            "sql": f"SELECT {aggregate}({argument}) FROM events WHERE event_name = 'llm'"})
        prices.append({"name": aggregate.lower(), "item_id": item.id, "billable_metric_id": metric.id,
                       "cadence": "monthly", "model_type": "unit", "unit_config": {"unit_amount": "1.00"}})
    plan = await plans.create_plan(uow, principal=principal, fields={"name": "Stats", "currency": "USD",
                                                                     "prices": prices})
    sub = await make_subscription(uow, principal, plan, at(2031, 1, 1))
    for when, tokens, key in [(at(2031, 1, 2, 1), 10, "a"), (at(2031, 1, 2, 23), 30, "b"), (at(2031, 1, 3), 5, "c"),
                              (at(2031, 1, 5, 12), 50, "d")]:
        await send_tokens(uow, principal, sub, when, tokens, key)
    return sub


def _table(found):
    return {m.metric.name: [b.quantity for b in m.usage] for m in found}


def _d(*values):
    return [Decimal(str(v)) for v in values]


async def test_each_aggregate_per_day_periodic_and_cumulative(unit, tenant):
    sub = await _subscribed(unit, tenant.principal)
    window = {"timeframe_start": at(2031, 1, 1), "timeframe_end": at(2031, 1, 6), "granularity": "day"}
    periodic = await usage.subscription_usage(unit, principal=tenant.principal, subscription_id=sub.id, **window)
    assert _table(periodic) == {"max": _d(0, 30, 5, 0, 50), "min": _d(0, 10, 5, 0, 50), "avg": _d(0, 20, 5, 0, 50),
                                "count": _d(0, 2, 1, 0, 1)}
    cumulative = await usage.subscription_usage(unit, principal=tenant.principal, subscription_id=sub.id,
                                                view_mode="cumulative", **window)
    # The running average is over every event so far: (10 + 30 + 5) / 3 = 15, then 95 / 4 = 23.75.
    assert _table(cumulative) == {"max": _d(0, 30, 30, 30, 50), "min": _d(0, 10, 5, 5, 5),
                                  "avg": _d(0, 20, 15, 15, "23.75"), "count": _d(0, 2, 3, 3, 4)}
    assert {m.view_mode for m in cumulative} == {"cumulative"}


async def test_the_window_defaults_to_the_current_billing_period(unit, tenant):
    sub = await _subscribed(unit, tenant.principal)  # the clock is now at Jan 5 12:00
    found = await usage.subscription_usage(unit, principal=tenant.principal, subscription_id=sub.id)
    assert [(b.timeframe_start, b.timeframe_end) for b in found[0].usage] == [(at(2031, 1, 1), at(2031, 2, 1))]
    assert _table(found) == {"max": _d(50), "min": _d(5), "avg": _d("23.75"), "count": _d(4)}
    # Before the subscription starts nothing counts, and a window wholly before it is all zeros.
    early = await usage.subscription_usage(unit, principal=tenant.principal, subscription_id=sub.id,
                                           timeframe_start=at(2030, 12, 30), timeframe_end=at(2031, 1, 1),
                                           granularity="day")
    assert _table(early)["count"] == _d(0, 0)
    costs = await usage.subscription_costs(unit, principal=tenant.principal, subscription_id=sub.id)
    assert [(f.timeframe_start, f.timeframe_end, f.subtotal) for f in costs] == [
        (at(2031, 1, 1), at(2031, 2, 1), Decimal("82.75"))]  # 50 + 5 + 23.75 + 4 at 1.00 each
    with pytest.raises(ValidationFailed) as refused:
        await usage.subscription_usage(unit, principal=tenant.principal, subscription_id=sub.id,
                                       timeframe_start=at(2031, 3, 1))
    assert refused.value.field == "timeframe_end"
