"""Turning Strawberry input objects into the plain mappings services take (omitted fields stay out)."""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Any

from strawberry.types.unset import UNSET


def to_fields(value: Any) -> Any:
    """Input object -> dict of the fields actually given (null kept as None), recursively."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_fields(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if getattr(value, f.name) is not UNSET
        }
    if isinstance(value, list):
        return [to_fields(item) for item in value]
    if isinstance(value, Enum):
        return value.value
    return value
