from __future__ import annotations

from datetime import datetime
from typing import Any

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


class Event(SQLModel, table=True):
    """A usage event: append-mostly, the largest table. `customer_id` is filled when the customer is
    known (an event may name an external id whose customer appears later)."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_org_idempotency", "org_id", "idempotency_key", unique=True),
        # One customer-month of one event name is an index range scan (DESIGN.md §5).
        Index("ix_events_org_customer_name_time", "org_id", "customer_id", "event_name", "timestamp"),
        Index("ix_events_org_external_customer", "org_id", "external_customer_id", "timestamp"),
        Index("ix_events_org_time", "org_id", "timestamp"),
    )

    id: str = Field(primary_key=True, max_length=32)
    org_id: str = Field(max_length=32)
    customer_id: str | None = Field(default=None, max_length=32)
    external_customer_id: str | None = Field(default=None, max_length=255)
    event_name: str = Field(max_length=255)
    timestamp: datetime = Field(sa_type=UTCDateTime, nullable=False)
    properties: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONDocument, nullable=False))
    idempotency_key: str = Field(max_length=255)
    ingested_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
