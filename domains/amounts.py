"""Bounds every stored decimal keeps: what NUMERIC(38, 12) holds on PostgreSQL, held on SQLite too,
so both engines store the same value and no tiny input ("1e999999") becomes a huge one."""

from __future__ import annotations

from decimal import Decimal, localcontext

from domains.errors import ValidationFailed

MAX_INTEGER_DIGITS = 26
MAX_DECIMAL_PLACES = 12


def bounded(field: str, amount: Decimal) -> Decimal:
    """`amount` if it fits the stored precision, else ValidationFailed naming `field`."""
    if not amount.is_finite():
        raise ValidationFailed(field, "must be a finite number")
    _, digits, exponent = amount.as_tuple()
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    integer_digits = max(len(digits) - places, 0) + (exponent if isinstance(exponent, int) and exponent > 0 else 0)
    if amount != 0 and integer_digits > MAX_INTEGER_DIGITS:
        raise ValidationFailed(field, f"must have at most {MAX_INTEGER_DIGITS} digits before the decimal point")
    with localcontext() as context:
        context.prec = 100  # room for 26 + 12 digits and more while checking
        too_fine = places > MAX_DECIMAL_PLACES and amount != amount.quantize(Decimal(1).scaleb(-MAX_DECIMAL_PLACES))
    if too_fine:
        raise ValidationFailed(field, f"must have at most {MAX_DECIMAL_PLACES} decimal places")
    return amount
