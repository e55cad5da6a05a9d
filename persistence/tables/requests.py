from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Text
from sqlmodel import Field, SQLModel

from persistence.types import UTCDateTime


class IdempotencyRecord(SQLModel, table=True):
    """The first response to an `Idempotency-Key`, replayed for the same key and request."""

    __tablename__ = "idempotency_records"
    __table_args__ = (Index("ix_idempotency_created", "org_id", "created_at"),)

    org_id: str = Field(primary_key=True, max_length=32)
    key: str = Field(primary_key=True, max_length=255)
    request_hash: str = Field(max_length=64)
    status_code: int
    response_body: str = Field(sa_type=Text)
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
