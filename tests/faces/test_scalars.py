"""The scalar renderers' fast paths (zero, remembered amounts, UTC instants) give exactly the text of
the general rendering, for any value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Context, Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.graphql import scalars
from gateway.graphql.scalars import render_instant, render_money
from persistence.types import canonical_decimal


def _reference_money(value: Decimal) -> str:
    text = canonical_decimal(value)
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


def _reference_instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


amounts = st.decimals(allow_nan=False, allow_infinity=False, min_value=Decimal("-1e12"), max_value=Decimal("1e12"),
                      places=None)


@settings(max_examples=200)
@given(amounts)
def test_money_renders_as_the_general_rendering_first_time_and_remembered(value: Decimal) -> None:
    first, again = render_money(value), render_money(value)
    assert first == again == _reference_money(value)


@given(amounts, st.integers(min_value=0, max_value=6))
def test_equal_amounts_of_different_exponents_render_alike(value: Decimal, extra_places: int) -> None:
    # 1.5 and 1.500 share a remembered entry: that is only right because they render alike.
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    widened = value.quantize(Decimal(1).scaleb(exponent - extra_places), context=Context(prec=100))
    assert widened == value
    assert render_money(widened) == render_money(value) == _reference_money(widened)


def test_money_worked_examples() -> None:
    assert render_money(Decimal(0)) == "0.00"
    assert render_money(Decimal("-0.000")) == "0.00"
    assert render_money(Decimal("0E-12")) == "0.00"
    assert render_money(Decimal(10)) == "10.00"
    assert render_money(Decimal("10.500")) == "10.50"
    assert render_money(Decimal("0.125")) == "0.125"
    assert render_money(Decimal("-3.1")) == "-3.10"
    assert render_money(Decimal("1E+3")) == "1000.00"


def test_remembered_amounts_are_bounded() -> None:
    for cents in range(scalars._MONEY_TEXT_LIMIT + 50):
        render_money(Decimal(cents) / 100 + Decimal(1000000))
    assert len(scalars._MONEY_TEXT) <= scalars._MONEY_TEXT_LIMIT


instants = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1))
offsets = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30)),
                           timezone(timedelta(0))])


@settings(max_examples=200)
@given(instants, offsets)
def test_instant_renders_as_the_general_rendering(moment: datetime, zone: timezone) -> None:
    value = moment.replace(tzinfo=zone)
    rendered = render_instant(value)
    assert rendered == _reference_instant(value)
    assert rendered.endswith("Z")


def test_instant_worked_examples() -> None:
    assert render_instant(datetime(2026, 1, 31, 12, tzinfo=UTC)) == "2026-01-31T12:00:00Z"
    assert render_instant(datetime(2026, 1, 31, 12, 0, 0, 5, tzinfo=UTC)) == "2026-01-31T12:00:00.000005Z"
    assert render_instant(datetime(2026, 1, 31, 14, tzinfo=timezone(timedelta(hours=2)))) == "2026-01-31T12:00:00Z"
