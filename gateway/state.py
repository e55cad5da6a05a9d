"""Typed keys for what the application and each request carry (VERIFIED_KEYS lives beside its type)."""

from __future__ import annotations

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

__all__ = ["CLOCK", "ENGINE", "REQUEST_ID", "SESSIONS", "SETTINGS", "VERIFIED_KEYS"]
