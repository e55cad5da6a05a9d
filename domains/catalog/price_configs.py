"""Typed configurations of Orb's pricing models: what a price's `<model>_config` means.

Field names and meanings follow Orb's API (`unit_config`, `tiered_config`, ...); the SDK's
docstrings are quoted where a name misleads. Every number is an exact Decimal. parse_config (in
config_parsing) builds these from a client's JSON; config_to_json gives JSON back for storage.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass
from decimal import Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow, Rounded
from typing import Any, ClassVar

# Arithmetic on prices never rounds silently: an operation that would need more than `prec` digits
# raises decimal.Rounded (or Inexact) instead. Configured numbers have at most 50 digits
# (config_parsing bounds them), so any product of two of them is exact here.
EXACT_ARITHMETIC = Context(prec=200, traps=[InvalidOperation, DivisionByZero, Overflow, Inexact, Rounded])


@dataclass(frozen=True, slots=True)
class UnitConfig:
    model_type: ClassVar[str] = "unit"
    unit_amount: Decimal
    scaling_factor: Decimal | None = None  # multiplies the quantity before unit_amount
    prorated: bool | None = None  # a billing-period concern; kept, not applied by pricing


@dataclass(frozen=True, slots=True)
class Tier:
    first_unit: Decimal  # exclusive lower bound
    last_unit: Decimal | None  # inclusive upper bound; None only on the last tier
    unit_amount: Decimal


@dataclass(frozen=True, slots=True)
class TieredConfig:
    model_type: ClassVar[str] = "tiered"
    tiers: tuple[Tier, ...]
    prorated: bool | None = None


@dataclass(frozen=True, slots=True)
class PackageConfig:
    model_type: ClassVar[str] = "package"
    package_amount: Decimal
    package_size: int


@dataclass(frozen=True, slots=True)
class MatrixValue:
    dimension_values: tuple[str | None, ...]
    unit_amount: Decimal
    scaling_factor: Decimal | None = None


@dataclass(frozen=True, slots=True)
class MatrixConfig:
    model_type: ClassVar[str] = "matrix"
    dimensions: tuple[str, ...]
    default_unit_amount: Decimal
    matrix_values: tuple[MatrixValue, ...]
    scaling_factor: Decimal | None = None  # for the default bucket only, as in Orb


@dataclass(frozen=True, slots=True)
class BulkTier:
    maximum_units: Decimal | None  # inclusive upper bound; None = unbounded
    unit_amount: Decimal


@dataclass(frozen=True, slots=True)
class BulkConfig:
    model_type: ClassVar[str] = "bulk"
    tiers: tuple[BulkTier, ...]


@dataclass(frozen=True, slots=True)
class TieredPackageTier:
    tier_lower_bound: Decimal  # exclusive, in units (not packages), a multiple of package_size
    per_unit: Decimal  # Orb: "Price per package", despite the name


@dataclass(frozen=True, slots=True)
class TieredPackageConfig:
    model_type: ClassVar[str] = "tiered_package"
    package_size: Decimal
    tiers: tuple[TieredPackageTier, ...]


@dataclass(frozen=True, slots=True)
class GroupedTier:
    tier_lower_bound: Decimal  # exclusive
    unit_amount: Decimal


@dataclass(frozen=True, slots=True)
class GroupedTieredConfig:
    model_type: ClassVar[str] = "grouped_tiered"
    grouping_key: str
    tiers: tuple[GroupedTier, ...]


@dataclass(frozen=True, slots=True)
class Threshold:
    threshold: Decimal
    total_amount: Decimal


@dataclass(frozen=True, slots=True)
class ThresholdTotalAmountConfig:
    model_type: ClassVar[str] = "threshold_total_amount"
    consumption_table: tuple[Threshold, ...]
    prorate: bool | None = None  # a billing-period concern; kept, not applied by pricing


PriceConfig = (
    UnitConfig
    | TieredConfig
    | PackageConfig
    | MatrixConfig
    | BulkConfig
    | TieredPackageConfig
    | GroupedTieredConfig
    | ThresholdTotalAmountConfig
)

MODEL_TYPES = (
    "unit",
    "tiered",
    "package",
    "matrix",
    "bulk",
    "tiered_package",
    "grouped_tiered",
    "threshold_total_amount",
)


def config_to_json(config: PriceConfig) -> dict[str, Any]:
    """The config as storable JSON in Orb's field names; every decimal as exact text.

    parse_config(model, config_to_json(c)) == c. Faces that must render Orb's JSON numbers
    (first_unit, ...) convert at the edge.
    """
    return _json_object(config)


def decimal_text(value: Decimal) -> str:
    """Plain text without exponent, keeping the scale the client wrote: Decimal("1.50") -> "1.50"."""
    text = format(value, "f")
    return text[1:] if text.startswith("-") and not value else text


def _json_object(value: Any) -> dict[str, Any]:
    return {f.name: _json_value(getattr(value, f.name)) for f in fields(value)}


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, tuple):
        return [_json_value(item) for item in value]
    if is_dataclass(value):
        return _json_object(value)
    return value
