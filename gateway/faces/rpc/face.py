"""JSON-RPC 2.0 at `POST /`: single and batch requests, notifications, the spec's error codes,
`X-Api-Key` auth, reseller scoping (from the key) and the `__tz` output timezone."""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from typing import Any

from aiohttp import web

from domains import errors
from domains.tenancy.service import Principal
from gateway.auth import principal_for
from gateway.context import Context
from gateway.faces.engine import Body, CompiledRow, Inputs
from gateway.faces.http import RequestTooLarge, json_response, log_unexpected, new_uow, read_json
from gateway.faces.rpc.methods import METHODS
from gateway.graphql.schema import schema

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


def _in_timezone(value: Any, zone: zoneinfo.ZoneInfo) -> Any:
    """`__tz`: instants in the result are rendered in the caller's zone (conversion at the edge only)."""
    if isinstance(value, dict):
        return {k: _in_timezone(v, zone) for k, v in value.items()}
    if isinstance(value, list):
        return [_in_timezone(v, zone) for v in value]
    if isinstance(value, str) and len(value) >= 20 and value.endswith("Z") and value[10:11] == "T":
        try:
            return datetime.fromisoformat(value).astimezone(zone).isoformat()
        except ValueError:
            return value
    return value


class RpcEndpoint:
    def __init__(self) -> None:
        self.methods = {row.method: CompiledRow(row, schema) for row in METHODS}

    async def handle(self, request: web.Request) -> web.Response:
        request_id = request.get("request_id", "")
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
        is_notification = "id" not in call
        call_id = call.get("id")
        try:
            if call.get("jsonrpc") != "2.0" or not isinstance(call.get("method"), str) or (
                not is_notification and not (call_id is None or isinstance(call_id, (str, int)))
                or isinstance(call_id, bool)
            ):
                raise RpcError(INVALID_REQUEST, "Invalid Request: jsonrpc must be \"2.0\", method a string, id a string or number")
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
                result = _in_timezone(result, zone)
            return None if is_notification else _reply(call_id, result=result)
        except Exception as exc:
            if is_notification:
                log_unexpected(exc, request_id)
                return None
            return _reply(call_id, error=error_object(exc, request_id))

    @staticmethod
    def _timezone(name: Any) -> zoneinfo.ZoneInfo | None:
        if name is None:
            return None
        if isinstance(name, str):
            try:
                return zoneinfo.ZoneInfo(name)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                pass
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
    app.router.add_post("/", RpcEndpoint().handle)

