"""Subscription services called directly, on both databases: create, read, list, update, cancel."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from domains.billing import subscriptions as subs
from domains.catalog import items, plans
from domains.clock import FixedClock
from domains.customers import service as customers
from domains.errors import ConstraintViolation, NotFound, ValidationFailed
from domains.unit_of_work import UnitOfWork
from persistence.db import session_factory
from tests.conftest import make_tenant

NOW = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.fixture
async def unit(database) -> AsyncIterator[UnitOfWork]:
    """A unit of work whose clock stands still at NOW (a test moves it when it needs to)."""
    uow = UnitOfWork(session_factory(database.engine), clock=FixedClock(NOW))
    yield uow
    await uow.close()


async def _plan(uow, principal, *, currency="USD", cadences=("monthly",), **extra):
    item = await items.create_item(uow, principal=principal, fields={"name": "Platform"})
    prices = [{"name": f"Fee {c}", "item_id": item.id, "cadence": c, "model_type": "unit",
               "unit_config": {"unit_amount": "10.00"}} for c in cadences]
    return await plans.create_plan(uow, principal=principal, fields={
        "name": "Pro", "currency": currency, "prices": prices, **extra})


async def _customer(uow, principal, **fields):
    return await customers.create_customer(uow, principal=principal, fields={
        "name": "Acme", "email": "billing@acme.com", **fields})


async def test_create_by_ids_takes_the_plans_defaults_and_is_active(unit, tenant):
    p = tenant.principal
    plan = await _plan(unit, p, net_terms=30)
    customer = await _customer(unit, p)
    sub = await subs.create_subscription(unit, principal=p, fields={
        "customer_id": customer.id, "plan_id": plan.id, "start_date": at(2024, 3, 1), "metadata": {"deal": "q1"}})
    assert (sub.customer_id, sub.plan_id, sub.currency, sub.net_terms) == (customer.id, plan.id, "USD", 30)
    assert sub.start_date == at(2024, 3, 1) and sub.end_date is None and sub.auto_collection is None
    assert subs.subscription_status(sub, NOW) == "active"
    fetched = await subs.get_subscription(unit, principal=p, subscription_id=sub.id)
    assert (fetched.id, fetched.subscription_metadata, fetched.start_date) == (sub.id, {"deal": "q1"}, at(2024, 3, 1))
    # The customer had no currency: it takes the plan's, as in Orb.
    assert (await customers.get_customer(unit, principal=p, customer_id=customer.id)).currency == "USD"


async def test_create_by_external_ids_with_a_future_start_is_upcoming(unit, tenant):
    p = tenant.principal
    await _plan(unit, p, external_plan_id="pro")
    customer = await _customer(unit, p, external_customer_id="acme-1")
    sub = await subs.create_subscription(unit, principal=p, fields={
        "external_customer_id": "acme-1", "external_plan_id": "pro", "start_date": "2024-04-01T00:00:00Z",
        "net_terms": 0, "auto_collection": False})
    assert (sub.customer_id, sub.net_terms, sub.auto_collection) == (customer.id, 0, False)
    assert subs.subscription_status(sub, NOW) == "upcoming"
    # No start date: it starts now.
    now_sub = await subs.create_subscription(unit, principal=p, fields={"customer_id": customer.id,
                                                                       "external_plan_id": "pro"})
    assert now_sub.start_date == NOW and subs.subscription_status(now_sub, NOW) == "active"


@pytest.mark.parametrize(("fields", "field"), [
    ({}, "customer_id"),
    ({"customer_id": "nope"}, "customer_id"),
    ({"external_customer_id": "nobody"}, "external_customer_id"),
    ({"plan_id": None, "external_plan_id": "missing"}, "external_plan_id"),
    ({"start_date": "2024-03-01"}, "start_date"),
    ({"start_date": "yesterday"}, "start_date"),
    ({"net_terms": 400}, "net_terms"),
    ({"auto_collection": "yes"}, "auto_collection"),
    ({"metadata": {"a": 1}}, "metadata.a"),
    ({"trial": True}, "trial"),
])
async def test_bad_creations_name_the_field_and_write_nothing(unit, tenant, fields, field):
    p = tenant.principal
    plan = await _plan(unit, p)
    customer = await _customer(unit, p)
    body = {"customer_id": customer.id, "plan_id": plan.id}
    if "customer_id" not in fields and "external_customer_id" in fields:
        body.pop("customer_id")
    if not fields:
        body.pop("customer_id")
    body.update(fields)
    with pytest.raises(ValidationFailed) as raised:
        await subs.create_subscription(unit, principal=p, fields=body)
    assert raised.value.field == field
    assert (await subs.list_subscriptions(unit, principal=p)).items == []
    assert (await customers.get_customer(unit, principal=p, customer_id=customer.id)).currency is None


async def test_a_plan_in_another_currency_than_the_customer_is_refused(unit, tenant):
    p = tenant.principal
    plan = await _plan(unit, p, currency="EUR")
    customer = await _customer(unit, p, currency="USD")
    with pytest.raises(ValidationFailed) as raised:
        await subs.create_subscription(unit, principal=p, fields={"customer_id": customer.id, "plan_id": plan.id})
    assert raised.value.field == "plan_id" and "EUR" in raised.value.message


async def test_a_draft_plan_cannot_be_subscribed_to(unit, tenant):
    p = tenant.principal
    plan = await _plan(unit, p, status="draft")
    customer = await _customer(unit, p)
    with pytest.raises(ValidationFailed) as raised:
        await subs.create_subscription(unit, principal=p, fields={"customer_id": customer.id, "plan_id": plan.id})
    assert raised.value.field == "plan_id"


async def test_another_organisation_sees_nothing(unit, tenant, database):
    p = tenant.principal
    plan = await _plan(unit, p)
    customer = await _customer(unit, p)
    sub = await subs.create_subscription(unit, principal=p, fields={"customer_id": customer.id, "plan_id": plan.id})
    other = (await make_tenant(database)).principal
    with pytest.raises(NotFound):
        await subs.get_subscription(unit, principal=other, subscription_id=sub.id)
    assert (await subs.list_subscriptions(unit, principal=other)).items == []
    with pytest.raises(ValidationFailed) as raised:  # their customer and plan are unknown to us
        await subs.create_subscription(unit, principal=other, fields={"customer_id": customer.id, "plan_id": plan.id})
    assert raised.value.field == "customer_id"
    with pytest.raises(NotFound):
        await subs.cancel_subscription(unit, principal=other, subscription_id=sub.id, cancel_option="immediate")


async def test_list_filters_by_customer_and_status_and_pages_by_cursor(unit, tenant):
    p = tenant.principal
    plan = await _plan(unit, p)
    a = await _customer(unit, p, external_customer_id="a")
    b = await _customer(unit, p, external_customer_id="b")
    made = {}
    for name, customer, start in [("a_active", a, at(2024, 1, 1)), ("a_upcoming", a, at(2024, 5, 1)),
                                  ("b_active", b, at(2024, 2, 1)), ("b_ended", b, at(2023, 1, 1))]:
        made[name] = await subs.create_subscription(unit, principal=p, fields={
            "customer_id": customer.id, "plan_id": plan.id, "start_date": start})
    await subs.cancel_subscription(unit, principal=p, subscription_id=made["b_ended"].id,
                                   cancel_option="requested_date", cancellation_date=at(2023, 6, 1))

    async def ids(**filters):
        return [s.id for s in (await subs.list_subscriptions(unit, principal=p, **filters)).items]

    newest_first = [made[n].id for n in ("b_ended", "b_active", "a_upcoming", "a_active")]
    assert await ids() == newest_first
    assert await ids(customer_id=a.id) == [made["a_upcoming"].id, made["a_active"].id]
    assert await ids(external_customer_id="b") == [made["b_ended"].id, made["b_active"].id]
    assert await ids(external_customer_id="nobody") == []
    assert await ids(status="active") == [made["b_active"].id, made["a_active"].id]
    assert await ids(status="upcoming") == [made["a_upcoming"].id]
    assert await ids(status="ended") == [made["b_ended"].id]
    assert await ids(status="ended", customer_id=a.id) == []
    first = await subs.list_subscriptions(unit, principal=p, limit=3)
    assert [s.id for s in first.items] == newest_first[:3] and first.has_more
    rest = await subs.list_subscriptions(unit, principal=p, limit=3, after_id=first.items[-1].id)
    assert [s.id for s in rest.items] == newest_first[3:] and not rest.has_more
    with pytest.raises(ValidationFailed) as raised:
        await subs.list_subscriptions(unit, principal=p, status="paused")
    assert raised.value.field == "status"


async def test_update_merges_metadata_only(unit, tenant):
    p = tenant.principal
    plan = await _plan(unit, p)
    customer = await _customer(unit, p)
    sub = await subs.create_subscription(unit, principal=p, fields={
        "customer_id": customer.id, "plan_id": plan.id, "metadata": {"a": "1", "b": "2"}})
    updated = await subs.update_subscription(unit, principal=p, subscription_id=sub.id,
                                             fields={"metadata": {"a": None, "c": "3"}})
    assert updated.subscription_metadata == {"b": "2", "c": "3"}
    with pytest.raises(ValidationFailed) as raised:
        await subs.update_subscription(unit, principal=p, subscription_id=sub.id, fields={"plan_id": plan.id})
    assert raised.value.field == "plan_id"
    cleared = await subs.update_subscription(unit, principal=p, subscription_id=sub.id, fields={"metadata": None})
    assert cleared.subscription_metadata == {}


async def test_cancel_at_the_end_of_the_term_follows_the_longest_cadence(unit, tenant):
    p = tenant.principal
    customer = await _customer(unit, p)
    monthly = await _plan(unit, p)
    annual = await _plan(unit, p, cadences=("monthly", "annual", "one_time"))
    start = at(2024, 1, 31)
    sub = await subs.create_subscription(unit, principal=p, fields={
        "customer_id": customer.id, "plan_id": monthly.id, "start_date": start})
    cancelled = await subs.cancel_subscription(unit, principal=p, subscription_id=sub.id,
                                               cancel_option="end_of_subscription_term")
    # Anchored on Jan 31: the period holding Mar 10 is [Feb 29, Mar 31).
    assert cancelled.end_date == at(2024, 3, 31) and subs.subscription_status(cancelled, NOW) == "active"
    sub = await subs.create_subscription(unit, principal=p, fields={
        "customer_id": customer.id, "plan_id": annual.id, "start_date": start})
    cancelled = await subs.cancel_subscription(unit, principal=p, subscription_id=sub.id,
                                               cancel_option="end_of_subscription_term")
    assert cancelled.end_date == at(2025, 1, 31)
    # Unscheduling it lets the subscription run on.
    resumed = await subs.unschedule_cancellation(unit, principal=p, subscription_id=sub.id)
    assert resumed.end_date is None
    assert (await subs.get_subscription(unit, principal=p, subscription_id=sub.id)).end_date is None
    with pytest.raises(ConstraintViolation) as raised:
        await subs.unschedule_cancellation(unit, principal=p, subscription_id=sub.id)
    assert raised.value.field == "subscription_id"


async def test_cancel_immediately_and_on_a_requested_date(unit, tenant):
    p = tenant.principal
    plan = await _plan(unit, p)
    customer = await _customer(unit, p)
    sub = await subs.create_subscription(unit, principal=p, fields={
        "customer_id": customer.id, "plan_id": plan.id, "start_date": at(2024, 1, 1)})
    ended = await subs.cancel_subscription(unit, principal=p, subscription_id=sub.id, cancel_option="immediate")
    assert ended.end_date == NOW and subs.subscription_status(ended, NOW) == "ended"
    # An upcoming subscription cancelled immediately ends at its start: it never runs.
    upcoming = await subs.create_subscription(unit, principal=p, fields={
        "customer_id": customer.id, "plan_id": plan.id, "start_date": at(2024, 6, 1)})
    gone = await subs.cancel_subscription(unit, principal=p, subscription_id=upcoming.id, cancel_option="immediate")
    assert gone.end_date == at(2024, 6, 1) and subs.subscription_status(gone, NOW) == "ended"
    # Backdated and future requested dates.
    sub = await subs.create_subscription(unit, principal=p, fields={
        "customer_id": customer.id, "plan_id": plan.id, "start_date": at(2024, 1, 1)})
    later = await subs.cancel_subscription(unit, principal=p, subscription_id=sub.id, cancel_option="requested_date",
                                           cancellation_date="2024-04-15T00:00:00+00:00")
    assert later.end_date == at(2024, 4, 15) and subs.subscription_status(later, NOW) == "active"
    unit.clock.advance(timedelta(days=40))  # type: ignore[attr-defined]
    assert subs.subscription_status(later, unit.clock.now()) == "ended"
    with pytest.raises(ConstraintViolation):
        await subs.unschedule_cancellation(unit, principal=p, subscription_id=sub.id)


@pytest.mark.parametrize(("option", "date", "field"), [
    ("someday", None, "cancel_option"),
    ("requested_date", None, "cancellation_date"),
    ("requested_date", "2023-12-31T23:59:59Z", "cancellation_date"),
    ("requested_date", "not a date", "cancellation_date"),
    ("immediate", "2024-04-01T00:00:00Z", "cancellation_date"),
])
async def test_bad_cancellations_name_the_field_and_change_nothing(unit, tenant, option, date, field):
    p = tenant.principal
    plan = await _plan(unit, p)
    customer = await _customer(unit, p)
    sub = await subs.create_subscription(unit, principal=p, fields={
        "customer_id": customer.id, "plan_id": plan.id, "start_date": at(2024, 1, 1)})
    sub_id = sub.id  # a failed operation rolls the session back and expires its instances
    with pytest.raises(ValidationFailed) as raised:
        await subs.cancel_subscription(unit, principal=p, subscription_id=sub_id, cancel_option=option,
                                       cancellation_date=date)
    assert raised.value.field == field
    assert (await subs.get_subscription(unit, principal=p, subscription_id=sub_id)).end_date is None


async def test_an_ended_subscription_cannot_be_cancelled_again(unit, tenant):
    p = tenant.principal
    plan = await _plan(unit, p)
    customer = await _customer(unit, p)
    sub = await subs.create_subscription(unit, principal=p, fields={
        "customer_id": customer.id, "plan_id": plan.id, "start_date": at(2024, 1, 1)})
    sub_id = sub.id
    await subs.cancel_subscription(unit, principal=p, subscription_id=sub_id, cancel_option="requested_date",
                                   cancellation_date=at(2024, 2, 1))
    with pytest.raises(ConstraintViolation) as raised:
        await subs.cancel_subscription(unit, principal=p, subscription_id=sub_id, cancel_option="immediate")
    assert raised.value.field == "subscription_id"
    assert (await subs.get_subscription(unit, principal=p, subscription_id=sub_id)).end_date == at(2024, 2, 1)


async def test_deleting_a_customer_deletes_its_subscriptions(unit, tenant):
    p = tenant.principal
    plan = await _plan(unit, p)
    customer = await _customer(unit, p)
    sub = await subs.create_subscription(unit, principal=p, fields={"customer_id": customer.id, "plan_id": plan.id})
    await customers.delete_customer(unit, principal=p, customer_id=customer.id)
    with pytest.raises(NotFound):
        await subs.get_subscription(unit, principal=p, subscription_id=sub.id)


async def test_a_resellers_key_sees_only_its_customers_subscriptions(unit, tenant):
    p = tenant.principal
    plan = await _plan(unit, p)
    mine = await _customer(unit, p)
    sub = await subs.create_subscription(unit, principal=p, fields={"customer_id": mine.id, "plan_id": plan.id})
    scoped = dataclasses.replace(p, reseller_id="r-1")  # the same organisation, through a reseller's key
    assert (await subs.list_subscriptions(unit, principal=scoped)).items == []
    with pytest.raises(NotFound):
        await subs.get_subscription(unit, principal=scoped, subscription_id=sub.id)
