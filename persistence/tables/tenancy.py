from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index
from sqlmodel import Field, SQLModel

from persistence.types import JSONDocument, UTCDateTime


class Organisation(SQLModel, table=True):
    __tablename__ = "organisations"

    org_id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=200)
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    # How late an event may arrive and still be ingested outside a backfill (Orb's default: 12 hours).
    event_grace_period_seconds: int = Field(default=43_200, sa_column_kwargs={"server_default": "43200"})


class ApiKey(SQLModel, table=True):
    """An API key, kept only as a SHA-256 of its (high-entropy) secret."""

    __tablename__ = "api_keys"
    __table_args__ = (
        Index("ix_api_keys_hash", "key_hash", unique=True),
        Index("ix_api_keys_org", "org_id", "id"),
    )

    id: str = Field(primary_key=True, max_length=32)
    org_id: str = Field(foreign_key="organisations.org_id", max_length=32)
    key_hash: str = Field(max_length=64)
    prefix: str = Field(max_length=16)
    name: str | None = Field(default=None, max_length=200)
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSONDocument, nullable=False))
    reseller_id: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
