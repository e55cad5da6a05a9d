"""Fixtures: every test that takes `backend` runs on SQLite and on PostgreSQL.

PostgreSQL comes from ACCRUAL_TEST_PG_URL (default: the local cluster, user postgres). It is never
skipped silently: if it cannot be reached the PostgreSQL tests fail. ACCRUAL_TEST_BACKENDS=sqlite
runs SQLite only, on purpose and visibly.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from domains.tenancy import service as tenancy
from domains.tenancy.service import Principal
from domains.unit_of_work import UnitOfWork
from gateway.app import create_app
from gateway.settings import Settings
from persistence.db import create_engine, reader_for, session_factory
from persistence.migrations import runner

PG_ADMIN_URL = os.environ.get("ACCRUAL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = [b.strip() for b in os.environ.get("ACCRUAL_TEST_BACKENDS", "sqlite,postgresql").split(",") if b.strip()]


@dataclass
class Database:
    backend: str
    url: str
    engine: AsyncEngine


async def _fresh_postgres() -> tuple[str, str]:
    name = f"accrual_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return name, f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"


async def _drop_postgres(name: str) -> None:
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session", params=BACKENDS)
async def database(request: pytest.FixtureRequest) -> AsyncIterator[Database]:
    """One migrated database per backend for the whole run; tests isolate by organisation."""
    backend = request.param
    if backend == "sqlite":
        folder = tempfile.mkdtemp(prefix="accrual-test-")
        url = f"sqlite+aiosqlite:///{Path(folder) / 'accrual.db'}"
        pg_name = None
    else:
        pg_name, url = await _fresh_postgres()
    engine = create_engine(url)
    await runner.upgrade_async(engine)
    try:
        yield Database(backend=backend, url=url, engine=engine)
    finally:
        await engine.dispose()
        if pg_name:
            await _drop_postgres(pg_name)


@pytest.fixture
def backend(database: Database) -> str:
    return database.backend


@pytest.fixture
async def uow(database: Database) -> AsyncIterator[UnitOfWork]:
    unit = UnitOfWork(session_factory(database.engine))
    yield unit
    await unit.close()


@dataclass
class Tenant:
    org_id: str
    key: str
    principal: Principal

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def make_tenant(database: Database, *, reseller_id: str | None = None, name: str | None = None) -> Tenant:
    unit = UnitOfWork(session_factory(database.engine))
    try:
        org = await tenancy.create_organisation(unit, name=name or f"org-{uuid.uuid4().hex[:8]}")
        minted = await tenancy.create_api_key(unit, org_id=org.org_id, reseller_id=reseller_id)
        principal = await tenancy.authenticate(unit, secret=minted.secret)
    finally:
        await unit.close()
    return Tenant(org_id=org.org_id, key=minted.secret, principal=principal)


@pytest.fixture
async def tenant(database: Database) -> Tenant:
    """A fresh organisation with a full-access key: tests never see each other's rows."""
    return await make_tenant(database)


@pytest.fixture
async def other_tenant(database: Database) -> Tenant:
    return await make_tenant(database)


@pytest.fixture(scope="session")
async def server(database: Database) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    app = create_app(Settings(database_url=database.url, max_body_bytes=256 * 1024))
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def client(server: TestClient) -> TestClient:  # type: ignore[type-arg]
    return server


class QueryCounter:
    def __init__(self) -> None:
        self.statements: list[str] = []

    @property
    def count(self) -> int:
        return len(self.statements)


@pytest.fixture
def count_queries(database: Database) -> Any:
    """`with count_queries() as counter:` counts SQL statements sent on the test database's engine."""
    from contextlib import contextmanager

    @contextmanager
    def counting() -> Any:
        counter = QueryCounter()

        def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")):
                counter.statements.append(statement)

        engines = {database.engine.sync_engine, *reader_for(database.engine).own_engines}
        for engine in engines:
            event.listen(engine, "before_cursor_execute", record)
        try:
            yield counter
        finally:
            for engine in engines:
                event.remove(engine, "before_cursor_execute", record)

    return counting
