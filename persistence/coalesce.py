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

A batch that fails reads its keys again one statement each, so that only the waiters of a key that
makes the statement fail (a value its conversion or a cast refuses) get the error: unless the
failure says the database was not there to read (see `unavailable`), which every key would meet again.
"""

from __future__ import annotations

import asyncio
import copy
import weakref
from collections.abc import Awaitable, Callable, Hashable, Iterator, Mapping, Sequence
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


def _connection_failed(error: Exception) -> bool:
    return isinstance(error, OSError)  # refused, reset, timed out


class Coalescer:
    """`rows(statement, params, keys_param, key, key_column)`: the rows of `statement` run with
    `keys_param` bound to a list of keys, whose `key_column` equals `key`. `run(statement, params)`
    must get a connection no caller of `rows` holds while it waits (persistence.db.Reader.batched):
    else callers holding every connection wait for a batch that waits for a connection.
    `unavailable(error)`: whether a failed read failed for want of the database (a lost or refused
    connection, a cancelled statement), which reading the keys one by one would only repeat."""

    def __init__(self, run: Callable[[Any, Mapping[str, Any]], Awaitable[Sequence[Any]]],
                 run_now: Callable[[Any, Mapping[str, Any]], Sequence[Any]] | None = None,
                 unavailable: Callable[[Exception], bool] = _connection_failed) -> None:
        # run_now: the same read done synchronously (SQLite's), answered at the flush without a task.
        self._run, self._run_now, self._unavailable = run, run_now, unavailable
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
                    self._read_now(batch)
                except Exception as exc:  # noqa: BLE001 (a row without its key column, say: a bug)
                    _fail(batch, exc)  # its waiters fail rather than wait forever; the turn's other batches still run
                continue
            task = asyncio.ensure_future(self._run_batch(batch))
            turn.tasks.add(task)
            task.add_done_callback(turn.tasks.discard)

    def _read_now(self, batch: _Batch) -> None:
        assert self._run_now is not None
        try:
            rows = self._run_now(batch.statement, _arguments(batch))
        except Exception as exc:  # noqa: BLE001 (its waiters fail as the statement did)
            if self._reading_alone_helps(batch, exc):
                self._one_by_one_now(batch)
            else:
                _fail(batch, exc)
            return
        _answer(batch, rows)

    def _reading_alone_helps(self, batch: _Batch, exc: Exception) -> bool:
        # Not for one key (its statement would be the same), nor when the database was not there to
        # read: a lost or refused connection (the reader already read once more on a new one), a
        # statement cancelled (statement_timeout, an administrator) or the server shutting down, which
        # each key would meet again, one after the other, each waiter waiting longer for the same error.
        return len(batch.waiters) > 1 and not self._unavailable(exc)

    def _one_by_one_now(self, batch: _Batch) -> None:
        run_now = self._run_now
        assert run_now is not None
        keys = _OneByOne(batch, self._unavailable)
        for key, futures in keys:
            try:
                rows = run_now(batch.statement, keys.arguments(key))
            except Exception as key_exc:  # noqa: BLE001 (this key's waiters fail as its statement did)
                keys.failed(futures, key_exc)
            else:
                keys.answer(key, futures, rows)

    async def _run_batch(self, batch: _Batch) -> None:
        try:
            await self._read(batch)
        except Exception as exc:  # noqa: BLE001 (a row without its key column, say: a bug)
            _fail(batch, exc)  # its waiters fail rather than wait forever
        except BaseException:  # cancelled (the loop is closing): so are its waiters
            for futures in batch.waiters.values():
                for future in futures:
                    future.cancel()
            raise

    async def _read(self, batch: _Batch) -> None:
        try:
            rows = await self._run(batch.statement, _arguments(batch))
        except Exception as exc:  # noqa: BLE001 (its waiters fail as the statement did)
            if self._reading_alone_helps(batch, exc):
                await self._one_by_one(batch)
            else:
                _fail(batch, exc)
            return
        _answer(batch, rows)

    async def _one_by_one(self, batch: _Batch) -> None:
        keys = _OneByOne(batch, self._unavailable)
        for key, futures in keys:
            try:
                rows = await self._run(batch.statement, keys.arguments(key))
            except Exception as key_exc:  # noqa: BLE001 (this key's waiters fail as its statement did)
                keys.failed(futures, key_exc)
            else:
                keys.answer(key, futures, rows)


class _OneByOne:
    """A failed batch's keys, each read in a statement of its own, one after the other (a failing batch
    does not become a burst of statements). Once one fails for want of the database, the keys left
    fail as it did, unread."""

    def __init__(self, batch: _Batch, unavailable: Callable[[Exception], bool]) -> None:
        self._batch, self._unavailable = batch, unavailable
        self._lost: Exception | None = None

    def __iter__(self) -> Iterator[tuple[Any, list[asyncio.Future[list[Any]]]]]:
        for key, futures in self._batch.waiters.items():
            if self._lost is not None:
                _fail_waiters(futures, self._lost)
            elif _waited(futures):
                yield key, futures

    def arguments(self, key: Any) -> dict[str, Any]:
        return {**self._batch.params, self._batch.keys_param: [key]}

    def answer(self, key: Any, futures: list[asyncio.Future[list[Any]]], rows: Sequence[Any]) -> None:
        found = [row for row in rows if getattr(row, self._batch.key_column) == key]
        for future in futures:
            if not future.done():
                future.set_result(found)

    def failed(self, futures: list[asyncio.Future[list[Any]]], exc: Exception) -> None:
        _fail_waiters(futures, exc)
        if self._unavailable(exc):
            self._lost = exc


def _arguments(batch: _Batch) -> dict[str, Any]:
    return {**batch.params, batch.keys_param: padded(list(batch.waiters))}


def _waited(futures: list[asyncio.Future[list[Any]]]) -> bool:
    """Whether a key's read is still awaited (its waiters may all have been cancelled meanwhile)."""
    return not all(future.done() for future in futures)


def _fail(batch: _Batch, exc: Exception) -> None:
    for futures in batch.waiters.values():
        _fail_waiters(futures, exc)


def _fail_waiters(futures: list[asyncio.Future[list[Any]]], exc: Exception) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(_own_copy(exc))


def _own_copy(exc: Exception) -> Exception:
    """`exc` for one waiter. Raised in several requests' tasks, one object would carry whichever
    request raised it last in its __traceback__ and __context__ and every note any of them added, and
    keep the frames of each alive as long as any one kept the error (a log record, an error report)."""
    try:
        own = copy.copy(exc)  # its class, arguments and attributes (a SQLSTATE, the statement)
    except Exception:  # noqa: BLE001 (a class that cannot be built again from its arguments)
        return exc
    own.__cause__, own.__context__ = exc.__cause__, exc.__context__
    own.__suppress_context__ = exc.__suppress_context__
    if hasattr(exc, "__notes__"):
        own.__notes__ = list(exc.__notes__)
    return own.with_traceback(exc.__traceback__)  # the frames where the statement failed


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
