"""Invoicing against baselines measured in the same run; one line per figure, never an assertion.

    python -m bench.billing [--backend sqlite|postgresql|both] [--events N] [--noise N]
                            [--subscriptions 1000,10000] [--rounds 3] [--calls 5]

Per backend, two parts on fresh databases migrated by Accrual's migration runner (bench/databases.py):

1. draft_invoice_x         one customer with `--events` usage events in its running billing period
                           (plus `--noise` events of other customers and other names): median latency
                           of domains.billing.invoices.draft_invoice in-process (fresh unit of work per
                           call) over the median latency of the hand-written SQL aggregate of the same
                           usage on the raw driver
2. draft_invoice_ms        the first of those, absolute; draft_raw_ms the second
3. period_close_rate       per `--subscriptions` size S, on a fresh database: invoices issued per second
                           by one domains.billing.jobs.close_periods run over S subscriptions whose
                           period has just ended
4. period_close_scaling    time(largest S) / time(smallest S) / (largest / smallest): 1.0 is linear
5. period_close_statements SQL statements of the close run per subscription (transaction control
                           left out): a constant means no per-subscription round trips beyond it
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
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.databases import BENCH_ORG, BenchDatabase, fresh_database, statements_on
from bench.ingest import SQLITE_TIME, Figure, UsageEvent
from bench.metrics import RAW_SQL, postgres_dsn, sqlite_path, write_events
from bench.processes import cancel_on_signals
from domains.billing import jobs
from domains.billing import subscriptions as subscription_service
from domains.billing.invoices import DraftInvoice, draft_invoice
from domains.catalog import items, plans
from domains.clock import FixedClock
from domains.customers.service import create_customer
from domains.metering.metrics import create_metric
from domains.tenancy import service as tenancy
from domains.tenancy.service import Principal
from domains.unit_of_work import UnitOfWork
from persistence.db import create_engine, session_factory
from persistence.ids import new_id
from persistence.migrations import runner
from persistence.tables import Customer, Invoice, Subscription

GOAL_DRAFT_X = 1.3
GOAL_SCALING = 1.2  # "linear": 10× the subscriptions in at most 12× the time
METRIC_SQL = "SELECT SUM(tokens) FROM events WHERE event_name = 'completion'"
TARGET_NAME = "completion"
NOISE_NAMES = ("completion", "embedding", "moderation", "file_upload")
FEE = Decimal("20.00")
CENT = Decimal("0.01")
TIERS = [{"first_unit": "0", "last_unit": "1000", "unit_amount": "0.01"},
         {"first_unit": "1000", "last_unit": None, "unit_amount": "0.005"}]
# Fixed instants (the unit of work's clock is set to them), so a run never depends on today's date.
SUBSCRIBED = datetime(2026, 1, 1, tzinfo=UTC)      # every subscription starts here: monthly periods
DRAFT_NOW = datetime(2026, 2, 20, 12, tzinfo=UTC)  # the draft's running period is February
CLOSE_NOW = datetime(2026, 2, 1, 1, tzinfo=UTC)    # January has just ended: one period to close each
JANUARY, FEBRUARY, MARCH = SUBSCRIBED, datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)
NOISE_CUSTOMERS = 9
LOAD_CHUNK = 50_000
SEED = 20260220


@dataclass(frozen=True)
class Options:
    events: int  # the target customer's usage events in the running period
    noise: int  # other events: other customers, other names, last period
    subscriptions: tuple[int, ...]
    rounds: int
    calls: int  # draft calls per side per round


def tiered_amount(quantity: Decimal) -> Decimal:
    """TIERS by hand: 1 cent a unit up to 1,000, half a cent after; the line rounded once to cents."""
    first = min(quantity, Decimal(1000))
    exact = first * Decimal("0.01") + max(quantity - 1000, Decimal(0)) * Decimal("0.005")
    return exact.quantize(CENT, rounding=ROUND_HALF_UP)


async def organisation(uow: UnitOfWork) -> tuple[Principal, Any]:
    """The bench organisation and its plan: a monthly $20 fee and tiered usage on SUM(tokens), made
    through the domain services as an operator would."""
    org = await tenancy.create_organisation(uow, name=BENCH_ORG)
    minted = await tenancy.create_api_key(uow, org_id=org.org_id)
    principal = await tenancy.authenticate(uow, secret=minted.secret)
    platform = await items.create_item(uow, principal=principal, fields={"name": "Platform"})
    tokens = await items.create_item(uow, principal=principal, fields={"name": "Tokens"})
    metric = await create_metric(uow, principal=principal, fields={
        "name": "Completion tokens", "sql": METRIC_SQL, "item_id": tokens.id})
    plan = await plans.create_plan(uow, principal=principal, fields={
        "name": "Pro", "currency": "USD", "net_terms": 30, "prices": [
            {"name": "Platform fee", "item_id": platform.id, "cadence": "monthly", "model_type": "unit",
             "unit_config": {"unit_amount": str(FEE)}, "fixed_price_quantity": "1"},
            {"name": "Tokens", "item_id": tokens.id, "billable_metric_id": metric.id, "cadence": "monthly",
             "model_type": "tiered", "tiered_config": {"tiers": TIERS}}]})
    return principal, plan


# --- 1. the draft of one heavy customer ------------------------------------------------------------------------

@dataclass
class DraftSeeded:
    database: BenchDatabase
    engine: AsyncEngine
    principal: Principal
    subscription_id: str
    customer_id: str
    expected: Decimal  # the target's usage in February, summed in Python while the events were made
    load_seconds: float


def draft_events(options: Options, target: str, others: Sequence[str]) -> Iterator[tuple[list[UsageEvent], Decimal]]:
    """Chunks of events in time order: the target's `completion` events spread over February up to
    DRAFT_NOW, the noise (others' events of any name, the target's of other names) over January and
    February; with each chunk the target's February tokens in it. The same on every run."""
    rng = random.Random(SEED)
    total = options.events + options.noise
    if total == 0:
        return
    # Which events are the target's usage: a fixed share of each chunk, so the two mix in time.
    target_span = (DRAFT_NOW - FEBRUARY) / max(options.events, 1)
    noise_span = (DRAFT_NOW - JANUARY) / max(options.noise, 1)
    made_target = made_noise = 0
    while made_target < options.events or made_noise < options.noise:
        chunk: list[UsageEvent] = []
        usage = Decimal(0)
        share = options.events / total
        for _ in range(LOAD_CHUNK):
            if made_target < options.events and (made_noise >= options.noise or rng.random() < share):
                tokens = rng.randrange(1, 8000)
                chunk.append(UsageEvent(f"usage-{made_target:09d}", TARGET_NAME,
                                        FEBRUARY + target_span * made_target, target,
                                        {"tokens": tokens, "region": rng.choice(("eu", "us"))}))
                usage += tokens
                made_target += 1
            elif made_noise < options.noise:
                customer = rng.choice(others)
                name = rng.choice(NOISE_NAMES[1:] if customer == target else NOISE_NAMES)
                chunk.append(UsageEvent(f"noise-{made_noise:09d}", name, JANUARY + noise_span * made_noise,
                                        customer, {"tokens": rng.randrange(1, 8000), "region": "eu"}))
                made_noise += 1
            else:
                break
        yield chunk, usage


async def seed_draft(database: BenchDatabase, options: Options) -> DraftSeeded:
    """Migrate; the organisation, plan, customers and the target's subscription (from January 1st)
    through the services; then the events straight into the `events` table, and ANALYZE."""
    engine = create_engine_for(database)
    await runner.upgrade_async(engine)
    uow = UnitOfWork(session_factory(engine), clock=FixedClock(SUBSCRIBED))
    try:
        principal, plan = await organisation(uow)
        externals = {}
        for index in range(NOISE_CUSTOMERS + 1):
            external = f"bench-customer-{index:02d}"
            customer = await create_customer(uow, principal=principal, fields={
                "name": f"Bench Customer {index}", "email": f"usage+{index}@bench.example.com",
                "external_customer_id": external})
            externals[external] = customer.id
        target = "bench-customer-00"
        subscription = await subscription_service.create_subscription(uow, principal=principal, fields={
            "customer_id": externals[target], "plan_id": plan.id, "start_date": SUBSCRIBED})
    finally:
        await uow.close()
    expected = Decimal(0)

    def batches() -> Iterator[list[UsageEvent]]:
        nonlocal expected
        for chunk, usage in draft_events(options, target, sorted(externals)):
            expected += usage
            yield chunk

    seconds = await write_events(database, principal.org_id, externals, batches())
    return DraftSeeded(database=database, engine=engine, principal=principal, subscription_id=subscription.id,
                       customer_id=externals[target], expected=expected, load_seconds=seconds)


class AccrualDraft:
    """draft_invoice in-process, on a fresh unit of work per call (as one request has)."""

    def __init__(self, seeded: DraftSeeded) -> None:
        self._seeded = seeded
        self._sessions = session_factory(seeded.engine)

    async def draft(self) -> DraftInvoice:
        uow = UnitOfWork(self._sessions, clock=FixedClock(DRAFT_NOW))
        try:
            found = await draft_invoice(uow, principal=self._seeded.principal,
                                        subscription_id=self._seeded.subscription_id)
        finally:
            await uow.close()
        if found is None:
            raise RuntimeError("the subscription has no running period at DRAFT_NOW")
        return found

    async def quantity(self) -> Decimal:
        [usage] = [line for line in (await self.draft()).line_items if line.name == "Tokens"]
        return usage.quantity


class HandWrittenUsage:
    """The hand-written aggregate of the same usage (bench.metrics' fastest spelling) on one open raw
    connection: the customer's `completion` tokens over the running period."""

    def __init__(self, seeded: DraftSeeded, connection: Any) -> None:
        self.backend = seeded.database.backend
        self._connection = connection
        window = ((FEBRUARY.strftime(SQLITE_TIME), MARCH.strftime(SQLITE_TIME)) if self.backend == "sqlite"
                  else (FEBRUARY, MARCH))
        self._args = (seeded.principal.org_id, seeded.customer_id, *window)

    @classmethod
    async def open(cls, seeded: DraftSeeded) -> HandWrittenUsage:
        if seeded.database.backend == "sqlite":
            connection = sqlite3.connect(sqlite_path(seeded.database), isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA query_only=ON")
            return cls(seeded, connection)
        # Planned for its own arguments on every call, as Accrual's usage query is: a cached generic
        # plan (after five runs of a prepared statement) guesses the average customer, not this one.
        return cls(seeded, await asyncpg.connect(postgres_dsn(seeded.database),
                                                 server_settings={"plan_cache_mode": "force_custom_plan"}))

    async def quantity(self) -> Decimal:
        if self.backend == "sqlite":
            value = self._connection.execute(RAW_SQL["sqlite"], self._args).fetchone()[0]
        else:
            # fetch, not fetchval: fetchval asks for one row (an Execute with a row limit), and
            # PostgreSQL then runs no parallel plan: the parallel seq scan took 0.46 s as 0.33 s.
            value = (await self._connection.fetch(RAW_SQL["postgresql"], *self._args))[0][0]
        return Decimal(0) if value is None else Decimal(value)

    async def close(self) -> None:
        if self.backend == "sqlite":
            self._connection.close()
        else:
            await self._connection.close()


async def verify_draft(seeded: DraftSeeded, accrual: AccrualDraft, raw: HandWrittenUsage) -> DraftInvoice:
    """Both sides give the quantity summed in Python, and the draft prices it by the tiers; else stop."""
    draft = await accrual.draft()
    lines = {line.name: line for line in draft.line_items}
    got = {"accrual": lines["Tokens"].quantity, "raw": await raw.quantity()}
    for name, value in got.items():
        if value != seeded.expected or not isinstance(value, Decimal):
            raise RuntimeError(f"{name} gives {value!r} for the customer's usage, expected {seeded.expected}")
    wanted = {"Platform fee": FEE, "Tokens": tiered_amount(seeded.expected)}
    if {name: line.amount for name, line in lines.items()} != wanted or draft.period.start != FEBRUARY:
        raise RuntimeError(f"the draft is {draft!r}, expected lines {wanted} for February")
    return draft


async def timed_calls(call: Callable[[], Awaitable[Any]], count: int) -> list[float]:
    out = []
    for _ in range(count):
        began = time.perf_counter()
        await call()
        out.append(time.perf_counter() - began)
    return out


async def measure_draft(sides: dict[str, Callable[[], Awaitable[Any]]], options: Options) -> dict[str, list[float]]:
    """A warm-up call each, then interleaved rounds, the order flipping every round."""
    samples: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for name in names:
        await sides[name]()
    for number in range(options.rounds):
        for name in names if number % 2 == 0 else reversed(names):
            samples[name] += await timed_calls(sides[name], options.calls)
    return samples


async def draft_figures(backend: str, options: Options, workdir: Path) -> list[Figure]:
    async with AsyncExitStack() as stack:
        database = await stack.enter_async_context(fresh_database(backend, workdir))
        progress(f"{backend}: loading {options.events:,} usage events for one customer and {options.noise:,} others")
        seeded = await seed_draft(database, options)
        stack.push_async_callback(seeded.engine.dispose)
        total = options.events + options.noise
        progress(f"{backend}: loaded in {seeded.load_seconds:.1f} s ({total / seeded.load_seconds:,.0f} rows/s)")
        raw = await HandWrittenUsage.open(seeded)
        stack.push_async_callback(raw.close)
        accrual = AccrualDraft(seeded)
        await verify_draft(seeded, accrual, raw)
        samples = await measure_draft({"accrual": accrual.draft, "raw": raw.quantity}, options)
    ours, theirs = statistics.median(samples["accrual"]), statistics.median(samples["raw"])
    ratio = ours / theirs
    shape = (f"{options.events:,} usage events of one customer in February + {options.noise:,} others; "
             f"{options.rounds} interleaved rounds of {options.calls} calls per side")
    driver = "sqlite3" if backend == "sqlite" else "asyncpg fetch (plan_cache_mode=force_custom_plan)"
    return [
        Figure("draft_invoice_x", f"{ratio:.2f}",
               f"draft_invoice {ms(ours)} ms / hand-written aggregate {ms(theirs)} ms, medians; {shape}",
               f"<= {GOAL_DRAFT_X}", ratio <= GOAL_DRAFT_X),
        Figure("draft_invoice_ms", ms(ours),
               f"draft_invoice(subscription) in-process on a fresh unit of work: fixed fee + tiered usage line; "
               f"min {ms(min(samples['accrual']))} ms"),
        Figure("draft_raw_ms", ms(theirs), f"{driver} on one open connection: {RAW_SQL[backend]}; "
                                           f"min {ms(min(samples['raw']))} ms"),
    ]


# --- 2. closing the period of S subscriptions ---------------------------------------------------------------

@dataclass
class CloseSeeded:
    database: BenchDatabase
    engine: AsyncEngine
    principal: Principal
    expected_total: Decimal  # the sum of every invoice's total, by hand
    load_seconds: float


USAGE_EVERY = 10  # every tenth customer used the product in January: 3 events each


async def seed_close(database: BenchDatabase, count: int) -> CloseSeeded:
    """Migrate; the organisation and plan through the services; `count` customers and their
    subscriptions (from January 1st) through the ORM in one flush each (the rows create_customer and
    create_subscription write, with their column types' encoding); a few events straight into the table."""
    engine = create_engine_for(database)
    await runner.upgrade_async(engine)
    uow = UnitOfWork(session_factory(engine), clock=FixedClock(SUBSCRIBED))
    try:
        principal, plan = await organisation(uow)
    finally:
        await uow.close()
    started = time.perf_counter()
    externals: dict[str, str] = {}
    customers, subscriptions = [], []
    for index in range(count):
        external = f"bench-customer-{index:06d}"
        customer = Customer(id=new_id(), org_id=principal.org_id, external_customer_id=external,
                            name=f"Bench Customer {index}", email=f"billing+{index}@bench.example.com",
                            currency="USD", created_at=SUBSCRIBED, updated_at=SUBSCRIBED)
        externals[external] = customer.id
        customers.append(customer)
        subscriptions.append(Subscription(
            id=new_id(), org_id=principal.org_id, customer_id=customer.id, plan_id=plan.id, currency="USD",
            start_date=SUBSCRIBED, net_terms=30, subscription_metadata={}, created_at=SUBSCRIBED,
            updated_at=SUBSCRIBED))
    async with session_factory(engine)() as session, session.begin():
        session.add_all(customers)
        await session.flush()
        session.add_all(subscriptions)
    rng = random.Random(SEED + count)
    events, expected = [], FEE * count
    for index in range(0, count, USAGE_EVERY):
        external, used = f"bench-customer-{index:06d}", 0
        for number in range(3):
            tokens = rng.randrange(1, 800)
            used += tokens
            events.append(UsageEvent(f"close-{index:06d}-{number}", TARGET_NAME,
                                     JANUARY + timedelta(days=rng.randrange(31), seconds=rng.randrange(86400)),
                                     external, {"tokens": tokens}))
        expected += tiered_amount(Decimal(used))
    seconds = time.perf_counter() - started
    seconds += await write_events(database, principal.org_id, externals, [events])
    return CloseSeeded(database=database, engine=engine, principal=principal, expected_total=expected,
                       load_seconds=seconds)


@dataclass(frozen=True)
class CloseRun:
    subscriptions: int
    issued: int
    seconds: float
    statements: int
    rerun_issued: int


async def close_once(seeded: CloseSeeded, count: int) -> CloseRun:
    """One timed close_periods run (statements counted while it runs), checked, then a second run
    (untimed) that must issue nothing."""
    sessions = session_factory(seeded.engine)
    uow = UnitOfWork(sessions, clock=FixedClock(CLOSE_NOW))
    try:
        with statements_on(seeded.engine) as sent:
            started = time.perf_counter()
            issued = await jobs.close_periods(uow, org_id=seeded.principal.org_id)
            seconds = time.perf_counter() - started
        again = await jobs.close_periods(uow, org_id=seeded.principal.org_id)
        stored = await uow.rows(select(Invoice.invoice_number, Invoice.total)
                                .where(Invoice.org_id == seeded.principal.org_id))
        # Summed here: SQLite would sum the stored money text as floats.
        rows, numbers = len(stored), len({row.invoice_number for row in stored})
        total = sum((row.total for row in stored), Decimal(0))
    finally:
        await uow.close()
    if len(issued) != count or rows != count or numbers != count or total != seeded.expected_total:
        raise RuntimeError(f"close_periods issued {len(issued)} invoices ({rows} rows, {numbers} numbers, "
                           f"total {total}); expected {count}, total {seeded.expected_total}")
    return CloseRun(subscriptions=count, issued=len(issued), seconds=seconds, statements=len(sent),
                    rerun_issued=len(again))


async def close_run(backend: str, count: int, workdir: Path) -> CloseRun:
    async with AsyncExitStack() as stack:
        database = await stack.enter_async_context(fresh_database(backend, workdir))
        seeded = await seed_close(database, count)
        stack.push_async_callback(seeded.engine.dispose)
        progress(f"{backend}: {count:,} subscriptions set up in {seeded.load_seconds:.1f} s; closing January")
        return await close_once(seeded, count)
    raise AssertionError("unreachable")  # the exit stack does not swallow exceptions


def close_figures(backend: str, runs: Sequence[CloseRun]) -> list[Figure]:
    out = []
    for run in runs:
        out.append(Figure(f"period_close_rate_{run.subscriptions // 1000}k" if run.subscriptions >= 1000
                          else f"period_close_rate_{run.subscriptions}", f"{run.issued / run.seconds:,.0f}",
                          f"invoices/s: {run.issued:,} issued by one close_periods run in {run.seconds:.2f} s; "
                          f"a second run issued {run.rerun_issued}"))
    if len(runs) >= 2:
        small, large = runs[0], runs[-1]
        scaling = (large.seconds / small.seconds) / (large.subscriptions / small.subscriptions)
        out.append(Figure("period_close_scaling", f"{scaling:.2f}",
                          f"time({large.subscriptions:,}) {large.seconds:.2f} s / time({small.subscriptions:,}) "
                          f"{small.seconds:.2f} s / {large.subscriptions // small.subscriptions}; 1.00 is linear",
                          f"<= {GOAL_SCALING}", scaling <= GOAL_SCALING))
    # Statements = per subscription × S + the run's own few reads: the slope between the sizes is the
    # per-subscription cost; with a constant slope the line through the first two meets every run.
    if len(runs) >= 2:
        small, large = runs[0], runs[-1]
        slope = (large.statements - small.statements) / (large.subscriptions - small.subscriptions)
    else:
        small, slope = runs[0], runs[0].statements / runs[0].subscriptions
    fixed = small.statements - slope * small.subscriptions
    constant = all(abs(run.statements - (slope * run.subscriptions + fixed)) < 0.5 for run in runs)
    out.append(Figure("period_close_statements", f"{slope:.2f}",
                      f"SQL statements per subscription (BEGIN/COMMIT left out) + {fixed:.0f} per run: "
                      + ", ".join(f"{run.statements:,} for {run.subscriptions:,}" for run in runs),
                      "a constant per subscription", constant))
    return out


# --- running ------------------------------------------------------------------------------------------------

def create_engine_for(database: BenchDatabase) -> AsyncEngine:
    return create_engine(database.url)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def run_backend(backend: str, options: Options, workdir: Path) -> None:
    for figure in await draft_figures(backend, options, workdir / "draft"):
        print(figure.line(backend), flush=True)
    runs = [await close_run(backend, count, workdir / f"close-{count}") for count in options.subscriptions]
    for figure in close_figures(backend, runs):
        print(figure.line(backend), flush=True)


async def main_async(backends: Iterable[str], options: Options) -> None:
    cancel_on_signals()
    with tempfile.TemporaryDirectory(prefix="accrual-bench-billing-") as folder:
        for backend in backends:
            workdir = Path(folder) / backend
            for part in ("draft", *(f"close-{count}" for count in options.subscriptions)):
                (workdir / part).mkdir(parents=True)
            await run_backend(backend, options, workdir)


def sizes(text: str) -> tuple[int, ...]:
    values = tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("give subscription counts such as 1000,10000")
    return tuple(sorted(set(values)))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.billing", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--events", type=lambda v: int(v.replace("_", "")), default=1_000_000,
                        help="the customer's usage events in its running period (default 1,000,000)")
    parser.add_argument("--noise", type=lambda v: int(v.replace("_", "")), default=200_000,
                        help="other events in the table: other customers and names (default 200,000)")
    parser.add_argument("--subscriptions", type=sizes, default=(1000, 10000),
                        help="subscription counts closed, one fresh database each (default 1000,10000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of draft calls")
    parser.add_argument("--calls", type=int, default=5, help="draft calls per side per round")
    args = parser.parse_args(argv)
    if args.events < 1 or args.noise < 0 or args.calls < 1:
        parser.error("--events and --calls must be at least 1, --noise at least 0")
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    options = Options(events=args.events, noise=args.noise, subscriptions=args.subscriptions,
                      rounds=max(1, args.rounds), calls=args.calls)
    try:
        asyncio.run(main_async(backends, options))
    except (asyncio.CancelledError, KeyboardInterrupt):
        sys.exit("interrupted: connections closed, benchmark databases dropped")


if __name__ == "__main__":
    main()
