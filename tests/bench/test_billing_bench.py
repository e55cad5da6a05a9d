"""bench.billing on tiny sizes: the draft's usage equals the hand-written aggregate and the sum made in
Python, and one close_periods run over the bulk-made subscriptions issues every invoice with the
totals worked out by hand, a second run none, at a constant number of statements per subscription.
No timing is asserted (the benchmark prints ratios, it never fails on one)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bench import billing
from bench.databases import fresh_database
from domains.billing.invoices import list_invoices
from domains.unit_of_work import UnitOfWork
from persistence.db import session_factory
from tests.conftest import BACKENDS


@pytest.mark.parametrize("backend", BACKENDS)
async def test_draft_of_the_heavy_customer_agrees_with_the_hand_written_aggregate(backend, tmp_path):
    options = billing.Options(events=1_500, noise=500, subscriptions=(5,), rounds=1, calls=2)
    async with fresh_database(backend, tmp_path) as database:
        seeded = await billing.seed_draft(database, options)
        raw = await billing.HandWrittenUsage.open(seeded)
        try:
            accrual = billing.AccrualDraft(seeded)
            draft = await billing.verify_draft(seeded, accrual, raw)  # raises unless all agree
            samples = await billing.measure_draft({"accrual": accrual.draft, "raw": raw.quantity}, options)
        finally:
            await raw.close()
            await seeded.engine.dispose()
    # 1,500 events of 1..7999 tokens: far past the first tier.
    assert seeded.expected > 1_500 and draft.period.start == billing.FEBRUARY and draft.period.end == billing.MARCH
    assert [(line.name, line.amount) for line in draft.line_items] == [
        ("Platform fee", Decimal("20.00")), ("Tokens", billing.tiered_amount(seeded.expected))]
    assert {name: len(values) for name, values in samples.items()} == {"accrual": 2, "raw": 2}


@pytest.mark.parametrize("backend", BACKENDS)
async def test_period_close_issues_every_invoice_once(backend, tmp_path):
    runs = []
    async with fresh_database(backend, tmp_path) as database:
        for count in (10, 30):  # one organisation each, in the same database (the bench makes one per size)
            seeded = await billing.seed_close(database, count)
            try:
                runs.append(await billing.close_once(seeded, count))  # raises unless every total is right
                uow = UnitOfWork(session_factory(seeded.engine))
                try:
                    page = await list_invoices(uow, principal=seeded.principal, limit=100)
                finally:
                    await uow.close()
            finally:
                await seeded.engine.dispose()
            assert sorted(invoice.invoice_number for invoice in page.items) == list(range(1, count + 1))
            assert {(invoice.status, invoice.period_start, invoice.period_end) for invoice in page.items} == {
                ("issued", billing.JANUARY, billing.FEBRUARY)}
            # Every tenth customer used the product: those invoices hold more than the $20 fee.
            assert sum(invoice.total > Decimal("20.00") for invoice in page.items) == count // billing.USAGE_EVERY
    assert [(run.issued, run.rerun_issued) for run in runs] == [(10, 0), (30, 0)]
    figures = billing.close_figures(backend, runs)
    assert [figure.name for figure in figures] == [
        "period_close_rate_10", "period_close_rate_30", "period_close_scaling", "period_close_statements"]
    # A whole number of statements per subscription (lock and plan_cache_mode on PostgreSQL, last
    # invoiced period, plan changes, quantity changes, usage, number, invoice, lines) plus the run's
    # own few reads (due subscriptions, their plans' prices and phases, metrics, re-anchoring changes).
    per_subscription = (runs[1].statements - runs[0].statements) / 20
    assert per_subscription == (9 if backend == "postgresql" else 7)
    assert runs[0].statements - 10 * per_subscription <= 8
