"""Billing periods and day-based proration: pure arithmetic, no I/O.

This module is the contract invoicing builds on. Its vocabulary:

* A **Period** is a half-open UTC interval ``[start, end)``.
* A subscription's **billing periods** for a cadence follow each other from an **anchor** instant
  (the subscription's start unless a billing anchor says otherwise): period ``k`` starts at
  ``anchor + k * months`` (``k`` may be negative). The anchor's day of month and time of day are kept:
  a day the month lacks is clamped to the month's last day for that period only, so an anchor of
  Jan 31 gives Feb 29 (2024), Mar 31, Apr 30, May 31 ... (never drifting to the 28th or 30th).
  Periods of one anchor tile time: every instant is in exactly one period, and longer cadences'
  boundaries are boundaries of the shorter ones (a quarter is three of the months).
* A ``one_time`` price is billed once, in advance, for the period of the monthly grid that holds the
  subscription's start, and never prorated (``CADENCE_MONTHS["one_time"] == 1`` says which grid).
* **Timing**: fixed fees are billed ``in_advance`` (on the invoice dated at the start of what they
  cover), usage ``in_arrear`` (on the invoice dated at its end). See ``invoice_date``.

Proration (the rule). Orb prorates in-advance fees "using day-based proration" on a mid-period
start, a plan change and a cancellation (docs.withorb.com/product-catalog/subscription-plan-change,
/tutorials/first-subscription). Here: a period of ``D`` days is split into days on its own grid
(``period.start + i days``), and a day belongs to whoever covers its first instant; so ``[a, b)``
covers ``days(a, b) = ceil((b - start)/1d) - ceil((a - start)/1d)`` whole days and its share of the
period is ``days / D`` (with UTC midnight anchors that is plain calendar days: a cancellation at
Jan 13 00:00 leaves 12 of January's 31 days).

Rounding without losing a cent. ``prorate`` rounds the *cumulative* amount at each cut point
(ROUND_HALF_UP to the currency's minor unit, symmetric for negative amounts) and returns the
difference between the two ends: ``prorate([a, b)) = R(amount * d(b) / D) - R(amount * d(a) / D)``
where ``d(t)`` is the whole days from the period start to ``t``. Pieces of a period cut anywhere,
computed independently (one at a mid-period start, another at a cancellation months later), then
telescope to ``R(amount)``: exactly the amount when it is already in minor units. Each piece is
within one minor unit of its exact share (the carry goes to whichever piece crosses a rounding step).
"""

from __future__ import annotations

import calendar
import itertools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Literal

from domains.currencies import minor_unit_places

CADENCES = ("one_time", "monthly", "quarterly", "semi_annual", "annual")
# Months per billing period of each cadence (one_time bills once, in its first month-long period).
CADENCE_MONTHS = {"one_time": 1, "monthly": 1, "quarterly": 3, "semi_annual": 6, "annual": 12}

Timing = Literal["in_advance", "in_arrear"]
_DAY = timedelta(days=1)


@dataclass(frozen=True, order=True)
class Period:
    """A half-open interval ``[start, end)`` of UTC-aware instants."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a period needs timezone-aware instants")
        if self.end < self.start:
            raise ValueError("a period cannot end before it starts")

    def __contains__(self, instant: datetime) -> bool:
        return self.start <= instant < self.end

    @property
    def is_empty(self) -> bool:
        return self.start == self.end

    @property
    def days(self) -> int:
        """Whole days on the period's own grid (a billing period is always a whole number of days)."""
        return _days_into(self, self.end)

    def intersection(self, other: Period) -> Period | None:
        """The overlap of two periods, or None when they do not overlap."""
        start, end = max(self.start, other.start), min(self.end, other.end)
        return Period(start, end) if start < end else None


@dataclass(frozen=True)
class CoveredPeriod:
    """One billing period and the part of it a subscription (or a price interval) was active.

    ``covered == period`` for a full period; a shorter ``covered`` is a prorated piece.
    """

    period: Period
    covered: Period

    @property
    def is_full(self) -> bool:
        return self.covered == self.period


def _check_cadence(cadence: str) -> int:
    try:
        return CADENCE_MONTHS[cadence]
    except KeyError:
        raise ValueError(f"unknown cadence {cadence!r}; one of {', '.join(CADENCES)}") from None


def _aware(name: str, instant: datetime) -> None:
    if instant.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware")


def period_boundary(anchor: datetime, months: int, index: int) -> datetime:
    """The start of period ``index`` of a grid of ``months``-long periods from ``anchor``.

    Computed from the anchor each time (never from the previous boundary), so the anchor's day of
    month is kept across short months: Jan 31 + 1 month = Feb 28/29, + 2 months = Mar 31.
    """
    month_number = anchor.year * 12 + (anchor.month - 1) + months * index
    year, month = divmod(month_number, 12)
    day = min(anchor.day, calendar.monthrange(year, month + 1)[1])
    return anchor.replace(year=year, month=month + 1, day=day)


def _index_of(anchor: datetime, months: int, at: datetime) -> int:
    """The ``k`` with ``boundary(k) <= at < boundary(k + 1)``."""
    elapsed_months = (at.year - anchor.year) * 12 + (at.month - anchor.month)
    index = elapsed_months // months
    # The month count is right to within one period; step to the exact one.
    while period_boundary(anchor, months, index) > at:
        index -= 1
    while period_boundary(anchor, months, index + 1) <= at:
        index += 1
    return index


def billing_period_for(anchor: datetime, cadence: str, at: datetime) -> Period:
    """The billing period of ``cadence``, anchored at ``anchor``, that contains the instant ``at``.

    Defined for every instant (also before the anchor: the grid extends both ways), so callers
    decide what an instant outside a subscription's life means.
    """
    _aware("anchor", anchor)
    _aware("at", at)
    months = _check_cadence(cadence)
    index = _index_of(anchor, months, at)
    return Period(period_boundary(anchor, months, index), period_boundary(anchor, months, index + 1))


def billing_periods(anchor: datetime, cadence: str, window: Period) -> list[Period]:
    """The billing periods that overlap ``window``, in order (full periods, not cut to the window).

    They tile the window: consecutive, no gaps, no overlaps, the first holds ``window.start`` and the
    last ends at or after ``window.end``. An empty window has no periods.
    """
    return list(_periods_from(anchor, cadence, window))


def _periods_from(anchor: datetime, cadence: str, window: Period) -> Iterator[Period]:
    if window.is_empty:
        return
    months = _check_cadence(cadence)
    index = _index_of(anchor, months, window.start)
    start = period_boundary(anchor, months, index)
    while start < window.end:
        end = period_boundary(anchor, months, index + 1)
        yield Period(start, end)
        index, start = index + 1, end


def covered_periods(anchor: datetime, cadence: str, active: Period, window: Period | None = None) -> list[CoveredPeriod]:
    """The billing periods a subscription active over ``active`` bills, each with the part covered.

    ``active`` is ``[start, end)`` of the subscription (or of one price on it); for an open-ended
    subscription pass the horizon you bill up to as its end. ``window`` limits the result to the
    periods overlapping it (e.g. one invoice's). A ``one_time`` cadence bills only the period that
    holds ``active.start``, and in full (``covered == period``): one-time charges are never prorated.
    """
    if active.is_empty:
        return []
    if cadence == "one_time":
        period = billing_period_for(anchor, cadence, active.start)
        if window is not None and period.intersection(window) is None:
            return []
        return [CoveredPeriod(period=period, covered=period)]
    span = active if window is None else active.intersection(window)
    if span is None:
        return []
    result = []
    for period in _periods_from(anchor, cadence, span):
        covered = period.intersection(active)
        if covered is not None:
            result.append(CoveredPeriod(period=period, covered=covered))
    return result


def invoice_date(piece: CoveredPeriod, timing: Timing) -> datetime:
    """The date of the invoice a charge for ``piece`` lands on.

    In advance (fixed fees): at the start of what it covers (a mid-period start bills its prorated
    fee at the start; a full period at the period start). In arrears (usage): at the end of what it
    covers (a period's usage on the next period's first invoice; a cancellation's on its date).
    """
    if timing == "in_advance":
        return piece.covered.start
    if timing == "in_arrear":
        return piece.covered.end
    raise ValueError(f"unknown timing {timing!r}; in_advance or in_arrear")


def _days_into(period: Period, instant: datetime) -> int:
    """Whole days of ``period`` whose first instant is before ``instant`` (clamped to the period)."""
    if instant <= period.start:
        return 0
    instant = min(period.end, instant)
    return math.ceil((instant - period.start) / _DAY)


def covered_days(covered: Period, period: Period) -> int:
    """Whole days of ``period`` that ``covered`` holds (see the module docstring for the rule)."""
    _check_within(covered, period)
    return _days_into(period, covered.end) - _days_into(period, covered.start)


def proration_fraction(covered: Period, period: Period) -> Fraction:
    """The exact share of ``period`` that ``covered`` holds: covered days / days in the period."""
    return Fraction(covered_days(covered, period), period.days)


def _round_to_minor(value: Fraction, places: int) -> Decimal:
    """ROUND_HALF_UP, symmetric around zero, of an exact fraction to ``places`` decimals."""
    scaled = abs(value) * 10**places
    units = math.floor(scaled + Fraction(1, 2))
    return Decimal(units if value >= 0 else -units).scaleb(-places)


def _cumulative(amount: Fraction, days: int, period_days: int, places: int) -> Decimal:
    return _round_to_minor(amount * days / period_days, places)


def prorate(amount: Decimal, covered: Period, period: Period, currency: str) -> Decimal:
    """The part of ``amount`` (the full period's charge) that ``covered`` owes, in the currency's minor unit.

    Exact: computed on fractions and rounded once per cut point (see the module docstring), so that
    the pieces of one period cut at any points add up to the amount rounded to the minor unit, even
    when each piece is computed on its own. A full period gives exactly that rounded amount.
    """
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise ValueError("amount must be a finite Decimal")
    places = minor_unit_places(currency)
    _check_within(covered, period)
    whole, exact = period.days, Fraction(amount)
    if whole == 0:
        return _round_to_minor(exact, places)
    before = _cumulative(exact, _days_into(period, covered.start), whole, places)
    through = _cumulative(exact, _days_into(period, covered.end), whole, places)
    return through - before


def split_amount(amount: Decimal, period: Period, cuts: Iterable[datetime], currency: str) -> list[Decimal]:
    """``amount`` split at ``cuts`` (instants within the period) into consecutive prorated pieces.

    The pieces add up exactly to the amount rounded to the currency's minor unit.
    """
    points = sorted({period.start, *(c for c in cuts if period.start < c < period.end), period.end})
    return [prorate(amount, Period(a, b), period, currency) for a, b in itertools.pairwise(points)]


def _check_within(covered: Period, period: Period) -> None:
    if covered.start < period.start or covered.end > period.end:
        raise ValueError("the covered interval must lie within the billing period")
