"""What a subscription charges for one billing period: the line items of its invoice. Reads only.

Which invoice a charge lands on (Orb's behaviour: its invoices "are generated at the end of a billing
period, or as the result of an action, such as a cancellation"): the invoice of billing period ``P``
holds P's fixed fees (priced in advance: the fee for what of P the subscription covers, prorated by
day with ``periods.prorate`` when a plan phase, or a fixed-fee quantity, covers only part of P) and P's usage (in arrears:
the metric's quantity over phase ∩ P, priced by the price's model), and is issued when P ends.
So ``periods.invoice_date``'s finer rule (an in-advance fee on an invoice dated at the start of what
it covers) is not followed here: one invoice per period, both kinds of charge on it.

Prices whose cadence is longer than the billing period (an annual fee on a monthly plan) land on
the invoice of the billing period holding the start of what they cover (fixed) or its end (usage),
so an annual fee bills once a year and a quarterly usage price prices the quarter's usage once.
A ``one_time`` fee bills on the invoice of the period where its plan phase starts, never prorated.
A phased plan (``catalog.plan_phases``) bills each price only over its own phase: a phase boundary
cuts the period like a plan change does (fixed fees prorated by day, usage per phase in arrears).
A free trial (``subscriptions.trial_end_date``) bills no fixed fee before its end: a period it cuts
bills the fee for the days after it, prorated like a mid-period start; a one-time fee whose phase
starts in the trial is not billed. Usage is billed as usual. A plan change's ``trial_duration_days``
is the same from the change's date on.

Billing periods and the grids fees are prorated on follow the subscription's billing cycles
(domains.billing.cycles): a plan change re-anchoring them closes the running period at the change, and so
does the start of a phase with align_billing_with_phase_start_date.

Each line's amount is rounded once, to the currency's minor unit (ROUND_HALF_UP), from the exact
amount the pricing model gives.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TypeVar

from domains.billing import cycles, schedule
from domains.billing.periods import Period, period_boundary, prorate
from domains.billing.subscriptions import billing_cadence
from domains.catalog import prices as price_service
from domains.catalog.plan_phases import PhaseDefinition
from domains.catalog.pricing import amount_for
from domains.currencies import minor_unit_places
from domains.errors import ConstraintViolation
from domains.metering.evaluation import quantity as metric_quantity
from domains.metering.evaluation import stored_definition
from domains.metering.metric_sql import MetricDefinition
from domains.metering.metrics import get_metric
from domains.tenancy.service import Principal
from domains.unit_of_work import UnitOfWork
from persistence.tables import Price, Subscription, SubscriptionPlanChange

T = TypeVar("T")


@dataclass(frozen=True)
class Charge:
    """One line of a subscription's invoice: a price over ``[start_date, end_date)``."""

    name: str
    price_id: str | None
    item_id: str | None
    quantity: Decimal
    amount: Decimal
    start_date: datetime
    end_date: datetime


class Catalog:
    """The plans' prices and phases and the metrics' definitions, read once per organisation and kept for
    a run over many subscriptions (a period close): none changes once created (prices and plan phases
    have no update; a metric's SQL is immutable), so re-reading them per subscription would only add
    round trips."""

    def __init__(self) -> None:
        self._prices: dict[tuple[str, str], list[Price]] = {}
        self._definitions: dict[tuple[str, str], MetricDefinition] = {}
        self._phases: dict[tuple[str, str], list[PhaseDefinition]] = {}

    async def phase_definitions(self, uow: UnitOfWork, principal: Principal,
                                plan_ids: Iterable[str]) -> dict[str, list[PhaseDefinition]]:
        """The phases of the phased plans among ``plan_ids`` (a plan without phases is left out)."""
        kept = await _per_plan(self._phases, principal, plan_ids,
                               lambda missing: schedule.phase_definitions(uow, principal, missing))
        return {plan_id: defined for plan_id, defined in kept.items() if defined}

    async def prices_by_plan_ids(self, uow: UnitOfWork, principal: Principal,
                                 plan_ids: Iterable[str]) -> dict[str, list[Price]]:
        return await _per_plan(self._prices, principal, plan_ids,
                               lambda missing: price_service.prices_by_plan_ids(uow, principal=principal,
                                                                                plan_ids=missing))

    async def definition(self, uow: UnitOfWork, principal: Principal, metric_id: str) -> MetricDefinition:
        key = (principal.org_id, metric_id)
        if key not in self._definitions:
            metric = await get_metric(uow, principal=principal, metric_id=metric_id)
            self._definitions[key] = stored_definition(metric.sql)  # parsed once per process
        return self._definitions[key]


async def _per_plan(kept: dict[tuple[str, str], list[T]], principal: Principal, plan_ids: Iterable[str],
                    read: Callable[[list[str]], Awaitable[Mapping[str, list[T]]]]) -> dict[str, list[T]]:
    """Each plan's entry in ``kept`` (by organisation and plan id), the plans not kept yet read in one
    call (a plan ``read`` does not return keeps an empty list), in the order first asked."""
    wanted = list(dict.fromkeys(plan_ids))
    missing = [plan_id for plan_id in wanted if (principal.org_id, plan_id) not in kept]
    if missing:
        found = await read(missing)
        for plan_id in missing:
            kept[principal.org_id, plan_id] = found.get(plan_id, [])
    return {plan_id: kept[principal.org_id, plan_id] for plan_id in wanted}


def round_to_minor_unit(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-minor_unit_places(currency)), rounding=ROUND_HALF_UP)


def _horizon(after: datetime) -> datetime:
    # Far enough past an invoice period for the longest cadence (a year) to see its whole period.
    return period_boundary(after, 12, 1)


def subscription_billing_period(subscription: Subscription, cadences: Iterable[str], at: datetime,
                                changes: Iterable[SubscriptionPlanChange] = (),
                                plan_phases: schedule.PhaseDefinitions | None = None) -> Period | None:
    """The billing period holding ``at`` (cut to its billing cycle and at the subscription's end), or None
    outside its life. ``changes``: its plan change rows (a re-anchoring one starts a new cycle);
    ``plan_phases``: the phased plans' phases among them (a phase aligning billing starts one too)."""
    end = subscription.end_date
    if at < subscription.start_date or (end is not None and at >= end):
        return None
    return cycles.period_at(schedule.billing_cycles(subscription, changes, plan_phases), billing_cadence(cadences), at)


async def billing_period_at(
    uow: UnitOfWork, *, principal: Principal, subscription: Subscription, at: datetime,
    catalog: Catalog | None = None,
) -> Period | None:
    """The subscription's billing period holding ``at`` (its plan's shortest cadence), or None."""
    catalog = catalog or Catalog()
    grouped = await catalog.prices_by_plan_ids(uow, principal, [subscription.plan_id])
    changes = await schedule.plan_changes_of(uow, principal, subscription.id)
    defined = await catalog.phase_definitions(uow, principal, schedule.plan_ids_of(subscription, changes))
    return subscription_billing_period(subscription, (p.cadence for p in grouped[subscription.plan_id]), at, changes,
                                       defined)


async def period_charges(
    uow: UnitOfWork, *, principal: Principal, subscription: Subscription, period: Period,
    catalog: Catalog | None = None,
) -> list[Charge]:
    """The line items of ``subscription``'s invoice for billing ``period``, from its plan phases.

    Usage amounts come from the events ingested so far: called before the period ends, it gives
    the draft's running amounts. ``catalog`` keeps prices and metrics across calls (see Catalog).
    """
    catalog = catalog or Catalog()
    # The change rows once: for the phases, and for what they say besides the plan (re-anchoring, trials).
    plan_changes = await schedule.plan_changes_of(uow, principal, subscription.id)
    defined = await catalog.phase_definitions(uow, principal, schedule.plan_ids_of(subscription, plan_changes))
    phases = schedule.phases_of(subscription, plan_changes, defined)
    billing_cycles = schedule.billing_cycles(subscription, plan_changes, defined)
    # Free trials: the subscription's from its start, and a plan change's on its new plan from its date.
    trials = [Period(subscription.start_date, subscription.trial_end_date)] \
        if subscription.trial_end_date is not None and subscription.trial_end_date > subscription.start_date else []
    trials += [Period(c.effective_date, c.effective_date + timedelta(days=c.trial_duration_days))
               for c in plan_changes if c.trial_duration_days]
    grouped = await catalog.prices_by_plan_ids(uow, principal, (p.plan_id for p in phases))
    changes = await schedule.quantity_changes_by_subscription_ids(
        uow, principal=principal, subscription_ids=[subscription.id])
    # Fixed fees by the quantity in effect (quantity changes cut a phase into segments).
    fixed = schedule.fixed_fee_schedule_of(subscription, phases, grouped, changes.get(subscription.id, []))
    charges: list[Charge] = []
    for phase in phases:
        end = phase.end if phase.end is not None else _horizon(period.end)
        if end <= phase.start or Period(phase.start, end).intersection(period) is None:
            continue
        active = Period(phase.start, end)
        for price in schedule.phase_prices(grouped, phase):
            if price.billable_metric_id is not None:
                charges.extend(await _usage_charges(uow, principal, catalog, subscription, billing_cycles, price,
                                                    active, period))
                continue
            for entry in fixed:
                if entry.price_id != price.id or not (active.start <= entry.start < active.end):
                    continue
                segment = Period(entry.start, min(entry.end or active.end, active.end))
                # A free trial: no fixed fee during it (the rest of the period is prorated).
                for billed in _outside(segment, trials):
                    # A one-time fee bills once, for the quantity in effect when its phase starts (not in a trial).
                    if price.cadence == "one_time" and billed.start != active.start:
                        continue
                    charges.extend(_fixed_charges(billing_cycles, price, billed, period, entry.quantity))
    return charges


def _outside(segment: Period, trials: Sequence[Period]) -> list[Period]:
    """The parts of ``segment`` no trial covers, in order."""
    parts = [segment]
    for trial in trials:
        kept: list[Period] = []
        for part in parts:
            if part.intersection(trial) is None:
                kept.append(part)
                continue
            if part.start < trial.start:
                kept.append(Period(part.start, trial.start))
            if trial.end < part.end:
                kept.append(Period(trial.end, part.end))
        parts = kept
    return parts


def _fixed_charges(billing_cycles: Sequence[cycles.Cycle], price: Price, active: Period, period: Period,
                   quantity: Decimal) -> list[Charge]:
    full = amount_for(price_service.price_config(price), quantity)
    charges = []
    for piece in cycles.covered_in_cycles(billing_cycles, price.cadence, active, window=period):
        if price.cadence == "one_time":
            if active.start not in period:
                continue
            amount = round_to_minor_unit(full, price.currency)
        elif piece.covered.start in period:
            amount = prorate(full, piece.covered, piece.period, price.currency)
        else:
            continue
        charges.append(Charge(name=price.name, price_id=price.id, item_id=price.item_id, quantity=quantity,
                              amount=amount, start_date=piece.covered.start, end_date=piece.covered.end))
    return charges


async def _usage_charges(
    uow: UnitOfWork, principal: Principal, catalog: Catalog, subscription: Subscription,
    billing_cycles: Sequence[cycles.Cycle], price: Price, active: Period, period: Period,
) -> list[Charge]:
    definition = await catalog.definition(uow, principal, price.billable_metric_id)  # type: ignore[arg-type]
    charges = []
    for piece in cycles.covered_in_cycles(billing_cycles, price.cadence, active, window=period):
        # In arrears: on the invoice of the billing period where what it covers ends.
        if not period.start < piece.covered.end <= period.end:
            continue
        used = await metric_quantity(uow, principal=principal, definition=definition,
                                     customer_id=subscription.customer_id,
                                     start=piece.covered.start, end=piece.covered.end)
        try:
            amount = amount_for(price_service.price_config(price), used)
        except (ValueError, ArithmeticError) as exc:  # e.g. negative usage, which no model prices
            raise ConstraintViolation(f"price {price.id} cannot price a quantity of {used}: {exc}",
                                      field="price_id") from None
        charges.append(Charge(name=price.name, price_id=price.id, item_id=price.item_id, quantity=used,
                              amount=round_to_minor_unit(amount, price.currency),
                              start_date=piece.covered.start, end_date=piece.covered.end))
    return charges
