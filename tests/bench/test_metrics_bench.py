"""bench.metrics on a tiny table: the events it loads are the rows Accrual stores, and Accrual's
evaluation and the hand-written aggregate agree with the sum made in Python for every customer.
No timing is asserted (the benchmark prints ratios, it never fails on one)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bench import metrics
from bench.databases import fresh_database
from domains.metering.events import search_events
from domains.unit_of_work import UnitOfWork
from persistence.db import session_factory
from tests.conftest import BACKENDS


@pytest.mark.parametrize("backend", BACKENDS)
async def test_loaded_events_evaluate_alike_on_both_sides(backend, tmp_path):
    options = metrics.Options(events=2_000, customers=5, rounds=1, calls=3)
    async with fresh_database(backend, tmp_path) as database:
        seeded = await metrics.seed(database, options, datetime(2026, 11, 23, 12, tzinfo=UTC))
        raw = await metrics.HandWritten.open(seeded)
        try:
            sides = {"accrual": metrics.Accrual(seeded).quantity, "raw": raw.quantity}
            await metrics.verify(seeded, sides)  # raises unless all three agree for every customer
            samples = await metrics.measure(seeded, sides, options)
            plan = metrics.plan_summary(await raw.plan(*metrics.accrual_sql(seeded, seeded.customer_ids[0])))
            # The raw load wrote rows Accrual reads back as its own: the event id, time, customer, properties.
            uow = UnitOfWork(session_factory(seeded.engine))
            try:
                [event] = await search_events(uow, principal=seeded.principal, event_ids=["bench-000001000"])
            finally:
                await uow.close()
        finally:
            await raw.close()
            await seeded.engine.dispose()
    assert (seeded.month.start, seeded.month.end) == (datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC))
    assert sum(seeded.rows_in_month.values()) > 300  # a third of the events, over half of them 'completion'
    assert all(total > 0 for total in seeded.expected.values())
    assert {name: len(values) for name, values in samples.items()} == {"accrual": 3, "raw": 3}
    assert plan[0]  # a plan was read and summarised
    assert event.customer_id in seeded.customer_ids and event.event_name in metrics.EVENT_NAMES
    assert seeded.month.first <= event.timestamp < seeded.month.last and event.timestamp.tzinfo is not None
    assert set(event.properties) == {"tokens", "region", "model"} and isinstance(event.properties["tokens"], int)
