"""Engine and session factory from ACCRUAL_DATABASE_URL (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

from typing import Any

import weakref
from collections.abc import Mapping, Sequence

import orjson
from sqlalchemy import Engine, Executable, Row, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///accrual.db"

# Set on a connection before a transaction that will write: SQLite then takes the write lock at
# BEGIN (IMMEDIATE), so two writers queue on the busy timeout instead of one failing mid-transaction.
WRITE_INTENT = "accrual_write_intent"


def is_postgres(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"


def create_engine(url: str = DEFAULT_DATABASE_URL, **kwargs: Any) -> AsyncEngine:
    """An async engine tuned for the dialect of `url`."""
    if url.startswith("postgresql://"):
        url = "postgresql+asyncpg://" + url.removeprefix("postgresql://")
    # orjson for JSON columns: the stdlib decoder was a tenth of a 100-row list's time.
    kwargs.setdefault("json_serializer", lambda value: orjson.dumps(value).decode())
    kwargs.setdefault("json_deserializer", orjson.loads)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)
        _tune_sqlite(engine)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    return create_async_engine(url, pool_pre_ping=False, **kwargs)


def _tune_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide where transactions begin (see the "begin" hook).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(WRITE_INTENT):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


class Reader:
    """Reads outside a transaction, at the cost of the query itself.

    On this kind of machine a round trip through aiosqlite's worker thread costs ~0.4 ms while the
    query itself costs a few microseconds, so SQLite reads run on a plain sqlite3 connection in the
    event loop's thread (WAL: readers never wait on the writer). On PostgreSQL reads go through the
    same pool in autocommit, so they pay no BEGIN/ROLLBACK round trips.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._async: AsyncEngine | None = None
        self._sync: Engine | None = None
        if engine.dialect.name == "sqlite":
            url = engine.url.set(drivername="sqlite+pysqlite")
            self._sync = create_sync_engine(
                url, isolation_level="AUTOCOMMIT", connect_args={"check_same_thread": False, "timeout": 30},
                json_serializer=engine.dialect._json_serializer,  # type: ignore[attr-defined]
                json_deserializer=engine.dialect._json_deserializer,  # type: ignore[attr-defined]
            )

            @event.listens_for(self._sync, "connect")
            def _on_connect(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA busy_timeout=30000")
                cursor.execute("PRAGMA query_only=ON")
                cursor.close()

            event.listen(engine.sync_engine, "engine_disposed", lambda _engine: self._sync.dispose())  # type: ignore[union-attr]
        else:
            self._async = engine.execution_options(isolation_level="AUTOCOMMIT")

    @property
    def own_engines(self) -> list[Engine]:
        """Engines besides the main one that reads are sent on, for counting statements in tests and
        benchmarks (PostgreSQL's autocommit view shares the main engine's event listeners)."""
        return [self._sync] if self._sync is not None else []

    async def all(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Sequence[Row[Any]]:
        if self._sync is not None:
            with self._sync.connect() as connection:
                return connection.execute(statement, params or {}).all()
        async with self._async.connect() as connection:  # type: ignore[union-attr]
            return (await connection.execute(statement, params or {})).all()


_READERS: weakref.WeakKeyDictionary[Any, Reader] = weakref.WeakKeyDictionary()


def reader_for(engine: AsyncEngine) -> Reader:
    reader = _READERS.get(engine.sync_engine)
    if reader is None:
        reader = _READERS[engine.sync_engine] = Reader(engine)
    return reader
