"""The application factory: engine lifecycle, middlewares, and every face's routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from domains.clock import Clock, SystemClock
from gateway.auth import VerifiedKeys
from gateway.faces.http import RequestTooLarge, UnknownRoute
from gateway.faces.onebusiness import face as onebusiness
from gateway.faces.orb import face as orb
from gateway.faces.rpc import face as rpc
from gateway.graphql.view import graphql_handler
from gateway.jobs import background_jobs
from gateway.settings import Settings
from gateway.state import CLOCK, ENGINE, REQUEST_ID, SESSIONS, SETTINGS, VERIFIED_KEYS, new_request_id
from persistence.db import create_engine, session_factory

log = logging.getLogger("accrual")


def _dialect_for(path: str) -> object | None:
    if path.startswith(orb.PREFIX + "/") or path == orb.PREFIX:
        return orb.DIALECT
    if path.startswith(onebusiness.PREFIX + "/") or path == onebusiness.PREFIX:
        return onebusiness.DIALECT
    return None


@web.middleware
async def face_errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Failures raised before a row's handler runs (unknown URL, wrong method, body too large) and any
    unexpected exception are answered in the shape of the face the path belongs to."""
    request[REQUEST_ID] = request.headers.get("X-Request-Id") or new_request_id()
    try:
        response = await handler(request)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
        dialect = _dialect_for(request.path)
        if dialect is None:
            raise
        return dialect.error_response(UnknownRoute(f"no route for {request.method} {request.path} ({exc.reason})"),  # type: ignore[attr-defined]
                                      request[REQUEST_ID])
    except web.HTTPRequestEntityTooLarge as exc:
        dialect = _dialect_for(request.path)
        if dialect is None:
            raise
        return dialect.error_response(RequestTooLarge(str(exc)), request[REQUEST_ID])  # type: ignore[attr-defined]
    except web.HTTPException:
        raise
    except Exception as exc:
        log.exception("unexpected error (request %s)", request[REQUEST_ID])
        dialect = _dialect_for(request.path)
        if dialect is None:
            raise
        return dialect.error_response(exc, request[REQUEST_ID])  # type: ignore[attr-defined]
    response.headers["X-Request-Id"] = request[REQUEST_ID]
    return response


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> web.Application:
    """Build the aiohttp application; the engine is opened and closed with the app (cleanup_ctx)."""
    settings = settings or Settings.from_env()
    app = web.Application(middlewares=[face_errors], client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    app[VERIFIED_KEYS] = VerifiedKeys()

    async def database(app: web.Application) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        app[ENGINE] = engine
        app[SESSIONS] = session_factory(engine)
        yield
        await engine.dispose()

    app.cleanup_ctx.append(database)
    if settings.run_jobs:
        app.cleanup_ctx.append(background_jobs(SESSIONS, app[CLOCK], settings.jobs_interval_seconds))  # type: ignore[arg-type]
    orb.add_routes(app)
    onebusiness.add_routes(app)
    rpc.add_routes(app)
    handler = graphql_handler()
    app.router.add_route("GET", "/graphql", handler)
    app.router.add_route("POST", "/graphql", handler)
    return app
