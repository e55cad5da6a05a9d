from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index
from sqlmodel import Field, SQLModel

from persistence.types import JSONDocument, UTCDateTime


class Item(SQLModel, table=True):
    """What a business sells (Orb's item): prices point at it; invoices and tax sync group by it."""

    __tablename__ = "items"
    __table_args__ = (Index("ix_items_org_id", "org_id", "id"),)

    id: str = Field(primary_key=True, max_length=32)
    org_id: str = Field(foreign_key="organisations.org_id", max_length=32)
    name: str = Field(max_length=500)
    item_metadata: dict[str, str] = Field(default_factory=dict, sa_column=Column("metadata", JSONDocument, nullable=False))
    external_connections: list[dict[str, Any]] = Field(default_factory=list,
                                                       sa_column=Column(JSONDocument, nullable=False))
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    archived_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
