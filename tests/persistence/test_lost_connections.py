"""Connections PostgreSQL ends under the app (a restart, pg_terminate_backend, an idle timeout, a network
cut): reads answer right on new connections, and nothing read on a lost one reaches anyone."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import bindparam, event, select

from domains.unit_of_work import UnitOfWork
from gateway.app import create_app
from gateway.settings import Settings
from gateway.state import ENGINE
from persistence.db import create_engine, reader_for, session_factory
from persistence.migrations import runner
from persistence.read_pool import ReadPool
from persistence.tables import Customer
from tests.conftest import BACKENDS, PG_ADMIN_URL, Database, _drop_postgres, _fresh_postgres, make_tenant

_NAMES = ("Ada", "Grace", "Edsger", "Barbara")
_BY_ID = select(Customer.id, Customer.name).where(Customer.org_id == bindparam("org_id"),
                                                 Customer.id == bindparam("customer_id"))


class _Relay:
    """A TCP relay between the app and PostgreSQL. `hold()` makes it keep what the server sends on each
    connection open now (a termination's FATAL message and end) until the app next writes on it: the
    app then meets, as the first answer to its read, the end of a connection it still believed idle,
    as when a server ends it an instant before a read takes it (asyncpg has not read its end yet)."""

    def __init__(self) -> None:
        target = urlsplit(PG_ADMIN_URL)
        self._target = (target.hostname or "127.0.0.1", target.port or 5432)
        self._holding: list[dict[str, Any]] = []  # per connection: held bytes, whether it ended
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def hold(self) -> None:
        for pipe in self._holding:
            pipe["held"] = []

    def release(self) -> None:
        """What is held reaches the app now."""
        for pipe in self._holding:
            if pipe["held"] is not None:
                held, pipe["held"] = pipe["held"], None
                for chunk in held:
                    pipe["app"].write(chunk)
                if pipe["ended"]:
                    pipe["app"].close()

    async def _relay(self, app_reader: asyncio.StreamReader, app_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(*self._target)
        pipe: dict[str, Any] = {"held": None, "ended": False, "app": app_writer}
        self._holding.append(pipe)

        async def to_server() -> None:
            try:
                while data := await app_reader.read(65536):
                    server_writer.write(data)
                    if pipe["held"] is not None:  # the app wrote: what the server sent meanwhile reaches it
                        held, pipe["held"] = pipe["held"], None
                        for chunk in held:
                            app_writer.write(chunk)
                        if pipe["ended"]:
                            app_writer.close()
                            return
            except OSError:
                pass
            finally:
                server_writer.close()

        async def to_app() -> None:
            with contextlib.suppress(OSError):
                while data := await server_reader.read(65536):
                    if pipe["held"] is not None:
                        pipe["held"].append(data)
                    else:
                        app_writer.write(data)
            if pipe["held"] is not None:
                pipe["ended"] = True
            else:
                app_writer.close()

        for pump in (to_server(), to_app()):
            task = asyncio.ensure_future(pump)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


@pytest.fixture(scope="module")
async def own_database() -> AsyncIterator[str]:
    """A database of this module's own, whose every connection the tests end as a server restart would."""
    if "postgresql" not in BACKENDS:
        pytest.skip("the read pool serves PostgreSQL reads only")
    name, url = await _fresh_postgres()
    engine = create_engine(url)
    try:
        await runner.upgrade_async(engine)
    finally:
        await engine.dispose()
    try:
        yield name
    finally:
        await _drop_postgres(name)


@pytest.fixture(scope="module")
async def relay(own_database) -> AsyncIterator[_Relay]:
    relay = _Relay()
    await relay.start()
    yield relay
    await relay.close()


@pytest.fixture(scope="module")
async def app(own_database, relay) -> AsyncIterator[tuple[TestClient, Database]]:  # type: ignore[type-arg]
    url = f"postgresql+asyncpg://{urlsplit(PG_ADMIN_URL).username}@127.0.0.1:{relay.port}/{own_database}"
    client = TestClient(TestServer(create_app(Settings(database_url=url))))
    await client.start_server()
    try:
        yield client, Database(backend="postgresql", url=url, engine=client.app[ENGINE])
    finally:
        await client.close()


@pytest.fixture
async def admin(own_database) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the test's own (not through the relay), for pg_terminate_backend and locks."""
    connection = await asyncpg.connect(PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + own_database)
    yield connection
    await connection.close()


@pytest.fixture
def new_connections(monkeypatch) -> list[ReadPool]:
    """The read pools a read retried on a new connection of, one entry per retry."""
    pools: list[ReadPool] = []
    opened = ReadPool.acquire_new

    async def counted(pool: ReadPool) -> Any:
        pools.append(pool)
        return await opened(pool)
    monkeypatch.setattr(ReadPool, "acquire_new", counted)
    return pools


async def _end_every_connection(admin: asyncpg.Connection) -> int:
    """pg_terminate_backend on every other connection to the database, waiting for each to exit."""
    pids = [row["pid"] for row in await admin.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")]
    for pid in pids:
        assert await admin.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
    return len(pids)


async def _waiting_on_a_lock(admin: asyncpg.Connection) -> set[int]:
    """The backends waiting for a lock on customers (pg_locks: pg_stat_activity stays as first read in
    the caller's transaction)."""
    rows = await admin.fetch("SELECT pid FROM pg_locks WHERE NOT granted AND relation = 'customers'::regclass")
    return {row["pid"] for row in rows}


async def _next_waiting_on_a_lock(admin: asyncpg.Connection, *, besides: set[int]) -> int:
    """The pid of a backend, not one of `besides`, whose statement waits for a lock, once there is one."""
    for _ in range(500):
        if pids := await _waiting_on_a_lock(admin) - besides:
            (pid,) = pids
            return pid
        await asyncio.sleep(0.01)
    raise AssertionError("no statement came to wait for the lock")


async def _customers(client, tenant, names=_NAMES) -> list[dict[str, Any]]:
    created = []
    for name in names:
        response = await client.post("/v1/customers", json={"name": name, "email": f"{name}@example.com"},
                                     headers=tenant.bearer)
        assert response.status == 201, await response.text()
        created.append(await response.json())
    return created


async def _customer(client, tenant, customer_id: str) -> tuple[int, str | None, str | None]:
    response = await client.get(f"/v1/customers/{customer_id}", headers=tenant.bearer)
    body = await response.json()
    return response.status, body.get("id"), body.get("name")


@pytest.mark.parametrize("ending", ["seen", "unseen", "unseen-through-sqlalchemy"])
async def test_reads_after_every_connection_was_ended_answer_right(app, relay, admin, new_connections, ending):
    """seen: asyncpg has read each connection's end, a pool hands out no ended one. unseen: it has not
    (the relay holds the ends), the read that meets one reads again on a new connection. Through
    SQLAlchemy: a statement listener sends reads the SQLAlchemy way, which retries alike."""
    client, database = app
    tenant = await make_tenant(database)
    created = await _customers(client, tenant)
    # Each pool holds idle connections: the read pool's (a page of customers), the batch pool's
    # (customers read concurrently, coalesced), SQLAlchemy's (the writes).
    assert {status for status, _, _ in await asyncio.gather(*(_customer(client, tenant, row["id"])
                                                             for row in created))} == {200}
    assert (await client.get("/v1/customers", headers=tenant.bearer)).status == 200
    if ending != "seen":
        relay.hold()
    assert await _end_every_connection(admin) >= 3
    await asyncio.sleep(0.05)  # the app's event loop reads what reached it
    sqlalchemy_reads: list[str] = []
    if ending == "unseen-through-sqlalchemy":
        def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            sqlalchemy_reads.append(statement)
        event.listen(database.engine.sync_engine, "before_cursor_execute", record)
    try:
        answers = await asyncio.gather(*(_customer(client, tenant, row["id"]) for row in created))
        assert answers == [(200, row["id"], row["name"]) for row in created]
        listed = await client.get("/v1/customers", params={"limit": "10"}, headers=tenant.bearer)
        assert listed.status == 200
        assert sorted(customer["name"] for customer in (await listed.json())["data"]) == sorted(_NAMES)
    finally:
        if ending == "unseen-through-sqlalchemy":
            event.remove(database.engine.sync_engine, "before_cursor_execute", record)
    if ending == "unseen":
        # The coalesced read (batch pool) and the page (read pool, held by the request) each met an
        # ended connection and read again on a new one.
        assert len(new_connections) == 2 and new_connections[0] is not new_connections[1]
    else:
        assert new_connections == []
    assert (ending == "unseen-through-sqlalchemy") == bool(sqlalchemy_reads)
    relay.release()  # the ends of connections no read took (SQLAlchemy's among them) reach the app
    await asyncio.sleep(0.05)
    # A write after the ends were read: SQLAlchemy's pool replaces an ended connection at checkout.
    (later,) = await _customers(client, tenant, ["Later"])
    assert await _customer(client, tenant, later["id"]) == (200, later["id"], "Later")


async def test_a_read_on_a_pooled_connection_ended_unseen_reads_again_on_a_new_one(app, relay, admin, new_connections):
    """The reader's own read (no connection held for it): the connection it takes is the one it just gave
    back (most recently used first), ended unseen."""
    client, database = app
    tenant = await make_tenant(database)
    (customer,) = await _customers(client, tenant, ["Pooled"])
    reader = reader_for(database.engine)
    params = {"org_id": tenant.org_id, "customer_id": customer["id"]}
    assert [tuple(row) for row in await reader.all(_BY_ID, params)] == [(customer["id"], "Pooled")]
    relay.hold()
    try:
        await _end_every_connection(admin)
        assert [tuple(row) for row in await reader.all(_BY_ID, params)] == [(customer["id"], "Pooled")]
        assert len(new_connections) == 1
    finally:
        relay.release()
        await asyncio.sleep(0.05)


async def test_a_read_whose_connection_is_ended_mid_statement_answers_from_a_statement_of_its_own(app, admin):
    """The read waits for a lock when its backend is ended: read again on a new connection, it answers
    what a read issued then answers (the name committed meanwhile), for its own customer alone."""
    client, database = app
    tenant = await make_tenant(database)
    first, other = await _customers(client, tenant, ["First", "Other"])
    assert await _customer(client, tenant, first["id"]) == (200, first["id"], "First")
    async with admin.transaction():
        await admin.execute("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")
        reading = asyncio.ensure_future(_customer(client, tenant, first["id"]))
        ended = await _next_waiting_on_a_lock(admin, besides=set())
        assert await admin.fetchval("SELECT pg_terminate_backend($1, 5000)", ended)
        # The read again: another backend, its statement sent anew and waiting for the lock in turn.
        await _next_waiting_on_a_lock(admin, besides={ended})
        assert not reading.done()
        await admin.execute("UPDATE customers SET name = 'Renamed' WHERE id = $1", first["id"])
    assert await asyncio.wait_for(reading, 10) == (200, first["id"], "Renamed")
    assert await _customer(client, tenant, other["id"]) == (200, other["id"], "Other")


async def test_a_read_cancelled_mid_statement_is_not_read_again(app, admin, new_connections):
    """A cancelled read (its caller gone, a timeout) loses its connection by its own doing: nothing reads
    it again, and the request's next read takes a new connection in place of the dropped one."""
    client, database = app
    tenant = await make_tenant(database)
    unit = UnitOfWork(session_factory(database.engine))
    try:
        (customer,) = await _customers(client, tenant, ["Kept"])
        params = {"org_id": tenant.org_id, "customer_id": customer["id"]}
        assert [tuple(row) for row in await unit.rows(_BY_ID, params)] == [(customer["id"], "Kept")]
        async with admin.transaction():
            await admin.execute("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(unit.rows(_BY_ID, params), 0.3)
            waiting = await _waiting_on_a_lock(admin)  # the cancelled statement's backend, if it lingers
            await asyncio.sleep(0.2)
            assert await _waiting_on_a_lock(admin) <= waiting and new_connections == []
        assert [tuple(row) for row in await unit.rows(_BY_ID, params)] == [(customer["id"], "Kept")]
        assert len(new_connections) == 1
    finally:
        await unit.close()
