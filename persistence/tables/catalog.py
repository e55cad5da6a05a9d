from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Column, Index
from sqlmodel import Field, SQLModel

from persistence.types import JSONDocument, Money, UTCDateTime


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


class Price(SQLModel, table=True):
    """A price: a pricing model with its config, a cadence and a currency, for an item; a usage price
    also names the billable metric whose quantity it prices."""

    __tablename__ = "prices"
    __table_args__ = (
        Index("ix_prices_org_id", "org_id", "id"),
        Index("ix_prices_org_external", "org_id", "external_price_id", unique=True),
        Index("ix_prices_org_plan", "org_id", "plan_id"),
    )

    id: str = Field(primary_key=True, max_length=32)
    org_id: str = Field(foreign_key="organisations.org_id", max_length=32)
    item_id: str = Field(foreign_key="items.id", max_length=32)
    billable_metric_id: str | None = Field(default=None, foreign_key="billable_metrics.id", max_length=32)
    plan_id: str | None = Field(default=None, foreign_key="plans.id", max_length=32)
    external_price_id: str | None = Field(default=None, max_length=255)
    name: str = Field(max_length=500)
    model_type: str = Field(max_length=32)
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONDocument, nullable=False))
    cadence: str = Field(max_length=16)
    currency: str = Field(max_length=3)
    fixed_price_quantity: Decimal | None = Field(default=None, sa_type=Money)
    # The plan phase (its order) this price of a phased plan bills in; null on a plan without phases.
    plan_phase_order: int | None = None
    price_metadata: dict[str, str] = Field(default_factory=dict, sa_column=Column("metadata", JSONDocument, nullable=False))
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class Plan(SQLModel, table=True):
    """A plan: the prices a subscription to it bills, in one currency."""

    __tablename__ = "plans"
    __table_args__ = (
        Index("ix_plans_org_id", "org_id", "id"),
        Index("ix_plans_org_external", "org_id", "external_plan_id", unique=True),
    )

    id: str = Field(primary_key=True, max_length=32)
    org_id: str = Field(foreign_key="organisations.org_id", max_length=32)
    external_plan_id: str | None = Field(default=None, max_length=255)
    name: str = Field(max_length=500)
    description: str | None = Field(default=None)
    status: str = Field(default="active", max_length=16)
    currency: str = Field(max_length=3)
    net_terms: int | None = None
    # A subscription to it starts with a free trial of this many days (Orb's trial_config); null: none.
    trial_period_days: int | None = None
    # Orb's plan_phases, in order: [{order, duration, duration_unit[, align_billing_with_phase_start_date:
    # true]}] (domains.catalog.plan_phases); null: the plan has no phases.
    plan_phases: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSONDocument, nullable=True))
    plan_metadata: dict[str, str] = Field(default_factory=dict, sa_column=Column("metadata", JSONDocument, nullable=False))
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
