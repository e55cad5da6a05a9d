"""A fresh, migrated database per backend, with an API key minted the way an operator would."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.load import HOST
from persistence.db import reader_for

ROOT = Path(__file__).resolve().parents[1]
# The same cluster the tests use; the benchmark database is created in it and dropped at the end.
PG_ADMIN_URL = os.environ.get("ACCRUAL_TEST_PG_URL", f"postgresql://postgres@{HOST}:5432/test")
BENCH_ORG = "bench"


@dataclass(frozen=True)
class BenchDatabase:
    backend: str
    url: str  # ACCRUAL_DATABASE_URL for this database

    def environment(self, **extra: str) -> dict[str, str]:
        """The environment an `accrual` command needs to work on this database."""
        return {**os.environ, "ACCRUAL_DATABASE_URL": self.url, **extra}


def accrual_command(*args: str) -> list[str]:
    # `python -m gateway.cli` is the `accrual` entry point, without depending on where it was installed.
    return [sys.executable, "-m", "gateway.cli", *args]


async def run_accrual(database: BenchDatabase, *args: str) -> str:
    """Run an `accrual` command to completion and return its stdout (its stderr on failure)."""
    process = await asyncio.create_subprocess_exec(
        *accrual_command(*args), cwd=ROOT, env=database.environment(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    if process.returncode != 0:
        raise RuntimeError(f"accrual {' '.join(args)} failed:\n{stderr.decode(errors='replace')[-2000:]}")
    return stdout.decode()


async def analyze(database: BenchDatabase) -> None:
    """Planner statistics for what was just seeded, as autovacuum gives a live PostgreSQL database (and
    `ANALYZE` a SQLite one): without them the plans of the first minute depend on whether autovacuum
    happened to wake up during the run."""
    if database.backend == "sqlite":
        path = database.url.split(":///", 1)[1]

        def run() -> None:
            with sqlite3.connect(path) as connection:
                connection.execute("ANALYZE")
        await asyncio.to_thread(run)
        return
    connection = await asyncpg.connect(database.url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


async def mint_key(database: BenchDatabase) -> str:
    """Migrate, then mint a key for the bench organisation with `accrual keys create` (prints the key)."""
    await run_accrual(database, "migrate")
    output = await run_accrual(database, "keys", "create", "--org", BENCH_ORG)
    secret = output.strip().splitlines()[-1].strip()
    if not secret.startswith("one_pk_"):
        raise RuntimeError(f"`accrual keys create` printed no key: {output!r}")
    return secret


@asynccontextmanager
async def fresh_database(backend: str, workdir: Path) -> AsyncIterator[BenchDatabase]:
    """An empty database for one run: a SQLite file under `workdir`, or a new PostgreSQL database."""
    if backend == "sqlite":
        yield BenchDatabase(backend, f"sqlite+aiosqlite:///{workdir / 'accrual-bench.db'}")
        return
    name = f"accrual_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield BenchDatabase(backend, f"{base}/{name}")
    finally:
        admin = await asyncpg.connect(PG_ADMIN_URL)
        try:
            # FORCE: a server that did not exit cleanly must not leave the database behind.
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


_TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


@contextmanager
def statements_on(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements sent on `engine` while the block runs, transaction control left out. Reads
    outside a transaction go through the reader (its own engine on SQLite): those are counted too."""
    sent: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.lstrip().upper().startswith(_TRANSACTION_CONTROL):
            sent.append(statement)

    targets = [engine.sync_engine, *reader_for(engine).own_engines]
    for target in targets:
        event.listen(target, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        for target in targets:
            event.remove(target, "before_cursor_execute", record)
