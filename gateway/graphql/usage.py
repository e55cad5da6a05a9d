"""A subscription's usage and costs, and a customer's costs, in the graph (domains.billing.usage)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

import strawberry
from strawberry.types import Info

from domains.billing import usage
from gateway.context import Context

Resolve = Info[Context, None]
MetricRef = Annotated["BillableMetricType", strawberry.lazy("gateway.graphql.metering")]  # noqa: F821
PriceRef = Annotated["PriceType", strawberry.lazy("gateway.graphql.prices")]  # noqa: F821

GRANULARITY = "Left out: one bucket for the whole window; day: one per UTC day."
VIEW_MODE = "periodic (each bucket on its own, the default) or cumulative (from the window's start)."
WINDOW = "Defaults to the current billing period's bound."
GROUP_BY = ("An event property key: the metric per value of it (metricGroup), events without it in a group "
            "whose value is null; requires billableMetricId.")
SECOND_DIMENSION = "Not supported (a group carries one property): refused."


@strawberry.type(name="UsageBucket", description="A metric's quantity over a timeframe.")
class UsageBucketType:
    quantity: Decimal
    timeframe_start: datetime
    timeframe_end: datetime


@strawberry.type(name="MetricGroup", description="The event property grouped usage is for, and its value.")
class MetricGroupType:
    property_key: str
    property_value: str | None = strawberry.field(description=(
        "The property's value as text (a number as its JSON text, a boolean as true/false); null for the "
        "events without the property."))


@strawberry.type(name="MetricUsage", description="A billable metric of the subscription's plan and its usage.")
class MetricUsageType:
    billable_metric: MetricRef
    usage: list[UsageBucketType]
    view_mode: str
    metric_group: MetricGroupType | None = strawberry.field(
        default=None, description="With groupBy: the group these buckets are for; otherwise null.")


@strawberry.type(name="PriceCost", description="What one price costs in a timeframe.")
class PriceCostType:
    price: PriceRef
    subtotal: Decimal
    total: Decimal = strawberry.field(description="The subtotal: no discounts, minimums or taxes apply yet.")
    quantity: Decimal = strawberry.field(description="Usage: the quantity billed; a fixed fee: its latest quantity.")

    @strawberry.field(description="The price's id (Orb repeats it beside the price).")
    def price_id(self) -> strawberry.ID:
        return strawberry.ID(self.price.id)


@strawberry.type(name="CostTimeframe", description="The charges of a billing period (or, cumulative, of the "
                                                   "periods up to its end), per price.")
class CostTimeframeType:
    timeframe_start: datetime
    timeframe_end: datetime
    subtotal: Decimal
    total: Decimal
    per_price_costs: list[PriceCostType]


def usage_view(found: list[usage.MetricUsage]) -> list[MetricUsageType]:
    return [MetricUsageType(billable_metric=m.metric, view_mode=m.view_mode,  # type: ignore[arg-type]
                            usage=[UsageBucketType(quantity=b.quantity, timeframe_start=b.timeframe_start,
                                                   timeframe_end=b.timeframe_end) for b in m.usage],
                            metric_group=None if m.group is None else MetricGroupType(
                                property_key=m.group.property_key, property_value=m.group.property_value))
            for m in found]


def costs_view(found: list[usage.CostTimeframe]) -> list[CostTimeframeType]:
    return [CostTimeframeType(timeframe_start=f.timeframe_start, timeframe_end=f.timeframe_end, subtotal=f.subtotal,
                              total=f.total, per_price_costs=[
                                  PriceCostType(price=c.price, subtotal=c.subtotal, total=c.total,  # type: ignore[arg-type]
                                                quantity=c.quantity) for c in f.per_price_costs])
            for f in found]


async def resolve_usage(info: Resolve, id: str, timeframe_start: datetime | None, timeframe_end: datetime | None,
                        granularity: str | None, billable_metric_id: str | None, group_by: str | None,
                        view_mode: str | None, second_dimension_key: str | None = None) -> list[MetricUsageType]:
    ctx = info.context
    return usage_view(await usage.subscription_usage(
        ctx.uow, principal=ctx.principal, subscription_id=id, timeframe_start=timeframe_start,
        timeframe_end=timeframe_end, granularity=granularity, billable_metric_id=billable_metric_id,
        group_by=group_by, view_mode=view_mode, second_dimension_key=second_dimension_key))


async def resolve_subscription_costs(info: Resolve, id: str, timeframe_start: datetime | None,
                                     timeframe_end: datetime | None, view_mode: str | None) -> list[CostTimeframeType]:
    ctx = info.context
    return costs_view(await usage.subscription_costs(
        ctx.uow, principal=ctx.principal, subscription_id=id, timeframe_start=timeframe_start,
        timeframe_end=timeframe_end, view_mode=view_mode))


async def resolve_customer_costs(info: Resolve, *, customer_id: str | None, external_customer_id: str | None,
                                 timeframe_start: datetime | None, timeframe_end: datetime | None,
                                 view_mode: str | None) -> list[CostTimeframeType]:
    ctx = info.context
    return costs_view(await usage.customer_costs(
        ctx.uow, principal=ctx.principal, customer_id=customer_id, external_customer_id=external_customer_id,
        timeframe_start=timeframe_start, timeframe_end=timeframe_end, view_mode=view_mode))


@strawberry.type
class UsageQueries:
    @strawberry.field(description="A subscription's usage per billable metric of its plan. " + WINDOW)
    async def subscription_usage(
        self, info: Resolve, id: strawberry.ID, timeframe_start: datetime | None = None,
        timeframe_end: datetime | None = None,
        granularity: Annotated[str | None, strawberry.argument(description=GRANULARITY)] = None,
        billable_metric_id: str | None = None,
        group_by: Annotated[str | None, strawberry.argument(description=GROUP_BY)] = None,
        view_mode: Annotated[str | None, strawberry.argument(description=VIEW_MODE)] = None,
        second_dimension_key: Annotated[str | None, strawberry.argument(description=SECOND_DIMENSION)] = None,
    ) -> list[MetricUsageType]:
        return await resolve_usage(info, id, timeframe_start, timeframe_end, granularity, billable_metric_id,
                                   group_by, view_mode, second_dimension_key)

    @strawberry.field(description="A subscription's charges per billing period overlapping the window. " + WINDOW)
    async def subscription_costs(
        self, info: Resolve, id: strawberry.ID, timeframe_start: datetime | None = None,
        timeframe_end: datetime | None = None,
        view_mode: Annotated[str | None, strawberry.argument(description=VIEW_MODE)] = None,
    ) -> list[CostTimeframeType]:
        return await resolve_subscription_costs(info, id, timeframe_start, timeframe_end, view_mode)

    @strawberry.field(description="A customer's charges over all its subscriptions, per billing period. " + WINDOW)
    async def customer_costs(
        self, info: Resolve, id: strawberry.ID | None = None, external_customer_id: str | None = None,
        timeframe_start: datetime | None = None, timeframe_end: datetime | None = None,
        view_mode: Annotated[str | None, strawberry.argument(description=VIEW_MODE)] = None,
    ) -> list[CostTimeframeType]:
        return await resolve_customer_costs(info, customer_id=id, external_customer_id=external_customer_id,
                                            timeframe_start=timeframe_start, timeframe_end=timeframe_end,
                                            view_mode=view_mode)
