"""Organisations and API keys: minting (shown once) and verifying (hash lookup, constant-time check)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import bindparam, select

from domains.errors import NotFound, Unauthenticated, ValidationFailed
from domains.unit_of_work import UnitOfWork
from persistence.ids import new_id
from persistence.tables import ApiKey, Organisation

KEY_PREFIX = "one_pk_"
KNOWN_SCOPES = frozenset({"customers:read", "customers:write", "metrics:read", "admin"})


@dataclass(frozen=True)
class Principal:
    """Who is calling: the organisation every query is scoped to, what it may do, and its reseller."""

    org_id: str
    key_id: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    reseller_id: str | None = None

    def can(self, scope: str) -> bool:
        # A key minted with no scopes is a full-access key of its organisation.
        return not self.scopes or "admin" in self.scopes or scope in self.scopes

    def can_write(self) -> bool:
        """Keys with only read scopes may not change anything (finer scopes per resource to come)."""
        return not self.scopes or "admin" in self.scopes or any(s.endswith(":write") for s in self.scopes)


@dataclass(frozen=True)
class MintedKey:
    key_id: str
    org_id: str
    secret: str  # shown once, never stored


def hash_secret(secret: str) -> str:
    # Keys carry 256 random bits, so a fast hash is enough; only the hash is stored.
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_organisation(uow: UnitOfWork, *, name: str) -> Organisation:
    """Create an organisation (a tenant)."""
    if not name.strip():
        raise ValidationFailed("name", "must not be blank")
    org = Organisation(org_id=new_id(), name=name.strip(), created_at=uow.clock.now())
    async with uow.transaction():
        uow.session.add(org)
    return org


async def find_organisation_by_name(uow: UnitOfWork, *, name: str) -> Organisation | None:
    result = await uow.session.execute(select(Organisation).where(Organisation.name == name).limit(1))
    return result.scalar_one_or_none()


async def create_api_key(
    uow: UnitOfWork,
    *,
    org_id: str,
    scopes: list[str] | None = None,
    reseller_id: str | None = None,
    name: str | None = None,
) -> MintedKey:
    """Mint a key for `org_id`. The returned secret is the only copy there will ever be."""
    scopes = sorted(set(scopes or []))
    unknown = [s for s in scopes if s not in KNOWN_SCOPES]
    if unknown:
        raise ValidationFailed("scopes", f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(sorted(KNOWN_SCOPES))}")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        id=new_id(),
        org_id=org_id,
        key_hash=hash_secret(secret),
        prefix=secret[: len(KEY_PREFIX) + 4],
        name=name,
        scopes=scopes,
        reseller_id=reseller_id,
        created_at=uow.clock.now(),
    )
    async with uow.transaction():
        if await uow.session.get(Organisation, org_id) is None:
            raise ValidationFailed("org_id", "no such organisation")
        uow.session.add(key)
    return MintedKey(key_id=key.id, org_id=org_id, secret=secret)


async def authenticate(uow: UnitOfWork, *, secret: str) -> Principal:
    """The principal of an API key secret, or Unauthenticated."""
    if not secret.startswith(KEY_PREFIX):
        raise Unauthenticated("invalid API key")
    digest = hash_secret(secret)
    rows = await uow.rows(
        select(ApiKey.id, ApiKey.org_id, ApiKey.key_hash, ApiKey.scopes, ApiKey.reseller_id, ApiKey.revoked_at)
        .where(ApiKey.key_hash == digest)
    )
    row = rows[0] if rows else None
    # The lookup is by hash; the explicit constant-time comparison guards against a collation quirk.
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.key_hash, digest):
        raise Unauthenticated("invalid API key")
    return Principal(org_id=row.org_id, key_id=row.id, scopes=frozenset(row.scopes or []), reseller_id=row.reseller_id)


# Orb's default grace period; an organisation may set its own within these bounds.
DEFAULT_EVENT_GRACE_PERIOD = timedelta(hours=12)
MIN_EVENT_GRACE_PERIOD = timedelta(minutes=1)
MAX_EVENT_GRACE_PERIOD = timedelta(days=31)


async def get_organisation(uow: UnitOfWork, *, principal: Principal) -> Organisation:
    rows = await uow.rows(select(*Organisation.__table__.columns)  # type: ignore[attr-defined]
                          .where(Organisation.org_id == principal.org_id))
    if not rows:
        raise NotFound("organisation not found", field="org_id")
    return rows[0]  # type: ignore[return-value]


# Built once, so the reader prepares it once (every ingested batch reads it).
_GRACE_PERIOD = select(Organisation.event_grace_period_seconds).where(Organisation.org_id == bindparam("org_id"))


async def event_grace_period(uow: UnitOfWork, *, org_id: str) -> timedelta:
    """How late an event may arrive and still be ingested without a backfill."""
    rows = await uow.rows(_GRACE_PERIOD, {"org_id": org_id})
    return timedelta(seconds=rows[0][0]) if rows else DEFAULT_EVENT_GRACE_PERIOD


async def set_event_grace_period(uow: UnitOfWork, *, principal: Principal, seconds: int) -> Organisation:
    """Change the organisation's grace period (whole seconds, one minute to 31 days)."""
    low, high = int(MIN_EVENT_GRACE_PERIOD.total_seconds()), int(MAX_EVENT_GRACE_PERIOD.total_seconds())
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not low <= seconds <= high:
        raise ValidationFailed("event_grace_period_seconds", f"must be a whole number of seconds from {low} to {high}")
    if principal.reseller_id is not None:
        raise ValidationFailed("event_grace_period_seconds", "a key limited to a reseller may not change "
                                                             "organisation settings")
    async with uow.transaction():
        organisation = await uow.session.get(Organisation, principal.org_id, with_for_update=True)
        if organisation is None:
            raise NotFound("organisation not found", field="org_id")
        organisation.event_grace_period_seconds = seconds
    return organisation
