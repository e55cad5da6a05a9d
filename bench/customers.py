"""Customer reads against baselines measured in the same run; one line per figure, never an assertion.

    python -m bench.customers [--backend sqlite|postgresql|both] [--seconds N]

Per backend: a fresh database, `accrual serve` and the baseline server (bench/baseline.py) as separate
processes, customers seeded through `POST /v1/customers` (with parent/children) and ANALYZE, then

1. get_customer_rps_ratio      GET /v1/customers/{id} req/s over a bare aiohttp JSON handler's
2. graphql_customer_rps_ratio  POST /graphql (one customer, five fields) req/s over the same bare handler's
   raw_keyed_read_rps_ratio    (context) one customer read per request with the raw driver, answered as orjson,
                               req/s over the same bare handler's: a statement per request, which Accrual's
                               GET no longer pays (concurrent keyed reads share one: persistence/coalesce.py)
3. list_customers_latency_x    GET /v1/customers?limit=100 median latency over the raw driver + orjson's
4. graph_statements_100_vs_10  SQL statements of `customers(first: N) { nodes { id parent { id }
                               children { id } } }` for N = 100 and N = 10
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from bench.databases import (
    BENCH_ORG,
    ROOT,
    BenchDatabase,
    accrual_command,
    analyze,
    fresh_database,
    mint_key,
    statements_on,
)
from bench.load import HOST, Tally, alternately, encode_request, latencies, throughput
from bench.processes import ServerProcess, cancel_on_signals, free_port, start_server
from gateway.app import create_app
from gateway.settings import Settings
from gateway.state import ENGINE

GRAPHQL_CUSTOMER = "query Customer($id: ID!) { customer(id: $id) { id name email balance createdAt } }"
GRAPHQL_TREE = "query Tree($first: Int!) { customers(first: $first) { nodes { id parent { id } children { id } } } }"


@dataclass(frozen=True)
class Options:
    seconds: float
    rounds: int
    warmup: float
    concurrency: int
    customers: int


@dataclass(frozen=True)
class Figure:
    name: str
    value: str
    detail: str
    goal: str | None  # None: a figure for context, with no goal of its own
    met: bool

    def line(self, backend: str) -> str:
        verdict = "context, no goal" if self.goal is None else f"goal {self.goal}: {'met' if self.met else 'MISSED'}"
        return f"{backend:<10}  {self.name:<28}  {self.value:>7}  ({self.detail})  {verdict}"


# --- seeding -------------------------------------------------------------------------------------------

def parent_index(index: int) -> int | None:
    """Every tenth customer is a parent of two customers of the next ten (Orb's hierarchy is one level
    deep). Children sit 13 and 17 places after their parent, so even a page of the newest ten has
    parents outside it and the parent edge cannot be answered from the page alone."""
    if index >= 10 and index % 10 in (3, 7):
        return (index // 10 - 1) * 10
    return None


def customer_body(index: int, parent_id: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": f"Bench Customer {index}",
        "email": f"billing+{index}@bench.example.com",
        "external_customer_id": f"bench-{index}",
        "currency": "USD",
        "metadata": {"segment": "smb" if index % 2 else "enterprise"},
        "billing_address": {"line1": f"{index} Main St", "city": "Springfield", "country": "US"},
    }
    if parent_id is not None:
        body["hierarchy"] = {"parent_customer_id": parent_id}
    return body


async def seed(http: aiohttp.ClientSession, base: str, key: str, count: int) -> list[str]:
    """Create `count` customers through the Orb face, oldest first; returns their ids in that order."""
    ids: list[str] = []
    for index in range(count):
        parent = parent_index(index)
        body = customer_body(index, ids[parent] if parent is not None else None)
        async with http.post(f"{base}/v1/customers", json=body, headers=_bearer(key)) as response:
            if response.status != 201:
                raise RuntimeError(f"seeding failed: {response.status} {await response.text()}")
            ids.append((await response.json())["id"])
    return ids


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- figures 1 and 2: throughput against a bare handler --------------------------------------------------

async def throughput_figures(accrual: ServerProcess, baseline: ServerProcess, key: str, ids: Sequence[str],
                             options: Options) -> list[Figure]:
    auth = _bearer(key)
    bare = [encode_request("GET", "/bare")]
    # Requests cycle over many customers (parents, children, neither), as real traffic would.
    get_customer = [encode_request("GET", f"/v1/customers/{id_}", headers=auth) for id_ in ids]
    raw_customer = [encode_request("GET", f"/customers/{id_}") for id_ in ids]
    graphql = [
        encode_request("POST", "/graphql", headers={**auth, "Content-Type": "application/json"},
                       body=orjson.dumps({"query": GRAPHQL_CUSTOMER, "variables": {"id": id_}}))
        for id_ in ids
    ]

    def run(port: int, requests: list[bytes]) -> Callable[[float], Awaitable[Tally]]:
        return lambda seconds: throughput(port, requests, seconds=seconds, concurrency=options.concurrency)

    tallies = await alternately(
        {"bare": run(baseline.port, bare), "raw": run(baseline.port, raw_customer),
         "get": run(accrual.port, get_customer), "graphql": run(accrual.port, graphql)},
        seconds=options.seconds, rounds=options.rounds, warmup=options.warmup,
    )
    rate = {name: sum(parts, Tally(0, 0.0)).per_second for name, parts in tallies.items()}
    get_ratio, graphql_ratio = rate["get"] / rate["bare"], rate["graphql"] / rate["bare"]
    bare_text = f"bare aiohttp {rate['bare']:.0f} req/s"
    return [
        Figure("get_customer_rps_ratio", f"{get_ratio:.2f}",
               f"accrual GET /v1/customers/{{id}} {rate['get']:.0f} req/s / {bare_text}; "
               f"{options.concurrency} connections", ">= 0.25", get_ratio >= 0.25),
        Figure("graphql_customer_rps_ratio", f"{graphql_ratio:.2f}",
               f"accrual POST /graphql customer(id) 5 fields {rate['graphql']:.0f} req/s / {bare_text}; "
               f"{options.concurrency} connections", ">= 0.2", graphql_ratio >= 0.2),
        # Context: one statement per request with the raw driver, answered as orjson by a bare handler.
        Figure("raw_keyed_read_rps_ratio", f"{rate['raw'] / rate['bare']:.2f}",
               f"raw driver SELECT one customer + orjson {rate['raw']:.0f} req/s / {bare_text}; "
               f"{options.concurrency} connections", None, True),
    ]


# --- figure 3: list latency against the raw driver --------------------------------------------------------

async def list_latency_figure(accrual: ServerProcess, baseline: ServerProcess, key: str, driver: str,
                              options: Options) -> Figure:
    listing = [encode_request("GET", "/v1/customers?limit=100", headers=_bearer(key))]
    raw = [encode_request("GET", "/customers")]
    samples = await alternately(
        {"raw": lambda s: latencies(baseline.port, raw, seconds=s),
         "list": lambda s: latencies(accrual.port, listing, seconds=s)},
        seconds=options.seconds, rounds=options.rounds, warmup=options.warmup,
    )
    # The median, because one descheduling on a shared machine can triple a single sample.
    median = {name: statistics.median([x for part in parts for x in part]) for name, parts in samples.items()}
    ratio = median["list"] / median["raw"]
    return Figure(
        "list_customers_latency_x", f"{ratio:.2f}x",
        f"accrual GET /v1/customers?limit=100 median {median['list'] * 1000:.2f} ms / "
        f"raw {driver} SELECT + orjson {median['raw'] * 1000:.2f} ms; one request at a time",
        "<= 3x", ratio <= 3,
    )


async def same_rows(http: aiohttp.ClientSession, accrual: ServerProcess, baseline: ServerProcess, key: str) -> None:
    """The baseline must read the rows Accrual answers with, or the latency figure compares nothing."""
    async with http.get(f"http://{HOST}:{accrual.port}/v1/customers?limit=100", headers=_bearer(key)) as response:
        ours = [row["id"] for row in (await response.json())["data"]]
    async with http.get(f"http://{HOST}:{baseline.port}/customers") as response:
        theirs = [row["id"] for row in orjson.loads(await response.read())["data"]]
    if ours != theirs or len(ours) != 100:
        raise RuntimeError(f"the baseline reads other rows than Accrual ({len(ours)} vs {len(theirs)})")


# --- figure 4: statements per graph query -------------------------------------------------------------

async def statement_figure(database: BenchDatabase, key: str) -> Figure:
    """Run the app in this process (nothing else is loading it now) to listen on the engine it uses."""
    app = create_app(Settings(database_url=database.url))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    port = runner.addresses[0][1]
    # The API-key lookup (auth, not the graph; cached per process for a few seconds) is kept apart.
    graph: dict[int, list[str]] = {}
    auth = 0
    try:
        async with aiohttp.ClientSession() as http:
            for first in (10, 100):
                with statements_on(app[ENGINE]) as sent:
                    async with http.post(f"http://{HOST}:{port}/graphql", headers=_bearer(key),
                                         json={"query": GRAPHQL_TREE, "variables": {"first": first}}) as response:
                        payload = await response.json()
                if payload.get("errors") or len(payload["data"]["customers"]["nodes"]) != first:
                    raise RuntimeError(f"the tree query failed: {str(payload)[:500]}")
                graph[first] = [statement for statement in sent if "api_keys" not in statement]
                auth += len(sent) - len(graph[first])
    finally:
        await runner.cleanup()
    ten, hundred = len(graph[10]), len(graph[100])
    return Figure(
        "graph_statements_100_vs_10", f"{hundred}/{ten}",
        f"customers(first: N) {{ nodes {{ id parent {{ id }} children {{ id }} }} }}: N=100 {hundred} statements, "
        f"N=10 {ten}; not counted: the API-key lookup ({auth} over both requests) and BEGIN/COMMIT/ROLLBACK",
        "<= 3 and equal", hundred <= 3 and hundred == ten,
    )


# --- one backend, start to end ---------------------------------------------------------------------------

async def run_backend(backend: str, options: Options, workdir: Path) -> None:
    async with fresh_database(backend, workdir) as database:
        key = await mint_key(database)
        accrual_port, baseline_port = free_port(), free_port()
        accrual = await start_server(
            "accrual serve", accrual_command("serve"), port=accrual_port, cwd=ROOT,
            env=database.environment(ACCRUAL_HOST=HOST, ACCRUAL_PORT=str(accrual_port)),
            log_path=workdir / f"accrual-{backend}.log",
        )
        try:
            baseline = await start_server(
                "baseline", [sys.executable, "-m", "bench.baseline", "--port", str(baseline_port),
                             "--database-url", database.url, "--org", BENCH_ORG],
                port=baseline_port, cwd=ROOT, env=database.environment(),
                log_path=workdir / f"baseline-{backend}.log",
            )
            try:
                async with aiohttp.ClientSession() as http:
                    ids = await seed(http, f"http://{HOST}:{accrual.port}", key, options.customers)
                    await analyze(database)
                    await same_rows(http, accrual, baseline, key)
                newest = list(reversed(ids))[:100]
                for figure in await throughput_figures(accrual, baseline, key, newest, options):
                    _emit(backend, figure)
                driver = "aiosqlite" if backend == "sqlite" else "asyncpg"
                _emit(backend, await list_latency_figure(accrual, baseline, key, driver, options))
            except Exception:
                print(f"--- accrual log ---\n{accrual.log_tail()}\n--- baseline log ---\n{baseline.log_tail()}",
                      file=sys.stderr)
                raise
            finally:
                await baseline.stop()
        finally:
            await accrual.stop()
        _emit(backend, await statement_figure(database, key))


def _emit(backend: str, figure: Figure) -> None:
    # Printed as soon as measured: a later failure still leaves the earlier figures on screen.
    print(figure.line(backend), flush=True)


async def main_async(backends: Sequence[str], options: Options) -> None:
    cancel_on_signals()
    with tempfile.TemporaryDirectory(prefix="accrual-bench-") as folder:
        for backend in backends:
            await run_backend(backend, options, Path(folder))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.customers", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per target (default 5)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved slices those seconds are cut into")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds per target first")
    parser.add_argument("--concurrency", type=int, default=16, help="keep-alive connections for throughput")
    parser.add_argument("--customers", type=int, default=250, help="customers seeded (at least 100)")
    args = parser.parse_args(argv)
    if args.customers < 100:
        parser.error("--customers must be at least 100 (the list figures read a page of 100)")
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    options = Options(seconds=args.seconds, rounds=max(1, args.rounds), warmup=args.warmup,
                      concurrency=args.concurrency, customers=args.customers)
    try:
        asyncio.run(main_async(backends, options))
    except (asyncio.CancelledError, KeyboardInterrupt):
        sys.exit("interrupted: servers stopped, benchmark databases dropped")


if __name__ == "__main__":
    main()
