"""Plan changes and the plan phases invoicing builds on, called directly, on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from domains.billing import schedule
from domains.billing import subscriptions as subs
from domains.billing.periods import Period
from domains.billing.schedule import PlanPhase
from domains.catalog import items, plans, prices
from domains.clock import FixedClock
from domains.customers import service as customers
from domains.errors import ConstraintViolation, ValidationFailed
from domains.metering import metrics
from domains.unit_of_work import UnitOfWork
from persistence.db import session_factory

NOW = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.fixture
async def unit(database) -> AsyncIterator[UnitOfWork]:
    uow = UnitOfWork(session_factory(database.engine), clock=FixedClock(NOW))
    yield uow
    await uow.close()


async def _plan(uow, principal, name, *, currency="USD", cadences=("monthly",), **extra):
    item = await items.create_item(uow, principal=principal, fields={"name": f"{name} platform"})
    prices = [{"name": f"{name} {c}", "item_id": item.id, "cadence": c, "model_type": "unit",
               "unit_config": {"unit_amount": "10.00"}} for c in cadences]
    return await plans.create_plan(uow, principal=principal, fields={
        "name": name, "currency": currency, "prices": prices, **extra})


@pytest.fixture
async def world(unit, tenant):
    """A subscription started 2024-01-15 on Basic; Pro, Enterprise (annual term) and others to move to."""
    p = tenant.principal
    basic = await _plan(unit, p, "Basic")
    pro = await _plan(unit, p, "Pro", external_plan_id="pro")
    enterprise = await _plan(unit, p, "Enterprise", cadences=("monthly", "annual"))
    customer = await customers.create_customer(unit, principal=p, fields={"name": "Acme", "email": "a@acme.com"})
    sub = await subs.create_subscription(unit, principal=p, fields={
        "customer_id": customer.id, "plan_id": basic.id, "start_date": at(2024, 1, 15)})
    return p, sub, basic, pro, enterprise


async def _phases(unit, p, sub_id):
    sub = await subs.get_subscription(unit, principal=p, subscription_id=sub_id)
    return await schedule.plan_phases(unit, principal=p, subscription=sub)


async def _change(unit, p, sub_id, **fields):
    return await schedule.schedule_plan_change(unit, principal=p, subscription_id=sub_id, fields=fields)


async def test_no_change_is_one_open_phase(unit, world):
    p, sub, basic, *_ = world
    assert await _phases(unit, p, sub.id) == [PlanPhase(basic.id, at(2024, 1, 15), None)]


async def test_an_immediate_change_mid_period_splits_at_now(unit, world):
    p, sub, basic, pro, _ = world
    await _change(unit, p, sub.id, plan_id=pro.id, change_option="immediate")
    phases = await _phases(unit, p, sub.id)
    assert phases == [PlanPhase(basic.id, at(2024, 1, 15), NOW), PlanPhase(pro.id, NOW, None)]
    assert schedule.current_plan_id(phases, NOW) == pro.id
    # The stored starting plan is unchanged: the current plan is derived.
    assert (await subs.get_subscription(unit, principal=p, subscription_id=sub.id)).plan_id == basic.id


async def test_a_requested_date_change_is_pending_until_the_clock_reaches_it(unit, world):
    p, sub, basic, pro, _ = world
    await _change(unit, p, sub.id, external_plan_id="pro", change_option="requested_date",
                  change_date="2024-04-01T00:00:00Z")
    phases = await _phases(unit, p, sub.id)
    assert phases == [PlanPhase(basic.id, at(2024, 1, 15), at(2024, 4, 1)), PlanPhase(pro.id, at(2024, 4, 1), None)]
    assert schedule.current_plan_id(phases, NOW) == basic.id
    assert schedule.current_plan_id(phases, at(2024, 4, 1)) == pro.id


async def test_an_end_of_term_change_uses_the_current_plans_term(unit, world):
    p, sub, basic, pro, enterprise = world
    await _change(unit, p, sub.id, plan_id=pro.id, change_option="end_of_subscription_term")
    assert await _phases(unit, p, sub.id) == [
        PlanPhase(basic.id, at(2024, 1, 15), at(2024, 3, 15)), PlanPhase(pro.id, at(2024, 3, 15), None)]
    # On Enterprise (annual term) from now, the term ends a year after the start.
    await _change(unit, p, sub.id, plan_id=enterprise.id, change_option="immediate")
    await _change(unit, p, sub.id, plan_id=basic.id, change_option="end_of_subscription_term")
    assert await _phases(unit, p, sub.id) == [
        PlanPhase(basic.id, at(2024, 1, 15), NOW), PlanPhase(enterprise.id, NOW, at(2025, 1, 15)),
        PlanPhase(basic.id, at(2025, 1, 15), None)]


async def test_a_new_change_replaces_the_pending_one_and_keeps_the_past(unit, world):
    p, sub, basic, pro, enterprise = world
    await _change(unit, p, sub.id, plan_id=pro.id, change_option="requested_date", change_date=at(2024, 2, 1))
    await _change(unit, p, sub.id, plan_id=enterprise.id, change_option="requested_date", change_date=at(2024, 5, 1))
    await _change(unit, p, sub.id, plan_id=basic.id, change_option="requested_date", change_date=at(2024, 6, 1))
    assert await _phases(unit, p, sub.id) == [
        PlanPhase(basic.id, at(2024, 1, 15), at(2024, 2, 1)), PlanPhase(pro.id, at(2024, 2, 1), at(2024, 6, 1)),
        PlanPhase(basic.id, at(2024, 6, 1), None)]
    # A backdated change supersedes the history after it.
    await _change(unit, p, sub.id, plan_id=enterprise.id, change_option="requested_date", change_date=at(2024, 1, 20))
    assert await _phases(unit, p, sub.id) == [
        PlanPhase(basic.id, at(2024, 1, 15), at(2024, 1, 20)), PlanPhase(enterprise.id, at(2024, 1, 20), None)]


async def test_unschedule_drops_only_the_pending_change(unit, world):
    p, sub, basic, pro, enterprise = world
    await _change(unit, p, sub.id, plan_id=pro.id, change_option="requested_date", change_date=at(2024, 2, 1))
    await _change(unit, p, sub.id, plan_id=enterprise.id, change_option="requested_date", change_date=at(2024, 5, 1))
    await schedule.unschedule_pending_plan_changes(unit, principal=p, subscription_id=sub.id)
    assert await _phases(unit, p, sub.id) == [
        PlanPhase(basic.id, at(2024, 1, 15), at(2024, 2, 1)), PlanPhase(pro.id, at(2024, 2, 1), None)]
    sub_id = sub.id
    with pytest.raises(ConstraintViolation) as nothing:
        await schedule.unschedule_pending_plan_changes(unit, principal=p, subscription_id=sub_id)
    assert nothing.value.field == "subscription_id"


async def test_cancellation_cuts_the_phases_at_the_end(unit, world):
    p, sub, basic, pro, enterprise = world
    await _change(unit, p, sub.id, plan_id=pro.id, change_option="requested_date", change_date=at(2024, 2, 1))
    await _change(unit, p, sub.id, plan_id=enterprise.id, change_option="requested_date", change_date=at(2024, 5, 1))
    await subs.cancel_subscription(unit, principal=p, subscription_id=sub.id, cancel_option="requested_date",
                                   cancellation_date=at(2024, 4, 1))
    assert await _phases(unit, p, sub.id) == [
        PlanPhase(basic.id, at(2024, 1, 15), at(2024, 2, 1)), PlanPhase(pro.id, at(2024, 2, 1), at(2024, 4, 1))]
    # The change past the end is gone for good: unscheduling the cancellation does not revive it.
    await subs.unschedule_cancellation(unit, principal=p, subscription_id=sub.id)
    assert (await _phases(unit, p, sub.id))[-1] == PlanPhase(pro.id, at(2024, 2, 1), None)


async def test_cancel_at_term_end_follows_the_current_plan(unit, world):
    p, sub, _basic, _pro, enterprise = world
    await _change(unit, p, sub.id, plan_id=enterprise.id, change_option="immediate")
    cancelled = await subs.cancel_subscription(unit, principal=p, subscription_id=sub.id,
                                               cancel_option="end_of_subscription_term")
    assert cancelled.end_date == at(2025, 1, 15)


async def test_an_upcoming_subscription_changed_immediately_starts_on_the_new_plan(unit, world):
    p, sub, basic, pro, _ = world
    customer_id = sub.customer_id
    upcoming = await subs.create_subscription(unit, principal=p, fields={
        "customer_id": customer_id, "plan_id": basic.id, "start_date": at(2024, 4, 1)})
    await _change(unit, p, upcoming.id, plan_id=pro.id, change_option="immediate")
    assert await _phases(unit, p, upcoming.id) == [PlanPhase(pro.id, at(2024, 4, 1), None)]


@pytest.mark.parametrize(("fields", "field"), [
    ({"change_option": "immediate"}, "plan_id"),
    ({"plan_id": "nope", "change_option": "immediate"}, "plan_id"),
    ({"external_plan_id": "nope", "change_option": "immediate"}, "external_plan_id"),
    ({"external_plan_id": "pro"}, "change_option"),
    ({"external_plan_id": "pro", "change_option": "someday"}, "change_option"),
    ({"external_plan_id": "pro", "change_option": "requested_date"}, "change_date"),
    ({"external_plan_id": "pro", "change_option": "immediate", "change_date": "2024-04-01T00:00:00Z"}, "change_date"),
    ({"external_plan_id": "pro", "change_option": "requested_date", "change_date": "2024-01-14T23:59:59Z"},
     "change_date"),
    ({"external_plan_id": "pro", "change_option": "requested_date", "change_date": "April"}, "change_date"),
    ({"external_plan_id": "pro", "change_option": "immediate", "align_billing": True}, "align_billing"),
])
async def test_bad_changes_name_the_field_and_change_nothing(unit, world, fields, field):
    p, sub, basic, *_ = world
    sub_id, basic_id = sub.id, basic.id  # a refused change rolls back, expiring the loaded rows
    with pytest.raises(ValidationFailed) as error:
        await _change(unit, p, sub_id, **fields)
    assert error.value.field == field
    assert await _phases(unit, p, sub_id) == [PlanPhase(basic_id, at(2024, 1, 15), None)]


async def test_other_currency_draft_plan_past_end_and_ended_subscriptions_are_refused(unit, world):
    p, sub, basic, *_ = world
    euro = await _plan(unit, p, "Euro", currency="EUR")
    draft = await _plan(unit, p, "Draft", status="draft")
    sub_id, basic_id, refused = sub.id, basic.id, [euro.id, draft.id]  # refusals roll back, expiring rows
    for plan_id in refused:
        with pytest.raises(ValidationFailed) as error:
            await _change(unit, p, sub_id, plan_id=plan_id, change_option="immediate")
        assert error.value.field == "plan_id"
    await subs.cancel_subscription(unit, principal=p, subscription_id=sub_id, cancel_option="requested_date",
                                   cancellation_date=at(2024, 4, 1))
    with pytest.raises(ValidationFailed) as late:
        await _change(unit, p, sub_id, plan_id=basic_id, change_option="requested_date", change_date=at(2024, 4, 1))
    assert late.value.field == "change_date"
    unit.clock.advance(timedelta(days=60))
    with pytest.raises(ConstraintViolation) as ended:
        await _change(unit, p, sub_id, plan_id=basic_id, change_option="immediate")
    assert ended.value.field == "subscription_id"
    assert await _phases(unit, p, sub_id) == [PlanPhase(basic_id, at(2024, 1, 15), at(2024, 4, 1))]


async def test_the_schedule_pages_oldest_first(unit, world):
    p, sub, basic, pro, enterprise = world
    await _change(unit, p, sub.id, plan_id=pro.id, change_option="requested_date", change_date=at(2024, 2, 1))
    await _change(unit, p, sub.id, plan_id=enterprise.id, change_option="requested_date", change_date=at(2024, 5, 1))
    first = await schedule.list_schedule(unit, principal=p, subscription_id=sub.id, limit=2)
    assert [(e.plan_id, e.start_date) for e in first.items] == [(basic.id, at(2024, 1, 15)), (pro.id, at(2024, 2, 1))]
    assert first.has_more and first.items[0].created_at == sub.created_at
    rest = await schedule.list_schedule(unit, principal=p, subscription_id=sub.id, limit=2,
                                        after_id=first.items[-1].id)
    assert [(e.plan_id, e.start_date, e.end_date) for e in rest.items] == [(enterprise.id, at(2024, 5, 1), None)]
    assert not rest.has_more


# --- fixed fee quantities -----------------------------------------------------------------------------

@pytest.fixture
async def seats(unit, tenant):
    """A subscription from 2024-01-15 on a plan with a seat fee (quantity 3) and a usage price."""
    p = tenant.principal
    item = await items.create_item(unit, principal=p, fields={"name": "Seats"})
    metric = await metrics.create_metric(unit, principal=p, fields={
        "name": "Calls", "sql": "SELECT COUNT(*) FROM events", "item_id": item.id})
    plan = await plans.create_plan(unit, principal=p, fields={"name": "Team", "currency": "USD", "prices": [
        {"name": "Seat", "item_id": item.id, "cadence": "monthly", "model_type": "unit",
         "unit_config": {"unit_amount": "20.00"}, "fixed_price_quantity": "3"},
        {"name": "Calls", "item_id": item.id, "cadence": "monthly", "model_type": "unit",
         "billable_metric_id": metric.id, "unit_config": {"unit_amount": "0.01"}}]})
    plan_prices = (await prices.prices_by_plan_ids(unit, principal=p, plan_ids=[plan.id]))[plan.id]
    seat = next(x for x in plan_prices if x.billable_metric_id is None)
    usage = next(x for x in plan_prices if x.billable_metric_id is not None)
    customer = await customers.create_customer(unit, principal=p, fields={"name": "Acme", "email": "a@acme.com"})
    sub = await subs.create_subscription(unit, principal=p, fields={
        "customer_id": customer.id, "plan_id": plan.id, "start_date": at(2024, 1, 15)})
    return p, sub.id, seat.id, usage.id


async def _quantities(unit, p, sub_id, price_id):
    sub = await subs.get_subscription(unit, principal=p, subscription_id=sub_id)
    return [tuple(q) for q in await schedule.fixed_fee_quantities(unit, principal=p, subscription=sub,
                                                                    price_id=price_id)]


async def _set(unit, p, sub_id, **fields):
    return await schedule.change_fixed_fee_quantity(unit, principal=p, subscription_id=sub_id, fields=fields)


async def test_fixed_fee_quantities_change_now_on_a_date_and_at_the_next_invoice(unit, seats):
    p, sub_id, seat, _ = seats
    assert await _quantities(unit, p, sub_id, seat) == [(at(2024, 1, 15), None, Decimal(3))]
    await _set(unit, p, sub_id, price_id=seat, quantity=5)
    assert await _quantities(unit, p, sub_id, seat) == [(at(2024, 1, 15), NOW, Decimal(3)), (NOW, None, Decimal(5))]
    # A date: the pending change; a second one replaces it.
    await _set(unit, p, sub_id, price_id=seat, quantity="7", effective_date="2024-04-01")
    await _set(unit, p, sub_id, price_id=seat, quantity=8, change_option="upcoming_invoice")
    assert await _quantities(unit, p, sub_id, seat) == [
        (at(2024, 1, 15), NOW, Decimal(3)), (NOW, at(2024, 3, 15), Decimal(5)), (at(2024, 3, 15), None, Decimal(8))]
    await schedule.unschedule_fixed_fee_quantity_updates(unit, principal=p, subscription_id=sub_id, price_id=seat)
    assert await _quantities(unit, p, sub_id, seat) == [(at(2024, 1, 15), NOW, Decimal(3)), (NOW, None, Decimal(5))]
    # Cancelling cuts the intervals at the end.
    await _set(unit, p, sub_id, price_id=seat, quantity=9, effective_date="2024-05-01T00:00:00Z")
    await subs.cancel_subscription(unit, principal=p, subscription_id=sub_id, cancel_option="requested_date",
                                   cancellation_date=at(2024, 4, 1))
    assert await _quantities(unit, p, sub_id, seat) == [
        (at(2024, 1, 15), NOW, Decimal(3)), (NOW, at(2024, 4, 1), Decimal(5))]


@pytest.mark.parametrize(("fields", "field"), [
    ({"quantity": -1}, "quantity"),
    ({"quantity": "many"}, "quantity"),
    ({}, "quantity"),
    ({"quantity": 2, "price_id": "usage"}, "price_id"),
    ({"quantity": 2, "price_id": "nope"}, "price_id"),
    ({"quantity": 2, "change_option": "effective_date"}, "effective_date"),
    ({"quantity": 2, "effective_date": "2024-01-01"}, "effective_date"),
    ({"quantity": 2, "effective_date": "2024-13-01"}, "effective_date"),
    ({"quantity": 2, "change_option": "later"}, "change_option"),
    ({"quantity": 2, "allow_invoice_credit_or_void": True}, "allow_invoice_credit_or_void"),
])
async def test_bad_quantity_changes_name_the_field(unit, seats, fields, field):
    p, sub_id, seat, usage = seats
    price_id = {"usage": usage, "nope": "nope"}.get(fields.get("price_id"), seat)
    with pytest.raises(ValidationFailed) as error:
        await _set(unit, p, sub_id, **{**fields, "price_id": price_id})
    assert error.value.field == field
    assert await _quantities(unit, p, sub_id, seat) == [(at(2024, 1, 15), None, Decimal(3))]


async def test_a_fixed_price_of_another_plan_is_refused(unit, seats, world):
    p, sub_id, seat, _ = seats
    _, other_sub, *_ = world  # on Basic: the seat price is not on its plan
    other_id = other_sub.id
    with pytest.raises(ValidationFailed) as error:
        await _set(unit, p, other_id, price_id=seat, quantity=2)
    assert error.value.field == "price_id"
    with pytest.raises(ConstraintViolation) as nothing:
        await schedule.unschedule_fixed_fee_quantity_updates(unit, principal=p, subscription_id=sub_id, price_id=seat)
    assert nothing.value.field == "price_id"


async def _intervals(unit, p, sub_id):
    sub = await subs.get_subscription(unit, principal=p, subscription_id=sub_id)
    changes = (await schedule.plan_changes_by_subscription_ids(unit, principal=p, subscription_ids=[sub.id])).get(
        sub.id, [])
    plan_ids = sorted({phase.plan_id for phase in schedule.phases_of(sub, changes)})
    by_plan = await prices.prices_by_plan_ids(unit, principal=p, plan_ids=plan_ids)
    quantities = (await schedule.quantity_changes_by_subscription_ids(unit, principal=p, subscription_ids=[sub.id])
                  ).get(sub.id, [])
    return schedule.price_intervals_of(sub, changes, by_plan, quantities, unit.clock.now())


async def test_price_intervals_follow_the_phases_with_each_prices_own_period(unit, world):
    p, sub, _, _, enterprise = world
    await _change(unit, p, sub.id, change_option="requested_date", change_date=at(2024, 2, 15), plan_id=enterprise.id)
    await subs.cancel_subscription(unit, principal=p, subscription_id=sub.id, cancel_option="requested_date",
                                   cancellation_date=at(2024, 6, 1))
    intervals = await _intervals(unit, p, sub.id)
    assert [(i.price.name, i.start, i.end, i.current_period) for i in intervals] == [
        ("Basic monthly", at(2024, 1, 15), at(2024, 2, 15), None),  # over before now
        ("Enterprise monthly", at(2024, 2, 15), at(2024, 6, 1), Period(at(2024, 2, 15), at(2024, 3, 15))),
        # The annual price's own period holding now, cut at the end date.
        ("Enterprise annual", at(2024, 2, 15), at(2024, 6, 1), Period(at(2024, 1, 15), at(2024, 6, 1)))]
    assert all(not i.deferred for i in intervals)  # fixed fees bill in advance
    assert [[tuple(q) for q in i.quantities or []] for i in intervals] == [
        [(i.price.id, i.start, i.end, Decimal(1))] for i in intervals]
    # Derived ids: distinct, and the same on every read.
    assert len({i.id for i in intervals}) == 3
    assert [i.id for i in await _intervals(unit, p, sub.id)] == [i.id for i in intervals]
    unit.clock = FixedClock(at(2024, 7, 1))  # ended: no interval has a current period
    assert [i.current_period for i in await _intervals(unit, p, sub.id)] == [None, None, None]


async def test_price_intervals_carry_fixed_fee_quantities_and_defer_usage(unit, seats):
    p, sub_id, seat, usage = seats
    await _set(unit, p, sub_id, price_id=seat, quantity=5, effective_date="2024-02-01")
    fee, calls = await _intervals(unit, p, sub_id)
    assert (fee.price.id, fee.deferred, calls.price.id, calls.deferred) == (seat, False, usage, True)
    assert [tuple(q) for q in fee.quantities or []] == [
        (seat, at(2024, 1, 15), at(2024, 2, 1), Decimal(3)), (seat, at(2024, 2, 1), None, Decimal(5))]
    assert calls.quantities is None
    assert fee.current_period == calls.current_period == Period(at(2024, 2, 15), at(2024, 3, 15))
