"""Grouped usage (Orb's group_by with billable_metric_id) on both databases, values by hand.

Acme's `llm` events in January 2031 (tokens, region, user):
  Jan 2 01:00  10 eu u1 | Jan 2 23:00  30 us u1 | Jan 3 00:00  5 eu u2 | Jan 3 12:00  7 (no region) u1
  Jan 4 06:00   3 (region null) u3 | Jan 5 12:00  50 eu u1 | Jan 5 13:00 an `other` event, 1000 eu (no metric counts it)
Globex (another customer, same plan) sends 100 eu on Jan 2, and another organisation's event naming
Acme's customer id sends 1000 eu on Jan 3: neither is ever counted in Acme's groups.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from domains.billing import usage
from domains.catalog import items, plans
from domains.clock import FixedClock
from domains.errors import ValidationFailed
from domains.metering import events, metrics
from domains.unit_of_work import UnitOfWork
from persistence.db import session_factory
from persistence.ids import new_id
from persistence.tables import Event
from tests.domains.billing.billing_world import at, make_subscription

METRICS = {"tokens": "SUM(tokens)", "calls": "COUNT(*)", "users": "COUNT(DISTINCT user)", "mean": "AVG(tokens)"}
ACME = [(at(2031, 1, 2, 1), "llm", {"tokens": 10, "region": "eu", "user": "u1"}),
        (at(2031, 1, 2, 23), "llm", {"tokens": 30, "region": "us", "user": "u1"}),
        (at(2031, 1, 3), "llm", {"tokens": 5, "region": "eu", "user": "u2"}),
        (at(2031, 1, 3, 12), "llm", {"tokens": 7, "user": "u1"}),
        (at(2031, 1, 4, 6), "llm", {"tokens": 3, "region": None, "user": "u3"}),
        (at(2031, 1, 5, 12), "llm", {"tokens": 50, "region": "eu", "user": "u1"}),
        (at(2031, 1, 5, 13), "other", {"tokens": 1000, "region": "eu", "user": "u9"})]
WINDOW = {"timeframe_start": at(2031, 1, 1), "timeframe_end": at(2031, 1, 6)}


@pytest.fixture
async def unit(database) -> AsyncIterator[UnitOfWork]:
    uow = UnitOfWork(session_factory(database.engine), clock=FixedClock(at(2031, 1, 1)))
    yield uow
    await uow.close()


async def _send(uow, principal, customer_id, when, name, properties):
    uow.clock.advance(when - uow.clock.now())
    key = new_id()
    result = await events.ingest_events(uow, principal=principal, events=[{
        "event_name": name, "timestamp": when.isoformat(), "idempotency_key": key, "customer_id": customer_id,
        "properties": properties}])
    assert result.ingested == [key], result


@pytest.fixture
async def world(unit, tenant, other_tenant):
    principal = tenant.principal
    item = await items.create_item(unit, principal=principal, fields={"name": "Tokens"})
    found = {}
    for name, aggregate in METRICS.items():
        found[name] = await metrics.create_metric(unit, principal=principal, fields={
            "name": name, "item_id": item.id, "sql": f"SELECT {aggregate} FROM events WHERE event_name = 'llm'"})
    plan = await plans.create_plan(unit, principal=principal, fields={"name": "Usage", "currency": "USD", "prices": [
        {"name": name, "item_id": item.id, "billable_metric_id": metric.id, "cadence": "monthly",
         "model_type": "unit", "unit_config": {"unit_amount": "1.00"}} for name, metric in found.items()]})
    acme = await make_subscription(unit, principal, plan, at(2031, 1, 1))
    globex = await make_subscription(unit, principal, plan, at(2031, 1, 1))
    await _send(unit, principal, globex.customer_id, at(2031, 1, 2), "llm", {"tokens": 100, "region": "eu"})
    for when, name, properties in ACME:
        await _send(unit, principal, acme.customer_id, when, name, properties)
    # Another organisation's row that names Acme's customer id: the organisation scope keeps it out.
    async with unit.transaction():
        unit.session.add(Event(id=new_id(), org_id=other_tenant.principal.org_id, customer_id=acme.customer_id,
                               event_name="llm", timestamp=at(2031, 1, 3, 1), idempotency_key="foreign",
                               properties={"tokens": 1000, "region": "eu", "user": "u7"},
                               ingested_at=at(2031, 1, 3, 1)))
    return {"sub": acme, "globex": globex, "metrics": found, "principal": principal}


async def _grouped(unit, world, metric, **kwargs):
    return await usage.subscription_usage(unit, principal=world["principal"], subscription_id=world["sub"].id,
                                          billable_metric_id=world["metrics"][metric].id, **{**WINDOW, **kwargs})


def _table(found):
    return {m.group.property_value: [b.quantity for b in m.usage] for m in found}


def _d(*values):
    return [Decimal(str(v)) for v in values]


async def test_whole_window_per_region(unit, world):
    tokens = await _grouped(unit, world, "tokens", group_by="region")
    # eu, us, then the events without a region (missing or null), last.
    assert [(m.group.property_key, m.group.property_value) for m in tokens] == [
        ("region", "eu"), ("region", "us"), ("region", None)]
    assert {m.metric.id for m in tokens} == {world["metrics"]["tokens"].id}
    assert [(b.timeframe_start, b.timeframe_end) for b in tokens[0].usage] == [(at(2031, 1, 1), at(2031, 1, 6))]
    assert _table(tokens) == {"eu": _d(65), "us": _d(30), None: _d(10)}
    assert _table(await _grouped(unit, world, "calls", group_by="region")) == {"eu": _d(3), "us": _d(1), None: _d(2)}
    assert _table(await _grouped(unit, world, "users", group_by="region")) == {"eu": _d(2), "us": _d(1), None: _d(2)}
    # The ungrouped total is the groups' sum (Globex's 100 and the foreign 1000 are in none of them).
    [total] = await usage.subscription_usage(unit, principal=world["principal"], subscription_id=world["sub"].id,
                                             billable_metric_id=world["metrics"]["tokens"].id, **WINDOW)
    assert total.group is None and total.usage[0].quantity == Decimal(105)
    # Globex's own groups: its one event.
    globex = await usage.subscription_usage(unit, principal=world["principal"], subscription_id=world["globex"].id,
                                            billable_metric_id=world["metrics"]["tokens"].id, group_by="region",
                                            **WINDOW)
    assert _table(globex) == {"eu": _d(100)}
    # Numbers are grouped by their JSON text; event_name is the event's own name.
    assert _table(await _grouped(unit, world, "calls", group_by="tokens")) == {
        "10": _d(1), "3": _d(1), "30": _d(1), "5": _d(1), "50": _d(1), "7": _d(1)}
    assert _table(await _grouped(unit, world, "calls", group_by="event_name")) == {"llm": _d(6)}
    # A property no event has: one group, null, holding every event the metric counts.
    assert _table(await _grouped(unit, world, "calls", group_by="plan")) == {None: _d(6)}


async def test_per_day_periodic_and_cumulative(unit, world):
    daily = {"granularity": "day", "group_by": "region"}
    tokens = await _grouped(unit, world, "tokens", **daily)
    assert [(b.timeframe_start, b.timeframe_end) for b in tokens[0].usage] == [
        (at(2031, 1, d), at(2031, 1, d + 1)) for d in range(1, 6)]
    assert _table(tokens) == {"eu": _d(0, 10, 5, 0, 50), "us": _d(0, 30, 0, 0, 0), None: _d(0, 0, 7, 3, 0)}
    assert {m.view_mode for m in tokens} == {"periodic"}
    cumulative = await _grouped(unit, world, "tokens", view_mode="cumulative", **daily)
    assert _table(cumulative) == {"eu": _d(0, 10, 15, 15, 65), "us": _d(0, 30, 30, 30, 30),
                                  None: _d(0, 0, 7, 10, 10)}
    assert {m.view_mode for m in cumulative} == {"cumulative"}
    calls = await _grouped(unit, world, "calls", view_mode="cumulative", **daily)
    assert _table(calls) == {"eu": _d(0, 1, 2, 2, 3), "us": _d(0, 1, 1, 1, 1), None: _d(0, 0, 1, 2, 2)}
    # Distinct users: u1 is seen in eu on Jan 2 and Jan 5, so eu's running count stays at 2.
    users = await _grouped(unit, world, "users", **daily)
    assert _table(users) == {"eu": _d(0, 1, 1, 0, 1), "us": _d(0, 1, 0, 0, 0), None: _d(0, 0, 1, 1, 0)}
    users = await _grouped(unit, world, "users", view_mode="cumulative", **daily)
    assert _table(users) == {"eu": _d(0, 1, 2, 2, 2), "us": _d(0, 1, 1, 1, 1), None: _d(0, 0, 1, 2, 2)}
    # The running average per group: eu 10, (10 + 5) / 2, then 65 / 3 to 12 places.
    mean = await _grouped(unit, world, "mean", view_mode="cumulative", **daily)
    assert _table(mean) == {"eu": _d(0, 10, "7.5", "7.5", "21.666666666667"), "us": _d(0, 30, 30, 30, 30),
                            None: _d(0, 0, 7, 5, 5)}


async def test_one_statement_per_metric(unit, world, count_queries):
    for kwargs in ({}, {"granularity": "day"}, {"granularity": "day", "view_mode": "cumulative"}):
        for metric in ("tokens", "users"):
            with count_queries() as counter:
                await _grouped(unit, world, metric, group_by="region", **kwargs)
            on_events = [s for s in counter.statements if " events" in s.lower()]
            assert len(on_events) == 1, (kwargs, metric, on_events)


async def test_bad_input_is_named(unit, world):
    sub, principal = world["sub"], world["principal"]
    for kwargs, field in [
        ({"group_by": "region"}, "billable_metric_id"),
        ({"group_by": "region", "billable_metric_id": "nope"}, "billable_metric_id"),
        ({"group_by": 5, "billable_metric_id": world["metrics"]["tokens"].id}, "group_by"),
        ({"group_by": "$.region", "billable_metric_id": world["metrics"]["tokens"].id}, "group_by"),
        ({"group_by": "region", "billable_metric_id": world["metrics"]["tokens"].id, "second_dimension_key": "user"},
         "second_dimension_key"),
        ({"group_by": "region", "billable_metric_id": world["metrics"]["tokens"].id, "view_mode": "daily"},
         "view_mode"),
    ]:
        with pytest.raises(ValidationFailed) as refused:
            await usage.subscription_usage(unit, principal=principal, subscription_id=sub.id, **WINDOW, **kwargs)
        assert refused.value.field == field, kwargs


async def test_a_group_without_numbers_has_no_sum(unit, world):
    # An `apac` event whose tokens are text: counted by COUNT(*), but SUM has no number for the group.
    await _send(unit, world["principal"], world["sub"].customer_id, at(2031, 1, 5, 14), "llm",
                {"tokens": "many", "region": "apac", "user": "u4"})
    assert _table(await _grouped(unit, world, "tokens", group_by="region")) == {"eu": _d(65), "us": _d(30),
                                                                                None: _d(10)}
    assert _table(await _grouped(unit, world, "tokens", group_by="region", granularity="day",
                                 view_mode="cumulative")) == {"eu": _d(0, 10, 15, 15, 65), "us": _d(0, 30, 30, 30, 30),
                                                              None: _d(0, 0, 7, 10, 10)}
    calls = await _grouped(unit, world, "calls", group_by="region")
    assert [m.group.property_value for m in calls] == ["apac", "eu", "us", None]
    assert _table(calls) == {"apac": _d(1), "eu": _d(3), "us": _d(1), None: _d(2)}


async def test_too_many_groups_are_refused(unit, world, monkeypatch):
    monkeypatch.setattr(usage, "MAX_USAGE_GROUPS", 2)  # three regions (eu, us, none) in the window
    with pytest.raises(ValidationFailed) as refused:
        await _grouped(unit, world, "tokens", group_by="region")
    assert refused.value.field == "group_by"
    assert len(await _grouped(unit, world, "tokens", group_by="region", timeframe_end=at(2031, 1, 3))) == 2


async def test_a_window_outside_the_subscription_has_no_groups(unit, world):
    assert await _grouped(unit, world, "tokens", group_by="region", timeframe_start=at(2030, 12, 1),
                          timeframe_end=at(2031, 1, 1), granularity="day") == []
