"""Plan phases through the official Orb SDK (strict response validation) against the real server process:
a plan created with plan_phases and phased prices parses into the SDK's Plan, a subscription to it shows
active_plan_phase_order and per-phase price intervals, and trigger_phase returns a MutatedSubscription
in the next phase; its refusals raise the SDK's own error classes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orb
import pytest
from orb.types import MutatedSubscription, Plan

pytestmark = pytest.mark.e2e


def test_plan_phases_and_trigger_phase(new_tenant: Callable[[], orb.Orb]) -> None:
    client = new_tenant()
    item = client.items.create(name="Platform")

    def fee(name: str, amount: str, order: int) -> dict[str, object]:
        return {"plan_phase_order": order, "price": {"name": name, "item_id": item.id, "cadence": "monthly",
                                                     "model_type": "unit", "unit_config": {"unit_amount": amount}}}

    plan = client.plans.create(currency="USD", name="Phased", prices=[fee("Intro", "10.00", 1),
                                                                      fee("Platform", "31.00", 2)],
                               plan_phases=[{"order": 1, "duration": 1, "duration_unit": "monthly"},
                                            {"order": 2, "duration": None}])
    assert isinstance(plan, Plan) and plan.plan_phases is not None
    assert [(p.order, p.duration, p.duration_unit) for p in plan.plan_phases] == [(1, 1, "monthly"), (2, None, None)]
    intro, platform = plan.prices
    assert (intro.plan_phase_order, platform.plan_phase_order) == (1, 2)
    assert client.plans.fetch(plan.id).model_dump() == plan.model_dump()
    with pytest.raises(orb.RequestValidationError) as refused:
        client.plans.create(currency="USD", name="Bad", prices=[fee("Intro", "10.00", 3)],
                            plan_phases=[{"order": 1, "duration": 1, "duration_unit": "monthly"}, {"order": 2}])
    assert refused.value.validation_errors[0]["field"] == "prices[0].plan_phase_order"

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=3)
    customer = client.customers.create(name="Acme", email="billing@acme.com")
    created = client.subscriptions.create(customer_id=customer.id, plan_id=plan.id, start_date=start)
    assert created.active_plan_phase_order == 1
    [interval] = [i for i in created.price_intervals if i.price.id == intro.id]
    assert interval.start_date == start and interval.end_date is not None and interval.end_date > today

    moved = client.subscriptions.trigger_phase(created.id, effective_date=today.date(),
                                               allow_invoice_credit_or_void=True)
    assert isinstance(moved, MutatedSubscription)
    assert moved.id == created.id and moved.active_plan_phase_order == 2
    assert [(i.price.id, i.start_date, i.end_date) for i in moved.price_intervals] == [
        (intro.id, start, today), (platform.id, today, None)]
    assert client.subscriptions.fetch(created.id).active_plan_phase_order == 2

    with pytest.raises(orb.ConstraintViolation) as last:
        client.subscriptions.trigger_phase(created.id)
    assert "last phase" in str(last.value)
    with pytest.raises(orb.RequestValidationError):
        client.subscriptions.trigger_phase(created.id, effective_date=start.date() - timedelta(days=1))


def test_a_phase_aligning_billing_with_its_start(new_tenant: Callable[[], orb.Orb]) -> None:
    client = new_tenant()
    item = client.items.create(name="Platform")

    def fee(name: str, amount: str, order: int) -> dict[str, object]:
        return {"plan_phase_order": order, "price": {"name": name, "item_id": item.id, "cadence": "monthly",
                                                     "model_type": "unit", "unit_config": {"unit_amount": amount}}}

    # The SDK's PlanPhase param takes the flag; Orb's Plan read has no field for it.
    plan = client.plans.create(currency="USD", name="Aligned", prices=[fee("Intro", "10.00", 1),
                                                                       fee("Platform", "31.00", 2)],
                               plan_phases=[{"order": 1, "duration": 1, "duration_unit": "annual"},
                                            {"order": 2, "duration": None,
                                             "align_billing_with_phase_start_date": True}])
    assert isinstance(plan, Plan) and plan.plan_phases is not None and len(plan.plan_phases) == 2
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=40)
    customer = client.customers.create(name="Acme", email="billing@acme.com")
    created = client.subscriptions.create(customer_id=customer.id, plan_id=plan.id, start_date=start)
    assert created.billing_cycle_day == start.day
    # Phase 2 today: billing periods re-anchor on today, so the current one starts today.
    moved = client.subscriptions.trigger_phase(created.id, effective_date=today.date())
    assert moved.billing_cycle_day == today.day and moved.current_billing_period_start_date == today
    fetched = client.subscriptions.fetch(created.id)
    assert fetched.billing_cycle_day == today.day and fetched.current_billing_period_start_date == today
