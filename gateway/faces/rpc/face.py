"""JSON-RPC 2.0 at `POST /`: single and batch requests, notifications, the spec's error codes,
`X-Api-Key` auth, reseller scoping (from the key) and the `__tz` output timezone."""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from functools import lru_cache
from typing import Any

from aiohttp import web
from graphql import GraphQLObjectType, get_named_type

from domains import errors
from domains.tenancy.service import Principal
from gateway.auth import principal_for
from gateway.context import Context
from gateway.faces.engine import Body, CompiledRow, Inputs
from gateway.faces.http import (
    RequestTooLarge,
    json_response,
    log_unexpected,
    new_uow,
    read_json,
    with_request_id,
)
from gateway.faces.rpc.methods import METHODS
from gateway.graphql.schema import schema
from gateway.state import REQUEST_ID

PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = -32700, -32600, -32601, -32602, -32603
INVALID_TOKEN = -32005
MAX_BATCH = 50

# Application errors (the spec leaves -32000..-32099 to servers).
_ERRORS: list[tuple[type[BaseException], int]] = [
    (errors.Unauthenticated, INVALID_TOKEN),
    (errors.PermissionDenied, -32003),
    (errors.NotFound, -32004),
    (errors.ValidationFailed, INVALID_PARAMS),
    (errors.DuplicateResource, -32009),
    (errors.Conflict, -32009),
    (errors.ConstraintViolation, -32010),
    (RequestTooLarge, -32013),
]


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


def error_object(error: BaseException, request_id: str) -> dict[str, Any]:
    if isinstance(error, RpcError):
        body = {"code": error.code, "message": error.message}
        if error.data is not None:
            body["data"] = error.data
        return body
    log_unexpected(error, request_id)
    for kind, code in _ERRORS:
        if isinstance(error, kind):
            data = {"type": getattr(error, "code", kind.__name__)}
            if getattr(error, "field", None):
                data["field"] = error.field  # type: ignore[attr-defined]
            return {"code": code, "message": str(error), "data": data}
    return {"code": INTERNAL_ERROR, "message": "Internal error", "data": {"request_id": request_id}}


def _reply(request_id: Any, *, result: Any = None, error: dict[str, Any] | None = None) -> dict[str, Any]:
    if error is not None:
        return {"jsonrpc": "2.0", "error": error, "id": request_id}
    return {"jsonrpc": "2.0", "result": result, "id": request_id}


InstantTree = dict[str, "InstantTree | bool"]


def instant_fields(compiled: CompiledRow) -> InstantTree:
    """Where a method's result holds DateTime values: response keys (aliases) down to each one."""

    def walk(type_: Any, selection: Any) -> InstantTree:
        tree: InstantTree = {}
        named = get_named_type(type_)
        if selection is None or not isinstance(named, GraphQLObjectType):
            return tree
        for node in selection.selections:
            definition = named.fields[node.name.value]
            key = node.alias.value if node.alias else node.name.value
            leaf = get_named_type(definition.type)
            if getattr(leaf, "name", "") == "DateTime":
                tree[key] = True
            elif node.selection_set is not None:
                tree[key] = walk(definition.type, node.selection_set)
        return tree

    operation = compiled.document.definitions[0]
    root = operation.selection_set.selections[0]  # type: ignore[attr-defined]
    root_type = compiled.graphql_schema.get_root_type(operation.operation)  # type: ignore[attr-defined]
    return walk(root_type.fields[root.name.value].type, root.selection_set)


def _in_timezone(value: Any, tree: InstantTree | bool, zone: zoneinfo.ZoneInfo) -> Any:
    """`__tz`: the result's DateTime fields (and only those) rendered in the caller's zone."""
    if isinstance(value, list):
        return [_in_timezone(item, tree, zone) for item in value]
    if tree is True:
        return datetime.fromisoformat(value).astimezone(zone).isoformat() if isinstance(value, str) else value
    if isinstance(value, dict) and isinstance(tree, dict):
        return {k: _in_timezone(v, tree[k], zone) if k in tree else v for k, v in value.items()}
    return value


class RpcEndpoint:
    def __init__(self) -> None:
        self.methods = {row.method: CompiledRow(row, schema) for row in METHODS}
        self.instants = {name: instant_fields(compiled) for name, compiled in self.methods.items()}

    async def handle(self, request: web.Request) -> web.Response:
        request_id = request.get(REQUEST_ID, "")
        try:
            payload = await read_json(request)
        except errors.ValidationFailed as exc:
            return json_response(_reply(None, error={"code": PARSE_ERROR, "message": f"Parse error: {exc.message}"}))
        except RequestTooLarge as exc:
            return json_response(_reply(None, error=error_object(exc, request_id)), 413)
        uow = new_uow(request)
        try:
            try:
                principal = await principal_for(request, uow)
            except errors.Unauthenticated as exc:
                call_id = payload.get("id") if isinstance(payload, dict) else None
                return json_response(_reply(call_id, error=error_object(exc, request_id)), 401)
            if isinstance(payload, list):
                if not payload:
                    return json_response(_reply(None, error={"code": INVALID_REQUEST, "message": "Invalid Request: empty batch"}))
                if len(payload) > MAX_BATCH:
                    return json_response(_reply(None, error={
                        "code": INVALID_REQUEST, "message": f"Invalid Request: a batch holds at most {MAX_BATCH} calls"}))
                replies = []
                for call in payload:  # in order, on one session: calls of a batch may depend on each other
                    reply = await self._call(call, principal, uow, request_id)
                    if reply is not None:
                        replies.append(reply)
                return json_response(replies) if replies else web.Response(status=204)
            reply = await self._call(payload, principal, uow, request_id)
            return json_response(reply) if reply is not None else web.Response(status=204)
        finally:
            await uow.close()

    async def _call(self, call: Any, principal: Principal, uow: Any, request_id: str) -> dict[str, Any] | None:
        if not isinstance(call, dict):
            return _reply(None, error={"code": INVALID_REQUEST, "message": "Invalid Request: a call is an object"})
        call_id = call.get("id")
        valid_id = call_id is None or (isinstance(call_id, (str, int)) and not isinstance(call_id, bool))
        if call.get("jsonrpc") != "2.0" or not isinstance(call.get("method"), str) or not valid_id:
            # Only a valid request can be a notification: an invalid one is always answered.
            return _reply(call_id if valid_id else None, error={
                "code": INVALID_REQUEST,
                "message": "Invalid Request: jsonrpc must be \"2.0\", method a string, id a string, number or null"})
        is_notification = "id" not in call
        try:
            compiled = self.methods.get(call["method"])
            if compiled is None:
                raise RpcError(METHOD_NOT_FOUND, f"Method not found: {call['method']}")
            params = call.get("params", {})
            if not isinstance(params, dict):
                raise RpcError(INVALID_PARAMS, "Invalid params: pass params by name (an object)", {"field": "params"})
            params = dict(params)
            zone = self._timezone(params.pop("__tz", None))
            self._refuse_unknown(compiled, params)
            context = Context(principal=principal, uow=uow, request_id=request_id)
            result = await compiled.run(context, Inputs(body=params))
            if zone is not None:
                result = _in_timezone(result, self.instants[call["method"]], zone)
            return None if is_notification else _reply(call_id, result=result)
        except Exception as exc:  # noqa: BLE001 (a failed call is answered, never raised)
            if is_notification:
                if not isinstance(exc, RpcError):
                    log_unexpected(exc, request_id)
                return None
            return _reply(call_id, error=error_object(exc, request_id))

    @staticmethod
    def _timezone(name: Any) -> zoneinfo.ZoneInfo | None:
        if name is None:
            return None
        if isinstance(name, str) and name in _zone_names():
            return zoneinfo.ZoneInfo(name)
        raise errors.ValidationFailed("__tz", f"{name!r} is not an Olson timezone name (e.g. America/New_York)")

    @staticmethod
    def _refuse_unknown(compiled: CompiledRow, params: dict[str, Any]) -> None:
        if any(isinstance(source, Body) for source in compiled.row.args.values()):
            return  # the input object's own check names unknown fields
        accepted = {source.name for source in compiled.row.args.values()}
        for key in params:
            if key not in accepted:
                raise errors.ValidationFailed(key, "is not a parameter of this method")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/", with_request_id(RpcEndpoint().handle))

