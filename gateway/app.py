"""The application factory: engine lifecycle and every face's routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from domains.clock import Clock, SystemClock
from gateway.auth import VerifiedKeys
from gateway.faces.http import add_unknown_routes, with_request_id
from gateway.faces.onebusiness import face as onebusiness
from gateway.faces.orb import face as orb
from gateway.faces.rpc import face as rpc
from gateway.graphql.view import graphql_handler
from gateway.jobs import background_jobs
from gateway.settings import Settings
from gateway.state import CLOCK, ENGINE, SESSIONS, SETTINGS, VERIFIED_KEYS
from persistence.db import create_engine, session_factory


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> web.Application:
    """Build the aiohttp application; the engine is opened and closed with the app (cleanup_ctx)."""
    settings = settings or Settings.from_env()
    app = web.Application(client_max_size=settings.max_body_bytes)
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
    # Every handler answers with the request's id and in its face's shape itself (no middleware: see
    # gateway.faces.http.with_request_id); a face's unknown URLs too, through a last catch-all route.
    orb.add_routes(app)
    add_unknown_routes(app, orb.PREFIX, orb.DIALECT)
    onebusiness.add_routes(app)
    add_unknown_routes(app, onebusiness.PREFIX, onebusiness.DIALECT)
    rpc.add_routes(app)
    handler = with_request_id(graphql_handler())
    app.router.add_route("GET", "/graphql", handler)
    app.router.add_route("POST", "/graphql", handler)
    return app
