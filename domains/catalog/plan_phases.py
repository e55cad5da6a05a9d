"""A plan's phases (Orb's plan_phases): pure rules, no I/O.

A phased plan bills its prices in phases: phase 1 from the moment a subscription enters the plan,
phase ``n`` from the end of phase ``n - 1`` (its ``duration`` in ``duration_unit``s). Each price of a
phased plan names its phase (``plan_phase_order``) and is billed only while that phase is in effect.
Orders run 1, 2, ... without gaps; only the last phase may be evergreen (``duration`` null). The last
phase runs until the subscription leaves the plan even when it has a duration: ending a subscription
is cancellation's job, not the catalog's.

A phase with ``align_billing_with_phase_start_date`` re-anchors the subscription's billing periods at its
start (as a plan change with ``billing_cycle_alignment`` ``plan_change_date`` does; domains.billing.cycles),
whether it is reached by the previous phase's duration, by trigger_phase or by a plan change into the plan.

Months-based units step on the phase start's own grid (``periods.period_boundary``: Jan 31 + 1 month
is Feb 28/29), ``daily`` by whole days.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from domains.billing.periods import period_boundary
from domains.errors import ValidationFailed
from domains.text import one_of, refuse_unknown

DURATION_UNITS = ("daily", "monthly", "quarterly", "semi_annual", "annual")
_UNIT_MONTHS = {"monthly": 1, "quarterly": 3, "semi_annual": 6, "annual": 12}
_FIELDS = frozenset({"order", "duration", "duration_unit", "align_billing_with_phase_start_date"})
MAX_PHASES = 50
MAX_DURATION = 3650  # days: ten years
MAX_DURATION_MONTHS = 120


class PhaseDefinition(NamedTuple):
    """One phase of a plan: its order (1 = first) and how long it lasts (None: evergreen)."""

    order: int
    duration: int | None
    duration_unit: str | None
    align_billing: bool = False  # align_billing_with_phase_start_date: billing re-anchors at its start


def parse_phases(value: Any) -> list[dict[str, Any]] | None:
    """Validate Orb's plan_phases on plan create: the JSON to store, in order (None: no phases)."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValidationFailed("plan_phases", "must be a list")
    if not value:
        return None
    if len(value) > MAX_PHASES:
        raise ValidationFailed("plan_phases", f"a plan has at most {MAX_PHASES} phases")
    stored = []
    for index, entry in enumerate(value):
        name = f"plan_phases[{index}]"
        if not isinstance(entry, Mapping):
            raise ValidationFailed(name, "must be an object")
        refuse_unknown(entry, _FIELDS, "a plan phase field", prefix=name)
        order = entry.get("order")
        if isinstance(order, bool) or not isinstance(order, int):
            raise ValidationFailed(f"{name}.order", "is required: a whole number (1 = the first phase)")
        if not 1 <= order <= len(value):  # named here, not as a gap found at another phase after sorting
            raise ValidationFailed(f"{name}.order", f"must be from 1 to {len(value)} (the number of phases)")
        align = entry.get("align_billing_with_phase_start_date")
        if align is not None and not isinstance(align, bool):  # not `in (None, True, False)`: 1 == True
            raise ValidationFailed(f"{name}.align_billing_with_phase_start_date", "must be true, false or null")
        duration, unit = entry.get("duration"), entry.get("duration_unit")
        if duration is not None and (isinstance(duration, bool) or not isinstance(duration, int)
                                     or not 0 < duration <= MAX_DURATION):
            raise ValidationFailed(f"{name}.duration", f"must be a whole number from 1 to {MAX_DURATION} "
                                                        "(null: evergreen)")
        if duration is not None or unit is not None:
            one_of(f"{name}.duration_unit", unit, DURATION_UNITS)
        # At most ten years whatever the unit (3650 annual phases ran past year 9999: a 500 on subscribe).
        if duration is not None and unit != "daily" and duration * _UNIT_MONTHS[unit] > MAX_DURATION_MONTHS:
            raise ValidationFailed(f"{name}.duration", f"must be at most {MAX_DURATION_MONTHS} months (ten "
                                                        f"years) in {unit} units")
        phase: dict[str, Any] = {"order": order, "duration": duration, "duration_unit": unit}
        if align:  # stored only when true: phases stored before it existed read as false
            phase["align_billing_with_phase_start_date"] = True
        stored.append((index, phase))
    stored.sort(key=lambda pair: pair[1]["order"])
    for expected, (index, phase) in enumerate(stored, start=1):
        if phase["order"] != expected:
            raise ValidationFailed(f"plan_phases[{index}].order", "orders must run 1, 2, 3, ... without gaps or "
                                                                  f"repeats (expected {expected})")
    for index, phase in stored[:-1]:
        if phase["duration"] is None:
            raise ValidationFailed(f"plan_phases[{index}].duration", "only the last phase may be evergreen (null)")
    return [phase for _, phase in stored]


def definitions(stored: Sequence[Mapping[str, Any]] | None) -> list[PhaseDefinition]:
    """The stored plan_phases as definitions, in order (empty: the plan has no phases)."""
    return [PhaseDefinition(p["order"], p.get("duration"), p.get("duration_unit"),
                            bool(p.get("align_billing_with_phase_start_date"))) for p in stored or ()]


def phase_end(start: datetime, phase: PhaseDefinition) -> datetime | None:
    """When a phase entered at ``start`` ends by its duration (None: evergreen)."""
    if phase.duration is None:
        return None
    if phase.duration_unit == "daily":
        return start + timedelta(days=phase.duration)
    return period_boundary(start, _UNIT_MONTHS[phase.duration_unit or "monthly"] * phase.duration, 1)


class PhaseSpan(NamedTuple):
    """``[start, end)`` (end None: open-ended) during which the plan's phase ``order`` is in effect."""

    order: int
    start: datetime
    end: datetime | None


def spans(phases: Sequence[PhaseDefinition], start: datetime, end: datetime | None,
          first_order: int = 1) -> list[PhaseSpan]:
    """The phases in effect over ``[start, end)`` when phase ``first_order`` begins at ``start``: each
    following by the previous one's duration, the last one running to ``end``. Empty phases are dropped."""
    result: list[PhaseSpan] = []
    at = start
    for phase in phases:
        if phase.order < first_order:
            continue
        if end is not None and at >= end:
            break
        stop = None if phase.order == phases[-1].order else phase_end(at, phase)
        if end is not None and (stop is None or stop > end):
            stop = end
        if stop is None or at < stop:
            result.append(PhaseSpan(phase.order, at, stop))
        if stop is None:
            break
        at = stop
    return result


def phase_order_of_price(entry_order: Any, index: int, phase_count: int) -> int | None:
    """A plan's price entry's plan_phase_order, checked against the plan's phases."""
    field = f"prices[{index}].plan_phase_order"
    if entry_order is None:
        if phase_count:
            raise ValidationFailed(field, "is required on a plan with plan_phases: the phase the price bills in")
        return None
    if isinstance(entry_order, bool) or not isinstance(entry_order, int):
        raise ValidationFailed(field, "must be a whole number (a phase's order)")
    if not phase_count:
        raise ValidationFailed(field, "the plan has no plan_phases")
    if not 1 <= entry_order <= phase_count:
        raise ValidationFailed(field, f"no phase {entry_order}: the plan's phases are 1 to {phase_count}")
    return entry_order


def in_phase(price_phase_order: int | None, phase_order: int | None) -> bool:
    """Whether a price bills in a phase (a plan without phases: every price, always)."""
    return phase_order is None or price_phase_order is None or price_phase_order == phase_order
