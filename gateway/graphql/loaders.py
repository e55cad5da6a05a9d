"""Per-request dataloaders: each batch is one statement, answered as a list aligned with its keys."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property

from aiodataloader import DataLoader

from domains.billing import invoices, schedule, subscriptions
from domains.catalog import items, plans, prices
from domains.customers import service as customers
from domains.metering import metrics
from domains.tenancy.service import Principal
from domains.unit_of_work import UnitOfWork
from persistence.tables import (
    BillableMetric,
    Customer,
    InvoiceLineItem,
    Item,
    Plan,
    Price,
    Subscription,
    SubscriptionPlanChange,
    SubscriptionPriceQuantity,
)


class CustomerByIdLoader(DataLoader[str, Customer | None]):
    def __init__(self, uow: UnitOfWork, principal: Principal) -> None:
        super().__init__()
        self.uow, self.principal = uow, principal

    async def batch_load_fn(self, keys: Sequence[str]) -> list[Customer | None]:
        found = await customers.customers_by_ids(self.uow, principal=self.principal, ids=keys)
        return [found.get(key) for key in keys]


class ChildrenByCustomerIdLoader(DataLoader[str, list[Customer]]):
    def __init__(self, uow: UnitOfWork, principal: Principal) -> None:
        super().__init__()
        self.uow, self.principal = uow, principal

    async def batch_load_fn(self, keys: Sequence[str]) -> list[list[Customer]]:
        grouped = await customers.children_by_parent_ids(self.uow, principal=self.principal, parent_ids=keys)
        return [grouped.get(key, []) for key in keys]


class ItemByIdLoader(DataLoader[str, Item | None]):
    def __init__(self, uow: UnitOfWork, principal: Principal) -> None:
        super().__init__()
        self.uow, self.principal = uow, principal

    async def batch_load_fn(self, keys: Sequence[str]) -> list[Item | None]:
        found = await items.items_by_ids(self.uow, principal=self.principal, ids=keys)
        return [found.get(key) for key in keys]


class MetricByIdLoader(DataLoader[str, BillableMetric | None]):
    def __init__(self, uow: UnitOfWork, principal: Principal) -> None:
        super().__init__()
        self.uow, self.principal = uow, principal

    async def batch_load_fn(self, keys: Sequence[str]) -> list[BillableMetric | None]:
        found = await metrics.metrics_by_ids(self.uow, principal=self.principal, ids=keys)
        return [found.get(key) for key in keys]


class PricesByPlanIdLoader(DataLoader[str, list[Price]]):
    def __init__(self, uow: UnitOfWork, principal: Principal) -> None:
        super().__init__()
        self.uow, self.principal = uow, principal

    async def batch_load_fn(self, keys: Sequence[str]) -> list[list[Price]]:
        grouped = await prices.prices_by_plan_ids(self.uow, principal=self.principal, plan_ids=keys)
        return [grouped.get(key, []) for key in keys]


class PlanByIdLoader(DataLoader[str, Plan | None]):
    def __init__(self, uow: UnitOfWork, principal: Principal) -> None:
        super().__init__()
        self.uow, self.principal = uow, principal

    async def batch_load_fn(self, keys: Sequence[str]) -> list[Plan | None]:
        found = await plans.plans_by_ids(self.uow, principal=self.principal, ids=list(keys))
        return [found.get(key) for key in keys]


class PlanChangesBySubscriptionIdLoader(DataLoader[str, list[SubscriptionPlanChange]]):
    def __init__(self, uow: UnitOfWork, principal: Principal) -> None:
        super().__init__()
        self.uow, self.principal = uow, principal

    async def batch_load_fn(self, keys: Sequence[str]) -> list[list[SubscriptionPlanChange]]:
        grouped = await schedule.plan_changes_by_subscription_ids(self.uow, principal=self.principal,
                                                                  subscription_ids=keys)
        return [grouped.get(key, []) for key in keys]


class QuantityChangesBySubscriptionIdLoader(DataLoader[str, list[SubscriptionPriceQuantity]]):
    def __init__(self, uow: UnitOfWork, principal: Principal) -> None:
        super().__init__()
        self.uow, self.principal = uow, principal

    async def batch_load_fn(self, keys: Sequence[str]) -> list[list[SubscriptionPriceQuantity]]:
        grouped = await schedule.quantity_changes_by_subscription_ids(self.uow, principal=self.principal,
                                                                      subscription_ids=keys)
        return [grouped.get(key, []) for key in keys]


class PriceByIdLoader(DataLoader[str, Price | None]):
    def __init__(self, uow: UnitOfWork, principal: Principal) -> None:
        super().__init__()
        self.uow, self.principal = uow, principal

    async def batch_load_fn(self, keys: Sequence[str]) -> list[Price | None]:
        found = await prices.prices_by_ids(self.uow, principal=self.principal, ids=list(keys))
        return [found.get(key) for key in keys]


class SubscriptionByIdLoader(DataLoader[str, Subscription | None]):
    def __init__(self, uow: UnitOfWork, principal: Principal) -> None:
        super().__init__()
        self.uow, self.principal = uow, principal

    async def batch_load_fn(self, keys: Sequence[str]) -> list[Subscription | None]:
        found = await subscriptions.subscriptions_by_ids(self.uow, principal=self.principal, ids=list(keys))
        return [found.get(key) for key in keys]


class LineItemsByInvoiceIdLoader(DataLoader[str, list[InvoiceLineItem]]):
    def __init__(self, uow: UnitOfWork, principal: Principal) -> None:
        super().__init__()
        self.uow, self.principal = uow, principal

    async def batch_load_fn(self, keys: Sequence[str]) -> list[list[InvoiceLineItem]]:
        grouped = await invoices.line_items_by_invoice_ids(self.uow, principal=self.principal, ids=list(keys))
        return [grouped.get(key, []) for key in keys]


class Loaders:
    """A request's loaders, each made on first use (most requests touch one or two)."""

    def __init__(self, uow: UnitOfWork, principal: Principal) -> None:
        self.uow, self.principal = uow, principal

    @cached_property
    def customer_by_id(self) -> CustomerByIdLoader:
        return CustomerByIdLoader(self.uow, self.principal)

    @cached_property
    def children_by_customer_id(self) -> ChildrenByCustomerIdLoader:
        return ChildrenByCustomerIdLoader(self.uow, self.principal)

    @cached_property
    def item_by_id(self) -> ItemByIdLoader:
        return ItemByIdLoader(self.uow, self.principal)

    @cached_property
    def metric_by_id(self) -> MetricByIdLoader:
        return MetricByIdLoader(self.uow, self.principal)

    @cached_property
    def prices_by_plan_id(self) -> PricesByPlanIdLoader:
        return PricesByPlanIdLoader(self.uow, self.principal)

    @cached_property
    def plan_by_id(self) -> PlanByIdLoader:
        return PlanByIdLoader(self.uow, self.principal)

    @cached_property
    def plan_changes_by_subscription_id(self) -> PlanChangesBySubscriptionIdLoader:
        return PlanChangesBySubscriptionIdLoader(self.uow, self.principal)

    @cached_property
    def quantity_changes_by_subscription_id(self) -> QuantityChangesBySubscriptionIdLoader:
        return QuantityChangesBySubscriptionIdLoader(self.uow, self.principal)

    @cached_property
    def price_by_id(self) -> PriceByIdLoader:
        return PriceByIdLoader(self.uow, self.principal)

    @cached_property
    def subscription_by_id(self) -> SubscriptionByIdLoader:
        return SubscriptionByIdLoader(self.uow, self.principal)

    @cached_property
    def line_items_by_invoice_id(self) -> LineItemsByInvoiceIdLoader:
        return LineItemsByInvoiceIdLoader(self.uow, self.principal)

    def prime_customers(self, rows: Sequence[Customer]) -> None:
        """Rows a list already fetched need no second trip when an edge points back at them."""
        for row in rows:
            self.customer_by_id.prime(row.id, row)

    def prime_children(self, parents: Sequence[Customer], grouped: Mapping[str, list[Customer]]) -> None:
        """Children a list read for its page (none is an answer too: an empty list)."""
        loader = self.children_by_customer_id
        for parent in parents:
            loader.prime(parent.id, grouped.get(parent.id, []))
