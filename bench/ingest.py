"""Event ingestion against the raw driver, measured in the same run; one line per figure, never an assertion.

    python -m bench.ingest [--backend sqlite|postgresql|both] [--events N] [--clients 4] [--batch 500]

Per backend: two fresh databases migrated with `accrual migrate`, so both hold the same `events` table
(columns, unique index, secondary indexes). `accrual serve` runs on the first as a separate process,
with 100 customers seeded through `POST /v1/customers`; the raw driver writes the same rows into the
second. Then

1. ingest_events_ratio       events/s through `POST /v1/ingest` over the raw driver's events/s for the
                             same rows with the same `ON CONFLICT (org_id, idempotency_key, amendment) DO NOTHING`
2. ingest_accrual_events_s   the first of those, absolute
3. ingest_raw_events_s       the second, absolute
4. ingest_replay_new_rows    rows a re-send of every tenth batch stored (must be 0), and the row count
                             after the run (must be N)
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiohttp
import asyncpg  # type: ignore[import-untyped]
import orjson

from bench.databases import (
    BENCH_ORG,
    ROOT,
    BenchDatabase,
    accrual_command,
    fresh_database,
    mint_key,
    run_accrual,
)
from bench.load import HOST, Connection, UnexpectedResponse, encode_request
from bench.processes import ServerProcess, cancel_on_signals, free_port, start_server
from persistence.ids import new_id
from persistence.tables import Event

GOAL_RATIO = 0.6
REPLAY_EVERY = 10  # every tenth batch is sent a second time
CUSTOMERS = 100
# No single batch takes anywhere near this; a server that stops answering fails the run instead of hanging it.
STEP_TIMEOUT = 120.0
EVENT_NAMES = ("completion", "completion", "completion", "embedding")
MODELS = ("small-1", "medium-2", "large-3", "embed-1")
REGIONS = ("eu", "us")
SPREAD = timedelta(hours=3)  # timestamps fall in the last three hours: well inside the 12 h grace period
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # how persistence.types.UTCDateTime stores time on SQLite

# The table's own columns, in its order: the raw insert writes every column Accrual's insert writes.
COLUMNS: tuple[str, ...] = tuple(column.name for column in Event.__table__.columns)  # type: ignore[attr-defined]
_PG_ARRAY_TYPES = {
    "id": "text[]", "org_id": "text[]", "customer_id": "text[]", "external_customer_id": "text[]",
    "event_name": "text[]", "timestamp": "timestamptz[]", "properties": "jsonb[]", "idempotency_key": "text[]",
    "ingested_at": "timestamptz[]", "amendment": "integer[]", "backfill_id": "text[]", "deprecated_by": "text[]",
}
if set(_PG_ARRAY_TYPES) != set(COLUMNS):
    raise RuntimeError(f"the events table changed ({COLUMNS}); update bench/ingest.py's raw insert")
_COLUMN_LIST = ", ".join(f'"{name}"' for name in COLUMNS)
# The unique index Accrual's insert conflicts on (every version of an event shares its key).
_CONFLICT = "ON CONFLICT (org_id, idempotency_key, amendment) DO NOTHING"
SQLITE_INSERT = f"INSERT INTO events ({_COLUMN_LIST}) VALUES ({', '.join('?' for _ in COLUMNS)}) {_CONFLICT}"
POSTGRES_INSERT = (
    f"INSERT INTO events ({_COLUMN_LIST}) SELECT * FROM unnest("
    + ", ".join(f"${position}::{_PG_ARRAY_TYPES[name]}" for position, name in enumerate(COLUMNS, start=1))
    + f") {_CONFLICT}"
)

Item = TypeVar("Item")


@dataclass(frozen=True)
class Options:
    events: int
    clients: int
    batch: int
    rounds: int


@dataclass(frozen=True)
class Figure:
    name: str
    value: str
    detail: str
    goal: str | None = None
    met: bool = True

    def line(self, backend: str) -> str:
        text = f"{backend:<10}  {self.name:<26}  {self.value:>8}  ({self.detail})"
        if self.goal is None:
            return text
        return f"{text}  goal {self.goal}: {'met' if self.met else 'MISSED'}"


# --- the workload: the same events as HTTP bodies and as table rows ---------------------------------------

@dataclass(frozen=True)
class UsageEvent:
    idempotency_key: str
    event_name: str
    timestamp: datetime
    external_customer_id: str
    properties: dict[str, Any]


@dataclass(frozen=True)
class Workload:
    """`events` events in batches of `batch`; batch `index` is the same every time it is asked for (a
    replay re-sends exactly what was sent)."""

    events: int
    batch: int
    customers: Sequence[str]  # external customer ids
    now: datetime
    seed: int

    @property
    def batches(self) -> int:
        return math.ceil(self.events / self.batch)

    def events_of(self, index: int) -> list[UsageEvent]:
        rng = random.Random(self.seed * 1_000_003 + index)
        count = min(self.batch, self.events - index * self.batch)
        spread = int(SPREAD.total_seconds() * 1_000_000)
        return [
            UsageEvent(
                # Random keys, as clients send (UUIDs): they land all over the unique index.
                idempotency_key=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                event_name=rng.choice(EVENT_NAMES),
                timestamp=self.now - timedelta(microseconds=rng.randrange(spread)),
                external_customer_id=rng.choice(self.customers),
                properties={"tokens": rng.randrange(1, 8000), "region": rng.choice(REGIONS),
                            "model": rng.choice(MODELS)},
            )
            for _ in range(count)
        ]

    def rounds(self, count: int) -> list[range]:
        """The batch indexes cut into `count` consecutive slices."""
        cuts = [self.batches * part // count for part in range(count + 1)]
        return [range(cuts[part], cuts[part + 1]) for part in range(count) if cuts[part] < cuts[part + 1]]


def ingest_request(events: Sequence[UsageEvent], key: str, *, debug: bool = False) -> bytes:
    body = orjson.dumps(
        {"events": [{"event_name": e.event_name, "timestamp": e.timestamp, "idempotency_key": e.idempotency_key,
                     "external_customer_id": e.external_customer_id, "properties": e.properties} for e in events]},
        option=orjson.OPT_UTC_Z,  # ISO 8601 in UTC: 2026-01-31T12:00:00.123456Z
    )
    # `debug` spelled out either way: `accrual serve` refuses a POST /v1/ingest without it (400, "debug:
    # is required"), although Orb documents it as optional (gateway/faces/orb/routes.py gives no default).
    return encode_request("POST", f"/v1/ingest?debug={'true' if debug else 'false'}",
                          headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}, body=body)


def table_rows(events: Sequence[UsageEvent], *, org_id: str, customer_ids: Mapping[str, str],
               time_value: Callable[[datetime], Any]) -> list[tuple[Any, ...]]:
    """The rows Accrual's insert writes for `events`: a fresh id, the customer resolved from its
    external id, properties as JSON text, timestamps as the backend stores them."""
    ingested_at = time_value(datetime.now(UTC))
    rows = []
    for e in events:
        row = {
            "id": new_id(), "org_id": org_id, "customer_id": customer_ids[e.external_customer_id],
            "external_customer_id": e.external_customer_id, "event_name": e.event_name,
            "timestamp": time_value(e.timestamp), "properties": orjson.dumps(e.properties).decode(),
            "idempotency_key": e.idempotency_key, "ingested_at": ingested_at,
            # A live event: the first version, in no backfill, hidden by nothing.
            "amendment": 0, "backfill_id": None, "deprecated_by": None,
        }
        rows.append(tuple(row[name] for name in COLUMNS))
    return rows


# --- running work on a few connections at once ------------------------------------------------------------

async def timed_concurrently(items: Sequence[Item], workers: Sequence[Callable[[Item], Awaitable[None]]]) -> float:
    """Seconds for `workers` to get through `items` together, each taking the next one when it is free."""
    pending: Iterator[Item] = iter(items)

    async def work(handle: Callable[[Item], Awaitable[None]]) -> None:
        for item in pending:  # a shared iterator: next() never awaits, so no item is taken twice
            async with asyncio.timeout(STEP_TIMEOUT):
                await handle(item)

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for handle in workers:
            group.create_task(work(handle))
    return time.perf_counter() - started


@asynccontextmanager
async def http_connections(port: int, count: int) -> AsyncIterator[list[Connection]]:
    connections = await asyncio.gather(*(Connection.open(port) for _ in range(count)))
    try:
        yield list(connections)
    finally:
        await asyncio.gather(*(connection.close() for connection in connections))


def _ingest_body(request: bytes, status: int, body: bytes) -> dict[str, Any]:
    payload: dict[str, Any] = orjson.loads(body) if body else {}
    if status != 200 or payload.get("validation_failed"):
        # A refused event would make the figure measure error handling, not ingestion.
        raise UnexpectedResponse(f"{request.split(b' ', 2)[1].decode()} answered {status}: {body[:400]!r}")
    return payload


async def send_batches(port: int, requests: Sequence[bytes], clients: int) -> float:
    """Seconds for `clients` keep-alive connections to get every request of `requests` answered."""
    async with http_connections(port, clients) as connections:

        def sender(connection: Connection) -> Callable[[bytes], Awaitable[None]]:
            async def send(request: bytes) -> None:
                _ingest_body(request, *await connection.exchange(request))
            return send

        # The clock starts once the connections are open: connecting is not what is measured.
        return await timed_concurrently(requests, [sender(c) for c in connections])


async def replay(port: int, requests: Sequence[bytes], clients: int) -> tuple[int, int, float]:
    """Send `requests` (with ?debug=true) again; returns (ingested, duplicate, seconds)."""
    ingested = duplicate = 0
    async with http_connections(port, clients) as connections:

        def sender(connection: Connection) -> Callable[[bytes], Awaitable[None]]:
            async def send(request: bytes) -> None:
                nonlocal ingested, duplicate
                debug = _ingest_body(request, *await connection.exchange(request))["debug"]
                ingested += len(debug["ingested"])
                duplicate += len(debug["duplicate"])
            return send

        seconds = await timed_concurrently(requests, [sender(c) for c in connections])
    return ingested, duplicate, seconds


# --- the raw driver: the floor of an insert of these rows --------------------------------------------------

class RawInserter(Protocol):
    driver: str
    description: str

    def prepare(self, events: Sequence[UsageEvent]) -> Any: ...
    async def insert(self, batches: Sequence[Any]) -> float: ...
    async def count(self) -> int: ...
    async def close(self) -> None: ...


class RawSqlite:
    """sqlite3 in WAL with Accrual's pragmas; one transaction of one `executemany` per batch. One
    connection: SQLite has one writer at a time, so more connections would only queue on its lock."""

    driver = "sqlite3"
    description = "sqlite3 executemany INSERT ... ON CONFLICT DO NOTHING, 1 transaction per batch, WAL"

    def __init__(self, path: str, org_id: str, customer_ids: Mapping[str, str]) -> None:
        self._org_id, self._customer_ids = org_id, customer_ids
        # isolation_level=None: BEGIN and COMMIT are sent as written. Opened in one thread, used in another.
        self._connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000"):  # as persistence.db
            self._connection.execute(f"PRAGMA {pragma}")

    def prepare(self, events: Sequence[UsageEvent]) -> list[tuple[Any, ...]]:
        return table_rows(events, org_id=self._org_id, customer_ids=self._customer_ids,
                          time_value=lambda moment: moment.astimezone(UTC).strftime(SQLITE_TIME))

    def _insert_all(self, batches: Sequence[list[tuple[Any, ...]]]) -> float:
        started = time.perf_counter()
        for rows in batches:
            self._connection.execute("BEGIN IMMEDIATE")  # as Accrual's writing transactions begin
            self._connection.executemany(SQLITE_INSERT, rows)
            self._connection.execute("COMMIT")
        return time.perf_counter() - started

    async def insert(self, batches: Sequence[Any]) -> float:
        # In a worker thread, so a signal still reaches the event loop during the insert.
        return await asyncio.to_thread(self._insert_all, batches)

    async def count(self) -> int:
        return int(self._connection.execute("SELECT count(*) FROM events").fetchone()[0])

    async def close(self) -> None:
        self._connection.close()


class RawPostgres:
    """asyncpg on `connections` connections at once; one `INSERT ... SELECT * FROM unnest($1::text[], ...)`
    per batch (one statement, one round trip, arrays sent in binary)."""

    def __init__(self, connections: Sequence[Any], org_id: str, customer_ids: Mapping[str, str]) -> None:
        self._connections, self._org_id, self._customer_ids = connections, org_id, customer_ids
        self.driver = "asyncpg"
        self.description = (f"asyncpg INSERT ... SELECT FROM unnest($1::text[], ...) ON CONFLICT DO NOTHING, "
                            f"{len(connections)} connections")

    @classmethod
    async def open(cls, dsn: str, connections: int, org_id: str, customer_ids: Mapping[str, str]) -> RawPostgres:
        opened = await asyncio.gather(*(asyncpg.connect(dsn) for _ in range(connections)))
        return cls(opened, org_id, customer_ids)

    def prepare(self, events: Sequence[UsageEvent]) -> list[list[Any]]:
        rows = table_rows(events, org_id=self._org_id, customer_ids=self._customer_ids,
                          time_value=lambda moment: moment)
        return [list(column) for column in zip(*rows, strict=True)]  # one array per column

    async def insert(self, batches: Sequence[Any]) -> float:
        def inserter(connection: Any) -> Callable[[list[list[Any]]], Awaitable[None]]:
            async def insert(columns: list[list[Any]]) -> None:
                await connection.execute(POSTGRES_INSERT, *columns)
            return insert

        return await timed_concurrently(batches, [inserter(c) for c in self._connections])

    async def count(self) -> int:
        return int(await self._connections[0].fetchval("SELECT count(*) FROM events"))

    async def close(self) -> None:
        await asyncio.gather(*(connection.close() for connection in self._connections))


def _sqlite_path(database: BenchDatabase) -> str:
    return database.url.split(":///", 1)[1]


def _postgres_dsn(database: BenchDatabase) -> str:
    return database.url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _fetch(database: BenchDatabase, sql: str, *args: str) -> list[tuple[Any, ...]]:
    """A short read on `database` with the raw driver (`sql` written with `?` placeholders)."""
    if database.backend == "sqlite":
        with closing(sqlite3.connect(_sqlite_path(database))) as connection:
            return list(connection.execute(sql, args).fetchall())
    connection = await asyncpg.connect(_postgres_dsn(database))
    try:
        numbered = sql
        for position in range(1, len(args) + 1):
            numbered = numbered.replace("?", f"${position}", 1)
        return [tuple(record) for record in await connection.fetch(numbered, *args)]
    finally:
        await connection.close()


# --- one backend, start to end ------------------------------------------------------------------------------

async def seed_customers(port: int, key: str, count: int) -> dict[str, str]:
    """Customers created through the Orb face; returns external id -> customer id."""
    ids: dict[str, str] = {}
    async with aiohttp.ClientSession() as http:
        for index in range(count):
            external_id = f"bench-customer-{index:03d}"
            body = {"name": f"Bench Customer {index}", "email": f"usage+{index}@bench.example.com",
                    "external_customer_id": external_id, "currency": "USD"}
            async with http.post(f"http://{HOST}:{port}/v1/customers", json=body,
                                 headers={"Authorization": f"Bearer {key}"}) as response:
                if response.status != 201:
                    raise RuntimeError(f"seeding failed: {response.status} {await response.text()}")
                ids[external_id] = (await response.json())["id"]
    return ids


async def open_raw(backend: str, database: BenchDatabase, options: Options, org_id: str,
                   customer_ids: Mapping[str, str]) -> RawInserter:
    if backend == "sqlite":
        return RawSqlite(_sqlite_path(database), org_id, customer_ids)
    return await RawPostgres.open(_postgres_dsn(database), options.clients, org_id, customer_ids)


async def measure(accrual: ServerProcess, raw: RawInserter, workload: Workload, key: str,
                  options: Options) -> dict[str, float]:
    """Seconds each side spent storing all the events. The two take turns, a slice of the batches at a
    time (the order flipping every slice), so both tables grow alike and a noisy spell hits both."""
    seconds = {"accrual": 0.0, "raw": 0.0}
    for number, batch_indexes in enumerate(workload.rounds(options.rounds)):
        # Encoding happens before either clock starts: neither side is charged for making its input.
        events = [workload.events_of(index) for index in batch_indexes]
        requests = [ingest_request(batch, key) for batch in events]
        rows = [raw.prepare(batch) for batch in events]
        del events
        turns: list[tuple[str, Callable[[], Awaitable[float]]]] = [
            ("accrual", partial(send_batches, accrual.port, requests, options.clients)),
            ("raw", partial(raw.insert, rows)),
        ]
        for name, run in turns if number % 2 == 0 else reversed(turns):
            seconds[name] += await run()
    return seconds


async def run_backend(backend: str, options: Options, workdir: Path) -> None:
    # Two databases (on SQLite, two files in folders of their own): Accrual's, and the raw driver's.
    (workdir / "accrual").mkdir()
    (workdir / "raw").mkdir()
    async with (fresh_database(backend, workdir / "accrual") as database,
                fresh_database(backend, workdir / "raw") as raw_database):
        key = await mint_key(database)
        await run_accrual(raw_database, "migrate")
        [(org_id,)] = await _fetch(database, "SELECT org_id FROM organisations WHERE name = ?", BENCH_ORG)
        port = free_port()
        accrual = await start_server(
            "accrual serve", accrual_command("serve"), port=port, cwd=ROOT,
            env=database.environment(ACCRUAL_HOST=HOST, ACCRUAL_PORT=str(port)),
            log_path=workdir / "accrual.log",
        )
        print(f"{backend}: accrual serve is pid {accrual.process.pid} (log {accrual.log_path})",
              file=sys.stderr, flush=True)
        try:
            customer_ids = await seed_customers(port, key, CUSTOMERS)
            workload = Workload(events=options.events, batch=options.batch, customers=sorted(customer_ids),
                                now=datetime.now(UTC), seed=20260131)
            raw = await open_raw(backend, raw_database, options, org_id, customer_ids)
            try:
                seconds = await measure(accrual, raw, workload, key, options)
                raw_rows = await raw.count()
            finally:
                await raw.close()
            replayed = [index for index in range(workload.batches) if index % REPLAY_EVERY == 0]
            ingested, duplicate, replay_seconds = await replay(
                port, [ingest_request(workload.events_of(index), key, debug=True) for index in replayed],
                options.clients)
        except Exception:
            print(f"--- accrual log ---\n{accrual.log_tail()}", file=sys.stderr)
            raise
        finally:
            await accrual.stop()
        [(rows,)] = await _fetch(database, "SELECT count(*) FROM events WHERE org_id = ?", org_id)
    if raw_rows != options.events:
        raise RuntimeError(f"the raw table holds {raw_rows} rows, not {options.events}: the workload repeats keys")
    for figure in figures(options, workload, seconds, raw, rows=int(rows),
                          replay=(len(replayed), ingested, duplicate, replay_seconds)):
        print(figure.line(backend), flush=True)


def figures(options: Options, workload: Workload, seconds: Mapping[str, float], raw: RawInserter, *, rows: int,
            replay: tuple[int, int, int, float]) -> list[Figure]:
    n = options.events
    accrual_rate, raw_rate = n / seconds["accrual"], n / seconds["raw"]
    ratio = accrual_rate / raw_rate
    batches, ingested, duplicate, replay_seconds = replay
    resent = duplicate + ingested
    shape = f"{n:,} events, {workload.batches:,} batches of {options.batch}"
    return [
        Figure("ingest_events_ratio", f"{ratio:.2f}",
               f"accrual POST /v1/ingest {accrual_rate:,.0f} events/s / raw {raw.driver} {raw_rate:,.0f} "
               f"events/s; {shape}, {options.clients} clients, {options.rounds} interleaved slices",
               f">= {GOAL_RATIO}", ratio >= GOAL_RATIO),
        Figure("ingest_accrual_events_s", f"{accrual_rate:,.0f}",
               f"POST /v1/ingest on `accrual serve`, {options.clients} keep-alive connections, "
               f"{seconds['accrual']:.1f} s for {shape}"),
        Figure("ingest_raw_events_s", f"{raw_rate:,.0f}", f"{raw.description}; {seconds['raw']:.1f} s for {shape}"),
        Figure("ingest_replay_new_rows", f"{ingested}",
               f"every {REPLAY_EVERY}th batch re-sent: {batches} batches, {resent:,} events in "
               f"{replay_seconds:.1f} s ({resent / replay_seconds:,.0f} events/s), {ingested} stored, "
               f"{duplicate:,} reported duplicate; events rows after the run {rows:,} (N = {n:,})",
               "0 new and rows == N", ingested == 0 and duplicate == resent and rows == n),
    ]


async def main_async(backends: Iterable[str], options: Options) -> None:
    cancel_on_signals()
    with tempfile.TemporaryDirectory(prefix="accrual-bench-ingest-") as folder:
        for backend in backends:
            workdir = Path(folder) / backend
            workdir.mkdir()
            await run_backend(backend, options, workdir)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--events", type=int, default=200_000,
                        help="events stored per side (default 200,000; 1,000,000 for the full figure)")
    parser.add_argument("--clients", type=int, default=4,
                        help="concurrent connections, both to `accrual serve` and of the raw PostgreSQL insert")
    parser.add_argument("--batch", type=int, default=500, help="events per request and per raw insert (max 500)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved slices the events are cut into")
    args = parser.parse_args(argv)
    if not 1 <= args.batch <= 500:
        parser.error("--batch must be between 1 and 500 (Accrual refuses larger batches)")
    if args.events < args.batch * REPLAY_EVERY:
        parser.error(f"--events must be at least {REPLAY_EVERY} batches")
    if args.clients < 1:
        parser.error("--clients must be at least 1")
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    options = Options(events=args.events, clients=args.clients, batch=args.batch, rounds=max(1, args.rounds))
    try:
        asyncio.run(main_async(backends, options))
    except (asyncio.CancelledError, KeyboardInterrupt):
        sys.exit("interrupted: server stopped, benchmark databases dropped")


if __name__ == "__main__":
    main()
