"""A subscription's usage and costs over a window (Orb's GET /subscriptions/{id}/usage and /costs,
/customers/{id}/costs). Reads only.

Usage: per billable metric of the plans the subscription is on during the window, the metric's
quantity over the whole window or per UTC day (``granularity=day``), ``periodic`` (each bucket on its
own) or ``cumulative`` (each bucket from the window's start). Only the customer's events within the
subscription's life count. Each metric is one SQL statement per request (grouped by day in SQL),
except the cumulative daily view of an ``avg`` metric, which is one statement per day (a running
average cannot be derived from daily averages).

Grouped usage (Orb's ``group_by`` with ``billable_metric_id``, both required together): the one metric
per value of an event property, each group in the same shape as ungrouped usage, in one statement
(GROUP BY the property). Events without the property (or with it null) form one group whose value is
null, listed last; the others are in order of their value, rendered as text (a number as its JSON
text, a boolean as true/false). A second dimension is refused: Orb's group carries one property.

Costs: the charges of each billing period overlapping the window, as its invoice bills them
(``charges.period_charges``: plan changes, fixed-fee quantities and proration included), per price.
``cumulative`` adds each period to the ones before it. The window defaults to the current billing period.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from domains.billing import charges, schedule, subscriptions
from domains.billing.periods import Period
from domains.catalog import prices as price_service
from domains.customers import service as customers
from domains.errors import ValidationFailed
from domains.metering import evaluation
from domains.metering.metric_sql import is_property_name
from domains.metering.metrics import metrics_by_ids
from domains.tenancy.service import Principal
from domains.text import one_of
from domains.unit_of_work import UnitOfWork
from persistence.tables import BillableMetric, Price, Subscription

VIEW_MODES = ("periodic", "cumulative")
GRANULARITIES = ("day",)
MAX_USAGE_DAYS = 366
MAX_COST_PERIODS = 60
MAX_USAGE_GROUPS = 1000  # distinct values of a group_by property in one response (all in one page)
_DAY = timedelta(days=1)


@dataclass(frozen=True)
class UsageBucket:
    quantity: Decimal
    timeframe_start: datetime
    timeframe_end: datetime


@dataclass(frozen=True)
class MetricGroup:
    """The event property a grouped usage is for and its value (None: events without the property)."""

    property_key: str
    property_value: str | None


@dataclass(frozen=True)
class MetricUsage:
    metric: BillableMetric
    usage: list[UsageBucket]
    view_mode: str
    group: MetricGroup | None = None


@dataclass
class PriceCost:
    price: Price
    subtotal: Decimal
    quantity: Decimal

    @property
    def total(self) -> Decimal:  # no discounts, minimums or taxes are applied yet
        return self.subtotal


@dataclass
class CostTimeframe:
    timeframe_start: datetime
    timeframe_end: datetime
    per_price_costs: list[PriceCost] = field(default_factory=list)

    @property
    def subtotal(self) -> Decimal:
        return sum((c.subtotal for c in self.per_price_costs), Decimal(0))

    @property
    def total(self) -> Decimal:
        return self.subtotal


def _view_mode(value: str | None) -> str:
    mode = value or "periodic"
    one_of("view_mode", mode, VIEW_MODES)
    return mode


async def _window(uow: UnitOfWork, principal: Principal, subscription: Subscription,
                  start: datetime | None, end: datetime | None) -> Period:
    """[start, end), each defaulting to the current billing period's bound."""
    if start is None or end is None:
        current = await charges.billing_period_at(uow, principal=principal, subscription=subscription,
                                                  at=uow.clock.now())
        if current is None:
            missing = "timeframe_start" if start is None else "timeframe_end"
            raise ValidationFailed(missing, "is required: the subscription has no current billing period")
        start, end = start or current.start, end or current.end
    for name, instant in (("timeframe_start", start), ("timeframe_end", end)):
        if instant.tzinfo is None:
            raise ValidationFailed(name, "needs a timezone (Z or an offset)")
    if end <= start:
        raise ValidationFailed("timeframe_end", "must be after timeframe_start")
    return Period(start.astimezone(UTC), end.astimezone(UTC))


def _life(subscription: Subscription, window: Period) -> Period | None:
    """The part of the window the subscription is alive for (its events count there only)."""
    return window.intersection(Period(subscription.start_date, subscription.end_date or max(window.end,
                                                                                          subscription.start_date)))


async def _metrics(uow: UnitOfWork, principal: Principal, subscription: Subscription,
                   window: Period) -> list[BillableMetric]:
    """The billable metrics of the plans the subscription is on during the window, in price order."""
    phases = await schedule.plan_phases(uow, principal=principal, subscription=subscription)
    plan_ids = list(dict.fromkeys(
        p.plan_id for p in phases if Period(p.start, max(p.end or window.end, p.start)).intersection(window)))
    if not plan_ids:  # a window outside the subscription's life: its plans' metrics, all at zero
        plan_ids = list(dict.fromkeys(p.plan_id for p in phases))
    grouped = await price_service.prices_by_plan_ids(uow, principal=principal, plan_ids=plan_ids)
    ids = list(dict.fromkeys(price.billable_metric_id for plan_id in plan_ids for price in grouped[plan_id]
                             if price.billable_metric_id is not None))
    found = await metrics_by_ids(uow, principal=principal, ids=ids)
    return [found[i] for i in ids if i in found]


def _days(window: Period) -> list[Period]:
    """The UTC days of the window, the first and last cut to it."""
    first = datetime.combine(window.start.date(), datetime.min.time(), UTC)
    days = []
    day = first
    while day < window.end:
        days.append(Period(max(day, window.start), min(day + _DAY, window.end)))
        day += _DAY
    return days


async def subscription_usage(
    uow: UnitOfWork, *, principal: Principal, subscription_id: str, timeframe_start: datetime | None = None,
    timeframe_end: datetime | None = None, granularity: str | None = None, billable_metric_id: str | None = None,
    group_by: str | None = None, view_mode: str | None = None, second_dimension_key: str | None = None,
) -> list[MetricUsage]:
    """Per billable metric of the subscription's plans, its quantity over the window (or per day); with
    ``group_by``, the one metric ``billable_metric_id`` names per value of that event property."""
    _check_grouping(group_by, billable_metric_id, second_dimension_key)
    mode = _view_mode(view_mode)
    if granularity is not None and granularity not in GRANULARITIES:
        raise ValidationFailed("granularity", f"must be one of {', '.join(GRANULARITIES)} (or left out for the "
                                              "whole window)")
    subscription = await subscriptions.get_subscription(uow, principal=principal, subscription_id=subscription_id)
    window = await _window(uow, principal, subscription, timeframe_start, timeframe_end)
    metrics = await _metrics(uow, principal, subscription, window)
    if billable_metric_id is not None:
        metrics = [m for m in metrics if m.id == billable_metric_id]
        if not metrics:
            raise ValidationFailed("billable_metric_id",
                                   f"{billable_metric_id!r} is not a billable metric of the subscription's plan")
    if granularity == "day" and window.end - window.start > MAX_USAGE_DAYS * _DAY:
        raise ValidationFailed("timeframe_end", f"a daily usage window is at most {MAX_USAGE_DAYS} days")
    days = _days(window) if granularity == "day" else None
    counted = _life(subscription, window)
    if group_by is not None:
        return await _grouped(uow, principal, subscription, metrics[0], group_by, window, days, counted, mode)
    result = []
    for metric in metrics:
        if days is None:
            used = Decimal(0) if counted is None else await evaluation.quantity(
                uow, principal=principal, definition=evaluation.stored_definition(metric.sql),
                customer_id=subscription.customer_id, start=counted.start, end=counted.end)
            buckets = [UsageBucket(used, window.start, window.end)]
        else:
            buckets = await _daily(uow, principal, subscription, metric, days, counted, mode)
        result.append(MetricUsage(metric=metric, usage=buckets, view_mode=mode))
    return result


def _check_grouping(group_by: object, billable_metric_id: str | None, second_dimension_key: object) -> None:
    if second_dimension_key is not None:
        raise ValidationFailed("second_dimension_key", "is not supported: usage groups by one event property "
                                                       "(Orb's metric_group carries one)")
    if group_by is None:
        return
    if not is_property_name(group_by):
        raise ValidationFailed("group_by", "must be an event property key (letters, digits, _ and -, at most 128)")
    if billable_metric_id is None:
        raise ValidationFailed("billable_metric_id", "is required with group_by (usage groups one metric at a time)")


async def _grouped(uow: UnitOfWork, principal: Principal, subscription: Subscription, metric: BillableMetric,
                   key: str, window: Period, days: list[Period] | None, counted: Period | None,
                   mode: str) -> list[MetricUsage]:
    """The metric per value of the property ``key``: each group's buckets as ungrouped usage has them."""
    definition = evaluation.stored_definition(metric.sql)
    scope = {"principal": principal, "definition": definition, "customer_id": subscription.customer_id,
             "group_by": key}
    if counted is None:
        return []  # nothing counts: no group has events
    if days is None:
        found = await evaluation.grouped_quantities(uow, start=counted.start, end=counted.end,
                                                    **scope)  # type: ignore[arg-type]
        per_group = {group: [UsageBucket(by_day[None], window.start, window.end)] for group, by_day in found.items()}
    elif mode == "cumulative" and definition.aggregate == "avg":
        # A running average is not a function of the daily ones: the metric over [start, day end) each day.
        per_day = [await evaluation.grouped_quantities(uow, start=counted.start, end=min(d.end, counted.end),
                                                       **scope)  # type: ignore[arg-type]
                   if min(d.end, counted.end) > counted.start else {} for d in days]
        groups = {group for day in per_day for group in day}
        per_group = {group: [UsageBucket(day.get(group, {}).get(None, Decimal(0)), d.start, d.end)
                             for d, day in zip(days, per_day, strict=True)] for group in groups}
    else:
        kind = "first_seen" if mode == "cumulative" and definition.aggregate == "count_distinct" else "daily"
        found = await evaluation.grouped_quantities(uow, start=counted.start, end=counted.end, kind=kind,
                                                    **scope)  # type: ignore[arg-type]
        per_group = {group: _buckets(definition.aggregate, by_day, days, mode)  # type: ignore[arg-type]
                     for group, by_day in found.items()}
    if len(per_group) > MAX_USAGE_GROUPS:
        raise ValidationFailed("group_by", f"has more than {MAX_USAGE_GROUPS} distinct values in the window; "
                                           "narrow the window or filter the metric")
    order = sorted(per_group, key=lambda group: (group is None, group or ""))
    return [MetricUsage(metric=metric, usage=per_group[group], view_mode=mode, group=MetricGroup(key, group))
            for group in order]


async def _daily(uow: UnitOfWork, principal: Principal, subscription: Subscription, metric: BillableMetric,
                 days: list[Period], counted: Period | None, mode: str) -> list[UsageBucket]:
    definition = evaluation.stored_definition(metric.sql)
    aggregate = definition.aggregate
    scope = {"principal": principal, "definition": definition, "customer_id": subscription.customer_id}
    if counted is None:
        return [UsageBucket(Decimal(0), d.start, d.end) for d in days]
    if mode == "cumulative" and aggregate == "avg":
        # A running average is not a function of the daily ones: the metric over [start, day end) each day.
        buckets = []
        for d in days:
            end = min(d.end, counted.end)
            used = (await evaluation.quantity(uow, start=counted.start, end=end, **scope)  # type: ignore[arg-type]
                    if end > counted.start else Decimal(0))
            buckets.append(UsageBucket(used, d.start, d.end))
        return buckets
    if mode == "cumulative" and aggregate == "count_distinct":
        per_day = await evaluation.distinct_first_seen(uow, start=counted.start, end=counted.end,
                                                       **scope)  # type: ignore[arg-type]
    else:
        per_day = await evaluation.daily_quantities(uow, start=counted.start, end=counted.end,
                                                    **scope)  # type: ignore[arg-type]
    return _buckets(aggregate, per_day, days, mode)


def _buckets(aggregate: str, per_day: Mapping[date | None, Decimal], days: list[Period],
             mode: str) -> list[UsageBucket]:
    """Each day's bucket from the days that have events: on its own, or cumulative from the first."""
    buckets, running = [], None
    for d in days:
        value = per_day.get(d.start.date())
        if mode == "periodic":
            buckets.append(UsageBucket(value if value is not None else Decimal(0), d.start, d.end))
            continue
        if value is not None:
            running = value if running is None else _combine(aggregate, running, value)
        buckets.append(UsageBucket(running if running is not None else Decimal(0), d.start, d.end))
    return buckets


def _combine(aggregate: str, running: Decimal, value: Decimal) -> Decimal:
    if aggregate == "max":
        return max(running, value)
    if aggregate == "min":
        return min(running, value)
    return running + value  # sum, count, and count_distinct's first-seen counts


# ---------------------------------------------------------------- costs


async def _billing_periods(uow: UnitOfWork, principal: Principal, subscription: Subscription,
                           window: Period) -> list[Period]:
    """The subscription's billing periods overlapping the window, in order."""
    periods: list[Period] = []
    at = max(window.start, subscription.start_date)
    catalog = charges.Catalog()  # the plan's prices and phases once for every period
    while at < window.end:
        period = await charges.billing_period_at(uow, principal=principal, subscription=subscription, at=at,
                                                 catalog=catalog)
        if period is None:
            break
        if len(periods) == MAX_COST_PERIODS:
            raise ValidationFailed("timeframe_end", f"a costs window spans at most {MAX_COST_PERIODS} billing periods")
        periods.append(period)
        at = period.end
    return periods


def _per_price(lines: list[charges.Charge], prices: dict[str, Price]) -> list[PriceCost]:
    """A period's lines summed per price: usage quantities add up; a fixed fee shows its latest quantity."""
    costs: dict[str, PriceCost] = {}
    for line in lines:
        if line.price_id is None or line.price_id not in prices:
            continue
        price = prices[line.price_id]
        cost = costs.get(price.id)
        if cost is None:
            costs[price.id] = PriceCost(price=price, subtotal=line.amount, quantity=line.quantity)
            continue
        cost.subtotal += line.amount
        cost.quantity = cost.quantity + line.quantity if price.billable_metric_id is not None else line.quantity
    return list(costs.values())


def _accumulate(timeframes: list[CostTimeframe]) -> list[CostTimeframe]:
    """Each timeframe from the first one's start, with everything before it added."""
    result, running = [], {}  # type: ignore[var-annotated]
    for frame in timeframes:
        for cost in frame.per_price_costs:
            seen = running.get(cost.price.id)
            if seen is None:
                running[cost.price.id] = PriceCost(cost.price, cost.subtotal, cost.quantity)
            else:
                seen.subtotal += cost.subtotal
                seen.quantity = (seen.quantity + cost.quantity if cost.price.billable_metric_id is not None
                                 else cost.quantity)
        result.append(CostTimeframe(timeframes[0].timeframe_start, frame.timeframe_end,
                                    [PriceCost(c.price, c.subtotal, c.quantity) for c in running.values()]))
    return result


async def _costs_of(uow: UnitOfWork, principal: Principal, subscription: Subscription,
                    window: Period, mode: str) -> list[CostTimeframe]:
    periods = await _billing_periods(uow, principal, subscription, window)
    frames = []
    for period in periods:
        lines = await charges.period_charges(uow, principal=principal, subscription=subscription, period=period)
        found = await price_service.prices_by_ids(
            uow, principal=principal, ids=list(dict.fromkeys(li.price_id for li in lines if li.price_id)))
        frames.append(CostTimeframe(period.start, period.end, _per_price(lines, found)))
    return _accumulate(frames) if mode == "cumulative" else frames


async def subscription_costs(
    uow: UnitOfWork, *, principal: Principal, subscription_id: str, timeframe_start: datetime | None = None,
    timeframe_end: datetime | None = None, view_mode: str | None = None,
) -> list[CostTimeframe]:
    """The costs of each billing period of the subscription overlapping the window."""
    mode = _view_mode(view_mode)
    subscription = await subscriptions.get_subscription(uow, principal=principal, subscription_id=subscription_id)
    window = await _window(uow, principal, subscription, timeframe_start, timeframe_end)
    return await _costs_of(uow, principal, subscription, window, mode)


async def customer_costs(
    uow: UnitOfWork, *, principal: Principal, customer_id: str | None = None,
    external_customer_id: str | None = None, timeframe_start: datetime | None = None,
    timeframe_end: datetime | None = None, view_mode: str | None = None,
) -> list[CostTimeframe]:
    """The costs of all the customer's subscriptions, their timeframes merged when they coincide.

    Without a window, each subscription's current billing period; a subscription that has none
    (upcoming, ended) then adds nothing.
    """
    mode = _view_mode(view_mode)
    if customer_id is None and external_customer_id is None:
        raise ValidationFailed("customer_id", "customer_id or external_customer_id is required")
    if customer_id is not None and external_customer_id is not None:
        raise ValidationFailed("external_customer_id", "give customer_id or external_customer_id, not both")
    if customer_id is not None:
        customer = await customers.get_customer(uow, principal=principal, customer_id=customer_id)
    else:
        customer = await customers.get_customer_by_external_id(
            uow, principal=principal, external_customer_id=external_customer_id)  # type: ignore[arg-type]
    if timeframe_start is not None and timeframe_end is not None and timeframe_end <= timeframe_start:
        raise ValidationFailed("timeframe_end", "must be after timeframe_start")
    merged: dict[tuple[datetime, datetime], CostTimeframe] = {}
    after_id = None
    while True:
        page = await subscriptions.list_subscriptions(uow, principal=principal, customer_id=customer.id,
                                                      limit=100, after_id=after_id)
        for subscription in page.items:
            try:
                window = await _window(uow, principal, subscription, timeframe_start, timeframe_end)
            except ValidationFailed:
                if timeframe_start is None or timeframe_end is None:
                    continue  # no current billing period to default to
                raise
            for frame in await _costs_of(uow, principal, subscription, window, mode):
                key = (frame.timeframe_start, frame.timeframe_end)
                merged.setdefault(key, CostTimeframe(*key)).per_price_costs.extend(frame.per_price_costs)
        if not page.has_more:
            break
        after_id = page.items[-1].id
    return [merged[key] for key in sorted(merged)]
