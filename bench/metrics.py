"""Metric evaluation against the best hand-written SQL aggregate, measured in the same run; one line per
figure, never an assertion.

    python -m bench.metrics [--backend sqlite|postgresql|both] [--events N] [--customers 100] [--rounds 5]

Per backend: a fresh database migrated by Accrual's migration runner, an organisation, `--customers`
customers, an item and the billable metric `SELECT SUM(tokens) FROM events WHERE event_name =
'completion'` made through the domain services; then `--events` events over the last three calendar
months, written straight into the `events` table with the raw driver (the rows Accrual's ingestion
writes), and ANALYZE. Then, for one customer-month (the middle month, cycling over the customers):

1. metric_eval_ratio       median latency of Accrual's evaluation (domains.metering.evaluation.
                           metric_quantity in-process: the metric's definition (read once, then
                           remembered), its compiled query, the aggregate run, on a fresh unit of
                           work per call, as one request does) over the median latency of the
                           hand-written aggregate on the raw driver, the two alternating call by call
2. metric_eval_accrual_ms  the first of those, absolute
3. metric_eval_raw_ms      the second, absolute
4. metric_eval_plan        the index each query's plan uses (both must use the customer-month index)
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.databases import BENCH_ORG, BenchDatabase, fresh_database
from bench.ingest import COLUMNS, SQLITE_TIME, Figure, UsageEvent, table_rows
from bench.processes import cancel_on_signals
from domains.catalog.items import create_item
from domains.customers.service import create_customer
from domains.metering.evaluation import metric_quantity
from domains.metering.metric_query import metric_statement, sqlite_integer_sum, unchecked_statement
from domains.metering.metric_sql import parse_metric_sql
from domains.metering.metrics import create_metric
from domains.tenancy import service as tenancy
from domains.tenancy.service import Principal
from domains.unit_of_work import UnitOfWork
from persistence import sqlite_functions
from persistence.db import create_engine, session_factory
from persistence.migrations import runner

GOAL_RATIO = 1.2
METRIC_SQL = "SELECT SUM(tokens) FROM events WHERE event_name = 'completion'"
TARGET_NAME = "completion"
# Event names and their weights: the metric's name is a bit more than half of the traffic.
EVENT_NAMES = ("completion",) * 6 + ("embedding",) * 2 + ("moderation", "file_upload")
MODELS = ("small-1", "medium-2", "large-3", "embed-1")
REGIONS = ("eu", "us")
INDEX = "ix_events_org_customer_name_time"
LOAD_CHUNK = 50_000  # rows made and written at a time (1M rows at once would hold ~1 GB)
SEED = 20260131

# The best hand-written aggregate for the same number (the fastest of the spellings tried; see
# bench/README.md): the organisation, customer and month bound, the event name written in, and only
# the events that count (`deprecated_by IS NULL`: not amended away, not in a pending backfill), which
# is also the condition of the partial usage index.
RAW_SQL = {
    "postgresql": ("SELECT sum((properties -> 'tokens')::numeric) FROM events WHERE org_id = $1 AND customer_id = $2"
                   f" AND event_name = '{TARGET_NAME}' AND \"timestamp\" >= $3 AND \"timestamp\" < $4"
                   " AND deprecated_by IS NULL"),
    "sqlite": ("SELECT sum(properties ->> '$.tokens') FROM events WHERE org_id = ? AND customer_id = ?"
               f" AND event_name = '{TARGET_NAME}' AND timestamp >= ? AND timestamp < ? AND deprecated_by IS NULL"),
}


@dataclass(frozen=True)
class Options:
    events: int
    customers: int
    rounds: int
    calls: int  # calls per side per round


@dataclass(frozen=True)
class Month:
    """Three calendar months of events ending at the current month; the middle one is evaluated."""

    first: datetime  # start of the first month
    start: datetime  # start of the evaluated month
    end: datetime  # its end
    last: datetime  # end of the third month

    @classmethod
    def before(cls, now: datetime) -> Month:
        def back(moment: datetime) -> datetime:
            return (moment.replace(day=1) - timedelta(days=1)).replace(day=1)

        last = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = back(last)
        start = back(end)
        return cls(first=back(start), start=start, end=end, last=last)


@dataclass
class Seeded:
    """What the run set up: the organisation's principal, customers, metric, and each customer's
    expected quantity for the evaluated month (summed in Python while the events were made)."""

    database: BenchDatabase
    engine: AsyncEngine
    principal: Principal
    metric_id: str
    customer_ids: list[str]
    month: Month
    expected: dict[str, Decimal]
    rows_in_month: dict[str, int]  # events of the metric's name per customer in the evaluated month
    load_seconds: float


# --- the data: N events over three months, written the way Accrual stores them ----------------------------

def make_events(offset: int, count: int, total: int, month: Month, external_ids: Sequence[str]) -> list[UsageEvent]:
    """Events `offset` .. `offset + count` of `total` spread evenly over the three months, in time
    order (as they arrive), customers and names at random; the same every time they are asked for."""
    rng = random.Random(SEED * 1_000_003 + offset)
    span = (month.last - month.first) / total
    events = []
    for index in range(offset, offset + count):
        events.append(UsageEvent(
            idempotency_key=f"bench-{index:09d}",
            event_name=rng.choice(EVENT_NAMES),
            timestamp=month.first + span * index + timedelta(microseconds=rng.randrange(1000)),
            external_customer_id=rng.choice(external_ids),
            properties={"tokens": rng.randrange(1, 8000), "region": rng.choice(REGIONS), "model": rng.choice(MODELS)},
        ))
    return events


def chunks(total: int, size: int) -> Iterator[tuple[int, int]]:
    for offset in range(0, total, size):
        yield offset, min(size, total - offset)


async def load_events(database: BenchDatabase, org_id: str, customers: dict[str, str], month: Month,
                      total: int) -> tuple[dict[str, Decimal], dict[str, int], float]:
    """Write `total` events with the raw driver; returns each customer's expected quantity and event
    count for the evaluated month, and the seconds the writing took (making the rows excluded)."""
    external_ids = sorted(customers)
    expected = {customer_id: Decimal(0) for customer_id in customers.values()}
    in_month = dict.fromkeys(customers.values(), 0)

    def batches() -> Iterator[list[UsageEvent]]:
        for offset, count in chunks(total, LOAD_CHUNK):
            events = make_events(offset, count, total, month, external_ids)
            for event in events:
                if event.event_name == TARGET_NAME and month.start <= event.timestamp < month.end:
                    customer_id = customers[event.external_customer_id]
                    expected[customer_id] += event.properties["tokens"]
                    in_month[customer_id] += 1
            yield events

    seconds = await write_events(database, org_id, customers, batches())
    return expected, in_month, seconds


async def write_events(database: BenchDatabase, org_id: str, customers: dict[str, str],
                       batches: Iterable[list[UsageEvent]]) -> float:
    """Write the events with the raw driver (COPY / executemany), then ANALYZE; returns the seconds
    both took (making the rows excluded)."""
    writer = await RawWriter.open(database)
    seconds = 0.0
    try:
        for events in batches:
            rows = table_rows(events, org_id=org_id, customer_ids=customers, time_value=writer.time_value)
            started = time.perf_counter()
            await writer.write(rows)
            seconds += time.perf_counter() - started
        started = time.perf_counter()
        await writer.analyze()
        seconds += time.perf_counter() - started
    finally:
        await writer.close()
    return seconds


class RawWriter:
    """The fastest load each driver has: COPY on PostgreSQL; on SQLite, executemany in one transaction
    per chunk with syncing off (a load, not ingestion: the rows are what matters here)."""

    def __init__(self, database: BenchDatabase, connection: Any) -> None:
        self.backend, self._connection = database.backend, connection

    @classmethod
    async def open(cls, database: BenchDatabase) -> RawWriter:
        if database.backend == "sqlite":
            connection = sqlite3.connect(sqlite_path(database), isolation_level=None, check_same_thread=False)
            for pragma in ("journal_mode=WAL", "synchronous=OFF", "cache_size=-262144"):  # 256 MiB of cache
                connection.execute(f"PRAGMA {pragma}")
            return cls(database, connection)
        return cls(database, await asyncpg.connect(postgres_dsn(database)))

    def time_value(self, moment: datetime) -> Any:
        # As persistence.types.UTCDateTime stores time: fixed-width UTC text on SQLite, timestamptz on PostgreSQL.
        return moment.astimezone(UTC).strftime(SQLITE_TIME) if self.backend == "sqlite" else moment

    async def write(self, rows: list[tuple[Any, ...]]) -> None:
        if self.backend == "sqlite":
            await asyncio.to_thread(self._write_sqlite, rows)  # a thread: Ctrl-C still reaches the loop
        else:
            await self._connection.copy_records_to_table("events", records=rows, columns=list(COLUMNS))

    def _write_sqlite(self, rows: list[tuple[Any, ...]]) -> None:
        placeholders = ", ".join("?" for _ in COLUMNS)
        columns = ", ".join(f'"{name}"' for name in COLUMNS)
        self._connection.execute("BEGIN IMMEDIATE")
        self._connection.executemany(f"INSERT INTO events ({columns}) VALUES ({placeholders})", rows)
        self._connection.execute("COMMIT")

    async def analyze(self) -> None:
        if self.backend == "sqlite":
            await asyncio.to_thread(self._connection.execute, "ANALYZE")
        else:
            await self._connection.execute("ANALYZE events")

    async def close(self) -> None:
        if self.backend == "sqlite":
            self._connection.close()
        else:
            await self._connection.close()


def sqlite_path(database: BenchDatabase) -> str:
    return database.url.split(":///", 1)[1]


def postgres_dsn(database: BenchDatabase) -> str:
    return database.url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def seed(database: BenchDatabase, options: Options, now: datetime) -> Seeded:
    """Migrate, then make the organisation, customers, item and metric through the domain services,
    and load the events."""
    engine = create_engine(database.url)
    await runner.upgrade_async(engine)
    sessions = session_factory(engine)
    uow = UnitOfWork(sessions)
    try:
        org = await tenancy.create_organisation(uow, name=BENCH_ORG)
        minted = await tenancy.create_api_key(uow, org_id=org.org_id)
        principal = await tenancy.authenticate(uow, secret=minted.secret)
        customers = {}
        for index in range(options.customers):
            external_id = f"bench-customer-{index:03d}"
            customer = await create_customer(uow, principal=principal, fields={
                "name": f"Bench Customer {index}", "email": f"usage+{index}@bench.example.com",
                "external_customer_id": external_id})
            customers[external_id] = customer.id
        item = await create_item(uow, principal=principal, fields={"name": "Tokens"})
        metric = await create_metric(uow, principal=principal, fields={
            "name": "Completion tokens", "sql": METRIC_SQL, "item_id": item.id})
    finally:
        await uow.close()
    month = Month.before(now)
    expected, in_month, seconds = await load_events(database, org.org_id, customers, month, options.events)
    return Seeded(database=database, engine=engine, principal=principal, metric_id=metric.id,
                  customer_ids=list(customers.values()), month=month, expected=expected, rows_in_month=in_month,
                  load_seconds=seconds)


# --- the two sides -------------------------------------------------------------------------------------------

class Accrual:
    """Accrual's metric evaluation, in-process: one unit of work per call, as one request has."""

    def __init__(self, seeded: Seeded) -> None:
        self._seeded = seeded
        self._sessions = session_factory(seeded.engine)

    async def quantity(self, customer_id: str) -> Decimal:
        seeded = self._seeded
        uow = UnitOfWork(self._sessions)
        try:
            return await metric_quantity(uow, principal=seeded.principal, metric_id=seeded.metric_id,
                                         customer_id=customer_id, start=seeded.month.start, end=seeded.month.end)
        finally:
            await uow.close()


class HandWritten:
    """The hand-written aggregate on one open raw connection (the query's floor: nothing else runs)."""

    def __init__(self, seeded: Seeded, connection: Any) -> None:
        self._seeded, self._connection = seeded, connection
        self.backend = seeded.database.backend
        month = seeded.month
        self._window = ((month.start.strftime(SQLITE_TIME), month.end.strftime(SQLITE_TIME))
                        if self.backend == "sqlite" else (month.start, month.end))

    @classmethod
    async def open(cls, seeded: Seeded) -> HandWritten:
        database = seeded.database
        if database.backend == "sqlite":
            connection = sqlite3.connect(sqlite_path(database), isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA query_only=ON")
            sqlite_functions.register(connection)  # only so Accrual's query can be EXPLAINed here
            return cls(seeded, connection)
        return cls(seeded, await asyncpg.connect(postgres_dsn(database)))

    async def quantity(self, customer_id: str) -> Decimal:
        args = (self._seeded.principal.org_id, customer_id, *self._window)
        if self.backend == "sqlite":
            value = self._connection.execute(RAW_SQL["sqlite"], args).fetchone()[0]
        else:
            value = await self._connection.fetchval(RAW_SQL["postgresql"], *args)
        return Decimal(0) if value is None else Decimal(value)

    async def plan(self, sql: str, args: Sequence[Any]) -> list[str]:
        """The plan's lines for `sql` (written in the driver's own placeholders) with `args` bound."""
        if self.backend == "sqlite":
            return [row[-1] for row in self._connection.execute(f"EXPLAIN QUERY PLAN {sql}", tuple(args))]
        return [row[0] for row in await self._connection.fetch(f"EXPLAIN {sql}", *args)]

    async def close(self) -> None:
        if self.backend == "sqlite":
            self._connection.close()
        else:
            await self._connection.close()


def accrual_sql(seeded: Seeded, customer_id: str) -> tuple[str, list[Any]]:
    """Accrual's compiled aggregate for the metric, with its parameters as the driver receives them."""
    dialect = seeded.engine.dialect
    definition = parse_metric_sql(METRIC_SQL)
    # The statement tried first: on PostgreSQL the unchecked one while the property has only held numbers,
    # on SQLite the integer-only SUM (the metric's tokens are integers; metric_query).
    statement = unchecked_statement(definition) if dialect.name == "postgresql" else None
    if statement is None:
        statement = metric_statement(definition, dialect.name, integers=sqlite_integer_sum(definition, dialect.name))
    compiled = statement.compile(dialect=dialect)
    expanded = compiled.construct_expanded_state(  # IN lists written out, as SQLAlchemy sends them
        {"org_id": seeded.principal.org_id, "customer_id": customer_id,
         "start": seeded.month.start, "end": seeded.month.end})
    processors = {**compiled._bind_processors, **expanded.processors}  # e.g. time as SQLite text
    values = expanded.parameters
    return expanded.statement, [processors[name](values[name]) if name in processors else values[name]
                                for name in expanded.positiontup or ()]


def plan_summary(lines: Sequence[str]) -> tuple[str, bool]:
    """The plan's scan lines in a few words, and whether the customer-month index is used."""
    scans = [line.strip().lstrip("-> ").split("  (")[0] for line in lines
             if any(word in line for word in ("Scan", "SCAN", "SEARCH"))]
    return "; ".join(scans) or " / ".join(lines), any(INDEX in line for line in lines)


# --- measuring ------------------------------------------------------------------------------------------------

async def verify(seeded: Seeded, sides: dict[str, Callable[[str], Awaitable[Decimal]]]) -> None:
    """Every customer's quantity from both sides equals the sum made in Python; the run stops if not."""
    for customer_id in seeded.customer_ids:
        wanted = seeded.expected[customer_id]
        for name, quantity in sides.items():
            got = await quantity(customer_id)
            if got != wanted or not isinstance(got, Decimal):
                raise RuntimeError(f"{name} gives {got!r} for customer {customer_id}, expected {wanted}")


async def latencies(quantity: Callable[[str], Awaitable[Decimal]], customer_ids: Sequence[str],
                    calls: int, start: int) -> list[float]:
    """Seconds per call, one call at a time, cycling over the customers from `start`."""
    out = []
    clock = time.perf_counter
    for number in range(calls):
        customer_id = customer_ids[(start + number) % len(customer_ids)]
        began = clock()
        await quantity(customer_id)
        out.append(clock() - began)
    return out


async def measure(seeded: Seeded, sides: dict[str, Callable[[str], Awaitable[Decimal]]],
                  options: Options) -> dict[str, list[float]]:
    """Interleaved call by call: each round makes `calls` calls per side, one side's call then the
    other's, which side goes first flipping every round, so a noisy spell on the shared machine hits
    both alike (rounds of a side's calls in a block let one side take a burst alone: the same code
    measured 0.8x to 1.4x from run to run). At any moment the sides evaluate customers half the list
    apart, so neither reads the rows the other has just brought into the caches."""
    samples: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    customers = seeded.customer_ids
    for name in names:  # warm-up: a pass over the customers each (caches, prepared statements)
        await latencies(sides[name], customers, len(customers), 0)
    clock = time.perf_counter
    for number in range(options.rounds):
        order = names if number % 2 == 0 else names[::-1]
        for call in range(number * options.calls, (number + 1) * options.calls):
            for place, name in enumerate(order):
                customer_id = customers[(call + place * (len(customers) // 2)) % len(customers)]
                began = clock()
                await sides[name](customer_id)
                samples[name].append(clock() - began)
    return samples


def milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


async def run_backend(backend: str, options: Options, workdir: Path) -> list[Figure]:
    async with AsyncExitStack() as stack:
        database = await stack.enter_async_context(fresh_database(backend, workdir))
        print(f"{backend}: seeding {options.customers} customers and loading {options.events:,} events",
              file=sys.stderr, flush=True)
        seeded = await seed(database, options, datetime.now(UTC))
        stack.push_async_callback(seeded.engine.dispose)
        print(f"{backend}: loaded in {seeded.load_seconds:.1f} s "
              f"({options.events / seeded.load_seconds:,.0f} rows/s, ANALYZE included)", file=sys.stderr, flush=True)
        raw = await HandWritten.open(seeded)
        stack.push_async_callback(raw.close)
        accrual = Accrual(seeded)
        sides = {"accrual": accrual.quantity, "raw": raw.quantity}
        await verify(seeded, sides)
        sample_customer = seeded.customer_ids[0]
        accrual_plan = plan_summary(await raw.plan(*accrual_sql(seeded, sample_customer)))
        raw_args = (seeded.principal.org_id, sample_customer,
                    *((seeded.month.start.strftime(SQLITE_TIME), seeded.month.end.strftime(SQLITE_TIME))
                      if backend == "sqlite" else (seeded.month.start, seeded.month.end)))
        raw_plan = plan_summary(await raw.plan(RAW_SQL[backend], raw_args))
        samples = await measure(seeded, sides, options)
        return figures(backend, seeded, options, samples, accrual_plan, raw_plan)
    raise AssertionError("unreachable")  # the exit stack does not swallow exceptions


def figures(backend: str, seeded: Seeded, options: Options, samples: dict[str, list[float]],
            accrual_plan: tuple[str, bool], raw_plan: tuple[str, bool]) -> list[Figure]:
    accrual, raw = statistics.median(samples["accrual"]), statistics.median(samples["raw"])
    ratio = accrual / raw
    rows = statistics.mean(seeded.rows_in_month.values())
    month = seeded.month.start.strftime("%Y-%m")
    shape = (f"{options.events:,} events, {len(seeded.customer_ids)} customers, month {month}: "
             f"{rows:,.0f} '{TARGET_NAME}' events per customer-month on average")
    calls = f"{options.rounds} rounds of {options.calls} calls per side, alternating call by call"
    driver = "sqlite3" if backend == "sqlite" else "asyncpg fetchval"
    return [
        Figure("metric_eval_ratio", f"{ratio:.2f}",
               f"accrual {milliseconds(accrual)} ms / hand-written {milliseconds(raw)} ms, medians; {shape}; {calls}",
               f"<= {GOAL_RATIO}", ratio <= GOAL_RATIO),
        Figure("metric_eval_accrual_ms", milliseconds(accrual),
               f"metric_quantity(metric id, customer, month) in-process on a fresh unit of work; "
               f"p90 {milliseconds(_p90(samples['accrual']))} ms"),
        Figure("metric_eval_raw_ms", milliseconds(raw),
               f"{driver} on one open connection: {RAW_SQL[backend]}; p90 {milliseconds(_p90(samples['raw']))} ms"),
        Figure("metric_eval_plan", "index" if accrual_plan[1] and raw_plan[1] else "no index",
               f"accrual: {accrual_plan[0]} | hand-written: {raw_plan[0]}",
               f"both use {INDEX}", accrual_plan[1] and raw_plan[1]),
    ]


def _p90(values: Sequence[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


async def main_async(backends: Iterable[str], options: Options) -> None:
    cancel_on_signals()
    with tempfile.TemporaryDirectory(prefix="accrual-bench-metrics-") as folder:
        for backend in backends:
            workdir = Path(folder) / backend
            workdir.mkdir()
            for figure in await run_backend(backend, options, workdir):
                print(figure.line(backend), flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.metrics", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--events", type=int, default=1_000_000, help="events loaded (default 1,000,000)")
    parser.add_argument("--customers", type=int, default=100, help="customers the events are spread over")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--calls", type=int, default=200, help="calls per side per round")
    args = parser.parse_args(argv)
    if args.events < 1 or args.customers < 1 or args.calls < 1:
        parser.error("--events, --customers and --calls must be at least 1")
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    options = Options(events=args.events, customers=args.customers, rounds=max(1, args.rounds), calls=args.calls)
    try:
        asyncio.run(main_async(backends, options))
    except (asyncio.CancelledError, KeyboardInterrupt):
        sys.exit("interrupted: connections closed, benchmark database dropped")


if __name__ == "__main__":
    main()
