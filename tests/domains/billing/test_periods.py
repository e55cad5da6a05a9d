"""Billing periods and proration: properties for any anchor/cadence/cuts (hypothesis), and worked examples."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domains.billing.periods import (
    CADENCE_MONTHS,
    CoveredPeriod,
    Period,
    billing_period_for,
    billing_periods,
    covered_days,
    covered_periods,
    invoice_date,
    period_boundary,
    prorate,
    proration_fraction,
    split_amount,
)

D = Decimal
RECURRING = [c for c in CADENCE_MONTHS if c != "one_time"]


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# --- strategies ----------------------------------------------------------------------------------

instants = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 12, 31),
                        timezones=st.just(UTC))
# Most subscriptions start at midnight; the rest exercise any time of day.
midnights = st.dates(min_value=datetime(1990, 1, 1).date(), max_value=datetime(2090, 12, 31).date()).map(
    lambda d: datetime(d.year, d.month, d.day, tzinfo=UTC))
anchors = st.one_of(midnights, instants)
month_ends = st.builds(lambda y, m: period_boundary(at(2000, 1, 31), 1, (y - 2000) * 12 + m - 1),
                       st.integers(1990, 2090), st.integers(1, 12))
cadences = st.sampled_from(RECURRING)
currencies = st.sampled_from(["USD", "EUR", "JPY", "KWD", "XCU"])
amounts = st.decimals(min_value=-10**9, max_value=10**9, places=3, allow_nan=False, allow_infinity=False)


@st.composite
def period_with_cuts(draw: st.DrawFn) -> tuple[Period, list[datetime]]:
    period = billing_period_for(draw(anchors), draw(cadences), draw(instants))
    seconds = int((period.end - period.start).total_seconds())
    offsets = draw(st.lists(st.integers(0, seconds), max_size=8))
    return period, [period.start + timedelta(seconds=s) for s in offsets]


def minor_units(amount: Decimal, currency: str) -> Decimal:
    from domains.currencies import minor_unit_places

    places = minor_unit_places(currency)
    scaled = abs(Fraction(amount)) * 10**places
    units = int(scaled + Fraction(1, 2))
    return D(units if amount >= 0 else -units).scaleb(-places)


# --- periods -------------------------------------------------------------------------------------

@given(anchors, cadences, instants)
def test_every_instant_is_in_exactly_the_period_found(anchor: datetime, cadence: str, instant: datetime) -> None:
    period = billing_period_for(anchor, cadence, instant)
    assert instant in period
    # Its neighbours do not hold it: the next period starts where this one ends, and vice versa.
    assert instant not in billing_period_for(anchor, cadence, period.end)
    before = billing_period_for(anchor, cadence, period.start - timedelta(microseconds=1))
    assert before.end == period.start and instant not in before
    assert 28 * CADENCE_MONTHS[cadence] <= period.days <= 31 * CADENCE_MONTHS[cadence]
    assert period.end - period.start == timedelta(days=period.days)


@given(anchors, cadences, instants, st.integers(1, 4_000))
def test_periods_tile_a_window_with_no_gap_or_overlap(anchor: datetime, cadence: str, start: datetime,
                                                      days: int) -> None:
    window = Period(start, start + timedelta(days=days, seconds=17))
    periods = billing_periods(anchor, cadence, window)
    assert periods[0].start <= window.start < periods[0].end
    assert periods[-1].start < window.end <= periods[-1].end
    for left, right in itertools.pairwise(periods):
        assert left.end == right.start
    # Each is the period its own instants find (the grid is one grid, whatever the window).
    for period in periods:
        assert billing_period_for(anchor, cadence, period.start) == period


@given(anchors, instants)
def test_longer_cadences_share_the_monthly_boundaries(anchor: datetime, instant: datetime) -> None:
    monthly = billing_periods(anchor, "monthly", Period(instant, instant + timedelta(days=400)))
    starts = {p.start for p in monthly}
    for cadence in ("quarterly", "semi_annual", "annual"):
        period = billing_period_for(anchor, cadence, monthly[1].start)
        if period.start >= monthly[0].start and period.end <= monthly[-1].end:
            assert period.start in starts and period.end in starts | {monthly[-1].end}


@given(month_ends, cadences, st.integers(-40, 40))
def test_a_month_end_anchor_keeps_its_day_and_is_clamped_only_where_the_month_is_short(
    anchor: datetime, cadence: str, index: int
) -> None:
    boundary = period_boundary(anchor, CADENCE_MONTHS[cadence], index)
    import calendar

    last_day = calendar.monthrange(boundary.year, boundary.month)[1]
    assert boundary.day == min(anchor.day, last_day)
    assert boundary.time() == anchor.time()


def test_an_anchor_on_the_31st_bills_the_last_day_of_short_months_and_returns_to_the_31st() -> None:
    window = Period(at(2024, 1, 31), at(2024, 7, 1))
    starts = [p.start.date().isoformat() for p in billing_periods(at(2024, 1, 31), "monthly", window)]
    assert starts == ["2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30", "2024-05-31", "2024-06-30"]
    assert billing_period_for(at(2023, 1, 31), "monthly", at(2023, 2, 28, 12)) == Period(at(2023, 2, 28), at(2023, 3, 31))


def test_an_annual_anchor_on_the_29th_of_february() -> None:
    assert billing_period_for(at(2024, 2, 29), "annual", at(2025, 6, 1)) == Period(at(2025, 2, 28), at(2026, 2, 28))
    assert billing_period_for(at(2024, 2, 29), "annual", at(2028, 3, 1)) == Period(at(2028, 2, 29), at(2029, 2, 28))


def test_quarterly_periods_from_a_mid_month_start_keep_the_time_of_day() -> None:
    anchor = at(2024, 11, 15, 9, 30)
    assert billing_period_for(anchor, "quarterly", at(2025, 3, 1)) == Period(at(2025, 2, 15, 9, 30), at(2025, 5, 15, 9, 30))
    # Before the anchor the grid goes on backwards (the caller decides what that instant means).
    assert billing_period_for(anchor, "quarterly", at(2024, 11, 15, 9, 29)) == Period(at(2024, 8, 15, 9, 30), anchor)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="cadence"):
        billing_period_for(at(2024, 1, 1), "weekly", at(2024, 1, 2))
    with pytest.raises(ValueError, match="timezone-aware"):
        billing_period_for(datetime(2024, 1, 1), "monthly", at(2024, 1, 2))
    with pytest.raises(ValueError, match="within"):
        prorate(D("10"), Period(at(2024, 1, 1), at(2024, 3, 1)), Period(at(2024, 1, 1), at(2024, 2, 1)), "USD")


# --- covered periods and invoice dates -----------------------------------------------------------

def test_a_subscription_cancelled_mid_period_covers_full_periods_then_a_piece() -> None:
    pieces = covered_periods(at(2024, 1, 1), "monthly", Period(at(2024, 1, 1), at(2024, 3, 13)))
    assert [(p.period.start.month, p.covered.end.date().isoformat(), p.is_full) for p in pieces] == [
        (1, "2024-02-01", True), (2, "2024-03-01", True), (3, "2024-03-13", False)]
    # Fixed fees in advance: Jan 1, Feb 1, Mar 1; usage in arrears: Feb 1, Mar 1, and the cancellation date.
    assert [invoice_date(p, "in_advance").date().isoformat() for p in pieces] == ["2024-01-01", "2024-02-01", "2024-03-01"]
    assert [invoice_date(p, "in_arrear").date().isoformat() for p in pieces] == ["2024-02-01", "2024-03-01", "2024-03-13"]


def test_a_mid_period_start_bills_its_prorated_fee_at_the_start() -> None:
    # Billing anchored on the 1st, subscription starting on the 10th: the first period is a piece.
    first = covered_periods(at(2024, 1, 1), "monthly", Period(at(2024, 1, 10), at(2024, 4, 1)))[0]
    assert first.covered == Period(at(2024, 1, 10), at(2024, 2, 1)) and not first.is_full
    assert invoice_date(first, "in_advance") == at(2024, 1, 10)
    assert covered_days(first.covered, first.period) == 22


def test_covered_periods_within_a_window_and_one_time_prices() -> None:
    active = Period(at(2024, 1, 15), at(2025, 1, 15))
    window = Period(at(2024, 6, 1), at(2024, 7, 1))
    assert covered_periods(at(2024, 1, 15), "monthly", active, window) == [
        CoveredPeriod(Period(at(2024, 5, 15), at(2024, 6, 15)), Period(at(2024, 5, 15), at(2024, 6, 15))),
        CoveredPeriod(Period(at(2024, 6, 15), at(2024, 7, 15)), Period(at(2024, 6, 15), at(2024, 7, 15))),
    ]
    one_time = covered_periods(at(2024, 1, 15), "one_time", active)
    assert one_time == [CoveredPeriod(Period(at(2024, 1, 15), at(2024, 2, 15)), Period(at(2024, 1, 15), at(2024, 2, 15)))]
    assert covered_periods(at(2024, 1, 15), "one_time", active, window) == []


@given(anchors, cadences, instants, st.integers(0, 1_500))
def test_covered_pieces_tile_the_subscription_life(anchor: datetime, cadence: str, start: datetime, days: int) -> None:
    active = Period(start, start + timedelta(days=days, hours=5))
    pieces = covered_periods(anchor, cadence, active)
    assert pieces[0].covered.start == active.start and pieces[-1].covered.end == active.end
    for left, right in itertools.pairwise(pieces):
        assert left.covered.end == right.covered.start == left.period.end == right.period.start
    assert all(p.is_full for p in pieces[1:-1])


# --- proration -----------------------------------------------------------------------------------

def test_worked_example_cancellation_on_the_13th_of_january() -> None:
    january = Period(at(2022, 1, 1), at(2022, 2, 1))
    used, unused = Period(at(2022, 1, 1), at(2022, 1, 13)), Period(at(2022, 1, 13), at(2022, 2, 1))
    assert covered_days(used, january) == 12 and covered_days(unused, january) == 19
    # $50 monthly in advance: 12/31 of it is $19.354838... -> $19.35; the refund is the rest, $30.65.
    assert prorate(D("50.00"), used, january, "USD") == D("19.35")
    assert prorate(D("50.00"), unused, january, "USD") == D("30.65")


def test_worked_example_thirds_carry_the_cent_instead_of_losing_it() -> None:
    # $100 over a 30-day period cut into three 10-day pieces: independent rounding gives 33.33 x 3 = 99.99.
    april = Period(at(2024, 4, 1), at(2024, 5, 1))
    pieces = split_amount(D("100.00"), april, [at(2024, 4, 11), at(2024, 4, 21)], "USD")
    assert pieces == [D("33.33"), D("33.34"), D("33.33")] and sum(pieces) == D("100.00")


def test_worked_examples_in_other_minor_units_and_negative_amounts() -> None:
    february = Period(at(2024, 2, 1), at(2024, 3, 1))  # 29 days
    half = Period(at(2024, 2, 1), at(2024, 2, 15))  # 14 days
    assert prorate(D("1000"), half, february, "JPY") == D("483")  # 482.758...
    assert prorate(D("10.000"), half, february, "KWD") == D("4.828")
    assert prorate(D("-50.00"), half, february, "USD") == -prorate(D("50.00"), half, february, "USD") == D("-24.14")
    # A change partway through a day: the day belongs to whoever held it at its start.
    assert covered_days(Period(at(2024, 2, 1), at(2024, 2, 15, 0, 0, 1)), february) == 15
    assert proration_fraction(half, february) == Fraction(14, 29)


def test_sub_cent_amounts_round_half_up_once_per_cut() -> None:
    period = Period(at(2024, 4, 1), at(2024, 5, 1))
    assert prorate(D("0.015"), period, period, "USD") == D("0.02")
    assert split_amount(D("0.01"), period, [at(2024, 4, 16)], "USD") == [D("0.01"), D("0.00")]


@settings(max_examples=300)
@given(period_with_cuts(), amounts, currencies)
def test_pieces_cut_anywhere_add_up_to_the_whole_exactly(case: tuple[Period, list[datetime]], amount: Decimal,
                                                        currency: str) -> None:
    period, cuts = case
    pieces = split_amount(amount, period, cuts, currency)
    assert sum(pieces, D(0)) == minor_units(amount, currency)
    # Each piece is within one minor unit of its exact share.
    from domains.currencies import minor_unit_places

    unit = Fraction(1, 10 ** minor_unit_places(currency))
    points = sorted({period.start, *(c for c in cuts if period.start < c < period.end), period.end})
    for piece, (a, b) in zip(pieces, itertools.pairwise(points)):
        exact = Fraction(amount) * proration_fraction(Period(a, b), period)
        assert abs(Fraction(piece) - exact) < unit


@given(period_with_cuts(), amounts, currencies)
def test_a_full_period_is_the_full_amount(case: tuple[Period, list[datetime]], amount: Decimal, currency: str) -> None:
    period, _ = case
    assert prorate(amount, period, period, currency) == minor_units(amount, currency)
    assert proration_fraction(period, period) == 1


@given(period_with_cuts(), st.decimals(min_value=0, max_value=10**7, places=2), currencies)
def test_proration_grows_with_covered_days(case: tuple[Period, list[datetime]], amount: Decimal, currency: str) -> None:
    period, cuts = case
    start = min(cuts, default=period.start)
    ends = sorted(c for c in [*cuts, period.end] if c >= start)
    charged = [prorate(amount, Period(start, end), period, currency) for end in ends]
    days = [covered_days(Period(start, end), period) for end in ends]
    assert charged == sorted(charged) and days == sorted(days)
    assert all(c >= 0 for c in charged)
