"""Typed keys for what the application and each request carry (VERIFIED_KEYS lives beside its type),
and the request ids the gateway hands out."""

from __future__ import annotations

import itertools
import secrets

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from domains.clock import Clock
from gateway.auth import VERIFIED_KEYS
from gateway.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSIONS = web.AppKey("sessions", async_sessionmaker[AsyncSession])

REQUEST_ID = web.RequestKey("request_id", str)

# A request id must be unique, not unguessable: a random prefix per process and a counter cost no
# system call (os.urandom for every request was 4% of a keyed GET's time).
_PROCESS_PREFIX = f"req_{secrets.token_hex(6)}"
_request_sequence = itertools.count(1)


def new_request_id() -> str:
    return f"{_PROCESS_PREFIX}{next(_request_sequence):010x}"


def request_id_of(request: web.Request) -> str:
    """The caller's `X-Request-Id`, else a new one; kept on the request for whatever answers it."""
    request_id = request[REQUEST_ID] = request.headers.get("X-Request-Id") or new_request_id()
    return request_id


__all__ = ["CLOCK", "ENGINE", "REQUEST_ID", "SESSIONS", "SETTINGS", "VERIFIED_KEYS", "new_request_id", "request_id_of"]
