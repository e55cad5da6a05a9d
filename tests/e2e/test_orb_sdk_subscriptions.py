"""Subscriptions through the official Orb SDK (strict response validation) against the real server process:
created, fetched, listed, updated, moved to another plan at the end of the term, cancelled and uncancelled,
with their costs and usage; every call parses into the SDK's own models."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orb
import pytest
from orb.types import MutatedSubscription, Subscription
from orb.types.subscription_usage import GroupedSubscriptionUsage, UngroupedSubscriptionUsage

pytestmark = pytest.mark.e2e


def _midnight(days_ago: int) -> datetime:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days_ago)


def _interval_view(subscription: Subscription | MutatedSubscription) -> list[tuple[object, ...]]:
    return [(i.price.id, i.start_date, i.end_date, i.can_defer_billing,
             None if i.fixed_fee_quantity_transitions is None else
             [(t.price_id, t.effective_date, t.quantity) for t in i.fixed_fee_quantity_transitions])
            for i in subscription.price_intervals]


def test_subscription_lifecycle(new_tenant: Callable[[], orb.Orb]) -> None:
    client = new_tenant()
    platform = client.items.create(name="Platform")
    tokens = client.items.create(name="Tokens")
    metric = client.metrics.create(name="Tokens", item_id=tokens.id, description=None,
                                   sql="SELECT SUM(tokens) FROM events WHERE event_name = 'llm'")
    starter = client.plans.create(currency="USD", name="Starter", prices=[
        {"price": {"name": "Platform fee", "item_id": platform.id, "cadence": "monthly", "model_type": "unit",
                   "unit_config": {"unit_amount": "49.00"}}},
        {"price": {"name": "Tokens", "item_id": tokens.id, "cadence": "monthly", "model_type": "unit",
                   "unit_config": {"unit_amount": "0.50"}, "billable_metric_id": metric.id}}])
    scale = client.plans.create(currency="USD", name="Scale", prices=[
        {"price": {"name": "Seats", "item_id": platform.id, "cadence": "monthly", "model_type": "unit",
                   "unit_config": {"unit_amount": "20.00"}, "fixed_price_quantity": 3}}])
    fixed, usage = starter.prices
    [seats] = scale.prices
    customer = client.customers.create(name="Acme", email="billing@acme.com", external_customer_id="acme")
    other = client.customers.create(name="Globex", email="billing@globex.com")

    start = _midnight(days_ago=3)
    created = client.subscriptions.create(customer_id=customer.id, plan_id=starter.id, start_date=start,
                                          metadata={"deal": "D-1"}, net_terms=30)
    assert isinstance(created, MutatedSubscription)
    assert (created.status, created.name, created.start_date, created.end_date, created.net_terms) == (
        "active", "Starter", start, None, 30)
    assert created.customer.id == customer.id and created.plan is not None and created.plan.id == starter.id
    assert created.metadata == {"deal": "D-1"} and created.billing_cycle_day == start.day
    period_start, period_end = created.current_billing_period_start_date, created.current_billing_period_end_date
    assert period_start == start and period_end is not None and period_end > datetime.now(UTC)
    assert _interval_view(created) == [
        (fixed.id, start, None, False, [(fixed.id, start, 1.0)]),
        (usage.id, start, None, True, None)]
    for interval in created.price_intervals:
        assert interval.billing_cycle_day == start.day and interval.filter is None
        assert interval.usage_customer_ids is None
        assert (interval.current_billing_period_start_date, interval.current_billing_period_end_date) == (
            period_start, period_end)
    assert created.price_intervals[0].price.price_type == "fixed_price"
    assert created.price_intervals[1].price.price_type == "usage_price"
    assert [(e.price_id, e.start_date, e.end_date, e.quantity) for e in created.fixed_fee_quantity_schedule] == [
        (fixed.id, start, None, 1.0)]
    assert len({i.id for i in created.price_intervals}) == 2
    assert (created.adjustment_intervals, created.discount_intervals, created.redeemed_coupon) == ([], [], None)
    assert created.trial_info.end_date is None and created.auto_issuance is True
    assert (created.default_invoice_memo, created.invoicing_threshold, created.pending_subscription_change) == (
        None, None, None)

    fetched = client.subscriptions.fetch(created.id)
    assert isinstance(fetched, Subscription)
    assert fetched.model_dump() == created.model_dump(exclude={"changed_resources"})

    second = client.subscriptions.create(customer_id=other.id, plan_id=scale.id, start_date=start)
    assert [s.id for s in client.subscriptions.list(limit=1)] == [second.id, created.id]  # follows cursors
    assert [s.id for s in client.subscriptions.list(customer_id=[customer.id])] == [created.id]
    assert [s.id for s in client.subscriptions.list(external_customer_id=["acme"])] == [created.id]
    assert second.name == "Scale" and _interval_view(second) == [(seats.id, start, None, False, [(seats.id, start, 3.0)])]

    updated = client.subscriptions.update(created.id, metadata={"deal": "D-2", "owner": "kim"})
    assert isinstance(updated, Subscription) and updated.metadata == {"deal": "D-2", "owner": "kim"}

    changed = client.subscriptions.schedule_plan_change(created.id, change_option="end_of_subscription_term",
                                                        plan_id=scale.id)
    assert isinstance(changed, MutatedSubscription)
    assert changed.plan is not None and changed.plan.id == starter.id and changed.name == "Starter"  # not yet
    assert _interval_view(changed) == [
        (fixed.id, start, period_end, False, [(fixed.id, start, 1.0)]),
        (usage.id, start, period_end, True, None),
        (seats.id, period_end, None, False, [(seats.id, period_end, 3.0)])]
    future = changed.price_intervals[2]
    assert (future.current_billing_period_start_date, future.current_billing_period_end_date) == (None, None)
    assert changed.price_intervals[0].current_billing_period_end_date == period_end
    assert [(e.price_id, e.start_date, e.end_date, e.quantity) for e in changed.fixed_fee_quantity_schedule] == [
        (fixed.id, start, period_end, 1.0), (seats.id, period_end, None, 3.0)]
    phases = list(client.subscriptions.fetch_schedule(created.id))
    assert [(p.plan.id if p.plan else None, p.start_date, p.end_date) for p in phases] == [
        (starter.id, start, period_end), (scale.id, period_end, None)]
    assert phases[0].plan is not None and phases[0].plan.name == "Starter"

    replaced = client.subscriptions.unschedule_pending_plan_changes(created.id)
    assert isinstance(replaced, MutatedSubscription) and len(replaced.price_intervals) == 2
    rescheduled = client.subscriptions.schedule_plan_change(created.id, change_option="end_of_subscription_term",
                                                            plan_id=scale.id)
    assert len(rescheduled.price_intervals) == 3

    quantities = client.subscriptions.update_fixed_fee_quantity(second.id, price_id=seats.id, quantity=5,
                                                                change_option="effective_date",
                                                                effective_date=(start + timedelta(days=1)).date())
    assert isinstance(quantities, MutatedSubscription)
    assert [(t.effective_date, t.quantity) for t in quantities.price_intervals[0].fixed_fee_quantity_transitions or []
            ] == [(start, 3.0), (start + timedelta(days=1), 5.0)]
    pending = client.subscriptions.update_fixed_fee_quantity(second.id, price_id=seats.id, quantity=7,
                                                             change_option="upcoming_invoice")
    assert [t.quantity for t in pending.price_intervals[0].fixed_fee_quantity_transitions or []] == [3.0, 5.0, 7.0]
    unpended = client.subscriptions.unschedule_fixed_fee_quantity_updates(second.id, price_id=seats.id)
    assert [e.quantity for e in unpended.fixed_fee_quantity_schedule] == [3.0, 5.0]

    cancelled = client.subscriptions.cancel(created.id, cancel_option="end_of_subscription_term")
    assert isinstance(cancelled, MutatedSubscription)
    assert (cancelled.status, cancelled.end_date) == ("active", period_end)
    # The plan change at the end is dropped with the cancellation: the intervals end with the subscription.
    assert _interval_view(cancelled) == [
        (fixed.id, start, period_end, False, [(fixed.id, start, 1.0)]),
        (usage.id, start, period_end, True, None)]
    restored = client.subscriptions.unschedule_cancellation(created.id)
    assert restored.end_date is None and restored.status == "active"
    assert _interval_view(restored) == [
        (fixed.id, start, None, False, [(fixed.id, start, 1.0)]),
        (usage.id, start, None, True, None)]

    now = datetime.now(UTC)
    client.events.ingest(events=[
        {"event_name": "llm", "timestamp": now - timedelta(hours=2), "idempotency_key": "e1",
         "customer_id": customer.id, "properties": {"tokens": 30}},
        {"event_name": "llm", "timestamp": now - timedelta(hours=1), "idempotency_key": "e2",
         "external_customer_id": "acme", "properties": {"tokens": 12}}])
    window = {"timeframe_start": period_start, "timeframe_end": now + timedelta(minutes=1)}
    costs = client.subscriptions.fetch_costs(created.id, **window)
    [timeframe] = costs.data
    by_price = {c.price.id: c for c in timeframe.per_price_costs}
    assert Decimal(by_price[usage.id].total) == Decimal("21.00") and by_price[usage.id].quantity == 42
    assert Decimal(by_price[fixed.id].total) > 0
    assert Decimal(timeframe.total) == Decimal(by_price[usage.id].total) + Decimal(by_price[fixed.id].total)

    used = client.subscriptions.fetch_usage(created.id, **window)
    [metric_usage] = used.data  # type: ignore[union-attr]
    assert metric_usage.billable_metric.id == metric.id  # type: ignore[union-attr]
    assert sum(u.quantity for u in metric_usage.usage) == 42  # type: ignore[union-attr]

    with pytest.raises(orb.NotFoundError):
        client.subscriptions.fetch("01m0000000000000000000000")


def test_billing_fields_on_create_update_and_plan_change(new_tenant: Callable[[], orb.Orb]) -> None:
    """The billing fields Orb documents and Accrual honours, sent by the SDK; the ones it refuses are 400s."""
    client = new_tenant()
    platform = client.items.create(name="Platform")
    basic = client.plans.create(currency="USD", name="Basic", prices=[
        {"price": {"name": "Basic fee", "item_id": platform.id, "cadence": "monthly", "model_type": "unit",
                   "unit_config": {"unit_amount": "31.00"}}}])
    pro = client.plans.create(currency="USD", name="Pro", prices=[
        {"price": {"name": "Pro fee", "item_id": platform.id, "cadence": "monthly", "model_type": "unit",
                   "unit_config": {"unit_amount": "62.00"}}}])
    customer = client.customers.create(name="Acme", email="billing@acme.com")
    start = datetime(2024, 1, 15, tzinfo=UTC)
    ends = datetime(2099, 1, 1, tzinfo=UTC)
    created = client.subscriptions.create(
        customer_id=customer.id, plan_id=basic.id, start_date=start, end_date=ends, currency="USD",
        billing_cycle_anchor_configuration={"day": 1}, align_billing_with_subscription_start_date=False,
        trial_duration_days=4, default_invoice_memo="Thanks for your business")
    assert (created.billing_cycle_day, created.billing_cycle_anchor_configuration.day) == (1, 1)
    assert (created.end_date, created.trial_info.end_date, created.default_invoice_memo) == (
        ends, datetime(2024, 1, 19, tzinfo=UTC), "Thanks for your business")
    assert created.current_billing_period_start_date is not None
    assert created.current_billing_period_start_date.day == 1

    updated = client.subscriptions.update(created.id, net_terms=20, auto_collection=False,
                                          default_invoice_memo="PO 77")
    assert (updated.net_terms, updated.auto_collection, updated.default_invoice_memo) == (20, False, "PO 77")

    changed = client.subscriptions.schedule_plan_change(
        created.id, change_option="requested_date", change_date=datetime(2024, 3, 10, tzinfo=UTC), plan_id=pro.id,
        billing_cycle_alignment="plan_change_date", net_terms=45, auto_collection=True,
        default_invoice_memo="Pro from March", trial_duration_days=0)
    assert changed.plan is not None and changed.plan.id == pro.id
    assert (changed.billing_cycle_day, changed.net_terms, changed.auto_collection, changed.default_invoice_memo) == (
        10, 45, True, "Pro from March")
    assert [i.billing_cycle_day for i in changed.price_intervals] == [1, 10]
    realigned = client.subscriptions.schedule_plan_change(
        created.id, change_option="requested_date", change_date=datetime(2024, 3, 10, tzinfo=UTC), plan_id=pro.id,
        align_billing_with_plan_change_date=False)
    assert realigned.billing_cycle_day == 1

    for refused in ({"price_overrides": []}, {"coupon_redemption_code": "WELCOME"}, {"invoicing_threshold": "10"},
                    {"billing_cycle_alignment": "weekly"}):
        with pytest.raises(orb.BadRequestError) as error:
            client.subscriptions.schedule_plan_change(created.id, change_option="immediate", plan_id=basic.id,
                                                      **refused)  # type: ignore[arg-type]
        assert error.value.status_code == 400 and next(iter(refused)) in str(error.value.body)
    with pytest.raises(orb.BadRequestError):
        client.subscriptions.create(customer_id=customer.id, plan_id=basic.id, add_prices=[])
    assert client.subscriptions.fetch(created.id).plan.id == pro.id  # type: ignore[union-attr]


def test_grouped_usage(new_tenant: Callable[[], orb.Orb]) -> None:
    """fetch_usage with group_by and billable_metric_id parses into the SDK's GroupedSubscriptionUsage."""
    client = new_tenant()
    tokens = client.items.create(name="Tokens")
    metric = client.metrics.create(name="Tokens", item_id=tokens.id, description=None,
                                   sql="SELECT SUM(tokens) FROM events WHERE event_name = 'llm'")
    calls = client.metrics.create(name="Calls", item_id=tokens.id, description=None,
                                  sql="SELECT COUNT(*) FROM events WHERE event_name = 'llm'")
    plan = client.plans.create(currency="USD", name="Usage", prices=[
        {"price": {"name": name, "item_id": tokens.id, "cadence": "monthly", "model_type": "unit",
                   "unit_config": {"unit_amount": "1.00"}, "billable_metric_id": m.id}}
        for name, m in (("Tokens", metric), ("Calls", calls))])
    acme = client.customers.create(name="Acme", email="billing@acme.com")
    globex = client.customers.create(name="Globex", email="billing@globex.com")
    start = _midnight(days_ago=3)
    sub = client.subscriptions.create(customer_id=acme.id, plan_id=plan.id, start_date=start)
    client.subscriptions.create(customer_id=globex.id, plan_id=plan.id, start_date=start)
    now = datetime.now(UTC)
    sent = [(acme.id, 120, {"tokens": 30, "region": "eu"}), (acme.id, 90, {"tokens": 8, "region": "eu"}),
            (acme.id, 60, {"tokens": 12, "region": "us"}), (acme.id, 30, {"tokens": 5}),
            (globex.id, 100, {"tokens": 1000, "region": "eu"})]
    client.events.ingest(events=[
        {"event_name": "llm", "timestamp": now - timedelta(minutes=ago), "idempotency_key": f"g{n}",
         "customer_id": customer, "properties": properties} for n, (customer, ago, properties) in enumerate(sent)])

    # Up to 45 minutes ago every event has a region: the SDK's grouped model, value by value.
    before = {"timeframe_start": start, "timeframe_end": now - timedelta(minutes=45)}
    grouped = client.subscriptions.fetch_usage(sub.id, group_by="region", billable_metric_id=metric.id, **before)
    assert isinstance(grouped, GroupedSubscriptionUsage), grouped
    assert grouped.pagination_metadata is not None and grouped.pagination_metadata.has_more is False
    assert [(d.metric_group.property_key, d.metric_group.property_value, [u.quantity for u in d.usage])
            for d in grouped.data] == [("region", "eu", [38.0]), ("region", "us", [12.0])]
    assert {d.billable_metric.id for d in grouped.data} == {metric.id} and grouped.data[0].view_mode == "periodic"
    daily = client.subscriptions.fetch_usage(sub.id, group_by="region", billable_metric_id=calls.id,
                                             granularity="day", view_mode="cumulative", **before)
    assert isinstance(daily, GroupedSubscriptionUsage)
    assert [(d.metric_group.property_value, d.usage[-1].quantity, len(d.usage)) for d in daily.data] == [
        ("eu", 2.0, len(daily.data[0].usage)), ("us", 1.0, len(daily.data[0].usage))]
    assert daily.data[0].usage[0].timeframe_start == start and daily.data[0].view_mode == "cumulative"

    # The event without a region belongs to no group Orb's model can hold (its value is a string): this
    # face leaves that group out, and the response still parses as grouped.
    everything = client.subscriptions.fetch_usage(sub.id, group_by="region", billable_metric_id=metric.id,
                                                  timeframe_start=start, timeframe_end=now + timedelta(minutes=1))
    assert isinstance(everything, GroupedSubscriptionUsage), everything
    assert [(d.metric_group.property_value, d.usage[0].quantity) for d in everything.data] == [
        ("eu", 38.0), ("us", 12.0)]
    ungrouped = client.subscriptions.fetch_usage(sub.id, timeframe_start=start,
                                                 timeframe_end=now + timedelta(minutes=1))
    assert isinstance(ungrouped, UngroupedSubscriptionUsage)
    assert [(d.billable_metric.id, d.usage[0].quantity) for d in ungrouped.data] == [(metric.id, 55.0),
                                                                                    (calls.id, 4.0)]

    for params, field in [({"group_by": "region"}, "billable_metric_id"),
                          ({"group_by": "region", "billable_metric_id": "nope"}, "billable_metric_id"),
                          ({"group_by": "a b", "billable_metric_id": metric.id}, "group_by"),
                          ({"group_by": "region", "billable_metric_id": metric.id, "second_dimension_key": "x"},
                           "second_dimension_key")]:
        with pytest.raises(orb.BadRequestError) as error:
            client.subscriptions.fetch_usage(sub.id, **before, **params)  # type: ignore[arg-type]
        assert error.value.body["validation_errors"][0]["field"] == field, (params, error.value.body)  # type: ignore[index]
