from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, Text, text
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


# Events that count have `deprecated_by` NULL; the usage indexes hold only those, so hidden events
# (a pending backfill's, replaced ones, amended originals) cost the normal reads nothing.
_COUNTED = text("deprecated_by IS NULL")


class Event(SQLModel, table=True):
    """A usage event: append-mostly, the largest table. `customer_id` is filled when the customer is
    known (an event may name an external id whose customer appears later).

    Nothing is deleted: an event stops counting when `deprecated_by` names what hides it: its backfill
    while that is pending or reverted, a reflected backfill that replaced it, the event row that
    amends it, or its own id when deprecated. `amendment` numbers the versions of one idempotency key
    (0 as ingested), so an amendment keeps the event's id."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_org_idempotency", "org_id", "idempotency_key", "amendment", unique=True),
        # One customer-month of one event name is an index range scan (DESIGN.md §5).
        Index("ix_events_org_customer_name_time", "org_id", "customer_id", "event_name", "timestamp",
              sqlite_where=_COUNTED, postgresql_where=_COUNTED),
        Index("ix_events_org_external_customer", "org_id", "external_customer_id", "timestamp"),
        Index("ix_events_org_time", "org_id", "timestamp", sqlite_where=_COUNTED, postgresql_where=_COUNTED),
        # Close and revert find a backfill's events, and what it replaced, without a scan.
        Index("ix_events_org_backfill", "org_id", "backfill_id", sqlite_where=text("backfill_id IS NOT NULL"),
              postgresql_where=text("backfill_id IS NOT NULL")),
        Index("ix_events_org_deprecated_by", "org_id", "deprecated_by",
              sqlite_where=text("deprecated_by IS NOT NULL"), postgresql_where=text("deprecated_by IS NOT NULL")),
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
    amendment: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    backfill_id: str | None = Field(default=None, max_length=32)
    deprecated_by: str | None = Field(default=None, max_length=32)


class EventBackfill(SQLModel, table=True):
    """Orb's backfill: events for a past timeframe, held back until closed, then counted (optionally
    replacing the timeframe's existing events), and revertible."""

    __tablename__ = "event_backfills"
    __table_args__ = (Index("ix_event_backfills_org_id", "org_id", "id"),)

    id: str = Field(primary_key=True, max_length=32)
    org_id: str = Field(foreign_key="organisations.org_id", max_length=32)
    status: str = Field(max_length=16)  # pending | reflected | reverted
    timeframe_start: datetime = Field(sa_type=UTCDateTime, nullable=False)
    timeframe_end: datetime = Field(sa_type=UTCDateTime, nullable=False)
    customer_id: str | None = Field(default=None, max_length=32)
    replace_existing_events: bool = Field(default=False)
    deprecation_filter: str | None = Field(default=None, sa_type=Text)
    close_time: datetime = Field(sa_type=UTCDateTime, nullable=False)
    events_ingested: int = Field(default=0)
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    reverted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
