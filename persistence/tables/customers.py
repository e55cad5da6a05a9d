from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Column, Index
from sqlmodel import Field, SQLModel

from persistence.types import JSONDocument, Money, UTCDateTime


def _json(default: Any = None, *, nullable: bool = True, name: str | None = None) -> Any:
    column = Column(name, JSONDocument, nullable=nullable) if name else Column(JSONDocument, nullable=nullable)
    if callable(default):
        return Field(default_factory=default, sa_column=column)
    return Field(default=default, sa_column=column)


class Customer(SQLModel, table=True):
    """A customer: Orb's full customer object plus OneBusiness' profile fields."""

    __tablename__ = "customers"
    __table_args__ = (
        Index("ix_customers_org_id", "org_id", "id"),
        Index("ix_customers_org_external", "org_id", "external_customer_id", unique=True),
        # Children come oldest first: with the id in the index SQLite does not trade the filter for the order.
        Index("ix_customers_org_parent", "org_id", "parent_id", "id"),
        Index("ix_customers_org_status", "org_id", "status", "id"),
    )

    id: str = Field(primary_key=True, max_length=32)
    org_id: str = Field(foreign_key="organisations.org_id", max_length=32)
    reseller_id: str | None = Field(default=None, max_length=200)
    external_customer_id: str | None = Field(default=None, max_length=255)
    name: str = Field(max_length=500)
    email: str = Field(max_length=320)
    currency: str | None = Field(default=None, max_length=3)
    timezone: str = Field(default="UTC", max_length=64)
    balance: Decimal = Field(default=Decimal(0), sa_type=Money, nullable=False)
    payment_provider: str | None = Field(default=None, max_length=32)
    payment_provider_id: str | None = Field(default=None, max_length=255)
    auto_collection: bool = True
    auto_issuance: bool | None = None
    exempt_from_automated_tax: bool = False
    email_delivery: bool = True
    additional_emails: list[str] = _json(list, nullable=False)
    customer_metadata: dict[str, str] = _json(dict, nullable=False, name="metadata")
    billing_address: dict[str, Any] | None = _json()
    shipping_address: dict[str, Any] | None = _json()
    tax_id: dict[str, Any] | None = _json()
    accounting_sync_configuration: dict[str, Any] | None = _json()
    reporting_configuration: dict[str, Any] | None = _json()
    payment_configuration: dict[str, Any] | None = _json()
    tax_configuration: dict[str, Any] | None = _json()
    parent_id: str | None = Field(default=None, foreign_key="customers.id", max_length=32)
    # OneBusiness customer-profile fields.
    status: str = Field(default="active", max_length=16)
    account_number: str | None = Field(default=None, max_length=100)
    payment_terms: str | None = Field(default=None, max_length=100)
    credit_limit: Decimal | None = Field(default=None, sa_type=Money)
    contact_first_name: str | None = Field(default=None, max_length=200)
    contact_last_name: str | None = Field(default=None, max_length=200)
    contact_email: str | None = Field(default=None, max_length=320)
    contact_phone: str | None = Field(default=None, max_length=64)
    notes: str | None = Field(default=None)
    custom_fields: dict[str, Any] = _json(dict, nullable=False)
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class CustomFieldDefinition(SQLModel, table=True):
    """A per-organisation custom field that customer profiles may carry."""

    __tablename__ = "custom_field_definitions"
    __table_args__ = (Index("ix_custom_fields_org_key", "org_id", "key", unique=True),)

    id: str = Field(primary_key=True, max_length=32)
    org_id: str = Field(foreign_key="organisations.org_id", max_length=32)
    key: str = Field(max_length=64)
    label: str | None = Field(default=None, max_length=200)
    field_type: str = Field(max_length=16)
    required: bool = False
    allowed_values: list[str] | None = _json()
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
