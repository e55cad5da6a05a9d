"""A subscription's schedule: which plan it is on over time, its fixed fees' quantities over time,
and changing them.

Storage: ``subscriptions.plan_id`` is the plan the subscription *started* on; each plan change is a
row (``subscription_plan_changes``) saying "from ``effective_date`` on, plan X". The phases are
derived from both and the end date, so a scheduled change takes effect by the clock, with no job,
and the current plan (what the faces show as the subscription's plan) is the plan of the phase
holding now: ``current_plan_id``. A phased plan's span is cut further at its phases' boundaries
(domains.catalog.plan_phases); a phase transition (trigger_phase, initial_phase_order) is a change row
on the same plan naming the phase it starts (``plan_phase_order``; domains.billing.phases). The billing
cycles (domains.billing.cycles) follow from the same rows: ``billing_cycles``.

Rules (as Orb's schedule_plan_change): ``immediate`` changes at now (at the start for an upcoming
subscription), ``end_of_subscription_term`` at the end of the current term (as cancellation computes
it), ``requested_date`` at ``change_date`` (backdating allowed, not before the start nor at/after the
end). At most one change is pending (in the future): a new change replaces it, and also supersedes
every change at or after its own date (a backdated change rewrites the history after it); the current
plan's phase transitions dated before both (a trigger_phase ahead) stay, as its phase schedule. The plan
must be active and bill in the subscription's currency. A backdated change that would move billing
periods already invoiced (re-anchoring them, or undoing a re-anchoring) is refused:
``refuse_rebilling_invoiced``; so is any change dated inside billing already invoiced
(``subscriptions.refuse_before_invoiced``: the close goes on from the invoiced end, so the new plan would
never bill what was invoiced on the old one).

Fixed fee quantities follow the same pattern per (subscription, price): ``subscription_price_quantities``
rows, derived into ``fixed_fee_quantities`` intervals; see ``change_fixed_fee_quantity``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, DecimalException
from typing import Any, NamedTuple

from sqlalchemy import bindparam, delete, or_, select

from domains.amounts import bounded
from domains.billing import cycles, subscriptions
from domains.billing.periods import Period
from domains.catalog import plans, prices
from domains.catalog.plan_phases import PhaseDefinition, definitions, in_phase, spans
from domains.errors import ConstraintViolation, NotFound, ValidationFailed
from domains.pagination import Page, page_size
from domains.tenancy.service import Principal
from domains.text import one_of, refuse_unknown
from domains.unit_of_work import UnitOfWork
from persistence.ids import new_id
from persistence.tables import Price, Subscription, SubscriptionPlanChange, SubscriptionPriceQuantity

CHANGE_OPTIONS = ("requested_date", "end_of_subscription_term", "immediate")
_CHANGE_FIELDS = frozenset({"change_option", "change_date", "plan_id", "external_plan_id", "billing_cycle_alignment",
                            "align_billing_with_plan_change_date", "net_terms", "auto_collection",
                            "default_invoice_memo", "trial_duration_days", "plan_version_number"})
_CHANGE_COLUMNS = list(SubscriptionPlanChange.__table__.columns)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class PlanPhase:
    plan_id: str
    start: datetime
    end: datetime | None   # None = open-ended
    phase_order: int | None = None  # the plan's phase (Orb's plan_phases) in effect; None: the plan has none


PhaseDefinitions = Mapping[str, Sequence[PhaseDefinition]]  # a phased plan's phases, by plan id


@dataclass(frozen=True)
class ScheduledPlan:
    """One entry of Orb's subscription schedule: a phase and when the change that began it was made.

    ``id`` is the plan change's id (the subscription's for the starting plan): the page cursor."""

    id: str
    plan_id: str
    start_date: datetime
    end_date: datetime | None
    created_at: datetime
    phase_order: int | None = None  # a phase transition (trigger_phase): the plan's phase it starts in


def _entries(subscription: Subscription, changes: Iterable[SubscriptionPlanChange], *,
             open_ended: bool = False) -> list[ScheduledPlan]:
    """The phases tiling [start_date, end_date), in order: changes at or after the end are cut off,
    a change at the start replaces the starting plan, and a change to the plan already in effect
    does not split a phase (unless it is a phase transition, which names the plan's phase).
    ``open_ended``: as if the subscription had no end date."""
    end = None if open_ended else subscription.end_date
    entries: list[ScheduledPlan] = []
    key, plan_id, start, made = subscription.id, subscription.plan_id, subscription.start_date, subscription.created_at
    order: int | None = None
    # Rows on one date in the order they were made: a trigger_phase on a plan change's date comes after it.
    for change in sorted(changes, key=lambda c: (c.effective_date, c.created_at, c.id)):
        if end is not None and change.effective_date >= end:
            break
        if change.effective_date <= start:
            key, plan_id, made, order = change.id, change.plan_id, change.created_at, change.plan_phase_order
            continue
        if change.plan_id == plan_id and change.plan_phase_order is None:
            continue
        entries.append(ScheduledPlan(key, plan_id, start, change.effective_date, made, order))
        key, plan_id, start, made = change.id, change.plan_id, change.effective_date, change.created_at
        order = change.plan_phase_order
    entries.append(ScheduledPlan(key, plan_id, start, end, made, order))
    return entries


def _by_plan(entries: list[ScheduledPlan]) -> list[ScheduledPlan]:
    """The entries with a phased plan's phase transitions (same plan) merged: Orb's schedule lists plans."""
    merged: list[ScheduledPlan] = []
    for entry in entries:
        if merged and merged[-1].plan_id == entry.plan_id:
            merged[-1] = replace(merged[-1], end_date=entry.end_date)
        else:
            merged.append(entry)
    return merged


def _phased(entries: Iterable[ScheduledPlan], plan_phases: PhaseDefinitions | None) -> list[tuple[ScheduledPlan, PlanPhase]]:
    """Each schedule entry cut into the phases of its plan (one phase for a plan without phases)."""
    result = []
    for entry in entries:
        defined = (plan_phases or {}).get(entry.plan_id)
        if not defined:
            result.append((entry, PlanPhase(entry.plan_id, entry.start_date, entry.end_date)))
            continue
        for span in spans(defined, entry.start_date, entry.end_date, entry.phase_order or 1):
            result.append((entry, PlanPhase(entry.plan_id, span.start, span.end, span.order)))
    return result


def phases_of(subscription: Subscription, changes: Iterable[SubscriptionPlanChange],
              plan_phases: PhaseDefinitions | None = None) -> list[PlanPhase]:
    """Pure: the plan phases of a subscription given its plan change rows and the phased plans' phases
    (``plan_phases``, by plan id): a phased plan's span is cut at its phases' boundaries."""
    return [phase for _, phase in _phased(_entries(subscription, changes), plan_phases)]


def aligned_phase_starts(subscription: Subscription, changes: Iterable[SubscriptionPlanChange],
                         plan_phases: PhaseDefinitions | None, *, open_ended: bool = False) -> list[datetime]:
    """Pure: where the phases with align_billing_with_phase_start_date begin, each re-anchoring billing
    (domains.billing.cycles), however the phase was reached: its predecessor's duration, a trigger_phase
    row or a plan change into the plan. Not at the subscription's start (its own anchor, from
    billing_cycle_anchor_configuration or the start, stands) nor at a plan change carrying its own
    billing_cycle_alignment (the change's word is the later, more specific one)."""
    aligning = {(plan_id, d.order) for plan_id, defined in (plan_phases or {}).items() for d in defined
                if d.align_billing}
    if not aligning:
        return []
    changes = list(changes)
    explicit = {c.effective_date for c in changes if c.billing_cycle_alignment not in (None, "unchanged")}
    return [phase.start for _, phase in _phased(_entries(subscription, changes, open_ended=open_ended), plan_phases)
            if (phase.plan_id, phase.phase_order) in aligning and phase.start > subscription.start_date
            and phase.start not in explicit]


def billing_cycles(subscription: Subscription, changes: Iterable[SubscriptionPlanChange],
                   plan_phases: PhaseDefinitions | None = None, *, open_ended: bool = False) -> list[cycles.Cycle]:
    """Pure: the subscription's billing cycles from its plan change rows (all of them: the phases need
    every change) and the phased plans' phases (a phase aligning billing re-anchors at its start)."""
    changes = list(changes)
    return cycles.subscription_cycles(subscription, changes, open_ended=open_ended,
                                      phase_starts=aligned_phase_starts(subscription, changes, plan_phases,
                                                                        open_ended=open_ended))


async def subscription_billing_cycles(uow: UnitOfWork, principal: Principal, subscription: Subscription, *,
                                      open_ended: bool = False) -> list[cycles.Cycle]:
    """``billing_cycles`` read from the database: the change rows, then the phases of the plans they name."""
    changes = await plan_changes_of(uow, principal, subscription.id)
    defined = await phase_definitions(uow, principal, plan_ids_of(subscription, changes))
    return billing_cycles(subscription, changes, defined, open_ended=open_ended)


def phase_at(phases: Sequence[PlanPhase], now: datetime) -> PlanPhase:
    """The phase holding now; the first before the start, the last after the end."""
    for phase in phases:
        if phase.start <= now and (phase.end is None or now < phase.end):
            return phase
    return phases[0] if now < phases[0].start else phases[-1]


def current_plan_id(phases: Sequence[PlanPhase], now: datetime) -> str:
    """The plan of the phase holding now; the first plan before the start, the last one after the end."""
    return phase_at(phases, now).plan_id


def phase_prices(prices_by_plan: Mapping[str, Sequence[Price]], phase: PlanPhase) -> list[Price]:
    """The prices a phase bills: its plan's, only those of the plan's phase in effect for a phased plan."""
    return [p for p in prices_by_plan.get(phase.plan_id, []) if in_phase(p.plan_phase_order, phase.phase_order)]


def phase_definitions_of(plan_rows: Iterable[Any]) -> dict[str, list[PhaseDefinition]]:
    """The phases of the phased plans among ``plan_rows`` (rows with ``id`` and ``plan_phases``)."""
    return {row.id: definitions(row.plan_phases) for row in plan_rows if row is not None and row.plan_phases}


def plan_ids_of(subscription: Subscription, changes: Iterable[SubscriptionPlanChange]) -> list[str]:
    """Every plan the subscription is or was scheduled on (whose phases the derivation may need)."""
    return sorted({subscription.plan_id, *(c.plan_id for c in changes)})


async def phase_definitions(uow: UnitOfWork, principal: Principal,
                            plan_ids: Sequence[str]) -> dict[str, list[PhaseDefinition]]:
    found = await plans.plans_by_ids(uow, principal=principal, ids=list(plan_ids))
    return phase_definitions_of(found.values())


# Built once, with bound parameters: a statement built per call is compiled again by the reader on
# every call (its cache knows statements by identity), and these two run for each loader batch.
_CHANGES_OF_SUBSCRIPTIONS = (
    select(*_CHANGE_COLUMNS)
    .where(SubscriptionPlanChange.org_id == bindparam("org_id"),
           SubscriptionPlanChange.subscription_id.in_(bindparam("subscription_ids", expanding=True)))  # type: ignore[attr-defined]
    .order_by(SubscriptionPlanChange.effective_date, SubscriptionPlanChange.created_at,  # type: ignore[arg-type]
              SubscriptionPlanChange.id)
)


async def _rows_by_subscription(uow: UnitOfWork, principal: Principal, statement: Any,
                                subscription_ids: Sequence[str]) -> dict[str, list[Any]]:
    """The rows `statement` reads for many subscriptions in one go, grouped by subscription id."""
    if not subscription_ids:
        return {}
    grouped: dict[str, list[Any]] = {}
    for row in await uow.rows(statement, {"org_id": principal.org_id,
                                          "subscription_ids": list(set(subscription_ids))}):
        grouped.setdefault(row.subscription_id, []).append(row)
    return grouped


async def plan_changes_by_subscription_ids(
    uow: UnitOfWork, *, principal: Principal, subscription_ids: Sequence[str]
) -> dict[str, list[SubscriptionPlanChange]]:
    """The plan change rows of many subscriptions in one statement, oldest first (the loaders' batch)."""
    return await _rows_by_subscription(uow, principal, _CHANGES_OF_SUBSCRIPTIONS, subscription_ids)


async def plan_changes_of(uow: UnitOfWork, principal: Principal, subscription_id: str) -> list[SubscriptionPlanChange]:
    """One subscription's plan change rows, oldest first."""
    grouped = await plan_changes_by_subscription_ids(uow, principal=principal, subscription_ids=[subscription_id])
    return grouped.get(subscription_id, [])


async def plan_phases(uow: UnitOfWork, *, principal: Principal, subscription: Subscription,
                      changes: Sequence[SubscriptionPlanChange] | None = None) -> list[PlanPhase]:
    """The plans (and phased plans' phases) a subscription is on over time, in order, tiling
    [start_date, end_date). ``changes``: its plan change rows when the caller has them already."""
    if changes is None:
        changes = await plan_changes_of(uow, principal, subscription.id)
    defined = await phase_definitions(uow, principal, plan_ids_of(subscription, changes))
    return phases_of(subscription, changes, defined)


async def list_schedule(
    uow: UnitOfWork, *, principal: Principal, subscription_id: str, limit: int | None = None,
    after_id: str | None = None,
) -> Page[ScheduledPlan]:
    """The subscription's schedule (Orb's GET /subscriptions/{id}/schedule), oldest phase first."""
    limit = page_size(limit)
    subscription = await subscriptions.get_subscription(uow, principal=principal, subscription_id=subscription_id)
    entries = _by_plan(_entries(subscription, await plan_changes_of(uow, principal, subscription.id)))
    if after_id is not None:
        keys = [entry.id for entry in entries]
        # A cursor past a phase a later change removed restarts nowhere rather than repeating phases.
        entries = entries[keys.index(after_id) + 1:] if after_id in keys else []
    return Page.from_rows(entries[:limit + 1], limit)


def _change_date(fields: Mapping[str, Any]) -> datetime | None:
    option = fields.get("change_option")
    one_of("change_option", option, CHANGE_OPTIONS)
    given = fields.get("change_date")
    if option == "requested_date":
        if given is None:
            raise ValidationFailed("change_date", "is required when change_option is requested_date")
        return subscriptions.parse_instant("change_date", given)
    if given is not None:
        raise ValidationFailed("change_date", "is only taken when change_option is requested_date")
    return None


def _alignment(fields: Mapping[str, Any]) -> str:
    """``billing_cycle_alignment`` (default unchanged), or the older ``align_billing_with_plan_change_date``
    flag (true: plan_change_date); both given must agree."""
    alignment = fields.get("billing_cycle_alignment")
    if alignment is not None:
        one_of("billing_cycle_alignment", alignment, cycles.ALIGNMENTS)
    flag = fields.get("align_billing_with_plan_change_date")
    if flag is None:
        return alignment or "unchanged"
    if not isinstance(flag, bool):
        raise ValidationFailed("align_billing_with_plan_change_date", "must be true, false or null")
    implied = "plan_change_date" if flag else "unchanged"
    if alignment is not None and alignment != implied:
        raise ValidationFailed("align_billing_with_plan_change_date",
                               f"is {str(flag).lower()}, which disagrees with billing_cycle_alignment {alignment!r}")
    return implied


class ProposedChange(NamedTuple):
    """A plan change row not written yet, as the pure derivations read one."""

    id: str
    plan_id: str
    effective_date: datetime
    created_at: datetime
    plan_phase_order: int | None = None
    billing_cycle_alignment: str | None = None


def _cycles_through(cycle_list: Sequence[cycles.Cycle], until: datetime) -> list[tuple[datetime, datetime, datetime]]:
    # The cycles over [start, until], a cycle starting at ``until`` included: the invoiced periods end there.
    return [(c.start, until if c.end is None or c.end > until else c.end, c.anchor)
            for c in cycle_list if c.start <= until]


async def refuse_rebilling_invoiced(
    uow: UnitOfWork, principal: Principal, subscription: Subscription, *, proposed: ProposedChange,
    keep: Callable[[Any], bool], field: str, changes: Sequence[Any] | None = None,
) -> None:
    """Refuse a change (``proposed``, which keeps the change rows ``keep`` says and drops the others) that
    would move the billing cycles of what is already invoiced: re-anchoring there, or undoing a re-anchoring
    there (dropping an aligned phase or a re-anchoring change). Issued invoices stay as they were billed, and
    the period close goes on from the end of the last one, which must stay a period boundary.
    ``changes``: the subscription's change rows when the caller has them (read only when needed)."""
    invoiced = await subscriptions.last_invoiced(uow, principal, subscription.id)
    if invoiced is None or proposed.effective_date >= invoiced:
        return
    if changes is None:
        changes = await plan_changes_of(uow, principal, subscription.id)
    after = [*(c for c in changes if keep(c)), proposed]
    if await _invoiced_cycles_move(uow, principal, subscription, changes, after, invoiced):
        raise ConstraintViolation(f"billing is invoiced up to {invoiced.isoformat()}; this change would move the "
                                  "billing periods before that (re-anchoring them, or undoing a re-anchoring)",
                                  field=field)


async def refuse_shifting_invoiced(uow: UnitOfWork, principal: Principal, subscription: Subscription, *,
                                   shifted: Sequence[Any], by: timedelta, field: str) -> None:
    """Refuse moving the change rows ``shifted`` by ``by`` (update_trial's shift) when that would move the
    billing cycles of what is already invoiced (a re-anchoring change, or a plan whose phase aligns billing,
    moved into or out of invoiced billing): as ``refuse_rebilling_invoiced``."""
    if not shifted:
        return
    invoiced = await subscriptions.last_invoiced(uow, principal, subscription.id)
    if invoiced is None or min(min(c.effective_date, c.effective_date + by) for c in shifted) >= invoiced:
        return
    changes = await plan_changes_of(uow, principal, subscription.id)
    moving = {c.id for c in shifted}
    after = [ProposedChange(c.id, c.plan_id, c.effective_date + by, c.created_at, c.plan_phase_order,
                            c.billing_cycle_alignment) if c.id in moving else c for c in changes]
    if await _invoiced_cycles_move(uow, principal, subscription, changes, after, invoiced):
        raise ConstraintViolation(f"billing is invoiced up to {invoiced.isoformat()}; shifting the pending plan "
                                  "changes would move the billing periods before that (pass shift: false)",
                                  field=field)


async def _invoiced_cycles_move(uow: UnitOfWork, principal: Principal, subscription: Subscription,
                                before: Sequence[Any], after: Sequence[Any], invoiced: datetime) -> bool:
    """Whether the change rows ``after`` give the billing cycles up to ``invoiced`` other than ``before`` do."""
    defined = await phase_definitions(uow, principal, plan_ids_of(subscription, [*before, *after]))
    return (_cycles_through(billing_cycles(subscription, before, defined), invoiced)
            != _cycles_through(billing_cycles(subscription, after, defined), invoiced))


async def schedule_plan_change(
    uow: UnitOfWork, *, principal: Principal, subscription_id: str, fields: Mapping[str, Any]
) -> Subscription:
    """Move the subscription to another plan (by ``plan_id`` or ``external_plan_id``) at the date the
    ``change_option`` says, replacing any pending change (see the module's rules).

    ``billing_cycle_alignment`` (or ``align_billing_with_plan_change_date``) re-anchors the billing
    periods from the change on (domains.billing.cycles): the period running then closes at the change.
    Whatever the option, not inside billing already invoiced (what is invoiced stays as it was billed; a
    fee billed in advance holds the change back to the end of its invoiced service).
    ``trial_duration_days``: a free trial on the new plan from the change (no fixed fee of the new phase
    for that many days); by default the new plan's own trial, 0 for none. ``net_terms``,
    ``auto_collection`` and ``default_invoice_memo`` are set on the subscription when the change is made.
    """
    refuse_unknown(fields, _CHANGE_FIELDS, "a plan change field")
    requested = _change_date(fields)
    alignment = _alignment(fields)
    settings: dict[str, Any] = {}
    if fields.get("net_terms") is not None:
        settings["net_terms"] = subscriptions.net_terms_of(fields["net_terms"])
    if fields.get("auto_collection") is not None:
        settings["auto_collection"] = subscriptions.auto_collection_of(fields["auto_collection"])
    if fields.get("default_invoice_memo") is not None:
        settings["default_invoice_memo"] = subscriptions.memo_of(fields["default_invoice_memo"])
    trial_days = None if fields.get("trial_duration_days") is None \
        else subscriptions.trial_days_of(fields["trial_duration_days"])
    plan = await subscriptions.active_plan_of(uow, principal, fields)
    if trial_days is None:
        trial_days = plan.trial_period_days or 0
    plan_field = "plan_id" if fields.get("plan_id") is not None else "external_plan_id"
    now = uow.clock.now()
    async with uow.transaction():
        subscription = await subscriptions.lock_unended(uow, principal, subscription_id, now,
                                                         refusal="has ended; its plan cannot change")
        if plan.currency != subscription.currency:
            raise ValidationFailed(plan_field, f"the plan bills in {plan.currency}; the subscription bills in "
                                               f"{subscription.currency}")
        end = subscription.end_date
        if requested is not None:
            subscriptions.refuse_outside_life(subscription, "change_date", requested)
            at = requested
        elif fields["change_option"] == "immediate":
            at = max(now, subscription.start_date)
        else:
            at = await subscriptions.term_end(uow, principal, subscription, now)
            if end is not None and at >= end:
                raise ConstraintViolation(f"subscription {subscription_id!r} ends ({end.isoformat()}) before its "
                                          "term does; there is no next term to change plan at", field="change_option")
        # A backdated change may re-anchor billing (its alignment, the new plan's aligned phases) or undo a
        # re-anchoring (superseding a change, or leaving a plan whose aligned phase was to start): not before
        # what is invoiced.
        proposed = ProposedChange(new_id(), plan.id, at, now,
                                  billing_cycle_alignment=None if alignment == "unchanged" else alignment)
        # Superseded: the changes from its date on, and the pending plan change it replaces with what was
        # made on that plan (the current plan's phase transitions before either stay).
        changes = await plan_changes_of(uow, principal, subscription.id)
        pending = _first_pending_plan_change(changes, now)
        cut = at if pending is None else min(at, pending)
        await refuse_rebilling_invoiced(uow, principal, subscription, proposed=proposed, field="change_date",
                                        changes=changes, keep=lambda c: c.effective_date < cut)
        # Without re-anchoring too: the close goes on from the invoiced end, so the new plan would never bill
        # what of it was invoiced on the old one (nor an in-advance fee's unused service be credited).
        await subscriptions.refuse_before_invoiced(uow, principal, subscription, at=at, change="a plan change",
                                                   field="change_date" if requested is not None else "change_option")
        await drop_changes(uow, principal, subscription.id,
                           SubscriptionPlanChange.effective_date >= cut)  # type: ignore[operator]
        uow.session.add(SubscriptionPlanChange(
            id=proposed.id, org_id=principal.org_id, subscription_id=subscription.id, plan_id=plan.id,
            effective_date=at, created_at=now, billing_cycle_alignment=proposed.billing_cycle_alignment,
            trial_duration_days=trial_days or None))
        for name, value in settings.items():
            setattr(subscription, name, value)
        subscription.updated_at = now
        await uow.session.flush()
    return subscription


def _first_pending_plan_change(changes: Iterable[SubscriptionPlanChange], now: datetime) -> datetime | None:
    """When the first plan change a caller scheduled (a row naming no phase) still to take effect does."""
    return min((c.effective_date for c in changes if c.plan_phase_order is None and c.effective_date > now),
               default=None)


async def drop_changes(uow: UnitOfWork, principal: Principal, subscription_id: str, condition: Any) -> int:
    result = await uow.session.execute(delete(SubscriptionPlanChange).where(
        SubscriptionPlanChange.org_id == principal.org_id, SubscriptionPlanChange.subscription_id == subscription_id,
        condition))
    return result.rowcount  # type: ignore[attr-defined,no-any-return]


async def unschedule_pending_plan_changes(
    uow: UnitOfWork, *, principal: Principal, subscription_id: str
) -> Subscription:
    """Drop the plan change that has not taken effect yet: the subscription stays on its current plan.

    Its phase transitions before that change (a trigger_phase dated ahead, an initial_phase_order at a
    future start) are the current plan's own phase schedule and stay; those from the change's date on
    were made on the plan it leads to and go with it."""
    now = uow.clock.now()
    async with uow.transaction():
        subscription = await subscriptions.lock_unended(uow, principal, subscription_id, now)
        pending = _first_pending_plan_change(await plan_changes_of(uow, principal, subscription.id), now)
        if pending is None:
            raise ConstraintViolation(f"subscription {subscription_id!r} has no pending plan change",
                                      field="subscription_id")
        await drop_changes(uow, principal, subscription.id,
                           SubscriptionPlanChange.effective_date >= pending)  # type: ignore[operator]
        subscription.updated_at = now
        await uow.session.flush()
    return subscription



# --- fixed fee quantities ------------------------------------------------------------------------------

QUANTITY_CHANGE_OPTIONS = ("immediate", "upcoming_invoice", "effective_date")
_QUANTITY_FIELDS = frozenset({"price_id", "quantity", "effective_date", "change_option"})
_QUANTITY_COLUMNS = list(SubscriptionPriceQuantity.__table__.columns)  # type: ignore[attr-defined]


class QuantityInterval(NamedTuple):
    """``[start, end)`` (end None: open-ended) during which a fixed fee is billed for ``quantity``."""

    start: datetime
    end: datetime | None
    quantity: Decimal


def quantities_of(
    subscription: Subscription, base: Decimal, changes: Iterable[SubscriptionPriceQuantity]
) -> list[QuantityInterval]:
    """Pure: the quantity intervals tiling [start_date, end_date), from the price's own quantity and the
    changes (cut at the end; a change at the start replaces the base; equal neighbours merge)."""
    end = subscription.end_date
    intervals: list[QuantityInterval] = []
    quantity, start = base, subscription.start_date
    for change in sorted(changes, key=lambda c: c.effective_date):
        if end is not None and change.effective_date >= end:
            break
        if change.effective_date <= start:
            quantity = change.quantity
            continue
        if change.quantity == quantity:
            continue
        intervals.append(QuantityInterval(start, change.effective_date, quantity))
        quantity, start = change.quantity, change.effective_date
    intervals.append(QuantityInterval(start, end, quantity))
    return intervals


class FixedFeeQuantity(NamedTuple):
    """An entry of Orb's fixed_fee_quantity_schedule: a fixed fee's quantity while its plan is in effect."""

    price_id: str
    start: datetime
    end: datetime | None
    quantity: Decimal


def fixed_fee_schedule_of(
    subscription: Subscription, phases: Sequence[PlanPhase], prices_by_plan: Mapping[str, Sequence[Price]],
    changes: Iterable[SubscriptionPriceQuantity],
) -> list[FixedFeeQuantity]:
    """Pure: each phase's fixed fees with their quantity intervals cut to the phase, in time order."""
    by_price: dict[str, list[SubscriptionPriceQuantity]] = {}
    for change in changes:
        by_price.setdefault(change.price_id, []).append(change)
    entries: list[FixedFeeQuantity] = []
    for phase in phases:
        for price in phase_prices(prices_by_plan, phase):
            if prices.price_type(price) == "fixed_price":
                entries.extend(_quantities_in_phase(subscription, phase.start, phase.end, price,
                                                    by_price.get(price.id, [])))
    return sorted(entries, key=lambda e: (e.start, e.price_id))


def _quantities_in_phase(
    subscription: Subscription, start: datetime, end: datetime | None, price: Price,
    changes: Iterable[SubscriptionPriceQuantity],
) -> list[FixedFeeQuantity]:
    """A fixed fee's quantity intervals cut to the phase [start, end)."""
    entries = []
    for q_start, q_end, quantity in quantities_of(subscription, _base_quantity(price), changes):
        lo = max(q_start, start)
        ends = [e for e in (q_end, end) if e is not None]
        hi = min(ends) if ends else None
        if hi is None or lo < hi:
            entries.append(FixedFeeQuantity(price.id, lo, hi, quantity))
    return entries


@dataclass(frozen=True)
class PriceInterval:
    """One of Orb's price_intervals: a price of a plan phase, billed over the phase [start, end).

    ``id`` is derived (the phase's schedule key and the price id), so it is stable without being stored.
    ``current_period``: the billing period of the price's own cadence holding now, cut at the interval's end;
    None unless the subscription is active and now is in the interval. ``quantities`` (fixed fees only,
    None for usage): the quantity in effect from each date within the interval. ``deferred``: usage of an
    interval ending mid-period is billed on that period's invoice, not mid-cycle (Orb's can_defer_billing);
    fixed fees are billed in advance, so never.
    """

    id: str
    price: Price
    start: datetime
    end: datetime | None
    current_period: Period | None
    quantities: list[FixedFeeQuantity] | None
    deferred: bool


def price_intervals_of(
    subscription: Subscription, changes: Iterable[SubscriptionPlanChange], prices_by_plan: Mapping[str, Sequence[Price]],
    quantity_changes: Iterable[SubscriptionPriceQuantity], now: datetime, plan_phases: PhaseDefinitions | None = None,
) -> list[PriceInterval]:
    """Pure: one interval per price of each plan phase, in time order (a phase's prices in the plan's order;
    a phased plan's price over its own phase)."""
    by_price: dict[str, list[SubscriptionPriceQuantity]] = {}
    for change in quantity_changes:
        by_price.setdefault(change.price_id, []).append(change)
    active = subscriptions.subscription_status(subscription, now) == "active"
    changes = list(changes)
    cycle_list = billing_cycles(subscription, changes, plan_phases)
    intervals = []
    for entry, phase in _phased(_entries(subscription, changes), plan_phases):
        start, end = phase.start, phase.end
        running = active and start <= now and (end is None or now < end)
        for price in phase_prices(prices_by_plan, phase):
            period = None
            if running:
                period = cycles.period_at(cycle_list, price.cadence, now)
                if end is not None and end < period.end:
                    period = Period(period.start, end)
            fixed = prices.price_type(price) == "fixed_price"
            quantities = _quantities_in_phase(subscription, start, end, price, by_price.get(price.id, [])) \
                if fixed else None
            intervals.append(PriceInterval(f"{entry.id}_{price.id}", price, start, end, period, quantities,
                                           deferred=not fixed))
    return intervals


_QUANTITIES_OF_SUBSCRIPTIONS = (
    select(*_QUANTITY_COLUMNS)
    .where(SubscriptionPriceQuantity.org_id == bindparam("org_id"),
           SubscriptionPriceQuantity.subscription_id.in_(bindparam("subscription_ids", expanding=True)))  # type: ignore[attr-defined]
    .order_by(SubscriptionPriceQuantity.effective_date)  # type: ignore[arg-type]
)


async def quantity_changes_by_subscription_ids(
    uow: UnitOfWork, *, principal: Principal, subscription_ids: Sequence[str]
) -> dict[str, list[SubscriptionPriceQuantity]]:
    """The fixed fee quantity rows of many subscriptions in one statement (the loaders' batch)."""
    return await _rows_by_subscription(uow, principal, _QUANTITIES_OF_SUBSCRIPTIONS, subscription_ids)


def _base_quantity(price: Price) -> Decimal:
    return price.fixed_price_quantity if price.fixed_price_quantity is not None else Decimal(1)


async def _price_quantity_changes(
    uow: UnitOfWork, principal: Principal, subscription_id: str, price_id: str
) -> list[SubscriptionPriceQuantity]:
    rows = await uow.rows(
        select(*_QUANTITY_COLUMNS)
        .where(SubscriptionPriceQuantity.org_id == principal.org_id,
               SubscriptionPriceQuantity.subscription_id == subscription_id,
               SubscriptionPriceQuantity.price_id == price_id)
        .order_by(SubscriptionPriceQuantity.effective_date))  # type: ignore[arg-type]
    return list(rows)  # type: ignore[arg-type]


async def fixed_fee_quantities(
    uow: UnitOfWork, *, principal: Principal, subscription: Subscription, price_id: str
) -> list[QuantityInterval]:
    """The quantity a fixed fee is billed for over the subscription's life, in order, tiling
    [start_date, end_date): the price's fixed_price_quantity (1 when it has none) until the first change.

    The intervals cover the whole subscription; the fee is only billed while the subscription is on the
    price's plan, so invoicing intersects them with the plan_phases on that plan."""
    price = await prices.get_price(uow, principal=principal, price_id=price_id)
    changes = await _price_quantity_changes(uow, principal, subscription.id, price_id)
    return quantities_of(subscription, _base_quantity(price), changes)


def _quantity(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise ValidationFailed("quantity", "must be a number")
    try:
        quantity = Decimal(str(value))
    except DecimalException:
        raise ValidationFailed("quantity", f"{value!r} is not a number") from None
    if bounded("quantity", quantity) < 0:
        raise ValidationFailed("quantity", "must be at least 0")
    return quantity


def parse_effective_date(value: Any) -> datetime:
    """A date (midnight UTC, as Orb takes a date) or an ISO 8601 date-time with a timezone."""
    if isinstance(value, str) and len(value) == 10:
        try:
            day = datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        except ValueError:
            raise ValidationFailed("effective_date", f"{value!r} is not an ISO 8601 date") from None
        return subscriptions.within_range("effective_date", day)
    return subscriptions.parse_instant("effective_date", value)


async def _fixed_price_of(uow: UnitOfWork, principal: Principal, price_id: Any) -> Price:
    if not isinstance(price_id, str) or not price_id:
        raise ValidationFailed("price_id", "is required")
    try:
        price = await prices.get_price(uow, principal=principal, price_id=price_id)
    except NotFound:
        raise ValidationFailed("price_id", f"no price with price_id {price_id!r} exists") from None
    if prices.price_type(price) != "fixed_price":
        raise ValidationFailed("price_id", f"price {price_id!r} is a usage price; only a fixed fee has a quantity")
    return price


async def change_fixed_fee_quantity(
    uow: UnitOfWork, *, principal: Principal, subscription_id: str, fields: Mapping[str, Any]
) -> Subscription:
    """Bill a fixed fee of the subscription's plan for another quantity from a date (Orb's price_quantity).

    ``change_option``: ``immediate`` (now; the default without ``effective_date``), ``effective_date``
    (the default with one; not before the start, nor at/after the end) or ``upcoming_invoice`` (the start
    of the next billing period); whatever the option, not into billing already invoiced: the invoices'
    periods, or this fee's own invoiced service when billed in advance past them (an annual fee on a
    monthly plan; another fee's service does not count). The price must be a fixed price of
    the plan the subscription is on at that date. A new change replaces the pending one for the same price and supersedes changes after it.
    """
    refuse_unknown(fields, _QUANTITY_FIELDS, "a fixed fee quantity field")
    if fields.get("quantity") is None:
        raise ValidationFailed("quantity", "is required")
    quantity = _quantity(fields["quantity"])
    given = fields.get("effective_date")
    option = fields.get("change_option") or ("effective_date" if given is not None else "immediate")
    one_of("change_option", option, QUANTITY_CHANGE_OPTIONS)
    if option == "effective_date" and given is None:
        raise ValidationFailed("effective_date", "is required when change_option is effective_date")
    if option != "effective_date" and given is not None:
        raise ValidationFailed("effective_date", "is only taken when change_option is effective_date")
    requested = parse_effective_date(given) if given is not None else None
    price = await _fixed_price_of(uow, principal, fields.get("price_id"))
    now = uow.clock.now()
    async with uow.transaction():
        subscription = await subscriptions.lock_unended(uow, principal, subscription_id, now, refusal="has ended")
        end = subscription.end_date
        if requested is not None:
            subscriptions.refuse_outside_life(subscription, "effective_date", requested)
            at = requested
        elif option == "immediate":
            at = max(now, subscription.start_date)
        else:
            current = max(now, subscription.start_date)
            plan_prices = await prices.prices_by_plan_ids(
                uow, principal=principal, plan_ids=[await subscriptions.plan_id_at(uow, principal, subscription, current)])
            cadence = subscriptions.billing_cadence(p.cadence for grouped in plan_prices.values() for p in grouped)
            cycle_list = await subscription_billing_cycles(uow, principal, subscription)
            at = cycles.period_at(cycle_list, cadence, current).end
            if end is not None and at >= end:
                raise ConstraintViolation(f"subscription {subscription_id!r} ends before its next billing period",
                                          field="change_option")
        # The fee's own invoiced service: an in-advance fee may be billed past the invoiced periods.
        await subscriptions.refuse_before_invoiced(uow, principal, subscription, at=at, price_id=price.id,
                                                   field="effective_date" if requested is not None else "change_option",
                                                   change="a fixed fee quantity change")
        plan_id = await subscriptions.plan_id_at(uow, principal, subscription, at)
        if price.plan_id != plan_id:
            raise ValidationFailed("price_id", f"price {price.id!r} is not a price of plan {plan_id!r}, which the "
                                               f"subscription is on at {at.isoformat()}")
        await uow.session.execute(delete(SubscriptionPriceQuantity).where(
            SubscriptionPriceQuantity.org_id == principal.org_id,
            SubscriptionPriceQuantity.subscription_id == subscription.id,
            SubscriptionPriceQuantity.price_id == price.id,
            or_(SubscriptionPriceQuantity.effective_date >= at,  # type: ignore[operator]
                SubscriptionPriceQuantity.effective_date > now)))  # type: ignore[operator]
        uow.session.add(SubscriptionPriceQuantity(
            id=new_id(), org_id=principal.org_id, subscription_id=subscription.id, price_id=price.id,
            quantity=quantity, effective_date=at, created_at=now))
        subscription.updated_at = now
        await uow.session.flush()
    return subscription


async def unschedule_fixed_fee_quantity_updates(
    uow: UnitOfWork, *, principal: Principal, subscription_id: str, price_id: Any
) -> Subscription:
    """Drop a fixed fee's quantity change that has not taken effect yet."""
    if not isinstance(price_id, str) or not price_id:
        raise ValidationFailed("price_id", "is required")
    now = uow.clock.now()
    async with uow.transaction():
        subscription = await subscriptions.lock_unended(uow, principal, subscription_id, now)
        result = await uow.session.execute(delete(SubscriptionPriceQuantity).where(
            SubscriptionPriceQuantity.org_id == principal.org_id,
            SubscriptionPriceQuantity.subscription_id == subscription.id,
            SubscriptionPriceQuantity.price_id == price_id,
            SubscriptionPriceQuantity.effective_date > now))  # type: ignore[operator]
        if not result.rowcount:  # type: ignore[attr-defined]
            raise ConstraintViolation(f"subscription {subscription_id!r} has no pending quantity change for price "
                                      f"{price_id!r}", field="price_id")
        subscription.updated_at = now
        await uow.session.flush()
    return subscription
