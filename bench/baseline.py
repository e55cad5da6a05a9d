"""The baseline server: what aiohttp and the raw database driver cost with none of our code in between.

    python -m bench.baseline --port N --database-url URL --org NAME

`GET /bare` answers a small orjson dict (the floor of any request). `GET /customers` reads the newest
100 customers of one organisation with the raw driver (aiosqlite or asyncpg, no SQLAlchemy) and
answers them as orjson: the floor of `GET /v1/customers?limit=100`. `GET /customers/{id}` reads one
customer the same way: the floor of a keyed read, `GET /v1/customers/{id}`. It runs the way `accrual serve`
does (web.run_app, no access log), so the two differ only in what happens inside the handler.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import aiosqlite
import asyncpg  # type: ignore[import-untyped]
import orjson
from aiohttp import web

from bench.load import HOST
from persistence.tables import Customer

PAGE = 100
# The table's own column list (not `*`), so the baseline reads what Accrual's SELECT reads.
_COLUMNS = ", ".join(f'"{column.name}"' for column in Customer.__table__.columns)  # type: ignore[attr-defined]
_SQLITE_PAGE = f"SELECT {_COLUMNS} FROM customers WHERE org_id = ? ORDER BY id DESC LIMIT {PAGE}"
_POSTGRES_PAGE = f"SELECT {_COLUMNS} FROM customers WHERE org_id = $1 ORDER BY id DESC LIMIT {PAGE}"
_SQLITE_ONE = f"SELECT {_COLUMNS} FROM customers WHERE org_id = ? AND id = ?"
_POSTGRES_ONE = f"SELECT {_COLUMNS} FROM customers WHERE org_id = $1 AND id = $2"

Rows = Callable[[str], Awaitable[list[dict[str, Any]]]]
Row = Callable[[str, str], Awaitable[dict[str, Any] | None]]


def _json_default(value: Any) -> Any:
    # asyncpg gives NUMERIC as Decimal; orjson leaves Decimal to the caller (as Accrual's faces do).
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _dumps(payload: Any) -> bytes:
    return orjson.dumps(payload, default=_json_default)


async def bare(request: web.Request) -> web.Response:
    return web.Response(body=_dumps({"id": "bare", "object": "baseline", "ok": True}),
                        content_type="application/json")


async def _keep_as_is(_connection: asyncpg.Connection) -> None:
    """These reads change no session state: nothing to reset."""


def create_baseline_app(database_url: str, org_name: str) -> web.Application:
    app = web.Application()

    async def database(app: web.Application) -> AsyncIterator[None]:
        if database_url.startswith("sqlite"):
            # One connection, as a driver-level app would hold: aiosqlite runs every call on its thread.
            connection = await aiosqlite.connect(database_url.split(":///", 1)[1])
            org_row = await (await connection.execute(
                "SELECT org_id FROM organisations WHERE name = ?", (org_name,))).fetchone()

            async def sqlite_rows(org_id: str) -> list[dict[str, Any]]:
                cursor = await connection.execute(_SQLITE_PAGE, (org_id,))
                names = [column[0] for column in cursor.description]
                return [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]

            async def sqlite_row(org_id: str, customer_id: str) -> dict[str, Any] | None:
                cursor = await connection.execute(_SQLITE_ONE, (org_id, customer_id))
                names = [column[0] for column in cursor.description]
                row = await cursor.fetchone()
                return None if row is None else dict(zip(names, row, strict=True))

            app["rows"], app["row"] = sqlite_rows, sqlite_row
            app["org_id"] = org_row[0] if org_row else None
            yield
            await connection.close()
        else:
            # No reset on release: asyncpg's default is one more round trip per request, which Accrual's
            # read pool (persistence/read_pool.py) does without too.
            pool = await asyncpg.create_pool(database_url.replace("postgresql+asyncpg://", "postgresql://", 1),
                                             min_size=1, max_size=10, reset=_keep_as_is)
            org_id = await pool.fetchval("SELECT org_id FROM organisations WHERE name = $1", org_name)

            async def postgres_rows(org_id: str) -> list[dict[str, Any]]:
                return [dict(record) for record in await pool.fetch(_POSTGRES_PAGE, org_id)]

            async def postgres_row(org_id: str, customer_id: str) -> dict[str, Any] | None:
                record = await pool.fetchrow(_POSTGRES_ONE, org_id, customer_id)
                return None if record is None else dict(record)

            app["rows"], app["row"] = postgres_rows, postgres_row
            app["org_id"] = org_id
            yield
            await pool.close()

    async def customers(request: web.Request) -> web.Response:
        rows: Rows = request.app["rows"]
        return web.Response(body=_dumps({"data": await rows(request.app["org_id"])}),
                            content_type="application/json")

    async def customer(request: web.Request) -> web.Response:
        row: Row = request.app["row"]
        found = await row(request.app["org_id"], request.match_info["customer_id"])
        if found is None:
            raise web.HTTPNotFound()
        return web.Response(body=_dumps(found), content_type="application/json")

    app.cleanup_ctx.append(database)
    app.router.add_get("/bare", bare)
    app.router.add_get("/customers", customers)
    app.router.add_get("/customers/{customer_id}", customer)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True, help="Accrual's URL for the same database")
    parser.add_argument("--org", required=True, help="name of the organisation whose customers are read")
    args = parser.parse_args()
    web.run_app(create_baseline_app(args.database_url, args.org), host=HOST, port=args.port,
                print=None, access_log=None)


if __name__ == "__main__":
    main()
