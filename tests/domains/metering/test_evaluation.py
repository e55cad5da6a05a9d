"""Metric evaluation on both databases: exact amounts equal to the same computation done in Python,
in scope (this organisation, this customer, this window) and nothing else."""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Integer, event, text

from domains.catalog.items import create_item
from domains.customers import service as customers
from domains.errors import NotFound
from domains.metering import evaluation
from domains.metering.evaluation import metric_quantity, quantity
from domains.metering.events import ingest_events
from domains.metering.metric_query import pins_usage_index
from domains.metering.metric_sql import parse_metric_sql
from domains.metering.metrics import create_metric
from domains.unit_of_work import UnitOfWork
from persistence.db import reader_for, session_factory

NOW = datetime.now(UTC).replace(microsecond=0)
START, END = NOW - timedelta(hours=6), NOW

EVENTS = [
    ("api_call", {"tokens": 10, "region": "eu", "model": "small", "cached": False, "cost": "0.10"}),
    ("api_call", {"tokens": 25, "region": "us", "model": "large", "cached": True}),
    ("api_call", {"tokens": 0.1, "region": "eu", "model": "large"}),
    ("api_call", {"tokens": 0.2, "region": "eu", "user": "u1"}),
    ("api_call", {"tokens": "lots", "region": "eu", "user": "u1"}),
    ("api_call", {"region": "ap", "user": "u2"}),
    ("upload", {"tokens": 1000, "region": "eu", "user": "u3"}),
]


@pytest.fixture
async def scenario(database, tenant, other_tenant):
    uow = UnitOfWork(session_factory(database.engine))
    mine = await customers.create_customer(uow, principal=tenant.principal, fields={"name": "A", "email": "a@example.com"})
    other = await customers.create_customer(uow, principal=tenant.principal, fields={"name": "B", "email": "b@example.com"})
    theirs = await customers.create_customer(uow, principal=other_tenant.principal,
                                             fields={"name": "C", "email": "c@example.com"})

    def batch(customer_id, prefix, at):
        return [{"event_name": name, "timestamp": (at - timedelta(minutes=i)).isoformat(), "customer_id": customer_id,
                 "idempotency_key": f"{prefix}-{i}", "properties": props} for i, (name, props) in enumerate(EVENTS)]

    await ingest_events(uow, principal=tenant.principal, events=batch(mine.id, "in", NOW - timedelta(hours=1)))
    # Noise that must never count: another customer, another organisation, outside the window.
    await ingest_events(uow, principal=tenant.principal, events=batch(other.id, "other", NOW - timedelta(hours=1)))
    await ingest_events(uow, principal=other_tenant.principal, events=batch(theirs.id, "theirs", NOW - timedelta(hours=1)))
    await ingest_events(uow, principal=tenant.principal, events=batch(mine.id, "old", NOW - timedelta(hours=11)))
    await uow.close()
    return mine.id


@pytest.mark.parametrize(("sql", "expected"), [
    ("SELECT SUM(tokens) FROM events WHERE event_name = 'api_call'", Decimal("35.3")),
    ("SELECT SUM(tokens) FROM events", Decimal("1035.3")),
    ("SELECT COUNT(*) FROM events WHERE event_name = 'api_call'", Decimal(6)),
    ("SELECT COUNT(tokens) FROM events", Decimal(6)),
    ("SELECT COUNT(DISTINCT user) FROM events", Decimal(3)),
    ("SELECT MAX(tokens) FROM events WHERE event_name = 'api_call'", Decimal(25)),
    ("SELECT MIN(tokens) FROM events", Decimal("0.1")),
    ("SELECT AVG(tokens) FROM events WHERE region = 'eu' AND event_name = 'api_call'",
     ((Decimal(10) + Decimal("0.1") + Decimal("0.2")) / 3).quantize(Decimal("1e-12"))),
    ("SELECT SUM(tokens) FROM events WHERE region IN ('us', 'ap')", Decimal(25)),
    ("SELECT SUM(tokens) FROM events WHERE region NOT IN ('us', 'ap')", Decimal("1010.3")),
    ("SELECT COUNT(*) FROM events WHERE model IS NULL", Decimal(4)),
    ("SELECT COUNT(*) FROM events WHERE model IS NOT NULL AND NOT (model = 'small')", Decimal(2)),
    ("SELECT COUNT(*) FROM events WHERE cached = true", Decimal(1)),
    ("SELECT COUNT(*) FROM events WHERE cached = false", Decimal(1)),
    ("SELECT COUNT(*) FROM events WHERE tokens >= 10 OR user = 'u2'", Decimal(4)),
    ("SELECT SUM(tokens) FROM events WHERE tokens < 1", Decimal("0.3")),
    ("SELECT SUM(cost) FROM events", Decimal(0)),  # a string-valued property is no number
    ("SELECT SUM(tokens) FROM events WHERE event_name = 'never'", Decimal(0)),
])
async def test_metrics_match_python(database, tenant, scenario, sql, expected):
    uow = UnitOfWork(session_factory(database.engine))
    try:
        got = await quantity(uow, principal=tenant.principal, definition=parse_metric_sql(sql), customer_id=scenario,
                             start=START, end=END)
    finally:
        await uow.close()
    assert got == expected


async def test_long_decimals_stay_exact_on_both_engines(database, tenant):
    uow = UnitOfWork(session_factory(database.engine))
    try:
        customer = await customers.create_customer(uow, principal=tenant.principal,
                                                   fields={"name": "D", "email": "d@example.com"})
        events = [{"event_name": "e", "timestamp": (NOW - timedelta(minutes=i + 1)).isoformat(),
                   "customer_id": customer.id, "idempotency_key": f"d{i}", "properties": {"v": value}}
                  for i, value in enumerate([1234567.123456789, 0.1, 0.2])]
        await ingest_events(uow, principal=tenant.principal, events=events)
        got = await quantity(uow, principal=tenant.principal, definition=parse_metric_sql("SELECT SUM(v) FROM events"),
                             customer_id=customer.id, start=START, end=END)
    finally:
        await uow.close()
    assert got == Decimal("1234567.423456789")


async def test_sum_of_large_and_small_integers_and_reals_is_exact(database, tenant):
    """SQLite sums small integers itself and the rest as decimals: the two parts meet exactly, at the
    boundary too, and integers whose total passes 64 bits neither overflow nor round."""
    values = [2**63 - 1, 2**63 - 1, 2**31 - 1, -(2**31 - 1), 2**31, -(2**31), 3, -4, 0.5, "7", True, None]
    uow = UnitOfWork(session_factory(database.engine))
    try:
        customer = await customers.create_customer(uow, principal=tenant.principal,
                                                   fields={"name": "E", "email": "e@example.com"})
        events = [{"event_name": "e", "timestamp": (NOW - timedelta(minutes=i + 1)).isoformat(),
                   "customer_id": customer.id, "idempotency_key": f"e{i}", "properties": {"v": value}}
                  for i, value in enumerate(values)]
        await ingest_events(uow, principal=tenant.principal, events=events)
        got = {sql: await quantity(uow, principal=tenant.principal, definition=parse_metric_sql(sql),
                                   customer_id=customer.id, start=START, end=END)
               for sql in ("SELECT SUM(v) FROM events", "SELECT SUM(v) FROM events WHERE v < 10 AND v > -10",
                           "SELECT SUM(v) FROM events WHERE v = 0.5", "SELECT SUM(v) FROM events WHERE v > 2147483647")}
    finally:
        await uow.close()
    assert got == {
        "SELECT SUM(v) FROM events": Decimal(2 * (2**63 - 1)) - Decimal("0.5"),  # "7" and true are no numbers
        "SELECT SUM(v) FROM events WHERE v < 10 AND v > -10": Decimal("-0.5"),
        "SELECT SUM(v) FROM events WHERE v = 0.5": Decimal("0.5"),
        "SELECT SUM(v) FROM events WHERE v > 2147483647": Decimal(2 * (2**63 - 1) + 2**31),
    }


# The usage aggregate as PostgreSQL keeps it prepared (the monitoring query itself left out).
_PREPARED_AGGREGATE = text(
    "SELECT coalesce(sum(generic_plans), 0), coalesce(sum(custom_plans), 0) FROM pg_prepared_statements "
    "WHERE statement LIKE '%jsonb_typeof(counted.value)%' AND statement NOT LIKE '%pg_prepared_statements%'"
).columns(generic_plans=Integer, custom_plans=Integer)  # declared columns: read on the reader's own connection
SUM_SQL = "SELECT SUM(tokens) FROM events WHERE event_name = 'api_call'"
UNNAMED_SQL = "SELECT SUM(tokens) FROM events WHERE region = 'eu'"
QUANTITIES = {SUM_SQL: Decimal("35.3"), UNNAMED_SQL: Decimal("1010.3")}


async def _prepared_runs(uow):
    generic, custom = (await uow.rows(_PREPARED_AGGREGATE))[0]
    return generic + custom


async def test_usage_aggregate_is_planned_for_each_call_unless_it_is_quick_on_postgresql(
        database, tenant, scenario, backend, monkeypatch):
    """A prepared statement gets a generic plan after five runs, one assuming the average customer's
    few events; a customer holding most of the table then ran slower (bench.billing). Outside a
    transaction a customer's first call is an unnamed statement, planned for its arguments; once a
    call of a metric pinned to one event name took less than PLAN_MATTERS_SECONDS, that customer's
    calls over the same window length run prepared (planning was then a tenth of the call); a slow
    call, or a metric without an event name, keeps per-call planning. Inside a transaction the
    transaction plans every statement for its arguments."""
    if backend != "postgresql":
        pytest.skip("plan caching is PostgreSQL's")
    monkeypatch.setattr(evaluation, "_LIGHT", OrderedDict())
    definition = parse_metric_sql(SUM_SQL)

    async def run(times, sql=SUM_SQL, start=START):
        for _ in range(times):
            assert await quantity(uow, principal=tenant.principal, definition=parse_metric_sql(sql),
                                  customer_id=scenario, start=start, end=END) == QUANTITIES[sql]

    uow = UnitOfWork(session_factory(database.engine))
    try:
        # Read on the connection the reads below use (pooled: a transaction may have left the
        # aggregate prepared on it).
        before = await _prepared_runs(uow)
        monkeypatch.setattr(evaluation, "PLAN_MATTERS_SECONDS", 0.0)  # every call counts as slow
        await run(7)
        assert await _prepared_runs(uow) == before
        monkeypatch.undo()
        monkeypatch.setattr(evaluation, "_LIGHT", OrderedDict())
        await run(7)  # the first planned for its arguments, then prepared
        assert await _prepared_runs(uow) == before + 6
        await run(3, sql=UNNAMED_SQL)  # no event name: always planned for its arguments
        assert await _prepared_runs(uow) == before + 6
        await run(1, start=START + timedelta(hours=1))  # another window length: not known yet
        assert await _prepared_runs(uow) == before + 6
        async with uow.transaction():
            generic_before, custom_before = (await uow.rows(_PREPARED_AGGREGATE))[0]
            for _ in range(7):
                assert await quantity(uow, principal=tenant.principal, definition=definition, customer_id=scenario,
                                      start=START, end=END) == Decimal("35.3")
            generic_after, custom_after = (await uow.rows(_PREPARED_AGGREGATE))[0]
            assert (generic_after, custom_after - custom_before) == (generic_before, 7)
            assert (await uow.rows(text("SHOW plan_cache_mode")))[0][0] == "force_custom_plan"
        async with uow.transaction():  # SET LOCAL: later transactions on the connection plan as usual
            assert (await uow.rows(text("SHOW plan_cache_mode")))[0][0] == "auto"
    finally:
        await uow.close()


async def test_metric_quantity_reads_the_metric_once_and_keeps_it_in_scope(database, tenant, other_tenant, scenario):
    """A metric never changes once created: after one read its definition comes from memory, for the
    organisation that owns it only; the aggregate still runs on every call, for each call's customer
    and window on the same connection."""
    uow = UnitOfWork(session_factory(database.engine))
    statements: list[str] = []
    engines = [database.engine.sync_engine, *reader_for(database.engine).own_engines]

    def listen(_conn, _cursor, statement, *_args):
        statements.append(statement)

    try:
        item = await create_item(uow, principal=tenant.principal, fields={"name": "Tokens"})
        metric = await create_metric(uow, principal=tenant.principal, fields={
            "name": "Tokens", "sql": "SELECT SUM(tokens) FROM events WHERE event_name = 'api_call'", "item_id": item.id})
        first = await metric_quantity(uow, principal=tenant.principal, metric_id=metric.id, customer_id=scenario,
                                      start=START, end=END)
        for engine in engines:
            event.listen(engine, "before_cursor_execute", listen)
        try:
            again = [await metric_quantity(uow, principal=tenant.principal, metric_id=metric.id, customer_id=scenario,
                                           start=start, end=END)
                     for start in (START, NOW - timedelta(hours=12), START)]
        finally:
            for engine in engines:
                event.remove(engine, "before_cursor_execute", listen)
        with pytest.raises(NotFound):  # another organisation asking for our metric's id
            await metric_quantity(uow, principal=other_tenant.principal, metric_id=metric.id, customer_id=scenario,
                                  start=START, end=END)
    finally:
        await uow.close()
    assert first == Decimal("35.3")
    assert again == [Decimal("35.3"), Decimal("70.6"), Decimal("35.3")]  # the 12-hour window holds the old batch
    assert not [sql for sql in statements if "billable_metrics" in sql]
    assert len([sql for sql in statements if "events" in sql]) == 3


async def test_a_metric_read_in_a_rolled_back_transaction_is_not_remembered(database, tenant, scenario):
    uow = UnitOfWork(session_factory(database.engine))
    try:
        item = await create_item(uow, principal=tenant.principal, fields={"name": "Tokens"})
        with pytest.raises(RuntimeError):
            async with uow.transaction():
                metric = await create_metric(uow, principal=tenant.principal, fields={
                    "name": "Gone", "sql": "SELECT SUM(tokens) FROM events", "item_id": item.id})
                await uow.session.flush()
                # Seen inside its own transaction...
                assert await metric_quantity(uow, principal=tenant.principal, metric_id=metric.id,
                                             customer_id=scenario, start=START, end=END) == Decimal("1035.3")
                raise RuntimeError("roll back")
        with pytest.raises(NotFound):  # ...and gone with it
            await metric_quantity(uow, principal=tenant.principal, metric_id=metric.id, customer_id=scenario,
                                  start=START, end=END)
    finally:
        await uow.close()


@pytest.mark.parametrize(("sql", "pinned"), [
    ("SELECT SUM(tokens) FROM events WHERE event_name = 'a'", True),
    ("SELECT COUNT(*) FROM events WHERE region = 'eu' AND (event_name = 'a' AND tokens > 1)", True),
    ("SELECT SUM(tokens) FROM events", False),
    ("SELECT SUM(tokens) FROM events WHERE event_name = 'a' OR event_name = 'b'", False),
    ("SELECT SUM(tokens) FROM events WHERE event_name IN ('a', 'b')", False),
    ("SELECT SUM(tokens) FROM events WHERE NOT event_name = 'a'", False),
    ("SELECT SUM(tokens) FROM events WHERE event_name != 'a'", False),
    ("SELECT SUM(tokens) FROM events WHERE event_name = 5", False),
])
def test_only_a_metric_of_one_event_name_pins_the_usage_index(sql, pinned):
    assert pins_usage_index(parse_metric_sql(sql)) is pinned


NUMERIC_AGGREGATES = {"SELECT SUM(v) FROM events WHERE event_name = 'n'": Decimal("2.5"),
                      "SELECT MAX(v) FROM events": Decimal(2), "SELECT MIN(v) FROM events": Decimal("0.5"),
                      "SELECT AVG(v) FROM events WHERE v > 0": Decimal("1.25")}


@pytest.mark.parametrize("odd", ["7", True, False, None])
async def test_a_property_holding_something_else_than_numbers_sends_the_aggregate_checked(
        database, tenant, backend, monkeypatch, odd):
    """On PostgreSQL, outside a transaction, SUM/MAX/MIN/AVG first run with the property cast unchecked:
    a string, boolean or JSON null makes PostgreSQL refuse the cast, and the checked statement then
    gives the exact result (the value counted as null) and is the one run for this organisation's
    metric from then on. Both the reader's own path and SQLAlchemy's (taken while statements are
    listened to) recognise the refusal. Inside a transaction only the checked statement runs."""
    monkeypatch.setattr(evaluation, "_NOT_ONLY_NUMBERS", OrderedDict())
    engines = [database.engine.sync_engine, *reader_for(database.engine).own_engines]
    sent: list[str] = []

    def listen(_conn, _cursor, statement, *_args):
        sent.append(statement)

    async def run(listened=False):
        if listened:
            for engine in engines:
                event.listen(engine, "before_cursor_execute", listen)
        try:
            return {sql: await quantity(uow, principal=tenant.principal, definition=parse_metric_sql(sql),
                                        customer_id=customer.id, start=START, end=END) for sql in NUMERIC_AGGREGATES}
        finally:
            if listened:
                for engine in engines:
                    event.remove(engine, "before_cursor_execute", listen)

    async def ingest(values, prefix):
        await ingest_events(uow, principal=tenant.principal, events=[
            {"event_name": "n", "timestamp": (NOW - timedelta(minutes=i + 1)).isoformat(), "customer_id": customer.id,
             "idempotency_key": f"{prefix}{i}", "properties": props} for i, props in enumerate(values)])

    uow = UnitOfWork(session_factory(database.engine))
    try:
        customer = await customers.create_customer(uow, principal=tenant.principal,
                                                   fields={"name": "N", "email": "n@example.com"})
        await ingest([{"v": 2}, {"v": 0.5}, {"w": 1}], "clean")
        assert await run(listened=True) == NUMERIC_AGGREGATES
        # On SQLite the SUM tries its integer-only form first, and 0.5 sends it on to the exact one.
        integer_try = 1 if backend == "sqlite" else 0
        assert len(sent) == len(NUMERIC_AGGREGATES) + integer_try and not evaluation._NOT_ONLY_NUMBERS
        await ingest([{"v": odd}], "odd")
        async with uow.transaction():
            assert await run() == NUMERIC_AGGREGATES
        assert not evaluation._NOT_ONLY_NUMBERS
        assert await run() == NUMERIC_AGGREGATES  # the reader's path
        # AVG's filter reads the property typed: the odd value never reaches its unchecked cast.
        refused = len(NUMERIC_AGGREGATES) - 1 if backend == "postgresql" else 0
        assert len(evaluation._NOT_ONLY_NUMBERS) == refused
        sent.clear()
        assert await run(listened=True) == NUMERIC_AGGREGATES  # from then on, checked at once
        assert len(sent) == len(NUMERIC_AGGREGATES)
        evaluation._NOT_ONLY_NUMBERS.clear()
        sent.clear()
        assert await run(listened=True) == NUMERIC_AGGREGATES  # SQLAlchemy's path
        assert len(sent) == len(NUMERIC_AGGREGATES) + refused
        assert len(evaluation._NOT_ONLY_NUMBERS) == refused
    finally:
        await uow.close()
