"""Engine and session factory from ACCRUAL_DATABASE_URL (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

import json
import os
import sqlite3
import weakref
from collections import OrderedDict, namedtuple
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from functools import cache
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson
from sqlalchemy import JSON, Engine, Executable, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util.concurrency import await_

from persistence import sqlite_functions
from persistence.coalesce import Coalescer
from persistence.read_pool import ReadPool
from persistence.types import JSONDocument, Money, UTCDateTime, instant_from_text

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///accrual.db"

# Set on a connection before a transaction that will write: SQLite then takes the write lock at
# BEGIN (IMMEDIATE), so two writers queue on the busy timeout instead of one failing mid-transaction.
WRITE_INTENT = "accrual_write_intent"
# Set on a statement whose best plan depends on its parameters (a usage aggregate: one customer holds
# 30 events, another most of the table). PostgreSQL plans it for each call's own parameters instead
# of switching to the generic plan of a prepared statement, which assumes the average customer.
CUSTOM_PLAN = "accrual_custom_plan"


class ReadConnectionLost(ConnectionError):
    """A read's connection closed under it (the server or the network ended it, while it idled in the
    pool or mid-statement) before any of its rows came back: the read may run again elsewhere."""


def _sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a PostgreSQL error, raised by asyncpg or wrapped by SQLAlchemy."""
    return getattr(error, "sqlstate", None) or getattr(getattr(error, "orig", None), "sqlstate", None)


def refused_cast(error: BaseException) -> bool:
    """Whether `error` is PostgreSQL's invalid_parameter_value (SQLSTATE 22023), raised by asyncpg or
    wrapped by SQLAlchemy: what a cast of a jsonb string, boolean, null, array or object to a number
    fails with."""
    return _sqlstate(error) == "22023"


# SQLSTATE classes of failures that are the database's, not the statement's: connection exceptions,
# invalid authorization, operator intervention (a statement cancelled by statement_timeout or an
# administrator, the server shutting down or starting up); and too_many_connections (53300).
_UNAVAILABLE_CLASSES = ("08", "28", "57")
# SQLite primary result codes: SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_CANTOPEN.
_SQLITE_UNAVAILABLE = frozenset({5, 6, 10, 14})


def database_unavailable(error: BaseException) -> bool:
    """Whether a read failed because the database could not be reached or gave up on it, not because of
    what it read: the same read of other keys would fail alike (persistence.coalesce)."""
    if isinstance(error, OSError):  # refused, reset, timed out; ReadConnectionLost
        return True
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    # SQLite: the file busy or locked past the busy timeout, unreadable or gone; not a statement's own
    # failure ("integer overflow" is an OperationalError too, so the primary result code decides).
    code = getattr(getattr(error, "orig", error), "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _SQLITE_UNAVAILABLE
    state = _sqlstate(error)
    return state is not None and (state[:2] in _UNAVAILABLE_CLASSES or state == "53300")


def is_postgres(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"


def is_integer_overflow(error: BaseException) -> bool:
    """Whether a statement failed because SQLite's SUM of integers left 64 bits (raised by sqlite3 on
    the reader's own connection, wrapped by SQLAlchemy on the others)."""
    cause = getattr(error, "orig", error)
    return isinstance(cause, sqlite3.OperationalError) and str(cause) == "integer overflow"


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
    # Connections the pool keeps open. Past them, overflow connections are opened and closed per
    # checkout: an asyncpg connect (a PostgreSQL backend forked) per request, which with 16 concurrent
    # requests on a pool of 10 cost more than the requests' own queries.
    kwargs.setdefault("pool_size", int(os.environ.get("ACCRUAL_DATABASE_POOL_SIZE", "20")))
    kwargs.setdefault("max_overflow", 20)
    # No pool_pre_ping: on asyncpg it costs each checkout three round trips (BEGIN, a ping, ROLLBACK).
    engine = create_async_engine(url, pool_pre_ping=False, **kwargs)
    event.listen(engine.sync_engine, "checkout", _replace_if_closed)
    return engine


def _replace_if_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection the server ended while it idled (a restart, pg_terminate_backend, an idle
    timeout) is closed on asyncpg's side as soon as the event loop reads its end; SQLAlchemy's pool does
    not look, and the transaction given it would fail on its first statement. Raising this makes the
    pool open another in its place. No round trip: a connection lost in the instant before its
    checkout still fails the transaction, which is not retried (a write is not idempotent)."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this connection while it was idle")


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
        # aiosqlite owns the sqlite3 connection on its worker thread: register there.
        driver = dbapi_connection.driver_connection
        await_(driver._execute(sqlite_functions.register, driver._conn))

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(WRITE_INTENT):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


_PREPARED_MAX = 4096
# Connections PostgreSQL batches of coalesced reads run on (a turn's batches are few, each one statement).
_BATCH_CONNECTIONS = 4


class Reader:
    """Reads outside a transaction, at the cost of the query itself.

    On this kind of machine a round trip through aiosqlite's worker thread costs ~0.4 ms while a
    keyed SQLite read costs a few microseconds, so SQLite reads run on one sqlite3 connection in the
    event loop's thread (WAL: readers never wait on the writer). PostgreSQL reads use an asyncpg pool
    of their own in autocommit: no BEGIN/ROLLBACK round trips, and none of the SQLAlchemy pool's
    checkout events and isolation-level resets, which cost a keyed read more than the driver's fetch.
    A statement is compiled once (once per IN-list length) and then sent straight to the driver, its
    columns converted by the same SQLAlchemy type processors a Core execution would apply.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._dialect = engine.dialect
        # id(statement) -> (statement, prepared). The statement is held so its id cannot be reused by
        # another while the entry lives; bounded, least recently used out first.
        self._prepared: OrderedDict[int, tuple[Executable, _Prepared | None]] = OrderedDict()
        self._async: AsyncEngine | None = None
        self._sync: Engine | None = None
        self._raw_sqlite: sqlite3.Connection | None = None
        self._pool: ReadPool | None = None
        self._batch_pool: ReadPool | None = None
        self.coalescer = Coalescer(self.batched, self.sqlite_rows if engine.dialect.name == "sqlite" else None,
                                   unavailable=database_unavailable)
        if engine.dialect.name == "sqlite":
            url = engine.url.set(drivername="sqlite+pysqlite")
            self._sync = create_sync_engine(
                url, isolation_level="AUTOCOMMIT", connect_args={"check_same_thread": False, "timeout": 30},
                json_serializer=engine.dialect._json_serializer,  # type: ignore[attr-defined]
                json_deserializer=engine.dialect._json_deserializer,  # type: ignore[attr-defined]
            )

            @event.listens_for(self._sync, "connect")
            def _on_connect(dbapi_connection: Any, _record: Any) -> None:
                _read_only(dbapi_connection)

            event.listen(engine.sync_engine, "engine_disposed", lambda _engine: self.close())
        else:
            # Statements go the SQLAlchemy way while something listens for them (a statement counter).
            self._async = engine.execution_options(isolation_level="AUTOCOMMIT")
            self._dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            self._pool_size = engine.pool.size()  # type: ignore[attr-defined]
            # AsyncEngine.dispose runs the sync dispose in a greenlet, so the listener may await.
            event.listen(engine.sync_engine, "engine_disposed", lambda _engine: await_(self.aclose()))

    def close(self) -> None:
        if self._raw_sqlite is not None:
            self._raw_sqlite.close()
            self._raw_sqlite = None
        if self._sync is not None:
            self._sync.dispose()

    async def aclose(self) -> None:
        pools, self._pool, self._batch_pool = (self._pool, self._batch_pool), None, None
        for pool in pools:
            if pool is not None:
                await pool.close()

    def _read_pool(self) -> ReadPool:
        if self._pool is None:
            self._pool = ReadPool(self._dsn, self._pool_size, _json_codecs(self._dialect))
        return self._pool

    async def batched(self, statement: Executable, params: Mapping[str, Any]) -> Sequence[Any]:
        """A coalesced batch's read (persistence.coalesce). On PostgreSQL it runs on a few connections
        of its own: the requests waiting for the batch may hold every connection of the read pool."""
        prepared = self._prepare(statement)
        if self._async is None or self._through_sqlalchemy(prepared):
            return await self.all(statement, params)
        if self._batch_pool is None:
            self._batch_pool = ReadPool(self._dsn, min(self._pool_size, _BATCH_CONNECTIONS), _json_codecs(self._dialect))
        return await self._on(self._batch_pool, prepared, params)  # type: ignore[arg-type]

    @property
    def own_engines(self) -> list[Engine]:
        """Engines besides the main one that reads are sent on, for counting statements in tests and
        benchmarks (PostgreSQL's autocommit view shares the main engine's event listeners)."""
        return [self._sync] if self._sync is not None else []

    def _prepare(self, statement: Executable) -> _Prepared | None:
        key = id(statement)
        entry = self._prepared.get(key)
        if entry is None or entry[0] is not statement:
            entry = self._prepared[key] = (statement, _Prepared.of(statement, self._dialect))
            if len(self._prepared) > _PREPARED_MAX:
                self._prepared.popitem(last=False)
        else:
            self._prepared.move_to_end(key)
        return entry[1]

    @property
    def holds_connections(self) -> bool:
        return self._async is not None

    async def connect(self) -> asyncpg.Connection | None:
        """A pooled autocommit connection a request may hold for all its reads (None on SQLite)."""
        if self._async is None:
            return None
        return await self._read_pool().acquire()

    async def connect_new(self) -> asyncpg.Connection:
        """A newly opened one, in place of a connection `all` found lost (ReadConnectionLost)."""
        return await self._read_pool().acquire_new()

    def release(self, connection: asyncpg.Connection) -> None:
        self._read_pool().release(connection)

    async def all(
        self, statement: Executable, params: Mapping[str, Any] | None = None, connection: asyncpg.Connection | None = None
    ) -> Sequence[Any]:
        """The rows of a read. On PostgreSQL a read on `connection` raises ReadConnectionLost if that
        connection is found lost (its holder reads again on another); without one, the read retries
        itself on a newly opened connection."""
        params = params or {}
        if self._sync is not None:
            return self.sqlite_rows(statement, params)
        prepared = self._prepare(statement)
        if self._through_sqlalchemy(prepared):
            try:
                async with self._async.connect() as own:  # type: ignore[union-attr]
                    return (await own.execute(statement, params)).all()
            except DBAPIError as error:
                if not error.connection_invalidated:
                    raise
            # SQLAlchemy invalidated the connections its pool held before the loss: this one is new.
            async with self._async.connect() as own:  # type: ignore[union-attr]
                return (await own.execute(statement, params)).all()
        if connection is not None:
            return await self._fetch(connection, prepared, params)
        return await self._on(self._read_pool(), prepared, params)

    async def _on(self, pool: ReadPool, prepared: _Prepared, params: Mapping[str, Any]) -> list[Any]:
        """A read on a connection of `pool`, given back after. Found lost, it runs once more on a newly
        opened connection: a read is idempotent, and none of the lost attempt's rows reached anyone
        (asyncpg hands a result over whole, at its end), so the retry answers as a read issued now,
        seeing every committed write. Lost again, the database is unreachable: ReadConnectionLost goes
        to the caller."""
        connection = await pool.acquire()
        try:
            return await self._fetch(connection, prepared, params)
        except ReadConnectionLost:
            pass  # read again below, once this connection is back
        finally:
            pool.release(connection)
        connection = await pool.acquire_new()
        try:
            return await self._fetch(connection, prepared, params)
        finally:
            pool.release(connection)

    def _through_sqlalchemy(self, prepared: _Prepared | None) -> bool:
        """Whether a read takes SQLAlchemy's own path: a statement it could not prepare, or any while
        something listens for statements (a counter), since statement events fire only on that path."""
        engine = self._sync if self._sync is not None else self._async.sync_engine  # type: ignore[union-attr]
        return prepared is None or bool(engine.dispatch.before_cursor_execute)

    def sqlite_rows(self, statement: Executable, params: Mapping[str, Any]) -> Sequence[Any]:
        """A read on SQLite, done in the calling (the event loop's) thread: nothing to wait for."""
        assert self._sync is not None
        prepared = self._prepare(statement)
        if self._through_sqlalchemy(prepared):
            with self._sync.connect() as sync_connection:
                return sync_connection.execute(statement, params).all()
        if self._raw_sqlite is None:
            self._raw_sqlite = sqlite3.connect(self._sync.url.database or "", check_same_thread=False,
                                               isolation_level=None, timeout=30)
            _read_only(self._raw_sqlite)
        return prepared.rows(self._raw_sqlite.execute(*prepared.bound(params)).fetchall())

    @staticmethod
    async def _fetch(connection: asyncpg.Connection, prepared: _Prepared, params: Mapping[str, Any]) -> list[Any]:
        sql, arguments = prepared.bound(params)
        try:
            if prepared.custom_plan:
                records = await (await _unnamed(connection, sql)).fetch(*arguments)
            else:
                records = await connection.fetch(sql, *arguments)
        except BaseException as error:
            if connection.is_closed():
                # asyncpg closes a connection whose end it reads, whatever it then raises (08003, a
                # protocol state error, "connection is closed"); a cancellation is never retried.
                if isinstance(error, Exception):
                    raise ReadConnectionLost(f"the read's connection was lost: {error}") from error
            elif not isinstance(error, asyncpg.PostgresError):
                connection.terminate()  # cancelled mid-query, or a client error: the pool drops it
            raise  # a PostgreSQL error: the statement failed, the connection is as good as before
        return prepared.rows(records)


def _json_codecs(dialect: Any) -> Any:
    """The JSON codecs SQLAlchemy's asyncpg dialect installs on its connections, for the read pool's:
    the same values come back whichever pool a read took. The decoders take bytes as they come."""
    loads = dialect._json_deserializer or json.loads

    async def install(connection: asyncpg.Connection) -> None:
        await connection.set_type_codec("json", encoder=str.encode, decoder=loads,
                                        schema="pg_catalog", format="binary")
        # PostgreSQL's binary jsonb starts with a version byte (1).
        await connection.set_type_codec("jsonb", encoder=lambda value: b"\x01" + value.encode(),
                                        decoder=lambda value: loads(value[1:]),
                                        schema="pg_catalog", format="binary")
    return install


_UNNAMED_MAX = 256
# Per read connection (gone with it): the unnamed statements described on it, by SQL.
_unnamed_statements: weakref.WeakKeyDictionary[asyncpg.Connection, OrderedDict[str, Any]] = weakref.WeakKeyDictionary()


async def _unnamed(connection: asyncpg.Connection, sql: str) -> Any:
    """An asyncpg statement for `sql` sent as PostgreSQL's unnamed statement: Parse, Bind and Execute
    in one round trip, so the server parses and plans it for each call's own arguments (see
    CUSTOM_PLAN). asyncpg's `fetch` would reuse a named statement, which after five runs may get a
    generic plan; `prepare(name=False)` per call cost a second round trip (Parse/Describe) each time.
    Here the Describe is done once per connection: the statement's parameter and column codecs are
    kept and the statement is marked unprepared, which makes asyncpg send the Parse again with every
    Bind (its mode for connections without a statement cache)."""
    statements = _unnamed_statements.get(connection)
    if statements is None:
        statements = _unnamed_statements[connection] = OrderedDict()
    statement = statements.get(sql)
    if statement is None or statement._state.closed:  # closed: asyncpg reloaded its type codecs
        statement = await connection.prepare(sql, name=False)
        statement._state.mark_unprepared()
        statements[sql] = statement
        if len(statements) > _UNNAMED_MAX:
            statements.popitem(last=False)
    else:
        statements.move_to_end(sql)
    return statement


def _read_only(dbapi_connection: Any) -> None:
    sqlite_functions.register(dbapi_connection)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


_PG_NUMERIC_OID = 1700


def _result_processor(type_: Any, dialect: Any) -> Any:
    if dialect.name == "sqlite":
        # SQLite hands back text: convert it in one call instead of SQLAlchemy's layered wrappers
        # (type decorator -> impl -> ours), which cost more than the conversion in a 100-row list.
        if isinstance(type_, UTCDateTime):
            return instant_from_text
        if isinstance(type_, Money):
            return Decimal
        if isinstance(type_, (JSONDocument, JSON)):
            return dialect._json_deserializer or json.loads
    try:
        return type_._cached_result_processor(dialect, None)
    except TypeError:
        # asyncpg's numeric processor asks which PostgreSQL type the column has: NUMERIC here.
        return type_._cached_result_processor(dialect, _PG_NUMERIC_OID)


@cache
def _row_type(names: tuple[str, ...]) -> type:
    """One row class per list of column names, however often a statement of those columns is prepared
    again (a statement built per call, or one the cache let go): a class made per preparation would
    leave a new class behind each time, in every place that remembers classes (compiled faces' PLAIN)."""
    return namedtuple("Row", names, rename=True)  # type: ignore[misc]


class _Prepared:
    """A statement compiled once for a dialect: its SQL, parameter order, and column converters."""

    def __init__(self, sql: str, names: list[str], defaults: dict[str, Any], processors: list[Any],
                 row_type: type) -> None:
        self.sql, self.names, self.defaults = sql, names, defaults
        self.row_type = row_type
        self.converting = [(index, process) for index, process in enumerate(processors) if process is not None]
        self.expanding: _Expanding | None = None
        self.binding: list[tuple[int, Any]] = []  # (position, bind processor)
        self.custom_plan = False

    @classmethod
    def of(cls, statement: Executable, dialect: Any) -> _Prepared | None:
        compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
        columns = compiled._result_columns
        if compiled.positiontup is None or not columns:
            return None  # a named paramstyle, or text() whose columns are not declared
        if compiled._bind_processors and compiled.post_compile_params:
            return None  # IN lists of converted values keep SQLAlchemy's path
        processors = [_result_processor(column.type, dialect) for column in columns]
        row_type = _row_type(tuple(column.keyname for column in columns))
        # Parameters the statement carries itself (SQLite renders LIMIT ? OFFSET ? with offset 0).
        defaults = {name: bind.value for name, bind in compiled.binds.items() if bind.value is not None}
        prepared = cls(compiled.string, list(compiled.positiontup), defaults, processors, row_type)
        prepared.custom_plan = bool(statement.get_execution_options().get(CUSTOM_PLAN))
        if compiled.post_compile_params:
            prepared.expanding = _Expanding(compiled, tuple(bind.key for bind in compiled.post_compile_params))
        # Typed parameters (a UTC time, which SQLite stores as text) converted as a Core execution would.
        prepared.binding = [(index, compiled._bind_processors[name]) for index, name in enumerate(prepared.names)
                            if name in compiled._bind_processors]
        return prepared

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        values = [params[name] if name in params else self.defaults[name] for name in self.names]
        for index, process in self.binding:
            values[index] = process(values[index])
        return values

    def bound(self, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
        """The SQL and its positional arguments for these parameters (IN lists expanded)."""
        if self.expanding is None:
            return self.sql, self.arguments(params)
        return self.expanding.bound(params, self.defaults)

    def rows(self, records: Iterable[Any]) -> list[Any]:
        make = self.row_type._make  # type: ignore[attr-defined]
        converting = self.converting
        out = []
        for record in records:
            values = list(record)
            for index, process in converting:  # only the columns whose type converts (a third here)
                value = values[index]
                if value is not None:
                    values[index] = process(value)
            out.append(make(values))
        return out


# Distinct IN-list lengths remembered per statement; dataloader batches rarely exceed a page (100).
_EXPANSIONS_MAX = 256


class _Expanding:
    """A statement with IN lists (`bindparam(..., expanding=True)`): its SQL is rendered once per
    combination of list lengths, and each call only lays the values out in that order."""

    def __init__(self, compiled: Any, names: tuple[str, ...]) -> None:
        self.compiled, self.names = compiled, names
        # lengths -> (sql, one (name, index or None) per placeholder)
        self._forms: OrderedDict[tuple[int, ...], tuple[str, list[tuple[str, int | None]]]] = OrderedDict()

    def bound(self, params: Mapping[str, Any], defaults: Mapping[str, Any]) -> tuple[str, list[Any]]:
        # A literal list (`.in_([...])`) travels in the statement's defaults, a bound one in params.
        values = {**defaults, **params}
        lengths = tuple(len(values[name]) for name in self.names)
        form = self._forms.get(lengths)
        if form is None:
            form = self._forms[lengths] = self._render(values)
            if len(self._forms) > _EXPANSIONS_MAX:
                self._forms.popitem(last=False)
        sql, slots = form
        return sql, [values[name] if index is None else values[name][index] for name, index in slots]

    def _render(self, params: Mapping[str, Any]) -> tuple[str, list[tuple[str, int | None]]]:
        expanded = self.compiled.construct_expanded_state(dict(params))
        plain = set(self.compiled.positiontup) - set(self.names)
        slots: list[tuple[str, int | None]] = []
        for name in expanded.positiontup:
            if name in plain:
                slots.append((name, None))
            else:  # SQLAlchemy names the n-th value of list `keys` keys_n
                base, _, number = name.rpartition("_")
                slots.append((base, int(number) - 1))
        return expanded.statement, slots


_READERS: weakref.WeakKeyDictionary[Any, Reader] = weakref.WeakKeyDictionary()


def reader_for(engine: AsyncEngine) -> Reader:
    reader = _READERS.get(engine.sync_engine)
    if reader is None:
        reader = _READERS[engine.sync_engine] = Reader(engine)
    return reader
