"""Keyed reads of concurrent requests sent as one statement.

Sixteen clients each fetching one customer cost sixteen statements: on PostgreSQL sixteen round trips
(a socket write that wakes a backend, its parse-bind-execute, a read), on SQLite sixteen read
transactions (each takes and drops the WAL read lock with fcntl). A read asked for here waits until
the event loop has run what is already ready, that is until the other requests that arrived in the
same turn have asked for theirs, and then all of them go as one statement `... IN (:keys)`. Nothing
is cached: every read is a statement issued after it was asked for, so it sees every write committed
before the request arrived. A batch never mixes scopes: reads join only when their statement and
every parameter but the keys are the same (the caller's organisation among them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Any, ClassVar

from sqlalchemy import String, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

# (statement, the other parameters as a hashable tuple)
_Group = tuple[Any, tuple[tuple[str, Hashable], ...]]
# Keys one statement carries at most (SQLite allows 32,766 parameters; each key is bound a few times).
MAX_KEYS = 500


class _Batch:
    __slots__ = ("key_column", "keys_param", "params", "statement", "waiters")

    def __init__(self, statement: Any, params: Mapping[str, Any], keys_param: str, key_column: str) -> None:
        self.statement, self.params = statement, params
        self.keys_param, self.key_column = keys_param, key_column
        self.waiters: dict[Any, list[asyncio.Future[list[Any]]]] = {}


class Coalescer:
    """`rows(statement, params, keys_param, key, key_column)`: the rows of `statement` run with
    `keys_param` bound to a list of keys, whose `key_column` equals `key`."""

    def __init__(self, run: Callable[[Any, Mapping[str, Any]], Awaitable[Sequence[Any]]]) -> None:
        self._run = run
        self._pending: dict[_Group, _Batch] = {}
        self._full: list[_Batch] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def rows(self, statement: Any, params: Mapping[str, Any], keys_param: str, key: Any,
                   key_column: str) -> list[Any]:
        loop = asyncio.get_running_loop()
        group = (statement, tuple(sorted(params.items())))
        batch = self._pending.get(group)
        if batch is not None and len(batch.waiters) >= MAX_KEYS and key not in batch.waiters:
            self._full.append(self._pending.pop(group))
            batch = None
        if batch is None:
            if not self._pending and not self._full:
                loop.call_soon(self._flush)
            batch = self._pending[group] = _Batch(statement, params, keys_param, key_column)
        future: asyncio.Future[list[Any]] = loop.create_future()
        batch.waiters.setdefault(key, []).append(future)
        return await future

    def _flush(self) -> None:
        batches = [*self._full, *self._pending.values()]
        self._full, self._pending = [], {}
        for batch in batches:
            task = asyncio.ensure_future(self._answer(batch))
            # Held until done: the loop keeps only weak references to tasks.
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer(self, batch: _Batch) -> None:
        try:
            rows = await self._run(batch.statement, {**batch.params, batch.keys_param: list(batch.waiters)})
        except BaseException as exc:  # each waiter fails as the statement did (cancelled: cancelled)
            for futures in batch.waiters.values():
                for future in futures:
                    if future.done():
                        continue
                    if isinstance(exc, Exception):
                        future.set_exception(exc)
                    else:
                        future.cancel()
            if not isinstance(exc, Exception):
                raise
            return
        grouped: dict[Any, list[Any]] = {}
        key_column = batch.key_column
        for row in rows:
            grouped.setdefault(getattr(row, key_column), []).append(row)
        for key, futures in batch.waiters.items():
            found = grouped.get(key, [])
            for future in futures:
                if not future.done():  # a waiter cancelled meanwhile (its client went away)
                    future.set_result(found)


class KeysArray(ColumnElement[Any]):
    """PostgreSQL's `ARRAY[$1, $2, ...]` of an expanding parameter (`keys_array`)."""

    inherit_cache = True
    type = ARRAY(String)
    _traverse_internals: ClassVar[list[Any]] = [("bind", InternalTraversal.dp_clauseelement)]

    def __init__(self, name: str) -> None:
        self.bind = bindparam(name, expanding=True, type_=String)


def keys_array(name: str) -> KeysArray:
    """The keys of a batch as a PostgreSQL array written out, one placeholder per key: a statement per
    batch length. With a single array parameter (`$1::text[]`) PostgreSQL's generic plan cannot know
    how many keys come, assumes ten, costs more than a plan for the call's own five, and so plans
    every call anew (0.46 ms for the customer family read, four times its execution); written out, the
    generic plan counts them and is used from the sixth call on."""
    return KeysArray(name)


@compiles(KeysArray)
def _render_keys_array(element: KeysArray, compiler: Any, **kw: Any) -> str:
    # SQLAlchemy writes an expanding parameter as `(__[POSTCOMPILE_name])`, for IN; here without the
    # parentheses, which would make the list one row value.
    rendered = compiler.process(element.bind, **kw)
    return f"ARRAY[{rendered[1:-1] if rendered.startswith('(') else rendered}]"
