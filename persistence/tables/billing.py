from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Column, Index
from sqlmodel import Field, SQLModel

from persistence.types import JSONDocument, Money, UTCDateTime


class Subscription(SQLModel, table=True):
    """A customer's subscription to a plan, from start_date to end_date (open while null).

    The status (upcoming / active / ended) is not stored: it follows from the dates and the clock,
    so it is never stale. Billing periods are anchored on start_date. ``plan_id`` is the plan it
    *started* on: with plan changes (SubscriptionPlanChange) the current plan is derived from the
    phases (domains.billing.schedule.current_plan_id), never written back here.
    """

    __tablename__ = "subscriptions"
    __table_args__ = (
        Index("ix_subscriptions_org_id", "org_id", "id"),
        Index("ix_subscriptions_org_customer", "org_id", "customer_id", "id"),
    )

    id: str = Field(primary_key=True, max_length=32)
    org_id: str = Field(foreign_key="organisations.org_id", max_length=32)
    customer_id: str = Field(foreign_key="customers.id", max_length=32)
    plan_id: str = Field(foreign_key="plans.id", max_length=32)
    currency: str = Field(max_length=3)
    start_date: datetime = Field(sa_type=UTCDateTime, nullable=False)
    end_date: datetime | None = Field(default=None, sa_type=UTCDateTime)
    net_terms: int = 0
    # Null: invoices follow the customer's own auto_collection setting (as Orb's default).
    auto_collection: bool | None = None
    # Fixed fees are not billed before it (a free trial); null: no trial. From the plan's trial_config.
    trial_end_date: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Billing periods are anchored here (its day of month and time of day); null: at start_date.
    billing_anchor: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The month billing_cycle_anchor_configuration gave (read back as given); null: none was given.
    billing_anchor_month: int | None = None
    # The memo its issued invoices carry.
    default_invoice_memo: str | None = None
    subscription_metadata: dict[str, str] = Field(default_factory=dict,
                                                  sa_column=Column("metadata", JSONDocument, nullable=False))
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class Invoice(SQLModel, table=True):
    """An invoice: a subscription's for one billing period (issued when the period closes) or a
    one-off one. Amounts are exact and equal the sum of its line items.

    The draft of a subscription's running period is not stored: it is computed from the events at
    read time (domains.billing.invoices), so only issued subscription invoices are rows here, one per
    (subscription, period start) — the unique index makes a second closing of a period a no-op.
    """

    __tablename__ = "invoices"
    __table_args__ = (
        Index("ix_invoices_org_id", "org_id", "id"),
        Index("ix_invoices_org_customer", "org_id", "customer_id", "id"),
        Index("ix_invoices_org_subscription_period", "org_id", "subscription_id", "period_start", unique=True),
        Index("ix_invoices_org_number", "org_id", "invoice_number", unique=True),
    )

    id: str = Field(primary_key=True, max_length=32)
    org_id: str = Field(foreign_key="organisations.org_id", max_length=32)
    customer_id: str = Field(foreign_key="customers.id", max_length=32)
    subscription_id: str | None = Field(default=None, foreign_key="subscriptions.id", max_length=32)
    status: str = Field(max_length=16)
    currency: str = Field(max_length=3)
    # Sequential per organisation, given when issued (null while draft).
    invoice_number: int | None = None
    period_start: datetime | None = Field(default=None, sa_type=UTCDateTime)
    period_end: datetime | None = Field(default=None, sa_type=UTCDateTime)
    invoice_date: datetime = Field(sa_type=UTCDateTime, nullable=False)
    net_terms: int = 0
    issued_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    due_date: datetime | None = Field(default=None, sa_type=UTCDateTime)
    paid_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    payment_received_date: date | None = None
    external_id: str | None = Field(default=None, max_length=255)
    notes: str | None = None
    voided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    subtotal: Decimal = Field(sa_type=Money, nullable=False)
    total: Decimal = Field(sa_type=Money, nullable=False)
    amount_due: Decimal = Field(sa_type=Money, nullable=False)
    memo: str | None = None
    invoice_metadata: dict[str, str] = Field(default_factory=dict,
                                             sa_column=Column("metadata", JSONDocument, nullable=False))
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class InvoiceLineItem(SQLModel, table=True):
    """One line of an invoice: a price (or a one-off charge) over [start_date, end_date)."""

    __tablename__ = "invoice_line_items"
    __table_args__ = (Index("ix_invoice_line_items_org_invoice", "org_id", "invoice_id", "position"),)

    id: str = Field(primary_key=True, max_length=32)
    org_id: str = Field(foreign_key="organisations.org_id", max_length=32)
    invoice_id: str = Field(foreign_key="invoices.id", max_length=32)
    position: int
    name: str = Field(max_length=500)
    price_id: str | None = Field(default=None, max_length=32)
    item_id: str | None = Field(default=None, max_length=32)
    quantity: Decimal = Field(sa_type=Money, nullable=False)
    amount: Decimal = Field(sa_type=Money, nullable=False)
    start_date: datetime = Field(sa_type=UTCDateTime, nullable=False)
    end_date: datetime = Field(sa_type=UTCDateTime, nullable=False)


class InvoiceNumberCounter(SQLModel, table=True):
    """The last invoice number an organisation gave; bumped in the issuing transaction, whose row
    lock serialises concurrent issuers, so numbers have no gaps and no duplicates."""

    __tablename__ = "invoice_number_counters"

    org_id: str = Field(primary_key=True, foreign_key="organisations.org_id", max_length=32)
    last_number: int = 0


class SubscriptionPlanChange(SQLModel, table=True):
    """From ``effective_date`` on, the subscription is on ``plan_id`` (until the next change or its end).

    The plan it starts on is ``subscriptions.plan_id``; these rows are the changes after that, past
    ones and at most one pending (future) one. The plan phases are derived from both
    (domains.billing.schedule), so a scheduled change takes effect by the clock, with no job.
    """

    __tablename__ = "subscription_plan_changes"
    __table_args__ = (
        Index("ix_subscription_plan_changes_subscription", "org_id", "subscription_id", "effective_date"),
    )

    id: str = Field(primary_key=True, max_length=32)
    org_id: str = Field(foreign_key="organisations.org_id", max_length=32)
    subscription_id: str = Field(foreign_key="subscriptions.id", max_length=32)
    plan_id: str = Field(foreign_key="plans.id", max_length=32)
    effective_date: datetime = Field(sa_type=UTCDateTime, nullable=False)
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    # Set on a phase transition of a phased plan (trigger_phase, initial_phase_order): from
    # effective_date on, the plan's phase of this order (later phases follow by their durations).
    plan_phase_order: int | None = None
    # From effective_date on, billing periods re-anchor: plan_change_date (at it) or start_of_month (the
    # next 1st); null: unchanged. Kept as the rule, not the instant, so shifting the change moves it too.
    billing_cycle_alignment: str | None = Field(default=None, max_length=16)
    # A free trial on the new plan: no fixed fee of the phase for this many days; null: none.
    trial_duration_days: int | None = None


class SubscriptionPriceQuantity(SQLModel, table=True):
    """From ``effective_date`` on, the subscription's fixed fee ``price_id`` is billed for ``quantity``.

    Before a subscription's first row for a price, the price's own fixed_price_quantity applies (1 when
    it has none); at most one row per price is pending (in the future).
    """

    __tablename__ = "subscription_price_quantities"
    __table_args__ = (
        Index("ix_subscription_price_quantities_subscription", "org_id", "subscription_id", "price_id",
              "effective_date"),
    )

    id: str = Field(primary_key=True, max_length=32)
    org_id: str = Field(foreign_key="organisations.org_id", max_length=32)
    subscription_id: str = Field(foreign_key="subscriptions.id", max_length=32)
    price_id: str = Field(foreign_key="prices.id", max_length=32)
    quantity: Decimal = Field(sa_type=Money, nullable=False)
    effective_date: datetime = Field(sa_type=UTCDateTime, nullable=False)
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
