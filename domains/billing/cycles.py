"""Billing cycles: which anchor a subscription's billing periods follow, over time. Pure, no I/O.

A subscription's billing periods follow one anchor (domains.billing.periods) from its start: its
``billing_anchor`` (set from ``billing_cycle_anchor_configuration`` at creation) or else its start
date. A plan change with a ``billing_cycle_alignment`` re-anchors them from its effective date on:

* ``plan_change_date``: at the change itself, so the new plan bills full periods from the change day;
* ``start_of_month``: on the 1st (UTC midnight) at or after the change; the stretch up to it is one
  short period, prorated on the monthly grid holding it.

A phased plan's phase with ``align_billing_with_phase_start_date`` re-anchors at its start as
``plan_change_date`` does (its starts, derived by domains.billing.schedule, come in as ``phase_starts``).

A **cycle** is ``[start, end)`` of the subscription's life with one anchor; the cycles tile the life.
A billing period is the anchor's period holding an instant, cut to its cycle: the period running when a
re-anchoring change takes effect ends there (its fixed fees prorated to the day, on the grid it began
on), and the first one after it starts there. Without re-anchoring there is one cycle and every period
is what ``billing_period_for(anchor, ...)`` gives, cut at the start and the end.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from domains.billing.periods import CoveredPeriod, Period, billing_period_for, covered_periods

ALIGNMENTS = ("unchanged", "plan_change_date", "start_of_month")


@dataclass(frozen=True)
class Cycle:
    start: datetime
    end: datetime | None   # None = open-ended
    anchor: datetime


def day_anchor(after: datetime, day: int) -> datetime:
    """An anchor for billing periods starting on ``day`` of the month at UTC midnight (a shorter month's
    last day in its place): that day in the first month whose such boundary is at or after ``after``.

    When that month is too short for ``day`` (the 31st in April), the anchor is ``day`` in the next month
    that has it: monthly periods are the same either way, as the grid keeps the anchor's day of month."""
    if not 1 <= day <= 31:
        raise ValueError("day must be 1 to 31")
    year, month = after.year, after.month
    while True:
        last = calendar.monthrange(year, month)[1]
        boundary = datetime(year, month, min(day, last), tzinfo=UTC)
        if boundary >= after:
            break
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    while calendar.monthrange(year, month)[1] < day:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return datetime(year, month, day, tzinfo=UTC)


def aligned_anchor(alignment: str, at: datetime) -> datetime | None:
    """The anchor a plan change effective at ``at`` re-anchors billing on; None for ``unchanged``."""
    if alignment == "plan_change_date":
        return at
    if alignment == "start_of_month":
        return day_anchor(at, 1)
    if alignment == "unchanged":
        return None
    raise ValueError(f"unknown billing_cycle_alignment {alignment!r}; one of {', '.join(ALIGNMENTS)}")


def cycles_of(start: datetime, anchor: datetime, end: datetime | None,
              reanchors: Iterable[tuple[datetime, datetime]]) -> list[Cycle]:
    """The cycles tiling ``[start, end)``: on ``anchor`` from the start, on each re-anchor's anchor from
    its date on (one at or before the start replaces the first anchor; at or after the end, none)."""
    cycles: list[Cycle] = []
    begin = start
    for at, new_anchor in sorted(reanchors):
        if end is not None and at >= end:
            break
        if at <= begin:
            anchor = new_anchor
            continue
        cycles.append(Cycle(begin, at, anchor))
        begin, anchor = at, new_anchor
    cycles.append(Cycle(begin, end, anchor))
    return cycles


def cycle_at(cycles: Sequence[Cycle], at: datetime) -> Cycle:
    """The cycle holding ``at``: the first before the start, the last from its start on."""
    for cycle in reversed(cycles):
        if cycle.start <= at:
            return cycle
    return cycles[0]


def period_at(cycles: Sequence[Cycle], cadence: str, at: datetime) -> Period:
    """The billing period of ``cadence`` holding ``at``, cut to its cycle (``at`` within the cycles' span)."""
    cycle = cycle_at(cycles, at)
    period = billing_period_for(cycle.anchor, cadence, at)
    start = max(period.start, cycle.start)
    end = period.end if cycle.end is None else min(period.end, cycle.end)
    return Period(start, end)


def covered_in_cycles(cycles: Sequence[Cycle], cadence: str, active: Period,
                      window: Period | None = None) -> list[CoveredPeriod]:
    """``periods.covered_periods`` across cycles: each cycle's part of ``active`` on its own anchor's grid
    (a one-time price bills once, on the grid of the cycle holding the start of what it covers)."""
    if cadence == "one_time":
        return covered_periods(cycle_at(cycles, active.start).anchor, cadence, active, window)
    pieces: list[CoveredPeriod] = []
    for cycle in cycles:
        if cycle.start >= active.end:
            break
        span = active.intersection(Period(cycle.start, cycle.end if cycle.end is not None else active.end))
        if span is not None:
            pieces.extend(covered_periods(cycle.anchor, cadence, span, window))
    return pieces


def subscription_cycles(subscription: Any, changes: Iterable[Any], *, open_ended: bool = False,
                        phase_starts: Iterable[datetime] = ()) -> list[Cycle]:
    """The cycles of a subscription row given its plan change rows (those with a billing_cycle_alignment
    other than unchanged re-anchor) and the starts of the phases aligning billing with them (each
    re-anchoring there, as ``plan_change_date``); ``open_ended``: as if it had no end date."""
    reanchors = [(c.effective_date, aligned_anchor(c.billing_cycle_alignment, c.effective_date))
                 for c in changes if c.billing_cycle_alignment not in (None, "unchanged")]
    reanchors += [(at, at) for at in phase_starts]
    return cycles_of(subscription.start_date, subscription.billing_anchor or subscription.start_date,
                     None if open_ended else subscription.end_date, reanchors)  # type: ignore[arg-type]
