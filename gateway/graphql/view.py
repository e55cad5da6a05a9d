"""`/graphql`: GraphiQL in a browser, the graph for API-key holders: known query documents run
compiled (gateway/graphql/documents.py), everything else through Strawberry with parse/validate caches."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from cross_web import HTTPException
from strawberry.aiohttp.views import GraphQLView
from strawberry.http import GraphQLHTTPResponse, process_result
from strawberry.types import ExecutionResult

from domains.errors import Unauthenticated
from gateway.auth import principal_for
from gateway.context import Context
from gateway.faces.http import json_response, new_uow
from gateway.graphql.documents import CompiledDocuments
from gateway.graphql.errors import describe
from gateway.graphql.schema import DEPTH_RULES, MAX_TOKENS, schema
from gateway.state import REQUEST_ID

GRAPHQL_CONTEXT = web.RequestKey("graphql_context", Context)


# The statuses Strawberry refuses a request with before executing it, as the graph's error codes.
_REFUSAL_CODES = {400: "BAD_REQUEST", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


class AccrualGraphQLView(GraphQLView):  # type: ignore[type-arg]
    async def __call__(self, request: web.Request) -> web.StreamResponse:
        # Strawberry answers what it refuses before executing (malformed JSON, no query, an unknown
        # operationName, a wrong method) in text/plain; a client of the graph expects its JSON shape.
        try:
            return await self.run(request=request)
        except HTTPException as exc:
            code = _REFUSAL_CODES.get(exc.status_code, "BAD_REQUEST")
            return json_response({"data": None, "errors": [{"message": exc.reason, "extensions": {"code": code}}]},
                                 exc.status_code)

    async def get_context(self, request: web.Request, response: Any) -> Context:  # type: ignore[override]
        return request[GRAPHQL_CONTEXT]

    def encode_json(self, data: object) -> bytes:  # type: ignore[override]
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        # orjson, as every face: NaN, lone surrogates and invalid UTF-8 are malformed JSON (a 400),
        # where the standard library let some through to fail later as a 500.
        return orjson.loads(data)

    async def process_result(self, request: web.Request, result: ExecutionResult) -> GraphQLHTTPResponse:  # type: ignore[override]
        # Every result, including documents that never parsed (the parser cache raises before the
        # error-code extension's post-processing runs), carries extensions.code.
        if result.errors:
            result.errors = [describe(error) for error in result.errors]
        return process_result(result)


def _wants_graphiql(request: web.Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("Accept", "")


DOCUMENTS = CompiledDocuments(schema._schema, rules=DEPTH_RULES, max_tokens=MAX_TOKENS)


async def _compiled_answer(request: web.Request, context: Context) -> web.Response | None:
    """The answer of a known query document's plain success, or None to let Strawberry answer."""
    if request.method != "POST" or request.content_type != "application/json":
        return None
    try:
        payload = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        return None
    variables = payload.get("variables")
    if variables is None:
        variables = {}
    elif not isinstance(variables, dict):
        return None
    document = DOCUMENTS.lookup(payload["query"], payload.get("operationName"))
    if document is None:
        return None
    try:
        data = await document.query.execute(context, variables)
    except Exception:  # noqa: BLE001 (Strawberry runs it again and shapes the error)
        return None
    return json_response({"data": {document.key: data}})


async def _carries_nul(request: web.Request) -> bool:
    """A NUL in the JSON body (escaped, in a variable or a literal of the document) or in GET's parameters."""
    if any("\x00" in value for value in request.query.values()):
        return True
    return request.method == "POST" and b"\\u0000" in await request.read()


def graphql_handler() -> Any:
    view = AccrualGraphQLView(schema=schema, graphql_ide="graphiql")

    async def handle(request: web.Request) -> web.StreamResponse:
        if _wants_graphiql(request):
            return await view.render_graphql_ide(request)
        uow = new_uow(request)
        try:
            try:
                principal = await principal_for(request, uow)
            except Unauthenticated as exc:
                return json_response({"data": None, "errors": [
                    {"message": exc.message, "extensions": {"code": exc.code}}]}, 401)
            if await _carries_nul(request):  # as every face's read_json: PostgreSQL text cannot hold NUL
                return json_response({"data": None, "errors": [{
                    "message": "body: must not contain NUL characters (\\u0000)",
                    "extensions": {"code": "VALIDATION_FAILED", "field": "body"}}]}, 400)
            context = Context(principal=principal, uow=uow, request_id=request.get(REQUEST_ID, ""))
            answer = await _compiled_answer(request, context)
            if answer is not None:
                return answer
            request[GRAPHQL_CONTEXT] = context
            return await view(request)
        finally:
            await uow.close()

    return handle
