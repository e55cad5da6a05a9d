"""Keyed reads of concurrent requests sent as one statement.

Sixteen clients each fetching one customer cost sixteen statements: on PostgreSQL sixteen round trips
(a socket write that wakes a backend, its parse-bind-execute, a read), on SQLite sixteen read
transactions (each takes and drops the WAL read lock with fcntl). A read asked for here waits until
the event loop has run what is already ready, that is until the other requests that arrived in the
same turn have asked for theirs, and then all of them go as one statement taking the list of keys.
Nothing is cached: every read is a statement issued after it was asked for, so it sees every write
committed before the request arrived. A batch never mixes scopes: reads join only when their statement
(the same object), their key parameter and column, and every other parameter (hashable values: the
caller's organisation among them) are the same.

The list of keys is padded with nulls to the next of a few lengths, so a statement takes a handful of
forms (each a prepared statement per PostgreSQL connection) however the batches vary: a statement read
here must let a null key match nothing (`=` and `IN` do).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Any

# (statement, keys parameter, key column, the other parameters as a hashable tuple)
_Group = tuple[Any, str, str, tuple[tuple[str, Hashable], ...]]
# Keys one statement carries at most (SQLite allows 32,766 parameters; each key is bound a few times).
MAX_KEYS = 512
_LENGTHS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def padded(keys: list[Any]) -> list[Any]:
    """`keys` with nulls up to the next of _LENGTHS."""
    length = next(size for size in _LENGTHS if size >= len(keys))
    return keys + [None] * (length - len(keys))


class _Batch:
    __slots__ = ("key_column", "keys_param", "params", "statement", "waiters")

    def __init__(self, statement: Any, params: Mapping[str, Any], keys_param: str, key_column: str) -> None:
        self.statement, self.params = statement, params
        self.keys_param, self.key_column = keys_param, key_column
        self.waiters: dict[Any, list[asyncio.Future[list[Any]]]] = {}


class _Turn:
    """One event loop's batches still gathering keys; an engine may serve several loops (tests do)."""

    __slots__ = ("full", "pending", "tasks")

    def __init__(self) -> None:
        self.pending: dict[_Group, _Batch] = {}
        self.full: list[_Batch] = []
        self.tasks: set[asyncio.Task[None]] = set()  # held until done: the loop keeps weak references


class Coalescer:
    """`rows(statement, params, keys_param, key, key_column)`: the rows of `statement` run with
    `keys_param` bound to a list of keys, whose `key_column` equals `key`. `run(statement, params)`
    must get a connection no caller of `rows` holds while it waits (persistence.db.Reader.batched):
    else callers holding every connection wait for a batch that waits for a connection."""

    def __init__(self, run: Callable[[Any, Mapping[str, Any]], Awaitable[Sequence[Any]]],
                 run_now: Callable[[Any, Mapping[str, Any]], Sequence[Any]] | None = None) -> None:
        # run_now: the same read done synchronously (SQLite's), answered at the flush without a task.
        self._run, self._run_now = run, run_now
        self._turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Turn] = weakref.WeakKeyDictionary()

    async def rows(self, statement: Any, params: Mapping[str, Any], keys_param: str, key: Any,
                   key_column: str) -> list[Any]:
        loop = asyncio.get_running_loop()
        turn = self._turns.get(loop)
        if turn is None:
            turn = self._turns[loop] = _Turn()
        group = (statement, keys_param, key_column, tuple(sorted(params.items())))
        batch = turn.pending.get(group)
        if batch is not None and len(batch.waiters) >= MAX_KEYS and key not in batch.waiters:
            turn.full.append(turn.pending.pop(group))
            batch = None
        if batch is None:
            if not turn.pending and not turn.full:
                loop.call_soon(self._flush, turn)
            batch = turn.pending[group] = _Batch(statement, params, keys_param, key_column)
        future: asyncio.Future[list[Any]] = loop.create_future()
        batch.waiters.setdefault(key, []).append(future)
        return await future

    def _flush(self, turn: _Turn) -> None:
        batches = [*turn.full, *turn.pending.values()]
        turn.full, turn.pending = [], {}
        for batch in batches:
            if self._run_now is not None:
                try:
                    rows = self._run_now(batch.statement, _arguments(batch))
                except Exception as exc:  # noqa: BLE001 (each waiter fails as the statement did)
                    _fail(batch, exc)
                else:
                    _answer(batch, rows)
                continue
            task = asyncio.ensure_future(self._run_batch(batch))
            turn.tasks.add(task)
            task.add_done_callback(turn.tasks.discard)

    async def _run_batch(self, batch: _Batch) -> None:
        try:
            rows = await self._run(batch.statement, _arguments(batch))
        except BaseException as exc:  # each waiter fails as the statement did (cancelled: cancelled)
            _fail(batch, exc)
            if not isinstance(exc, Exception):
                raise
            return
        _answer(batch, rows)


def _arguments(batch: _Batch) -> dict[str, Any]:
    return {**batch.params, batch.keys_param: padded(list(batch.waiters))}


def _fail(batch: _Batch, exc: BaseException) -> None:
    for futures in batch.waiters.values():
        for future in futures:
            if future.done():
                continue
            if isinstance(exc, Exception):
                future.set_exception(exc)
            else:
                future.cancel()


def _answer(batch: _Batch, rows: Sequence[Any]) -> None:
    grouped: dict[Any, list[Any]] = {}
    key_column = batch.key_column
    for row in rows:
        grouped.setdefault(getattr(row, key_column), []).append(row)
    for key, futures in batch.waiters.items():
        found = grouped.get(key, [])
        for future in futures:
            if not future.done():  # a waiter cancelled meanwhile (its client went away)
                future.set_result(found)
