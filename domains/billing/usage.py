"""A subscription's usage and costs over a window (Orb's GET /subscriptions/{id}/usage and /costs,
/customers/{id}/costs). Reads only.

Usage: per billable metric of the plans the subscription is on during the window, the metric's
quantity over the whole window or per UTC day (``granularity=day``), ``periodic`` (each bucket on its
own) or ``cumulative`` (each bucket from the window's start). Only the customer's events within the
subscription's life count. Each metric is one SQL statement per request (grouped by day in SQL),
except the cumulative daily view of an ``avg`` metric, which is one statement per day (a running
average cannot be derived from daily averages).

Costs: the charges of each billing period overlapping the window, as its invoice bills them
(``charges.period_charges``: plan changes, fixed-fee quantities and proration included), per price.
``cumulative`` adds each period to the ones before it. The window defaults to the current billing period.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from domains.billing import charges, schedule, subscriptions
from domains.billing.periods import Period
from domains.catalog import prices as price_service
from domains.customers import service as customers
from domains.errors import ValidationFailed
from domains.metering import evaluation
from domains.metering.metrics import metrics_by_ids
from domains.tenancy.service import Principal
from domains.unit_of_work import UnitOfWork
from persistence.tables import BillableMetric, Price, Subscription

VIEW_MODES = ("periodic", "cumulative")
GRANULARITIES = ("day",)
MAX_USAGE_DAYS = 366
MAX_COST_PERIODS = 60
_DAY = timedelta(days=1)


@dataclass(frozen=True)
class UsageBucket:
    quantity: Decimal
    timeframe_start: datetime
    timeframe_end: datetime


@dataclass(frozen=True)
class MetricUsage:
    metric: BillableMetric
    usage: list[UsageBucket]
    view_mode: str


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
    if mode not in VIEW_MODES:
        raise ValidationFailed("view_mode", f"must be one of {', '.join(VIEW_MODES)}")
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
    group_by: str | None = None, view_mode: str | None = None,
) -> list[MetricUsage]:
    """Per billable metric of the subscription's plans, its quantity over the window (or per day)."""
    if group_by is not None:
        raise ValidationFailed("group_by", "grouping usage by an event property is not supported")
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
    while at < window.end:
        period = await charges.billing_period_at(uow, principal=principal, subscription=subscription, at=at)
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
