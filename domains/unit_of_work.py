"""The unit of work: one session per request, one transaction per operation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Executable, Row, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domains.clock import Clock, SystemClock
from domains.errors import PermissionDenied
from persistence.db import CUSTOM_PLAN, WRITE_INTENT, ReadConnectionLost, reader_for


class UnitOfWork:
    """Owns a request's session. Services wrap their writes in `async with uow.transaction():`.

    Transactions nest by joining: only the outermost one commits, so a face may wrap an operation
    together with its own bookkeeping (an idempotency record) and have both land or neither.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock | None = None) -> None:
        self._sessions = sessions
        self._session: AsyncSession | None = None
        self._depth = 0
        self._rollback_only = False
        self._custom_plans = False  # plan_cache_mode set in the current transaction (PostgreSQL)
        # Set for callers whose credentials only read: every write path goes through transaction().
        self.read_only = False
        self._read_connection: Any = None  # held for all of a request's reads (PostgreSQL)
        self._read_lock = asyncio.Lock()
        self.clock: Clock = clock or SystemClock()
        self.dialect = sessions.kw["bind"].dialect.name if sessions.kw.get("bind") is not None else "sqlite"

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            self._session = self._sessions()
        return self._session

    @property
    def in_transaction(self) -> bool:
        """Inside `transaction()`: reads see this transaction's uncommitted writes."""
        return self._depth > 0

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    async def rows(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Sequence[Row[Any]]:
        """Rows of a read: on the fast reader outside a transaction, on the session inside one
        (where the transaction's own uncommitted writes must be seen)."""
        if self._depth == 0:
            reader = reader_for(self._sessions.kw["bind"])
            if not reader.holds_connections:  # SQLite reads are synchronous: nothing to interleave
                return await reader.all(statement, params)
            # Dataloader batches of one request run concurrently; a connection takes one at a time.
            async with self._read_lock:
                if self._read_connection is None:
                    self._read_connection = await reader.connect()
                try:
                    return await reader.all(statement, params, self._read_connection)
                except ReadConnectionLost:
                    # Ended by the server while idle in the pool (a restart, an idle timeout) or lost
                    # mid-read, before any row came: a read is idempotent, so once more on a new one.
                    lost, self._read_connection = self._read_connection, None
                    reader.release(lost)
                    self._read_connection = await reader.connect_new()
                return await reader.all(statement, params, self._read_connection)
        if (self.is_postgres and not self._custom_plans
                and statement.get_execution_options().get(CUSTOM_PLAN)):  # type: ignore[attr-defined]
            # The session's driver reuses prepared statements too (see persistence.db.CUSTOM_PLAN);
            # for the rest of this transaction PostgreSQL plans each statement for its arguments.
            await self.session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
            self._custom_plans = True
        return (await self.session.execute(statement, params or {})).all()

    async def rows_by_key(self, statement: Executable, params: Mapping[str, Any], *, keys_param: str, key: Any,
                          key_column: str) -> Sequence[Row[Any]]:
        """The rows of a keyed read: `statement` takes a list of keys as `keys_param` and tags each row
        with the key it was read for in `key_column`. Outside a transaction the same read of concurrent
        requests goes as one statement (persistence.coalesce)."""
        if self._depth == 0:
            coalescer = reader_for(self._sessions.kw["bind"]).coalescer
            return await coalescer.rows(statement, params, keys_param, key, key_column)
        return [row for row in await self.rows(statement, {**params, keys_param: [key]})
                if getattr(row, key_column) == key]

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[UnitOfWork]:
        """Commit on success, roll back on any exception; nested calls join the outer one."""
        if self._depth == 0:
            if self.read_only:
                raise PermissionDenied("this API key may only read")
            # One connection per request at a time: the read connection goes back to the read pool
            # (persistence.read_pool) before the session takes a write one, rather than idling
            # through the transaction, whose reads go through the session.
            await self._release_read_connection()
            session = self.session
            if session.in_transaction():
                # A read earlier in the request opened an implicit transaction; end it first.
                await session.rollback()
            await session.connection(execution_options={WRITE_INTENT: True})
            self._rollback_only = False
            self._custom_plans = False
        self._depth += 1
        try:
            yield self
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                await self.session.rollback()
            else:
                self._rollback_only = True
            raise
        self._depth -= 1
        if self._depth == 0:
            if self._rollback_only:
                await self.session.rollback()
            else:
                await self.session.commit()

    def abandon(self) -> None:
        """Make the outermost transaction roll back instead of committing (an inner step failed)."""
        self._rollback_only = True

    async def _release_read_connection(self) -> None:
        if self._read_connection is not None:
            async with self._read_lock:
                connection, self._read_connection = self._read_connection, None
                reader_for(self._sessions.kw["bind"]).release(connection)

    async def close(self) -> None:
        await self._release_read_connection()
        if self._session is not None:
            await self._session.close()
            self._session = None
