"""Invoice services called directly, on both databases: the live draft, one-off invoices, the
draft → issued → paid / void lifecycle, numbering (also under concurrency) and lists."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, timedelta
from decimal import Decimal

import pytest

from domains.billing import invoices
from domains.billing.periods import Period
from domains.clock import FixedClock
from domains.customers import service as customers
from domains.errors import ConstraintViolation, NotFound, ValidationFailed
from domains.unit_of_work import UnitOfWork
from persistence.db import session_factory
from tests.domains.billing.billing_world import at, make_plan, make_subscription, send_tokens

NOW = at(2024, 3, 10, 12)


@pytest.fixture
async def unit(database) -> AsyncIterator[UnitOfWork]:
    uow = UnitOfWork(session_factory(database.engine), clock=FixedClock(NOW))
    yield uow
    await uow.close()


async def _customer(uow, principal, **fields):
    return await customers.create_customer(uow, principal=principal, fields={
        "name": "Acme", "email": "billing@acme.com", **fields})


def _one_off(customer_id, **fields):
    return {"customer_id": customer_id, "currency": "USD", "invoice_date": "2024-03-10", "net_terms": 15,
            "memo": "Setup", "line_items": [
                {"name": "Onboarding", "quantity": 3, "unit_config": {"unit_amount": "100.005"},
                 "start_date": "2024-03-01", "end_date": "2024-03-10"},
                {"name": "Training", "quantity": "1.5", "unit_config": {"unit_amount": "80"}}], **fields}


async def test_the_draft_of_the_running_period_follows_the_events_so_far(unit, tenant):
    p = tenant.principal
    plan = await make_plan(unit, p)
    sub = await make_subscription(unit, p, plan, at(2024, 3, 1))
    draft = await invoices.draft_invoice(unit, principal=p, subscription_id=sub.id)
    assert draft.period == Period(at(2024, 3, 1), at(2024, 4, 1)) and draft.invoice_date == at(2024, 4, 1)
    assert (draft.status, draft.subtotal, draft.total) == ("draft", Decimal("20.00"), Decimal("20.00"))
    await send_tokens(unit, p, sub, at(2024, 3, 10, 12), 1100, "a")
    draft = await invoices.draft_invoice(unit, principal=p, subscription_id=sub.id)
    # 1,000 x 0.01 + 100 x 0.005 = 10.50 on top of the 20.00 fee
    assert [(li.name, li.amount) for li in draft.line_items] == [("Platform fee", Decimal("20.00")),
                                                                  ("Tokens", Decimal("10.50"))]
    assert draft.amount_due == Decimal("30.50")
    # Nothing was stored for it.
    assert (await invoices.list_invoices(unit, principal=p)).items == []
    # Not active (upcoming): no draft.
    later = await make_subscription(unit, p, plan, at(2024, 5, 1))
    assert await invoices.draft_invoice(unit, principal=p, subscription_id=later.id) is None


async def test_a_one_off_invoice_is_a_draft_with_exact_amounts_then_issued_numbered_and_due(unit, tenant):
    p = tenant.principal
    customer = await _customer(unit, p)
    invoice = await invoices.create_invoice(unit, principal=p, fields=_one_off(customer.id))
    assert (invoice.status, invoice.invoice_number, invoice.subscription_id, invoice.memo) == (
        "draft", None, None, "Setup")
    # 3 x 100.005 = 300.015 -> 300.02; 1.5 x 80 = 120.00
    assert (invoice.subtotal, invoice.total, invoice.amount_due) == (Decimal("420.02"),) * 3
    lines = (await invoices.line_items_by_invoice_ids(unit, principal=p, ids=[invoice.id]))[invoice.id]
    assert [(li.name, li.quantity, li.amount, li.start_date, li.end_date) for li in lines] == [
        ("Onboarding", Decimal(3), Decimal("300.02"), at(2024, 3, 1), at(2024, 3, 10)),
        ("Training", Decimal("1.5"), Decimal("120.00"), at(2024, 3, 10), at(2024, 3, 10))]
    issued = await invoices.issue_invoice(unit, principal=p, invoice_id=invoice.id, synchronous=True)
    assert (issued.status, issued.invoice_number, issued.issued_at, issued.due_date) == (
        "issued", 1, NOW, NOW + timedelta(days=15))
    second = await invoices.create_invoice(unit, principal=p, fields={**_one_off(customer.id), "will_auto_issue": True})
    assert (second.status, second.invoice_number) == ("issued", 2)
    fetched = await invoices.get_invoice(unit, principal=p, invoice_id=invoice.id)
    assert (fetched.status, fetched.invoice_number, fetched.subtotal) == ("issued", 1, Decimal("420.02"))


@pytest.mark.parametrize(("change", "field"), [
    ({"line_items": []}, "line_items"),
    ({"line_items": [{"name": "X", "quantity": -1, "unit_config": {"unit_amount": "1"}}]}, "line_items[0].quantity"),
    ({"line_items": [{"name": "X", "quantity": 1}]}, "line_items[0].unit_config.unit_amount"),
    ({"line_items": [{"name": " ", "quantity": 1, "unit_config": {"unit_amount": "1"}}]}, "line_items[0].name"),
    ({"line_items": [{"name": "X", "quantity": 1, "unit_config": {"unit_amount": "1"}, "item_id": "nope"}]},
     "line_items[0].item_id"),
    ({"currency": "XYZ"}, "currency"),
    ({"invoice_date": None}, "invoice_date"),
    ({"invoice_date": "soon"}, "invoice_date"),
    ({"net_terms": -1}, "net_terms"),
    ({"customer_id": "nobody"}, "customer_id"),
    ({"discount": "10%"}, "discount"),
])
async def test_bad_one_off_invoices_name_the_field_and_write_nothing(unit, tenant, change, field):
    p = tenant.principal
    customer = await _customer(unit, p)
    with pytest.raises(ValidationFailed) as raised:
        await invoices.create_invoice(unit, principal=p, fields={**_one_off(customer.id), **change})
    assert raised.value.field == field
    assert (await invoices.list_invoices(unit, principal=p)).items == []


async def test_transitions_are_checked_and_a_refused_one_changes_nothing(unit, tenant):
    p = tenant.principal
    customer_id = (await _customer(unit, p)).id
    # Ids kept up front: a refused operation rolls back, which expires the ORM objects it returned.
    draft_id = (await invoices.create_invoice(unit, principal=p, fields=_one_off(customer_id))).id
    for verb in (invoices.void_invoice,):
        with pytest.raises(ConstraintViolation) as raised:
            await verb(unit, principal=p, invoice_id=draft_id)
        assert raised.value.field == "status" and "draft" in raised.value.message
    with pytest.raises(ConstraintViolation):
        await invoices.mark_invoice_paid(unit, principal=p, invoice_id=draft_id, payment_received_date="2024-03-11")
    await invoices.issue_invoice(unit, principal=p, invoice_id=draft_id)
    with pytest.raises(ConstraintViolation) as raised:
        await invoices.issue_invoice(unit, principal=p, invoice_id=draft_id)
    assert raised.value.field == "status"
    with pytest.raises(ValidationFailed) as bad:
        await invoices.mark_invoice_paid(unit, principal=p, invoice_id=draft_id, payment_received_date="yesterday")
    assert bad.value.field == "payment_received_date"
    paid = await invoices.mark_invoice_paid(unit, principal=p, invoice_id=draft_id, payment_received_date="2024-03-11",
                                            external_id="wire-42", notes="by wire")
    assert (paid.status, paid.paid_at, paid.payment_received_date, paid.external_id, paid.notes) == (
        "paid", NOW, date(2024, 3, 11), "wire-42", "by wire")
    with pytest.raises(ConstraintViolation) as raised:
        await invoices.void_invoice(unit, principal=p, invoice_id=draft_id)
    assert raised.value.field == "status" and "paid" in raised.value.message
    fetched = await invoices.get_invoice(unit, principal=p, invoice_id=draft_id)
    assert (fetched.status, fetched.voided_at, fetched.invoice_number) == ("paid", None, 1)

    other_id = (await invoices.create_invoice(unit, principal=p, fields={**_one_off(customer_id),
                                                                      "will_auto_issue": True})).id
    voided = await invoices.void_invoice(unit, principal=p, invoice_id=other_id)
    assert (voided.status, voided.voided_at) == ("void", NOW)
    with pytest.raises(ConstraintViolation) as raised:
        await invoices.void_invoice(unit, principal=p, invoice_id=other_id)
    assert raised.value.field == "status" and "void" in raised.value.message


async def test_lists_filter_and_page_and_other_organisations_see_nothing(unit, tenant, other_tenant):
    p = tenant.principal
    first, second = await _customer(unit, p), await _customer(unit, p)
    made = [await invoices.create_invoice(unit, principal=p, fields=_one_off(c.id)) for c in (first, second, first)]
    await invoices.issue_invoice(unit, principal=p, invoice_id=made[2].id)
    page = await invoices.list_invoices(unit, principal=p, limit=2)
    assert [i.id for i in page.items] == [made[2].id, made[1].id] and page.has_more
    rest = await invoices.list_invoices(unit, principal=p, limit=2, after_id=page.items[-1].id)
    assert [i.id for i in rest.items] == [made[0].id] and not rest.has_more
    assert [i.id for i in (await invoices.list_invoices(unit, principal=p, customer_id=first.id)).items] == [
        made[2].id, made[0].id]
    assert [i.id for i in (await invoices.list_invoices(unit, principal=p, status="draft")).items] == [
        made[1].id, made[0].id]
    with pytest.raises(ValidationFailed) as raised:
        await invoices.list_invoices(unit, principal=p, status="open")
    assert raised.value.field == "status"
    assert (await invoices.list_invoices(unit, principal=other_tenant.principal)).items == []
    with pytest.raises(NotFound):
        await invoices.get_invoice(unit, principal=other_tenant.principal, invoice_id=made[0].id)
    with pytest.raises(NotFound):
        await invoices.issue_invoice(unit, principal=other_tenant.principal, invoice_id=made[0].id)


async def test_concurrent_issues_number_without_gaps_or_duplicates(database, tenant):
    p = tenant.principal
    setup = UnitOfWork(session_factory(database.engine), clock=FixedClock(NOW))
    customer = await _customer(setup, p)
    drafts = [await invoices.create_invoice(setup, principal=p, fields=_one_off(customer.id)) for _ in range(8)]
    await setup.close()

    async def issue(invoice_id):
        uow = UnitOfWork(session_factory(database.engine), clock=FixedClock(NOW))
        try:
            return (await invoices.issue_invoice(uow, principal=p, invoice_id=invoice_id)).invoice_number
        finally:
            await uow.close()

    numbers = await asyncio.gather(*(issue(d.id) for d in drafts))
    assert sorted(numbers) == list(range(1, 9))
