"""SUM over every kind of property value, exact on both databases. On SQLite an integer-only statement
runs first (one JSON extraction per event) and the exact one only when that cannot vouch for its
total: these cases hold the values it must send on (booleans beside 0 and 1, strings of digits, JSON
null, reals, exponents, integers and totals beyond 64 bits) and the ones it must keep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal, localcontext

import pytest
from sqlalchemy import event, text

from domains.clock import FixedClock
from domains.customers import service as customers
from domains.metering import evaluation
from domains.metering.evaluation import daily_quantities, grouped_quantities, quantity
from domains.metering.events import ingest_events
from domains.metering.metric_sql import parse_metric_sql
from domains.unit_of_work import UnitOfWork
from persistence.db import reader_for, session_factory

NOW = datetime(2026, 1, 20, 12, tzinfo=UTC)
START, END = NOW - timedelta(days=5), NOW
SUM = parse_metric_sql("SELECT SUM(v) FROM events")
MISSING = object()
RAW = "raw"  # the value's JSON text, written into the stored properties as is

# name: (values, the exact sum, whether SQLite's integer-only statement answers alone)
CASES = {
    "small integers": ([5, 7, -3, 0], Decimal(9), True),
    # every partial sum within 64 bits, in whatever order SQLite adds them
    "integers up to 64 bits": ([2**63 - 1, -(2**62), -(2**62), 2**31, -(2**31)], Decimal(-1), True),
    "the lowest 64-bit integer": ([-(2**63), 5], Decimal(5 - 2**63), True),
    "missing beside integers": ([MISSING, 5, MISSING], Decimal(5), True),
    "all missing": ([MISSING, MISSING], Decimal(0), True),
    "booleans only": ([True, False, True], Decimal(0), False),
    "0 and 1 beside booleans": ([1, 0, True, False, 1], Decimal(2), False),
    "false beside 0": ([False, 0], Decimal(0), False),
    "strings of digits": (["7", "12", "-3", 5], Decimal(5), False),
    "json null": ([None, 5], Decimal(5), False),
    "reals": ([1.5, 2, 2.0, 0.1, 0.2, -0.05], Decimal("5.75"), False),
    "negative total": ([-5, 3, -7], Decimal(-9), True),
    "total beyond 64 bits": ([2**63 - 1, 2**63 - 1, 1], Decimal(2 * (2**63 - 1) + 1), False),
    "total below 64 bits": ([-(2**63), -1], Decimal(-(2**63) - 1), False),
    "unsigned 64-bit integer": ([2**64 - 1, 1], Decimal(2**64), False),
    "exponents": ([1e20, 1.5e-7, 3], Decimal("100000000000000000003.00000015"), False),
    "integers beyond 64 bits": ([(RAW, "123456789012345678901234567890"), (RAW, "-99999999999999999999"), 1],
                                Decimal(123456788912345678901234567892), False),
    "exponent texts": ([(RAW, "1E+2"), (RAW, "2e3"), (RAW, "-5E-1"), 7], Decimal("2106.5"), False),
    "negative zero": ([(RAW, "-0"), 3], Decimal(3), True),
}


async def _customer_with(uow: UnitOfWork, database, tenant, backend: str, values: list) -> str:
    """A customer whose events carry `values` as property v, one a day back from now (two regions)."""
    customer = await customers.create_customer(uow, principal=tenant.principal,
                                               fields={"name": "S", "email": "s@example.com"})
    for i, value in enumerate(values):
        properties = {"region": ("eu", "us")[i % 2]}
        if value is not MISSING:
            properties["v"] = 0 if isinstance(value, tuple) else value
        at = NOW - timedelta(hours=1 + 22 * i)
        sender = UnitOfWork(session_factory(database.engine), clock=FixedClock(at))  # each within the grace period
        try:
            await ingest_events(sender, principal=tenant.principal, events=[{
                "event_name": "e", "timestamp": at.isoformat(), "customer_id": customer.id,
                "idempotency_key": f"v{i}", "properties": properties}])
        finally:
            await sender.close()
    raw = [(f"v{i}", value[1], ("eu", "us")[i % 2]) for i, value in enumerate(values) if isinstance(value, tuple)]
    if raw:
        cast = "CAST(:properties AS jsonb)" if backend == "postgresql" else ":properties"
        async with uow.transaction():
            for key, written, region in raw:
                await uow.session.execute(
                    text(f"UPDATE events SET properties = {cast} WHERE org_id = :org AND idempotency_key = :key"),
                    {"properties": f'{{"region": "{region}", "v": {written}}}', "org": tenant.principal.org_id,
                     "key": key})
    return customer.id


async def _all_forms(uow: UnitOfWork, tenant, customer_id: str) -> dict[str, object]:
    scope = {"principal": tenant.principal, "definition": SUM, "customer_id": customer_id, "start": START, "end": END}
    return {
        "window": await quantity(uow, **scope),
        "daily": await daily_quantities(uow, **scope),
        "grouped": await grouped_quantities(uow, **scope, group_by="region"),
        "grouped daily": await grouped_quantities(uow, **scope, group_by="region", kind="daily"),
    }


@pytest.mark.parametrize("case", list(CASES))
async def test_sum_is_exact_for_every_kind_of_value(database, tenant, backend, case, monkeypatch):
    values, expected, integers_only = CASES[case]
    uow = UnitOfWork(session_factory(database.engine))
    statements: list[str] = []

    def listen(_conn, _cursor, statement, *_args):
        statements.append(statement)

    engines = [database.engine.sync_engine, *reader_for(database.engine).own_engines]
    try:
        customer_id = await _customer_with(uow, database, tenant, backend, values)
        scope = {"principal": tenant.principal, "definition": SUM, "customer_id": customer_id,
                 "start": START, "end": END}
        # The reader's own sqlite3 connection, then SQLAlchemy's (taken while a listener counts), then
        # the session inside a transaction: an overflow surfaces differently on each. Each starts
        # with the integer-only statement (what a failed one taught is forgotten).
        evaluation._NOT_INTEGERS.clear()
        plain = await quantity(uow, **scope)
        evaluation._NOT_INTEGERS.clear()
        for engine in engines:
            event.listen(engine, "before_cursor_execute", listen)
        try:
            counted = await quantity(uow, **scope)
            tried = len(statements)
            again = await quantity(uow, **scope)  # remembered: the exact statement alone
        finally:
            for engine in engines:
                event.remove(engine, "before_cursor_execute", listen)
        evaluation._NOT_INTEGERS.clear()
        async with uow.transaction():
            in_transaction = await quantity(uow, **scope)
        evaluation._NOT_INTEGERS.clear()
        forms = await _all_forms(uow, tenant, customer_id)
        if backend == "sqlite":
            # The exact statement alone must give the same for every form (window, daily, grouped).
            monkeypatch.setattr(evaluation, "sqlite_integer_sum", lambda *_args: False)
            exact_forms = await _all_forms(uow, tenant, customer_id)
    finally:
        await uow.close()
    assert plain == counted == again == in_transaction == expected
    assert all(type(value) is Decimal for value in (plain, counted, again, in_transaction))
    assert forms["window"] == expected
    with localcontext(Context(prec=100)):  # the default 28 digits would round the 30-digit totals
        assert sum(forms["daily"].values(), Decimal(0)) == expected
    if backend == "sqlite":
        assert forms == exact_forms
        aggregates = [sql for sql in statements[:tried] if "FROM events" in sql]
        assert len(aggregates) == (1 if integers_only else 2), aggregates
        assert len([sql for sql in statements[tried:] if "FROM events" in sql]) == 1


async def test_a_day_whose_events_lack_the_property_has_no_row_on_sqlite(database, tenant, backend):
    """The exact statement's join drops events without the property, so such a day (or group) has no
    row; the integer-only statement leaves it out too (HAVING)."""
    uow = UnitOfWork(session_factory(database.engine))
    try:
        customer_id = await _customer_with(uow, database, tenant, backend, [4, MISSING, 6])
        forms = await _all_forms(uow, tenant, customer_id)
    finally:
        await uow.close()
    assert forms["window"] == Decimal(10)
    days = sorted(forms["daily"])
    if backend == "sqlite":
        assert len(days) == 2 and forms["daily"][days[0]] + forms["daily"][days[1]] == Decimal(10)
    assert forms["grouped"] == {"eu": {None: Decimal(10)}}
