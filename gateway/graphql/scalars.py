"""Scalars as every face renders them: UTC instants with a `Z`, money as exact decimal strings."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, DecimalException
from typing import Any

from strawberry.schema.types.base_scalars import wrap_parser
from strawberry.types.scalar import ScalarDefinition

from domains.amounts import bounded
from domains.errors import ValidationFailed
from persistence.types import canonical_decimal


def render_instant(value: datetime) -> str:
    if value.tzinfo is UTC:  # what both databases hand back: no conversion, and the offset is the text's tail
        return value.isoformat()[:-6] + "Z"
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_instant(value: Any) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("a timezone (Z or an offset) is required")
    return parsed.astimezone(UTC)


UTCDateTime = ScalarDefinition(
    name="DateTime",
    specified_by_url=None,
    parse_literal=None,
    origin=datetime,
    description="An instant, rendered in UTC as ISO 8601 with a Z (2026-01-31T12:00:00Z).",
    serialize=render_instant,
    parse_value=wrap_parser(_parse_instant, "DateTime"),
)


# Rendered amounts by value: equal Decimals (0, 0.00, -0) render alike, and a page repeats a few
# amounts (balances of 0) many times. Bounded, so odd traffic cannot grow it without end.
_MONEY_TEXT: dict[Decimal, str] = {}
_MONEY_TEXT_LIMIT = 4096


def render_money(value: Decimal) -> str:
    """Exact, with at least cents: 10 -> "10.00", 0.125 -> "0.125" (same text on both databases)."""
    if not value:  # every zero (0, 0E-12, -0) renders as "0.00"; NaN is truthy
        return "0.00"
    try:
        return _MONEY_TEXT[value]
    except KeyError:
        pass
    except TypeError:  # a signalling NaN cannot be hashed
        return _render_money(value)
    text = _render_money(value)
    if value.is_finite() and len(_MONEY_TEXT) < _MONEY_TEXT_LIMIT:
        _MONEY_TEXT[value] = text
    return text


def _render_money(value: Decimal) -> str:
    text = canonical_decimal(value)
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


def _parse_money(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        # A float has already lost exactness; money travels as a string (or an integer).
        raise ValueError("write money as a decimal string, e.g. \"12.50\"")  # noqa: TRY004 (a coercion error)
    try:
        amount = Decimal(value)
    except DecimalException:
        raise ValueError(f"{value!r} is not a decimal number") from None
    try:
        return bounded("value", amount)
    except ValidationFailed as exc:
        raise ValueError(exc.message) from None


Money = ScalarDefinition(
    name="Decimal",
    specified_by_url=None,
    parse_literal=None,
    origin=Decimal,
    description="An exact decimal amount, rendered as a string with at least two decimals.",
    serialize=render_money,
    parse_value=_parse_money,
)
