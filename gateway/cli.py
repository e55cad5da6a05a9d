"""`accrual serve | worker | migrate | keys create | export-schema`."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from sqlalchemy import func, select

from domains.tenancy import service as tenancy
from domains.unit_of_work import UnitOfWork
from gateway.settings import Settings
from persistence.db import create_engine, session_factory
from persistence.migrations import runner
from persistence.tables import Organisation

FIRST_ORG = "default"


async def _migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await runner.upgrade_async(engine)
    finally:
        await engine.dispose()


async def _pending(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        return await runner.pending_revisions(engine)
    finally:
        await engine.dispose()


async def _first_start_key(url: str) -> str | None:
    """On a database with no organisation yet, create one and mint its first key (printed once)."""
    engine = create_engine(url)
    try:
        uow = UnitOfWork(session_factory(engine))
        count = (await uow.session.execute(select(func.count()).select_from(Organisation))).scalar_one()
        await uow.session.rollback()
        if count:
            await uow.close()
            return None
        org = await tenancy.create_organisation(uow, name=FIRST_ORG)
        key = await tenancy.create_api_key(uow, org_id=org.org_id, name="first key")
        await uow.close()
        return key.secret
    finally:
        await engine.dispose()


async def _create_key(url: str, org_name: str, scopes: list[str], reseller: str | None) -> tenancy.MintedKey:
    engine = create_engine(url)
    try:
        uow = UnitOfWork(session_factory(engine))
        org = await tenancy.find_organisation_by_name(uow, name=org_name)
        # Taken before the rollback, which expires the row: reading it afterwards would reload it
        # lazily, which an async session cannot do.
        org_id = org.org_id if org is not None else None
        await uow.session.rollback()
        if org_id is None:
            org_id = (await tenancy.create_organisation(uow, name=org_name)).org_id
        key = await tenancy.create_api_key(uow, org_id=org_id, scopes=scopes, reseller_id=reseller)
        await uow.close()
        return key
    finally:
        await engine.dispose()


def serve(settings: Settings) -> None:
    from gateway.app import create_app

    url = settings.database_url
    if url.startswith("sqlite"):
        asyncio.run(_migrate(url))  # the embedded default needs no separate step
    else:
        pending = asyncio.run(_pending(url))
        if pending:
            sys.exit(f"the database needs migrations {pending}: run `accrual migrate` first")
    secret = asyncio.run(_first_start_key(url))
    base = f"http://{settings.host}:{settings.port}"

    def announce() -> None:
        print(f"Accrual is listening on {base}", flush=True)
        print(f"  GraphiQL:  {base}/graphql", flush=True)
        print(f"  Orb API:   {base}/v1   OneBusiness API: {base}/api/v1   JSON-RPC: POST {base}/", flush=True)
        print(f"  Database:  {url}", flush=True)
        if secret:
            print(f"  First API key (shown once, keep it): {secret}", flush=True)

    asyncio.run(_serve_until_stopped(create_app(settings), settings, announce))


async def _serve_until_stopped(app: web.Application, settings: Settings, ready: Callable[[], None]) -> None:
    """Bind first, then announce (so the printed address is true), then serve until SIGINT/SIGTERM."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
        # Everything built so far (modules, the schema, compiled faces, SQLAlchemy's metadata) lives as
        # long as the process: out of the collector's reach, a full collection walks only what requests
        # leave behind instead of ~250,000 startup objects (~100 ms a time, often under ingest load).
        gc.freeze()
        ready()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


async def _work(settings: Settings, once: bool) -> None:
    """Run the billing jobs apart from the server, until SIGINT/SIGTERM (or one pass with --once)."""
    from domains.clock import SystemClock
    from gateway.jobs import run_jobs_forever, run_jobs_once

    engine = create_engine(settings.database_url)
    try:
        sessions = session_factory(engine)
        if once:
            print(f"issued {await run_jobs_once(sessions, SystemClock())} invoice(s)", flush=True)
            return
        loop_task = asyncio.create_task(run_jobs_forever(sessions, SystemClock(), settings.jobs_interval_seconds))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        loop_task.cancel()
        try:
            await loop_task
        except asyncio.CancelledError:
            pass
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="accrual", description="Usage-based billing: graph, Orb, OneBusiness and JSON-RPC faces.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the server (applies migrations on the embedded SQLite default)")
    worker = commands.add_parser("worker", help="run the billing jobs (closing periods) apart from the server")
    worker.add_argument("--interval", type=float, default=None,
                        help="seconds between passes (default ACCRUAL_JOBS_INTERVAL or 60)")
    worker.add_argument("--once", action="store_true", help="run one pass and exit")
    commands.add_parser("migrate", help="apply database migrations")
    keys = commands.add_parser("keys", help="API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="mint an API key (printed once)")
    create.add_argument("--org", required=True, help="organisation name (created if new)")
    create.add_argument("--scope", action="append", default=[], help=f"repeatable; one of {sorted(tenancy.KNOWN_SCOPES)}")
    create.add_argument("--reseller", default=None, help="limit the key to one reseller's customers")
    export = commands.add_parser("export-schema", help="print (or write) the GraphQL schema")
    export.add_argument("--output", "-o", default=None)
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.command == "serve":
        serve(settings)
    elif args.command == "worker":
        if args.interval is not None:
            if args.interval <= 0:
                parser.error("--interval must be a positive number of seconds")
            settings = dataclasses.replace(settings, jobs_interval_seconds=args.interval)
        asyncio.run(_work(settings, args.once))
    elif args.command == "migrate":
        asyncio.run(_migrate(settings.database_url))
        print("migrations applied")
    elif args.command == "keys":
        key = asyncio.run(_create_key(settings.database_url, args.org, args.scope, args.reseller))
        print(key.secret)
    elif args.command == "export-schema":
        from gateway.graphql.schema import export_sdl

        sdl = export_sdl()
        if args.output:
            Path(args.output).write_text(sdl)
        else:
            sys.stdout.write(sdl)


if __name__ == "__main__":
    main()
