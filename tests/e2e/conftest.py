"""End-to-end fixtures: the real `accrual serve` process on a free port, once per backend and module.

SQLite: a temporary file that `serve` migrates on first start; its first API key is read from the
process's own output. PostgreSQL: a fresh database from ACCRUAL_TEST_PG_URL, migrated with
`accrual migrate` and given a key with `accrual keys create`, dropped afterwards. PostgreSQL is never
skipped silently: if it cannot be reached the tests fail. ACCRUAL_TEST_BACKENDS=sqlite runs SQLite
only, on purpose and visibly (as in tests/conftest.py).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import orb
import pytest

from tests.e2e.server import (
    FIRST_KEY,
    AccrualServer,
    ServerProcess,
    mint_key,
    postgres_admin,
    postgres_url,
    run_accrual,
    start_server,
)

BACKENDS = [name.strip() for name in os.environ.get("ACCRUAL_TEST_BACKENDS", "sqlite,postgresql").split(",")
            if name.strip()]


@pytest.fixture(scope="module", params=BACKENDS)
def accrual_server(request: pytest.FixtureRequest) -> Iterator[AccrualServer]:
    backend: str = request.param
    folder = Path(tempfile.mkdtemp(prefix="accrual-e2e-"))
    pg_name: str | None = None
    server: ServerProcess | None = None
    try:
        if backend == "sqlite":
            url = f"sqlite+aiosqlite:///{folder / 'accrual.db'}"
            server = start_server(url, folder)
            found = FIRST_KEY.search(server.output())
            assert found, f"`accrual serve` on a new SQLite database printed no first key:\n{server.output()}"
            key = found.group(1)
        elif backend == "postgresql":
            name = f"accrual_e2e_{uuid.uuid4().hex[:12]}"
            postgres_admin(f'CREATE DATABASE "{name}"')
            pg_name = name  # dropped on the way out only once it exists
            url = postgres_url(name)
            run_accrual(url, "migrate")
            key = mint_key(url, "e2e")
            server = start_server(url, folder)
        else:
            pytest.fail(f"unknown backend {backend!r} in ACCRUAL_TEST_BACKENDS")
        yield AccrualServer(backend=backend, base_url=server.base_url, database_url=url, api_key=key)
    finally:
        try:
            if server is not None:
                server.stop()
            if pg_name is not None:
                postgres_admin(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
        finally:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def orb_client(accrual_server: AccrualServer) -> Iterator[orb.Orb]:
    """The SDK with the server's first key, shared by a module's tests (they isolate by unique names)."""
    with accrual_server.client() as sdk:
        yield sdk


@pytest.fixture
def new_tenant(accrual_server: AccrualServer) -> Iterator[Callable[[], orb.Orb]]:
    """`new_tenant()` gives a client of a fresh, empty organisation; every client made is closed after."""
    made: list[orb.Orb] = []

    def make() -> orb.Orb:
        made.append(accrual_server.new_tenant_client())
        return made[-1]

    yield make
    for sdk in made:
        sdk.close()
