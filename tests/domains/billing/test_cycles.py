"""Billing cycles (re-anchored billing periods): properties for any start, anchors and re-anchoring
dates (hypothesis), and worked examples."""

from __future__ import annotations

import calendar
import itertools
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domains.billing.cycles import (
    Cycle,
    aligned_anchor,
    covered_in_cycles,
    cycle_at,
    cycles_of,
    day_anchor,
    period_at,
)
from domains.billing.periods import Period, billing_period_for, prorate
from tests.domains.billing.test_periods import anchors, at, cadences, currencies, instants

D = Decimal


@st.composite
def lives(draw: st.DrawFn) -> tuple[datetime, datetime, datetime | None, list[tuple[datetime, datetime]]]:
    """A subscription's start, anchor, end (or None) and re-anchoring changes at or after its start."""
    start = draw(instants.filter(lambda d: d.year < 2080))
    anchor = draw(anchors)
    end = draw(st.one_of(st.none(), st.integers(1, 3_000).map(lambda days: start + timedelta(days=days, hours=5))))
    offsets = draw(st.lists(st.integers(0, 3_000 * 24), max_size=4))
    alignments = draw(st.lists(st.sampled_from(["plan_change_date", "start_of_month"]), min_size=len(offsets),
                               max_size=len(offsets)))
    changes = []
    for hours, alignment in zip(offsets, alignments, strict=True):
        moment = start + timedelta(hours=hours)
        changes.append((moment, aligned_anchor(alignment, moment)))
    return start, anchor, end, changes


@given(lives())
def test_cycles_tile_the_life_in_order(life) -> None:
    start, anchor, end, changes = life
    cycles = cycles_of(start, anchor, end, changes)
    assert cycles[0].start == start and cycles[-1].end == end
    for left, right in itertools.pairwise(cycles):
        assert left.end == right.start and left.start < left.end
    # Each change inside the life starts a cycle with its anchor (the last of several at one instant wins).
    inside = {moment: new for moment, new in sorted(changes) if moment > start and (end is None or moment < end)}
    assert {c.start: c.anchor for c in cycles[1:]} == inside


@given(lives(), cadences)
def test_billing_periods_tile_the_life_and_each_holds_the_instants_that_find_it(life, cadence) -> None:
    start, anchor, end, changes = life
    cycles = cycles_of(start, anchor, end, changes)
    horizon = end if end is not None else start + timedelta(days=800)
    moment, seen = start, 0
    while moment < horizon and seen < 60:
        period = period_at(cycles, cadence, moment)
        assert period.start == moment and period.start < period.end
        cycle = cycle_at(cycles, moment)
        # Within its cycle, and a period of the cycle's grid cut to the cycle.
        assert cycle.start <= period.start and (cycle.end is None or period.end <= cycle.end)
        grid = billing_period_for(cycle.anchor, cadence, moment)
        assert period == Period(max(grid.start, cycle.start), grid.end if cycle.end is None else min(grid.end, cycle.end))
        middle = period.start + (period.end - period.start) / 2
        assert period_at(cycles, cadence, middle) == period
        moment, seen = period.end, seen + 1


@given(lives(), cadences, currencies, st.decimals(min_value=0, max_value=10**7, places=2))
def test_a_fixed_fee_over_the_life_is_billed_whole_for_each_full_period_and_never_twice(
        life, cadence, currency, amount) -> None:
    start, anchor, end, changes = life
    cycles = cycles_of(start, anchor, end, changes)
    active = Period(start, end if end is not None else start + timedelta(days=500))
    pieces = covered_in_cycles(cycles, cadence, active)
    # The covered parts tile what is active: every instant billed once.
    assert pieces[0].covered.start == active.start and pieces[-1].covered.end == active.end
    for left, right in itertools.pairwise(pieces):
        assert left.covered.end == right.covered.start
    whole = prorate(amount, active, active, currency)  # the fee in the currency's minor unit
    by_period: dict[Period, Decimal] = {}
    for piece in pieces:
        share = prorate(amount, piece.covered, piece.period, currency)
        assert D(0) <= share <= whole
        if piece.is_full:
            assert share == whole
        by_period[piece.period] = by_period.get(piece.period, D(0)) + share
    # Pieces of one grid period (a cycle cutting it) add up to at most the whole fee.
    assert all(total <= whole for total in by_period.values())


@given(instants, st.integers(1, 31))
def test_a_day_anchor_is_that_day_and_its_grid_has_a_boundary_on_the_first_such_day_after(moment, day) -> None:
    anchor = day_anchor(moment, day)
    assert anchor.day == day and (anchor.hour, anchor.minute, anchor.second) == (0, 0, 0)
    first = billing_period_for(anchor, "monthly", moment).end if billing_period_for(
        anchor, "monthly", moment).start != moment else moment
    assert first >= moment and first - moment <= timedelta(days=31)
    assert first.day == min(day, calendar.monthrange(first.year, first.month)[1])


def test_worked_cycles() -> None:
    # Started Jan 15 on its own date; moved to plan_change_date on Mar 10 12:00, then to start_of_month on May 20.
    changes = [(at(2024, 3, 10, 12), aligned_anchor("plan_change_date", at(2024, 3, 10, 12))),
               (at(2024, 5, 20), aligned_anchor("start_of_month", at(2024, 5, 20)))]
    cycles = cycles_of(at(2024, 1, 15), at(2024, 1, 15), None, changes)
    assert cycles == [Cycle(at(2024, 1, 15), at(2024, 3, 10, 12), at(2024, 1, 15)),
                      Cycle(at(2024, 3, 10, 12), at(2024, 5, 20), at(2024, 3, 10, 12)),
                      Cycle(at(2024, 5, 20), None, at(2024, 6, 1))]
    assert period_at(cycles, "monthly", at(2024, 3, 1)) == Period(at(2024, 2, 15), at(2024, 3, 10, 12))
    assert period_at(cycles, "monthly", at(2024, 4, 20)) == Period(at(2024, 4, 10, 12), at(2024, 5, 10, 12))
    assert period_at(cycles, "monthly", at(2024, 5, 15)) == Period(at(2024, 5, 10, 12), at(2024, 5, 20))
    assert period_at(cycles, "monthly", at(2024, 5, 25)) == Period(at(2024, 5, 20), at(2024, 6, 1))
    assert period_at(cycles, "quarterly", at(2024, 7, 1)) == Period(at(2024, 6, 1), at(2024, 9, 1))
    # A one-time fee bills once, on the grid of the cycle holding its start.
    [once] = covered_in_cycles(cycles, "one_time", Period(at(2024, 3, 20), at(2024, 9, 1)))
    assert once.period == Period(at(2024, 3, 10, 12), at(2024, 4, 10, 12))
    # A change at the start replaces the first anchor; one at or after the end is cut off.
    assert cycles_of(at(2024, 1, 15), at(2024, 1, 15), at(2024, 3, 1), [
        (at(2024, 1, 15), at(2024, 2, 1)), (at(2024, 3, 1), at(2024, 3, 1))]) == [
        Cycle(at(2024, 1, 15), at(2024, 3, 1), at(2024, 2, 1))]
    assert day_anchor(at(2024, 4, 10), 31) == at(2024, 5, 31)
    assert day_anchor(at(2024, 1, 31, 0, 0, 1), 31) == at(2024, 3, 31)
    assert day_anchor(at(2024, 3, 1), 1) == at(2024, 3, 1)
    assert aligned_anchor("unchanged", at(2024, 3, 1)) is None
    with pytest.raises(ValueError, match="alignment"):
        aligned_anchor("weekly", at(2024, 3, 1))
    with pytest.raises(ValueError, match="day"):
        day_anchor(at(2024, 3, 1), 0)
