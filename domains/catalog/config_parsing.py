"""Client JSON to validated pricing-model configs; every refusal names the input at fault.

The /v1 face can hand a request's `<model>_config` object straight to `parse_config`. Every refusal
is a `ValidationFailed` whose field is the dotted path of the offending input, e.g.
`tiered_config.tiers[1].first_unit`, so a client can point at it. Unknown keys are refused.

Numbers. Orb types money, and the bounds of its newer models, as decimal strings; a JSON float is
refused there, because a float has already lost the exact value the client meant (0.1 is not
one tenth in binary). Integers are exact and accepted. The few fields Orb itself types as JSON
numbers (first_unit, last_unit, maximum_units, scaling_factor, package_size) also accept a float,
read through its shortest repr, which is the literal the client wrote.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, localcontext
from typing import Any

from domains.catalog.price_configs import (
    EXACT_ARITHMETIC,
    MODEL_TYPES,
    BulkConfig,
    BulkTier,
    GroupedTier,
    GroupedTieredConfig,
    MatrixConfig,
    MatrixValue,
    PackageConfig,
    PriceConfig,
    Threshold,
    ThresholdTotalAmountConfig,
    Tier,
    TieredConfig,
    TieredPackageConfig,
    TieredPackageTier,
    UnitConfig,
    decimal_text,
)
from domains.errors import ValidationFailed

# Lists are capped (DESIGN §11: list inputs capped). A matrix of two dimensions needs more cells
# than a tier table has tiers (20 regions x 10 machine sizes is already 200).
MAX_TIERS = 100
MAX_MATRIX_VALUES = 1000
MAX_NAME_LENGTH = 255
# Bounds on every configured number, so that a product of two of them fits the exact arithmetic
# context of pricing (EXACT_ARITHMETIC) with room to spare.
MAX_INTEGER_DIGITS = 26
MAX_DECIMAL_PLACES = 24

_DECIMAL_TEXT = re.compile(r"^-?(?:\d+(?:\.\d*)?|\.\d+)$")


def parse_config(model: str, config: Any) -> PriceConfig:
    """The validated config of pricing model `model` from its JSON `<model>_config` object.

    Raises ValidationFailed naming the offending input, e.g. `bulk_config.tiers[2].maximum_units`.
    """
    if model not in MODEL_TYPES:
        raise ValidationFailed("model_type", f"must be one of {', '.join(MODEL_TYPES)}")
    path = f"{model}_config"
    if model == "unit":
        return _unit(path, config)
    if model == "tiered":
        return _tiered(path, config)
    if model == "package":
        return _package(path, config)
    if model == "matrix":
        return _matrix(path, config)
    if model == "bulk":
        return _bulk(path, config)
    if model == "tiered_package":
        return _tiered_package(path, config)
    if model == "grouped_tiered":
        return _grouped_tiered(path, config)
    return _threshold_total_amount(path, config)


# --- one parser per model ----------------------------------------------------------------------


def _unit(path: str, value: Any) -> UnitConfig:
    obj = _object(path, value, required=("unit_amount",), optional=("scaling_factor", "prorated"))
    return UnitConfig(
        unit_amount=_amount(f"{path}.unit_amount", obj["unit_amount"]),
        scaling_factor=_optional_number(f"{path}.scaling_factor", obj.get("scaling_factor")),
        prorated=_optional_flag(f"{path}.prorated", obj.get("prorated")),
    )


def _tiered(path: str, value: Any) -> TieredConfig:
    obj = _object(path, value, required=("tiers",), optional=("prorated",))
    items = _list(f"{path}.tiers", obj["tiers"], MAX_TIERS)
    tiers: list[Tier] = []
    for i, item in enumerate(items):
        at = f"{path}.tiers[{i}]"
        raw = _object(at, item, required=("first_unit", "unit_amount"), optional=("last_unit",))
        first = _number(f"{at}.first_unit", raw["first_unit"], floats=True)
        last = _optional_number(f"{at}.last_unit", raw.get("last_unit"))
        if i == 0 and first != 0:
            raise ValidationFailed(f"{at}.first_unit", "must be 0: the first tier starts at zero usage")
        if i > 0 and first != tiers[-1].last_unit:
            raise ValidationFailed(
                f"{at}.first_unit",
                f"must equal the previous tier's last_unit ({_show(tiers[-1].last_unit)}): "
                "tiers are contiguous and in ascending order",
            )
        is_last = i == len(items) - 1
        if last is None and not is_last:
            raise ValidationFailed(f"{at}.last_unit", "only the last tier may be open-ended (null)")
        if last is not None and is_last:
            # Orb: null "if and only if this is the last tier"; otherwise usage above it has no price.
            raise ValidationFailed(f"{at}.last_unit", "must be null: the last tier is open-ended")
        if last is not None and last <= first:
            raise ValidationFailed(f"{at}.last_unit", f"must be greater than first_unit ({_show(first)})")
        tiers.append(Tier(first, last, _amount(f"{at}.unit_amount", raw["unit_amount"])))
    return TieredConfig(tiers=tuple(tiers), prorated=_optional_flag(f"{path}.prorated", obj.get("prorated")))


def _package(path: str, value: Any) -> PackageConfig:
    obj = _object(path, value, required=("package_amount", "package_size"))
    size = _number(f"{path}.package_size", obj["package_size"], floats=True)
    if size != size.to_integral_value() or size <= 0:
        raise ValidationFailed(f"{path}.package_size", "must be a whole number greater than 0")
    return PackageConfig(
        package_amount=_amount(f"{path}.package_amount", obj["package_amount"]), package_size=int(size)
    )


def _matrix(path: str, value: Any) -> MatrixConfig:
    obj = _object(
        path,
        value,
        required=("dimensions", "default_unit_amount", "matrix_values"),
        optional=("scaling_factor",),
    )
    dimensions = _list(f"{path}.dimensions", obj["dimensions"], 2)
    for i, name in enumerate(dimensions):
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH:
            raise ValidationFailed(f"{path}.dimensions[{i}]", "must be the name of an event property")
        if name in dimensions[:i]:
            raise ValidationFailed(f"{path}.dimensions[{i}]", f"repeats dimension {name!r}")
    cells: list[MatrixValue] = []
    seen: dict[tuple[str | None, ...], int] = {}
    for i, item in enumerate(_list(f"{path}.matrix_values", obj["matrix_values"], MAX_MATRIX_VALUES, 0)):
        at = f"{path}.matrix_values[{i}]"
        raw = _object(at, item, required=("dimension_values", "unit_amount"), optional=("scaling_factor",))
        key = _dimension_values(f"{at}.dimension_values", raw["dimension_values"], dimensions)
        if key in seen:
            raise ValidationFailed(
                f"{at}.dimension_values",
                f"duplicates matrix_values[{seen[key]}]: each combination may be priced only once",
            )
        seen[key] = i
        cells.append(
            MatrixValue(
                dimension_values=key,
                unit_amount=_amount(f"{at}.unit_amount", raw["unit_amount"]),
                scaling_factor=_optional_number(f"{at}.scaling_factor", raw.get("scaling_factor")),
            )
        )
    return MatrixConfig(
        dimensions=tuple(dimensions),
        default_unit_amount=_amount(f"{path}.default_unit_amount", obj["default_unit_amount"]),
        matrix_values=tuple(cells),
        scaling_factor=_optional_number(f"{path}.scaling_factor", obj.get("scaling_factor")),
    )


def _dimension_values(path: str, value: Any, dimensions: Sequence[str]) -> tuple[str | None, ...]:
    if not isinstance(value, (list, tuple)):
        raise ValidationFailed(path, "must be a list")
    items = list(value)
    if len(items) != len(dimensions):
        names = ", ".join(dimensions)
        raise ValidationFailed(path, f"must have {len(dimensions)} value(s), one per dimension ({names})")
    for i, item in enumerate(items):
        # Null matches usage that lacks the property. Orb asks for matrix properties as strings.
        if item is not None and (not isinstance(item, str) or len(item) > MAX_NAME_LENGTH):
            raise ValidationFailed(f"{path}[{i}]", "must be a string (or null for a missing property)")
    return tuple(items)


def _bulk(path: str, value: Any) -> BulkConfig:
    obj = _object(path, value, required=("tiers",))
    items = _list(f"{path}.tiers", obj["tiers"], MAX_TIERS)
    tiers: list[BulkTier] = []
    for i, item in enumerate(items):
        at = f"{path}.tiers[{i}]"
        raw = _object(at, item, required=("unit_amount",), optional=("maximum_units",))
        maximum = _optional_number(f"{at}.maximum_units", raw.get("maximum_units"))
        if maximum is None and i != len(items) - 1:
            raise ValidationFailed(f"{at}.maximum_units", "only the last tier may be unbounded (null)")
        if maximum is not None and maximum <= 0:
            raise ValidationFailed(f"{at}.maximum_units", "must be greater than 0")
        previous = tiers[-1].maximum_units if tiers else None
        if maximum is not None and previous is not None and maximum <= previous:
            raise ValidationFailed(
                f"{at}.maximum_units",
                f"must be greater than the previous tier's maximum_units ({_show(previous)})",
            )
        tiers.append(BulkTier(maximum, _amount(f"{at}.unit_amount", raw["unit_amount"])))
    return BulkConfig(tiers=tuple(tiers))


def _tiered_package(path: str, value: Any) -> TieredPackageConfig:
    obj = _object(path, value, required=("package_size", "tiers"))
    size = _number(f"{path}.package_size", obj["package_size"], floats=False)
    if size <= 0:
        raise ValidationFailed(f"{path}.package_size", "must be greater than 0")
    items = _list(f"{path}.tiers", obj["tiers"], MAX_TIERS)
    bounds = _lower_bounds(f"{path}.tiers", items, ("per_unit",))
    for i, bound in enumerate(bounds):
        # Orb: tier bounds count units, not packages, "so they must be multiples of the package size".
        with localcontext(EXACT_ARITHMETIC):
            misaligned = bound % size != 0
        if misaligned:
            raise ValidationFailed(
                f"{path}.tiers[{i}].tier_lower_bound", f"must be a multiple of package_size ({_show(size)})"
            )
    tiers = tuple(
        TieredPackageTier(bound, _amount(f"{path}.tiers[{i}].per_unit", items[i]["per_unit"]))
        for i, bound in enumerate(bounds)
    )
    return TieredPackageConfig(package_size=size, tiers=tiers)


def _grouped_tiered(path: str, value: Any) -> GroupedTieredConfig:
    obj = _object(path, value, required=("grouping_key", "tiers"))
    key = obj["grouping_key"]
    if not isinstance(key, str) or not key.strip() or len(key) > MAX_NAME_LENGTH:
        raise ValidationFailed(f"{path}.grouping_key", "must be the name of an event property")
    items = _list(f"{path}.tiers", obj["tiers"], MAX_TIERS)
    bounds = _lower_bounds(f"{path}.tiers", items, ("unit_amount",))
    tiers = tuple(
        GroupedTier(bound, _amount(f"{path}.tiers[{i}].unit_amount", items[i]["unit_amount"]))
        for i, bound in enumerate(bounds)
    )
    return GroupedTieredConfig(grouping_key=key, tiers=tiers)


def _lower_bounds(path: str, items: Sequence[Any], amounts: tuple[str, ...]) -> list[Decimal]:
    """Tiers given by exclusive lower bounds: the first at 0, then strictly ascending."""
    bounds: list[Decimal] = []
    for i, item in enumerate(items):
        at = f"{path}[{i}]"
        raw = _object(at, item, required=("tier_lower_bound", *amounts))
        bound = _number(f"{at}.tier_lower_bound", raw["tier_lower_bound"], floats=False)
        if i == 0 and bound != 0:
            raise ValidationFailed(f"{at}.tier_lower_bound", "must be 0: the first tier starts at zero usage")
        if i > 0 and bound <= bounds[-1]:
            raise ValidationFailed(
                f"{at}.tier_lower_bound",
                f"must be greater than the previous tier's tier_lower_bound ({_show(bounds[-1])})",
            )
        bounds.append(bound)
    return bounds


def _threshold_total_amount(path: str, value: Any) -> ThresholdTotalAmountConfig:
    obj = _object(path, value, required=("consumption_table",), optional=("prorate",))
    rows: list[Threshold] = []
    for i, item in enumerate(_list(f"{path}.consumption_table", obj["consumption_table"], MAX_TIERS)):
        at = f"{path}.consumption_table[{i}]"
        raw = _object(at, item, required=("threshold", "total_amount"))
        threshold = _number(f"{at}.threshold", raw["threshold"], floats=False)
        if rows and threshold <= rows[-1].threshold:
            raise ValidationFailed(
                f"{at}.threshold",
                f"must be greater than the previous threshold ({_show(rows[-1].threshold)})",
            )
        rows.append(Threshold(threshold, _amount(f"{at}.total_amount", raw["total_amount"])))
    return ThresholdTotalAmountConfig(
        consumption_table=tuple(rows), prorate=_optional_flag(f"{path}.prorate", obj.get("prorate"))
    )


# --- JSON shapes -------------------------------------------------------------------------------


def _object(
    path: str, value: Any, *, required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationFailed(path, "must be an object")
    known = required + optional
    for key in value:
        if key not in known:
            raise ValidationFailed(f"{path}.{key}", f"is not a known field; expected: {', '.join(known)}")
    for key in required:
        if value.get(key) is None:
            raise ValidationFailed(f"{path}.{key}", "is required")
    return value


def _list(path: str, value: Any, maximum: int, minimum: int = 1) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise ValidationFailed(path, "must be a list")
    if len(value) < minimum:
        raise ValidationFailed(path, f"must have at least {minimum} entr{'y' if minimum == 1 else 'ies'}")
    if len(value) > maximum:
        raise ValidationFailed(path, f"must have at most {maximum} entr{'y' if maximum == 1 else 'ies'}")
    return list(value)


def _optional_flag(path: str, value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise ValidationFailed(path, "must be true or false")


# --- numbers -----------------------------------------------------------------------------------


def _amount(path: str, value: Any) -> Decimal:
    """Money: a decimal string (or an integer), never a float, never negative."""
    return _number(path, value, floats=False)


def _optional_number(path: str, value: Any) -> Decimal | None:
    return None if value is None else _number(path, value, floats=True)


def _number(path: str, value: Any, *, floats: bool) -> Decimal:
    """A non-negative, finite, bounded Decimal. Floats only where Orb's own type is a JSON number."""
    if isinstance(value, float) and floats:
        if not math.isfinite(value):
            raise ValidationFailed(path, "must be a finite number")
        number = Decimal(repr(value))
    elif isinstance(value, float):
        raise ValidationFailed(
            path, 'must be a decimal string such as "0.50", not a JSON number: a float is not exact'
        )
    elif isinstance(value, bool):  # a bool is an int to Python, never a number to a client
        raise ValidationFailed(path, 'must be a decimal string such as "0.50"')
    elif isinstance(value, int) or (isinstance(value, str) and _DECIMAL_TEXT.match(value)):
        number = Decimal(value)
    elif isinstance(value, Decimal) and value.is_finite():
        number = value
    else:
        raise ValidationFailed(path, 'must be a decimal string such as "0.50"')
    if number < 0:
        raise ValidationFailed(path, "must not be negative")
    if number != 0 and number.adjusted() >= MAX_INTEGER_DIGITS:
        raise ValidationFailed(
            path, f"must have at most {MAX_INTEGER_DIGITS} digits before the decimal point"
        )
    if _decimal_places(number) > MAX_DECIMAL_PLACES:
        raise ValidationFailed(path, f"must have at most {MAX_DECIMAL_PLACES} decimal places")
    # copy_abs turns "-0" into "0"; Decimal(text) keeps the client's scale ("1.50"), which compares equal.
    return number.copy_abs()


def _decimal_places(number: Decimal) -> int:
    _, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # finite, checked by the caller
    text = "".join(map(str, digits))
    significant = text.rstrip("0")
    if not significant:
        return 0
    return max(0, -(exponent + len(text) - len(significant)))


def _show(value: Decimal | None) -> str:
    return "null" if value is None else decimal_text(value)
