"""Per-organisation custom fields: the definitions' rules and a value's check against its definition."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from domains.amounts import bounded
from domains.errors import ValidationFailed

FIELD_TYPES = ("string", "number", "boolean", "date", "enum")
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def check_definition(*, key: str, field_type: str, allowed_values: list[str] | None, label: str | None = None) -> None:
    if label is not None and len(label) > 200:
        raise ValidationFailed("label", "must be at most 200 characters")
    if not _KEY.match(key):
        raise ValidationFailed("key", "must be 1-64 characters of a-z, 0-9 and _, starting with a letter")
    if field_type not in FIELD_TYPES:
        raise ValidationFailed("type", f"must be one of {', '.join(FIELD_TYPES)}")
    if field_type == "enum":
        if not allowed_values or not all(isinstance(v, str) and v for v in allowed_values):
            raise ValidationFailed("allowed_values", "an enum field needs a non-empty list of strings")
        if len(set(allowed_values)) != len(allowed_values):
            raise ValidationFailed("allowed_values", "values must be distinct")
    elif allowed_values:
        raise ValidationFailed("allowed_values", "only enum fields take allowed_values")


def coerce_value(
    *, field_type: str, required: bool, allowed_values: list[str] | None, value: Any
) -> str | bool | None:
    """The stored form of `value`, or ValueError with a message for the caller's `rejected` map."""
    if value is None:
        if required:
            raise ValueError("is required and cannot be cleared")
        return None
    if field_type == "string":
        if not isinstance(value, str):
            raise ValueError("must be a string")
        return value
    if field_type == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError("must be a number")
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise ValueError("must be a number") from None
        try:
            bounded("value", number)
        except ValidationFailed as exc:
            raise ValueError(exc.message) from None
        return format(number, "f")  # kept as exact text
    if field_type == "boolean":
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value
    if field_type == "date":
        try:
            return date.fromisoformat(str(value)).isoformat() if isinstance(value, str) else _not_a_date()
        except ValueError:
            raise ValueError("must be a date written YYYY-MM-DD") from None
    if value not in (allowed_values or []):
        raise ValueError(f"must be one of {', '.join(allowed_values or [])}")
    return value


def _not_a_date() -> str:
    raise ValueError("not a string")


def strict_value(definition_field: str, **kwargs: Any) -> str | bool | None:
    """As coerce_value, but as a ValidationFailed naming the field (for all-or-nothing inputs)."""
    try:
        return coerce_value(**kwargs)
    except ValueError as exc:
        raise ValidationFailed(definition_field, str(exc)) from None
