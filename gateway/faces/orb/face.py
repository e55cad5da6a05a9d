"""Mounts Orb's `/v1`: the route table, Orb's errors, and `Idempotency-Key` on every POST."""

from __future__ import annotations

import hashlib

import orjson
from aiohttp import web

from domains.idempotency import service as idempotency
from domains.tenancy.service import Principal
from gateway.context import Context
from gateway.faces.engine import CompiledRow, Inputs
from gateway.faces.http import compile_rows, handler_for, respond
from gateway.faces.orb.errors import OrbDialect
from gateway.faces.orb.routes import ROWS
from gateway.graphql.schema import schema

PREFIX = "/v1"
DIALECT = OrbDialect()


def request_fingerprint(request: web.Request, inputs: Inputs, principal: Principal) -> str:
    """Same request = same method, path, body (whatever its key order) and the same reseller scope:
    a replay must never show one reseller what another's request created."""
    body = orjson.dumps(inputs.body, option=orjson.OPT_SORT_KEYS) if isinstance(inputs.body, (dict, list)) else b""
    scope = f"{principal.key_id}:{principal.reseller_id or ''}".encode()
    target = request.path_qs.encode()  # ?debug=true and ?debug=false are different requests
    return hashlib.sha256(b"\n".join([request.method.encode(), target, scope, body])).hexdigest()


async def with_idempotency(request: web.Request, context: Context, inputs: Inputs, compiled: CompiledRow) -> web.Response:
    """The first response to a key is stored with the operation's own writes and replayed after."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return await respond(compiled, context, inputs)
    uow, org_id = context.uow, context.principal.org_id
    async with uow.transaction():
        stored = await idempotency.claim(uow, org_id=org_id, key=key, request_hash=request_fingerprint(request, inputs, context.principal))
        if stored is not None:
            return web.Response(body=stored.body, status=stored.status, content_type="application/json",
                                headers={"Idempotent-Replayed": "true"})
        response = await respond(compiled, context, inputs)
        await idempotency.remember(uow, org_id=org_id, key=key, status=response.status,
                                   body=response.body.decode() if response.body else "")  # type: ignore[union-attr]
    return response


def add_routes(app: web.Application) -> None:
    for compiled in compile_rows(ROWS, schema):
        row = compiled.row
        around = with_idempotency if row.method == "POST" else None
        app.router.add_route(row.method, PREFIX + row.path, handler_for(compiled, DIALECT, around=around))
