"""Invoices through the official Orb SDK (strict response validation) against the real server process:
a one-off invoice created, issued, marked paid, listed and fetched; the upcoming invoice of a subscription."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal

import orb
import pytest
from orb.types.shared import Invoice

pytestmark = pytest.mark.e2e


def test_one_off_invoice_lifecycle(new_tenant: Callable[[], orb.Orb]) -> None:
    client = new_tenant()
    item = client.items.create(name="Consulting")
    customer = client.customers.create(name="Acme", email="billing@acme.com", external_customer_id="acme")
    created = client.invoices.create(
        currency="USD", invoice_date=datetime.fromisoformat("2024-03-01T00:00:00+00:00"), customer_id=customer.id,
        net_terms=30, memo="March work", metadata={"po": "PO-7"},
        line_items=[{"name": "Hours", "quantity": 2.5, "unit_config": {"unit_amount": "80.00"}, "item_id": item.id,
                     "model_type": "unit", "start_date": date(2024, 2, 1), "end_date": date(2024, 2, 29)}])
    assert isinstance(created, Invoice)
    assert (created.status, created.invoice_source, created.total, created.amount_due) == (
        "draft", "one_off", "200.00", "200.00")
    assert created.customer.id == customer.id and created.customer.external_customer_id == "acme"
    assert created.subscription is None and created.metadata == {"po": "PO-7"} and created.memo == "March work"
    [line] = created.line_items
    assert (line.name, line.quantity, line.amount) == ("Hours", 2.5, "200.00")
    assert line.price.price_model_type == "unit" and line.price.unit_config.unit_amount == "80"  # type: ignore[union-attr]

    issued = client.invoices.issue(created.id, synchronous=True)
    assert issued.status == "issued" and issued.invoice_number == "1" and issued.issued_at is not None
    assert issued.due_date is not None and (issued.due_date - issued.issued_at).days == 30

    paid = client.invoices.mark_paid(created.id, payment_received_date=date(2024, 3, 15), external_id="wire-42",
                                     notes="paid by wire")
    assert paid.status == "paid" and paid.paid_at is not None
    assert paid.payment_received_at is not None and paid.payment_received_at.date() == date(2024, 3, 15)

    fetched = client.invoices.fetch(created.id)
    assert fetched == paid
    second = client.invoices.create(currency="USD", invoice_date="2024-04-01T00:00:00Z", customer_id=customer.id,
                                    line_items=[{"name": "Setup", "quantity": 1, "item_id": item.id,
                                                 "unit_config": {"unit_amount": "99.995"}, "model_type": "unit",
                                                 "start_date": "2024-04-01", "end_date": "2024-04-01"}])
    assert Decimal(second.total) == Decimal("100.00")
    assert [i.id for i in client.invoices.list()] == [second.id, created.id]
    assert [i.id for i in client.invoices.list(limit=1)] == [second.id, created.id]  # auto-paging follows cursors
    assert [i.id for i in client.invoices.list(customer_id=customer.id, limit=1).data] == [second.id]
    assert [i.id for i in client.invoices.list(status=["paid"])] == [created.id]
    assert [i.id for i in client.invoices.list(status=["draft"])] == [second.id]
    with pytest.raises(orb.RequestValidationError):
        client.invoices.list(status=["draft", "paid"])

    with pytest.raises(orb.BadRequestError) as refused:  # a paid invoice cannot be voided
        client.invoices.void(created.id)
    assert refused.value.status_code == 400
    with pytest.raises(orb.ResourceNotFound):
        client.invoices.fetch("01m0000000000000000000000")
    with pytest.raises(orb.RequestValidationError) as bad:
        client.invoices.create(currency="USD", invoice_date="2024-04-01T00:00:00Z", customer_id=customer.id,
                               line_items=[{"name": "X", "quantity": 1, "item_id": item.id, "model_type": "unit",
                                            "unit_config": {"unit_amount": "1"}, "start_date": "2024-04-01",
                                            "end_date": "2024-04-01"}],
                               due_date="2024-05-01")
    assert bad.value.validation_errors[0]["field"] == "due_date"  # type: ignore[index]


def test_upcoming_invoice_of_a_subscription(new_tenant: Callable[[], orb.Orb]) -> None:
    client = new_tenant()
    item = client.items.create(name="Platform")
    plan = client.plans.create(currency="USD", name="Pro", prices=[{
        "name": "Platform fee", "item_id": item.id, "cadence": "monthly", "model_type": "unit",
        "unit_config": {"unit_amount": "49.00"}}])
    customer = client.customers.create(name="Acme", email="billing@acme.com")
    subscription = client.subscriptions.create(customer_id=customer.id, plan_id=plan.id,
                                               start_date="2024-01-31T00:00:00Z")
    upcoming = client.invoices.fetch_upcoming(subscription_id=subscription.id)
    assert upcoming.status == "draft" and upcoming.invoice_source == "subscription"
    assert upcoming.subscription is not None and upcoming.subscription.id == subscription.id
    assert upcoming.target_date == subscription.current_billing_period_end_date
    assert [(line.name, line.amount, line.price.id) for line in upcoming.line_items] == [
        ("Platform fee", "49.00", plan.prices[0].id)]
    assert upcoming.total == "49.00"
