"""Every table of Accrual; importing this package registers them all on SQLModel.metadata."""

from persistence.tables.billing import (
    Invoice,
    InvoiceLineItem,
    InvoiceNumberCounter,
    Subscription,
    SubscriptionPlanChange,
    SubscriptionPriceQuantity,
)
from persistence.tables.catalog import Item, Plan, Price
from persistence.tables.customers import Customer, CustomFieldDefinition
from persistence.tables.metering import BillableMetric, Event, EventBackfill
from persistence.tables.requests import IdempotencyRecord
from persistence.tables.tenancy import ApiKey, Organisation

__all__ = ["ApiKey", "BillableMetric", "CustomFieldDefinition", "Customer", "Event", "EventBackfill", "IdempotencyRecord",
           "Invoice", "InvoiceLineItem", "InvoiceNumberCounter", "Item", "Organisation", "Plan", "Price", "Subscription",
           "SubscriptionPlanChange", "SubscriptionPriceQuantity"]
