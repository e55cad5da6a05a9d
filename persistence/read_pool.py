"""The connections PostgreSQL reads run on: autocommit asyncpg connections, most recently used first."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg  # type: ignore[import-untyped]


class ReadPool:
    """At most `size` connections; a caller past them waits for one to come back.

    asyncpg's own Pool wraps every acquire and release in timeouts and a shielded task, and resets the
    connection with a round trip on release: a tenth of a keyed GET's time. A read connection holds
    no session state to reset (no SET, LISTEN, advisory lock, cursor or open transaction), so here a
    release only puts it back. A connection lost (asyncpg closes it), or whose query was cancelled
    halfway (the reader terminates it), comes back closed and is dropped here. Idle connections are
    not pinged (a round trip per read): one the server ended while idle is skipped once asyncpg has
    read the end, and a read that finds one before that retries on `acquire_new` (persistence.db).
    """

    def __init__(self, dsn: str, size: int, setup: Callable[[asyncpg.Connection], Awaitable[None]]) -> None:
        self._dsn, self._setup = dsn, setup
        self._idle: list[asyncpg.Connection] = []
        self._slots = asyncio.Semaphore(size)
        self._closed = False

    async def acquire(self) -> asyncpg.Connection:
        if self._closed:
            raise RuntimeError("the read pool is closed")
        await self._slots.acquire()
        try:
            while self._idle:
                connection = self._idle.pop()
                if not connection.is_closed():
                    return connection
            return await self._connect()
        except BaseException:
            self._slots.release()
            raise

    async def acquire_new(self) -> asyncpg.Connection:
        """A newly opened connection, for a read whose connection was found lost: the idle ones may
        have been lost with it (a server restart) before asyncpg read their end."""
        if self._closed:
            raise RuntimeError("the read pool is closed")
        await self._slots.acquire()
        try:
            return await self._connect()
        except BaseException:
            self._slots.release()
            raise

    async def _connect(self) -> asyncpg.Connection:
        connection = await asyncpg.connect(self._dsn)
        try:
            await self._setup(connection)
        except BaseException:
            connection.terminate()
            raise
        return connection

    def release(self, connection: asyncpg.Connection) -> None:
        if self._closed or connection.is_closed() or connection.is_in_transaction():
            connection.terminate()
        else:
            self._idle.append(connection)
        self._slots.release()

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            try:
                await asyncio.wait_for(connection.close(), 5)
            except (OSError, TimeoutError, asyncpg.PostgresError):
                connection.terminate()
