"""Orb's metadata: string keys to string values, on customers, items, plans and more."""

from __future__ import annotations

from typing import Any

from domains.errors import ValidationFailed


def merge_metadata(field: str, value: Any, current: dict[str, str] | None = None) -> dict[str, str]:
    """Orb semantics: keys given are set, a key given as null is removed, other keys stay; null sets none.

    Only null stands for none: an empty list, string or 0 is the wrong type, refused (not taken as {})."""
    if value is None:
        return dict(current or {})
    if not isinstance(value, dict):
        raise ValidationFailed(field, "must be an object of string values")
    merged = dict(current or {})
    for key, item in value.items():
        if item is None:
            merged.pop(key, None)
        elif isinstance(item, str):
            merged[key] = item
        else:
            raise ValidationFailed(f"{field}.{key}", "must be a string or null")
    return merged
