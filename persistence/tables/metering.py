from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel

from persistence.types import JSONDocument, UTCDateTime


class BillableMetric(SQLModel, table=True):
    """Orb's billable metric: SQL over the organisation's events (kept as written; parsed on use)."""

    __tablename__ = "billable_metrics"
    __table_args__ = (Index("ix_billable_metrics_org_id", "org_id", "id"),)

    id: str = Field(primary_key=True, max_length=32)
    org_id: str = Field(foreign_key="organisations.org_id", max_length=32)
    item_id: str = Field(foreign_key="items.id", max_length=32)
    name: str = Field(max_length=500)
    description: str | None = Field(default=None, sa_type=Text)
    sql: str = Field(sa_type=Text)
    status: str = Field(default="active", max_length=16)
    metric_metadata: dict[str, str] = Field(default_factory=dict, sa_column=Column("metadata", JSONDocument, nullable=False))
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
