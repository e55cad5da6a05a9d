"""Per-request dataloaders: each batch is one statement, answered as a list aligned with its keys."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import cached_property
from typing import Any, Generic, TypeVar

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

V = TypeVar("V")


class BatchLoader(DataLoader[str, V], Generic[V]):
    """Answers a batch of keys with one domain read returning a mapping by key; a key the mapping does
    not hold answers `missing()` (None for a lookup, a fresh empty list for a one-to-many edge)."""

    def __init__(self, read: Callable[[Sequence[str]], Awaitable[Mapping[str, Any]]],
                 missing: Callable[[], V]) -> None:
        # Given the loop, DataLoader skips asyncio.get_event_loop(), half its construction cost.
        super().__init__(loop=asyncio.get_running_loop())
        self._read, self._missing = read, missing

    async def batch_load_fn(self, keys: Sequence[str]) -> list[V]:
        found = await self._read(keys)
        missing = self._missing
        return [found[key] if key in found else missing() for key in keys]


def _none() -> None:
    return None


class Loaders:
    """A request's loaders, each made on first use (most requests touch one or two)."""

    def __init__(self, uow: UnitOfWork, principal: Principal) -> None:
        self.uow, self.principal = uow, principal
        # Customers and children a read already brought, handed to their loader if one is ever made:
        # a keyed GET that shows no edge then builds no loader just to prime it.
        self._known_customers: dict[str, Customer] = {}
        self._known_children: dict[str, list[Customer]] = {}

    def _one(self, read: Callable[..., Awaitable[Mapping[str, Any]]], keyword: str) -> BatchLoader[Any]:
        """A loader of rows by id: `read(uow, principal=..., <keyword>=keys)` maps id -> row."""
        uow, principal = self.uow, self.principal
        return BatchLoader(lambda keys: read(uow, principal=principal, **{keyword: list(keys)}), _none)

    def _many(self, read: Callable[..., Awaitable[Mapping[str, Any]]], keyword: str) -> BatchLoader[Any]:
        """A loader of the rows under each key (an empty list when none): `read` groups them by key."""
        uow, principal = self.uow, self.principal
        return BatchLoader(lambda keys: read(uow, principal=principal, **{keyword: list(keys)}), list)

    @cached_property
    def customer_by_id(self) -> BatchLoader[Customer | None]:
        loader = self._one(customers.customers_by_ids, "ids")
        for key, row in self._known_customers.items():
            loader.prime(key, row)
        return loader

    @cached_property
    def children_by_customer_id(self) -> BatchLoader[list[Customer]]:
        loader = self._many(customers.children_by_parent_ids, "parent_ids")
        for key, rows in self._known_children.items():
            loader.prime(key, rows)
        return loader

    @cached_property
    def item_by_id(self) -> BatchLoader[Item | None]:
        return self._one(items.items_by_ids, "ids")

    @cached_property
    def metric_by_id(self) -> BatchLoader[BillableMetric | None]:
        return self._one(metrics.metrics_by_ids, "ids")

    @cached_property
    def prices_by_plan_id(self) -> BatchLoader[list[Price]]:
        return self._many(prices.prices_by_plan_ids, "plan_ids")

    @cached_property
    def plan_by_id(self) -> BatchLoader[Plan | None]:
        return self._one(plans.plans_by_ids, "ids")

    @cached_property
    def plan_changes_by_subscription_id(self) -> BatchLoader[list[SubscriptionPlanChange]]:
        return self._many(schedule.plan_changes_by_subscription_ids, "subscription_ids")

    @cached_property
    def quantity_changes_by_subscription_id(self) -> BatchLoader[list[SubscriptionPriceQuantity]]:
        return self._many(schedule.quantity_changes_by_subscription_ids, "subscription_ids")

    @cached_property
    def price_by_id(self) -> BatchLoader[Price | None]:
        return self._one(prices.prices_by_ids, "ids")

    @cached_property
    def subscription_by_id(self) -> BatchLoader[Subscription | None]:
        return self._one(subscriptions.subscriptions_by_ids, "ids")

    @cached_property
    def line_items_by_invoice_id(self) -> BatchLoader[list[InvoiceLineItem]]:
        return self._many(invoices.line_items_by_invoice_ids, "ids")

    def customer(self, customer_id: str) -> Any:
        """The customer a read already brought, or the loader's future for it."""
        known = self._known_customers.get(customer_id)
        return known if known is not None else self.customer_by_id.load(customer_id)

    def children(self, customer_id: str) -> Any:
        """The children a read already brought (a list), or the loader's future for them."""
        known = self._known_children.get(customer_id)
        return known if known is not None else self.children_by_customer_id.load(customer_id)

    def prime_customers(self, rows: Sequence[Customer]) -> None:
        """Rows a read already fetched need no second trip when an edge points back at them."""
        loader = self.__dict__.get("customer_by_id")
        for row in rows:
            self._known_customers[row.id] = row
            if loader is not None:
                loader.prime(row.id, row)

    def prime_children(self, parents: Sequence[Customer], grouped: Mapping[str, list[Customer]]) -> None:
        """Children a read already fetched for these parents (none is an answer too: an empty list)."""
        loader = self.__dict__.get("children_by_customer_id")
        for parent in parents:
            children = grouped.get(parent.id, [])
            self._known_children[parent.id] = children
            if loader is not None:
                loader.prime(parent.id, children)
