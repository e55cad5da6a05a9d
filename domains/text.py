"""Text fields every resource shares: names, descriptions, external ids, choices."""

from __future__ import annotations

from typing import Any

from domains.errors import ValidationFailed


def text(field: str, value: Any, *, required: bool = False, max_length: int = 500) -> str | None:
    """A required text is stripped and must not be blank; an optional one may be null (or given as is)."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValidationFailed(field, "is required and must not be blank" if required else "must be a string")
    if len(value) > max_length:
        raise ValidationFailed(field, f"must be at most {max_length} characters")
    return value.strip() if required else value


def identifier(field: str, value: Any, *, max_length: int = 255) -> str | None:
    """An optional caller-chosen id (external_plan_id, ...): null, or a non-blank string."""
    return None if value is None else text(field, value, required=True, max_length=max_length)


def one_of(field: str, value: Any, allowed: tuple[str, ...]) -> str:
    """One of a closed set of words (a status, a provider), or refused naming the field and the set."""
    if value not in allowed:
        raise ValidationFailed(field, f"must be one of {', '.join(allowed)}")
    return value  # type: ignore[no-any-return]


def refuse_unknown(fields: Any, allowed: Any, what: str, *, prefix: str = "") -> None:
    """Refuse the first (alphabetically) key not in allowed, naming it (under prefix) as not being `what`."""
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise ValidationFailed(f"{prefix}.{unknown[0]}" if prefix else unknown[0], f"is not {what}")
