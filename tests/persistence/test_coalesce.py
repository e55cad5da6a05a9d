"""Keyed reads of concurrent requests go as one statement per scope, each caller getting its own rows."""

from __future__ import annotations

import asyncio
import traceback
from types import SimpleNamespace

import asyncpg
import pytest
from sqlalchemy import String, bindparam, cast, func, select
from sqlalchemy.dialects.postgresql import JSONB

from domains.customers import service as customers
from domains.errors import NotFound
from domains.unit_of_work import UnitOfWork
from persistence import coalesce
from persistence.coalesce import Coalescer
from persistence.db import ReadConnectionLost, create_engine, database_unavailable, session_factory
from persistence.tables import Customer
from tests.domains.test_customer_reads import _create

_BY_ID = (select(Customer.id, Customer.name, Customer.id.label("read_for"))
          .where(Customer.org_id == bindparam("org_id"), Customer.id.in_(bindparam("keys", expanding=True))))


def _rows(params, **more):
    """What a statement read by key gives back in these fakes: a row per key asked (padding left out)."""
    return [SimpleNamespace(read_for=key, **{name: make(key) for name, make in more.items()})
            for key in params["keys"] if key is not None]


def _request_uow(database) -> UnitOfWork:
    return UnitOfWork(session_factory(database.engine))


async def test_concurrent_families_are_one_statement_per_tenant_and_never_mix(
        database, uow, tenant, other_tenant, count_queries):
    parent = await _create(uow, tenant, "Parent")
    child = await _create(uow, tenant, "Child", parent.id)
    lone = await _create(uow, tenant, "Lone")
    foreign = await _create(uow, other_tenant, "Foreign")
    asks = [(tenant, parent.id), (tenant, child.id), (tenant, lone.id), (tenant, parent.id),
            (other_tenant, foreign.id), (other_tenant, parent.id), (tenant, foreign.id)]

    async def family(who, customer_id):
        unit = _request_uow(database)
        try:
            return await customers.get_customer_family(unit, principal=who.principal, customer_id=customer_id)
        except NotFound as exc:
            return exc
        finally:
            await unit.close()

    with count_queries() as counter:
        answers = await asyncio.gather(*(family(who, customer_id) for who, customer_id in asks))
    assert counter.count == 2  # one statement per organisation

    parent_family, child_family, lone_family, parent_again, foreign_family, crossed, crossed_back = answers
    assert parent_family.customer.id == parent.id and [c.id for c in parent_family.children] == [child.id]
    assert parent_family.parent is None and parent_again == parent_family
    assert child_family.customer.id == child.id and child_family.parent.id == parent.id
    assert child_family.children == []
    assert lone_family.customer.id == lone.id and lone_family.parent is None and lone_family.children == []
    assert foreign_family.customer.id == foreign.id and foreign_family.customer.org_id == other_tenant.org_id
    # Another tenant's id, asked in the same batch as its owner's reads, is still not found.
    assert isinstance(crossed, NotFound) and isinstance(crossed_back, NotFound)


async def test_inside_a_transaction_the_read_sees_its_own_uncommitted_write(uow, tenant):
    async with uow.transaction():
        created = await _create(uow, tenant, "Fresh")
        family = await customers.get_customer_family(uow, principal=tenant.principal, customer_id=created.id)
        assert family.customer.name == "Fresh"


async def test_a_cancelled_waiter_leaves_the_others():
    calls: list[list[str]] = []

    async def run(statement, params):
        calls.append(params["keys"])
        await asyncio.sleep(0)
        return _rows(params, value=str.upper)

    coalescer = Coalescer(run)
    good = [asyncio.ensure_future(coalescer.rows(_BY_ID, {"org_id": "o"}, "keys", key, "read_for")) for key in "abc"]
    await asyncio.sleep(0)  # all three have asked; the batch has not run yet
    good[1].cancel()
    results = await asyncio.gather(*good, return_exceptions=True)
    assert [row.value for row in results[0]] == ["A"] and [row.value for row in results[2]] == ["C"]
    assert isinstance(results[1], asyncio.CancelledError)
    assert calls == [["a", "b", "c", None]]  # padded to a length of 4


def _failing_on(bad: str, calls: list[list[str]], exc: type[Exception] = RuntimeError):
    """A fake read failing for any list of keys holding `bad`, as a cast or a conversion refusing one
    customer's value fails the statement."""
    async def run(statement, params):
        calls.append(params["keys"])
        await asyncio.sleep(0)
        if bad in params["keys"]:
            raise exc(f"statement failed on {bad}")
        return _rows(params, value=str.upper)
    return run


async def _ask(coalescer: Coalescer, key: str) -> list:
    return await coalescer.rows(_BY_ID, {"org_id": "o"}, "keys", key, "read_for")


async def test_a_failed_batch_reads_each_key_alone_and_fails_only_the_waiters_of_the_failing_one():
    calls: list[list[str]] = []
    coalescer = Coalescer(_failing_on("bad", calls))
    errors: dict[str, BaseException] = {}

    async def first_waiter_of_bad():
        try:
            await _ask(coalescer, "bad")
        except RuntimeError as exc:
            exc.add_note("seen by the first waiter")
            errors["first"] = exc

    async def second_waiter_of_bad():
        try:
            await _ask(coalescer, "bad")
        except RuntimeError as exc:
            errors["second"] = exc

    gone = asyncio.ensure_future(_ask(coalescer, "gone"))
    asks = [_ask(coalescer, "a"), first_waiter_of_bad(), _ask(coalescer, "c"), second_waiter_of_bad(),
            _ask(coalescer, "a")]
    answered = asyncio.gather(*asks)
    await asyncio.sleep(0)  # every read has asked; the batch has not run
    gone.cancel()  # the waiter of "gone" leaves: its key is not read again on its own
    a, _, c, _, a_again = await answered
    assert [(row.read_for, row.value) for row in a] == [("a", "A")] and a_again == a
    assert [(row.read_for, row.value) for row in c] == [("c", "C")]
    assert calls == [["gone", "a", "bad", "c"], ["a"], ["bad"], ["c"]]
    # Each waiter of the failing key has an error of its own: its traceback shows its own frames and
    # not the other's, a note one adds is not the other's.
    first, second = errors["first"], errors["second"]
    assert first is not second and type(first) is type(second) and str(first) == str(second) == "statement failed on bad"
    first_frames = [frame.name for frame in traceback.extract_tb(first.__traceback__)]
    second_frames = [frame.name for frame in traceback.extract_tb(second.__traceback__)]
    assert "first_waiter_of_bad" in first_frames and "second_waiter_of_bad" not in first_frames
    assert "second_waiter_of_bad" in second_frames and "first_waiter_of_bad" not in second_frames
    assert "run" in first_frames and "run" in second_frames  # where the statement failed
    assert first.__notes__ == ["seen by the first waiter"] and not hasattr(second, "__notes__")


@pytest.mark.parametrize("failure", [
    ConnectionResetError("connection reset by peer"),
    ReadConnectionLost("the read's connection was lost"),
    asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout"),
    asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
], ids=lambda failure: type(failure).__name__)
async def test_a_batch_failed_for_want_of_the_database_is_not_read_again_key_by_key(failure):
    """A lost or refused connection, a cancelled statement: each key alone would only meet it again."""
    calls: list[list[str]] = []

    async def run(statement, params):
        calls.append(params["keys"])
        raise failure

    coalescer = Coalescer(run, unavailable=database_unavailable)
    outcomes = await asyncio.gather(*(_ask(coalescer, key) for key in ("a", "b", "b")), return_exceptions=True)
    assert calls == [["a", "b"]]
    assert all(type(outcome) is type(failure) and str(outcome) == str(failure) for outcome in outcomes)
    assert len({id(outcome) for outcome in outcomes}) == 3  # each waiter its own


def _real_sqlite_errors(folder):
    """sqlite3's own errors, as it raises them: the file locked past the busy timeout, and a SUM beyond 64 bits."""
    import sqlite3

    path = str(folder / "locked.db")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    waiter = sqlite3.connect(path, timeout=0)
    try:
        with pytest.raises(sqlite3.OperationalError) as locked:
            waiter.execute("SELECT * FROM t").fetchall()
        with pytest.raises(sqlite3.OperationalError) as overflow:
            waiter.execute("SELECT sum(x) FROM (SELECT 9223372036854775807 AS x UNION ALL SELECT 1)").fetchall()
    finally:
        holder.close()
        waiter.close()
    return locked.value, overflow.value


def test_sqlite_s_locked_file_is_the_database_s_failure_and_an_overflow_the_statement_s(tmp_path):
    """A failed SQLite batch read key by key runs in the loop's thread: each read of a locked file would
    wait out the busy timeout again. Only the primary result code tells the two OperationalErrors apart."""
    from sqlalchemy.exc import OperationalError

    locked, overflow = _real_sqlite_errors(tmp_path)
    assert "locked" in str(locked) and "overflow" in str(overflow)
    assert database_unavailable(locked) and not database_unavailable(overflow)
    wrapped = OperationalError("SELECT", {}, locked)  # as SQLAlchemy's own path raises it
    assert database_unavailable(wrapped)


async def test_a_synchronous_batch_on_a_locked_file_is_not_read_again_key_by_key(tmp_path):
    locked, _ = _real_sqlite_errors(tmp_path)
    calls: list[list[str]] = []

    def run_now(statement, params):
        calls.append(params["keys"])
        raise locked

    async def run(statement, params):
        raise AssertionError("SQLite's batches are read at the flush")

    coalescer = Coalescer(run, run_now, unavailable=database_unavailable)
    outcomes = await asyncio.gather(*(_ask(coalescer, key) for key in ("a", "b", "c")), return_exceptions=True)
    assert calls == [["a", "b", "c", None]]
    assert all("locked" in str(outcome) for outcome in outcomes)


async def test_the_database_lost_while_keys_are_read_alone_fails_the_keys_left_without_reading_them():
    calls: list[list[str]] = []

    async def run(statement, params):
        calls.append(params["keys"])
        if len(params["keys"]) > 1:
            raise RuntimeError("statement failed on bad")
        if params["keys"] == ["b"]:
            raise ConnectionRefusedError("the server went away")
        return _rows(params)

    coalescer = Coalescer(run)
    a, b, c, d = await asyncio.gather(*(_ask(coalescer, key) for key in "abcd"), return_exceptions=True)
    assert [row.read_for for row in a] == ["a"]
    assert all(isinstance(outcome, ConnectionRefusedError) for outcome in (b, c, d))
    assert b is not c and c is not d
    assert calls == [["a", "b", "c", "d"], ["a"], ["b"]]


async def test_a_batch_of_one_key_that_fails_is_not_read_again():
    calls: list[list[str]] = []
    coalescer = Coalescer(_failing_on("bad", calls))
    first, second = await asyncio.gather(_ask(coalescer, "bad"), _ask(coalescer, "bad"), return_exceptions=True)
    assert isinstance(first, RuntimeError) and isinstance(second, RuntimeError) and first is not second
    assert calls == [["bad"]]


async def test_a_batch_whose_read_is_cancelled_cancels_its_waiters_without_reading_again():
    calls: list[list[str]] = []

    async def run(statement, params):
        calls.append(params["keys"])
        raise asyncio.CancelledError  # as a read cancelled while the loop closes

    coalescer = Coalescer(run)
    outcomes = await asyncio.gather(*(_ask(coalescer, key) for key in "ab"), return_exceptions=True)
    assert all(isinstance(outcome, asyncio.CancelledError) for outcome in outcomes)
    assert calls == [["a", "b"]]


async def test_a_batch_carries_at_most_max_keys(monkeypatch):
    monkeypatch.setattr(coalesce, "MAX_KEYS", 3)
    calls: list[list[int]] = []

    async def run(statement, params):
        calls.append(params["keys"])
        return _rows(params)

    coalescer = Coalescer(run)
    results = await asyncio.gather(*(coalescer.rows(_BY_ID, {"org_id": "o"}, "keys", key % 7, "read_for")
                                     for key in range(8)))
    assert [len(rows) for rows in results] == [1] * 8
    # Key 0 asked again after its batch filled joins the open one: read twice, in two statements.
    assert calls == [[0, 1, 2, None], [3, 4, 5, None], [6, 0]]


@pytest.mark.parametrize("count", [1, 40])
async def test_the_reader_s_coalescer_answers_real_rows(database, uow, tenant, count):
    created = [await _create(uow, tenant, f"C{index}") for index in range(count)]
    units = [_request_uow(database) for _ in created]
    try:
        rows = await asyncio.gather(*(unit.rows_by_key(_BY_ID, {"org_id": tenant.org_id}, keys_param="keys", key=row.id,
                                                       key_column="read_for")
                                      for unit, row in zip(units, created, strict=True)))
    finally:
        for unit in units:
            await unit.close()
    assert [[(found.id, found.name) for found in each] for each in rows] == [[(row.id, row.name)] for row in created]


async def test_a_batch_gets_a_connection_while_its_waiters_hold_every_read_connection(database, tenant, backend):
    """Requests that already read hold a read-pool connection while they wait for a batch: the batch runs
    on connections of its own, or a full pool would wait on itself forever."""
    if backend != "postgresql":
        pytest.skip("SQLite reads hold no connection")
    engine = create_engine(database.url, pool_size=1, max_overflow=0)
    try:
        units = [UnitOfWork(session_factory(engine)) for _ in range(3)]
        created = await _create(units[0], tenant, "Held")

        async def read_then_batch(unit):  # as a request: its connection goes back when it ends
            try:
                await unit.rows(_BY_ID, {"org_id": tenant.org_id, "keys": [created.id]})  # holds the connection
                return await unit.rows_by_key(_BY_ID, {"org_id": tenant.org_id}, keys_param="keys", key=created.id,
                                              key_column="read_for")
            finally:
                await unit.close()

        try:
            found = await asyncio.wait_for(asyncio.gather(read_then_batch(units[0])), 10)
            assert [row.id for row in found[0]] == [created.id]
            # Three requests, one read connection between them: the first holds it, the others queue on
            # it behind a batch that needs its own.
            found = await asyncio.wait_for(asyncio.gather(*(read_then_batch(unit) for unit in units)), 10)
            assert [[row.id for row in rows] for rows in found] == [[created.id]] * 3
        finally:
            for unit in units:
                await unit.close()
    finally:
        await engine.dispose()


def test_a_loop_stopped_before_its_batch_ran_leaves_other_loops_unaffected():
    async def run(statement, params):
        return _rows(params)

    coalescer = Coalescer(run)
    stopped = asyncio.new_event_loop()
    try:
        waiting = stopped.create_task(coalescer.rows(_BY_ID, {"org_id": "o"}, "keys", "a", "read_for"))
        stopped.call_soon(stopped.stop)
        stopped.run_forever()  # the read asked, its batch never flushed
        assert not waiting.done()
        waiting.cancel()
    finally:
        stopped.close()
    fresh = asyncio.new_event_loop()
    try:
        rows = fresh.run_until_complete(asyncio.wait_for(
            coalescer.rows(_BY_ID, {"org_id": "o"}, "keys", "a", "read_for"), 5))
        assert [row.read_for for row in rows] == ["a"]
    finally:
        fresh.close()


async def test_a_synchronous_read_answers_at_the_flush_and_fails_its_key_alone():
    """SQLite's read runs in the event loop's thread: answered when the batch flushes, with no task; a
    failed batch reads each key alone there too."""
    calls: list[list[str]] = []

    async def never(statement, params):
        raise AssertionError("the synchronous read is used")

    def run_now(statement, params):
        calls.append(params["keys"])
        if "bad" in params["keys"]:
            raise RuntimeError("statement failed")
        return _rows(params)

    coalescer = Coalescer(never, run_now)
    asks = (("o", "a"), ("o", "b"), ("p", "bad"), ("q", "c"), ("q", "bad"), ("q", "bad"))
    results = await asyncio.gather(*(coalescer.rows(_BY_ID, {"org_id": org}, "keys", key, "read_for")
                                     for org, key in asks), return_exceptions=True)
    assert [row.read_for for row in results[0]] == ["a"] and [row.read_for for row in results[1]] == ["b"]
    assert isinstance(results[2], RuntimeError)  # organisation p's batch of one key failed; o's was answered
    assert [row.read_for for row in results[3]] == ["c"]  # q's failed batch: each key alone, c answered
    assert isinstance(results[4], RuntimeError) and isinstance(results[5], RuntimeError)
    assert results[4] is not results[5]
    assert calls == [["a", "b"], ["bad"], ["c", "bad"], ["c"], ["bad"]]


def _refused_by_the_database(postgres: bool):
    """A value the statement's conversion refuses: PostgreSQL's cast of text to jsonb, SQLite's json()."""
    checked = cast(cast(Customer.name, JSONB), String) if postgres else func.json(Customer.name)
    return (select(Customer.id.label("read_for"), Customer.name, checked.label("checked"))
            .where(Customer.org_id == bindparam("org_id"), Customer.id.in_(bindparam("keys", expanding=True))))


async def test_a_customer_whose_row_fails_the_statement_fails_its_own_read_alone(database, uow, tenant):
    created = [await _create(uow, tenant, name) for name in ("12", "notjson", "34")]
    statement = _refused_by_the_database(database.backend == "postgresql")
    units = [_request_uow(database) for _ in range(4)]
    try:
        outcomes = await asyncio.gather(*(
            unit.rows_by_key(statement, {"org_id": tenant.org_id}, keys_param="keys", key=row.id, key_column="read_for")
            for unit, row in zip(units, [*created, created[1]], strict=True)), return_exceptions=True)
    finally:
        for unit in units:
            await unit.close()
    twelve, refused, thirty_four, refused_again = outcomes
    assert [(row.read_for, row.checked) for row in twelve] == [(created[0].id, "12")]
    assert [(row.read_for, row.checked) for row in thirty_four] == [(created[2].id, "34")]
    for error in (refused, refused_again):
        assert isinstance(error, Exception) and "json" in str(error).lower(), error
    assert refused is not refused_again


@pytest.mark.parametrize("synchronous", [False, True], ids=["asynchronous", "synchronous"])
async def test_a_batch_that_cannot_be_answered_fails_its_waiters_and_the_turn_s_other_batches_still_run(synchronous):
    """A bug answering one batch (its rows lack the key column) must not leave its waiters, or the
    batches after it in the same turn, waiting forever."""
    def rows(statement, params):
        if statement == "broken":
            return [SimpleNamespace(other=key) for key in params["keys"]]
        return [SimpleNamespace(id=key) for key in params["keys"] if key is not None]

    async def run(statement, params):
        return rows(statement, params)

    coalescer = Coalescer(run, rows if synchronous else None)
    broken, fine = await asyncio.wait_for(asyncio.gather(
        coalescer.rows("broken", {}, "keys", "a", "id"), coalescer.rows("fine", {}, "keys", "b", "id"),
        return_exceptions=True), 5)
    assert isinstance(broken, AttributeError)
    assert [row.id for row in fine] == ["b"]
