"""Credentials -> Principal: `Authorization: Bearer <key>` (Orb, OneBusiness, GraphQL) or `X-Api-Key` (RPC)."""

from __future__ import annotations

import time
from collections import OrderedDict

from aiohttp import web

from domains.errors import Unauthenticated
from domains.tenancy.service import Principal, authenticate, hash_secret
from domains.unit_of_work import UnitOfWork

# Verified keys are remembered briefly per process: a hot path saves a lookup per request, and a
# revoked key stops working within this many seconds on every replica.
_VERIFIED_TTL_SECONDS = 5.0
_VERIFIED_MAX = 10_000


class VerifiedKeys:
    def __init__(self) -> None:
        self._entries: OrderedDict[str, tuple[float, Principal]] = OrderedDict()

    def get(self, digest: str) -> Principal | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            del self._entries[digest]
            return None
        return entry[1]

    def put(self, digest: str, principal: Principal) -> None:
        self._entries[digest] = (time.monotonic() + _VERIFIED_TTL_SECONDS, principal)
        if len(self._entries) > _VERIFIED_MAX:
            self._entries.popitem(last=False)


VERIFIED_KEYS = web.AppKey("verified_keys", VerifiedKeys)


def presented_secret(request: web.Request) -> str | None:
    key = request.headers.get("X-Api-Key")
    if key:
        return key.strip()
    authorization = request.headers.get("Authorization", "")
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() == "bearer" and credential.strip():
        return credential.strip()
    return None


async def principal_for(request: web.Request, uow: UnitOfWork) -> Principal:
    """The caller of this request, or Unauthenticated (missing or wrong key)."""
    secret = presented_secret(request)
    if not secret:
        raise Unauthenticated("an API key is required: send `Authorization: Bearer <key>` or `X-Api-Key: <key>`")
    cache = request.app[VERIFIED_KEYS]
    digest = hash_secret(secret)
    principal = cache.get(digest)
    if principal is None:
        principal = await authenticate(uow, secret=secret)
        cache.put(digest, principal)
    uow.read_only = not principal.can_write()
    return principal
