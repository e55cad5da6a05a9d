"""The amount a quantity costs under each of Orb's pricing models: exact Decimals, no I/O.

Rounding. Nothing here rounds an amount: $0.000015 x 3 is $0.000045. Invoicing rounds to the
currency's minor unit once, on the line, so that rounding per tier, per group or per matrix cell
never accumulates. The only rounding is the one a model itself defines on quantities: `package`
and `tiered_package` bill whole packages, so a started package counts as a full one (rounded up).

Arithmetic runs in EXACT_ARITHMETIC, which traps rounding: an amount that would need more digits
than it holds raises decimal.Rounded rather than silently losing a cent.

Quantities are Decimals (an int is accepted; a float is refused, it is not exact) and must not be
negative, so no amount is ever negative. Turning negative usage into a credit, if ever wanted, is
invoicing's decision, not a pricing model's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal, localcontext

from domains.catalog.price_configs import (
    EXACT_ARITHMETIC,
    BulkConfig,
    GroupedTieredConfig,
    MatrixConfig,
    PackageConfig,
    PriceConfig,
    ThresholdTotalAmountConfig,
    TieredConfig,
    TieredPackageConfig,
    UnitConfig,
)

MatrixKey = tuple[str | None, ...]
# The models whose amount depends on one total quantity, with no split of it.
SingleQuantityConfig = (
    UnitConfig | TieredConfig | PackageConfig | BulkConfig | TieredPackageConfig | ThresholdTotalAmountConfig
)
ZERO = Decimal(0)


def amount_for(
    config: PriceConfig,
    quantity: Decimal | int,
    *,
    groups: Mapping[str, Decimal | int] | None = None,
    matrix_quantities: Mapping[MatrixKey, Decimal | int] | None = None,
) -> Decimal:
    """The amount `quantity` costs under `config`, unrounded (see the module docstring).

    `groups` (grouped_tiered only, required there) splits the quantity by the value of the
    price's grouping_key; `matrix_quantities` (matrix only, optional) splits it by the values of
    the matrix dimensions, in the order of `dimensions`, None for a missing property. Without it,
    all usage is priced at the matrix default. A split must add up to `quantity`.
    """
    total = _quantity("quantity", quantity)
    if groups is not None and not isinstance(config, GroupedTieredConfig):
        raise ValueError(f"{config.model_type} pricing takes no groups")
    if matrix_quantities is not None and not isinstance(config, MatrixConfig):
        raise ValueError(f"{config.model_type} pricing takes no matrix_quantities")
    with localcontext(EXACT_ARITHMETIC):
        if isinstance(config, GroupedTieredConfig):
            if groups is None:
                raise ValueError("grouped_tiered pricing needs the quantity of each group")
            _check_split("groups", groups.values(), total)
            amount = sum(grouped_tiered_amounts(config, groups).values(), ZERO)
        elif isinstance(config, MatrixConfig) and matrix_quantities is None:
            amount = _scaled(total, config.scaling_factor) * config.default_unit_amount
        elif isinstance(config, MatrixConfig):
            assert matrix_quantities is not None
            _check_split("matrix_quantities", matrix_quantities.values(), total)
            amount = sum(matrix_amounts(config, matrix_quantities).values(), ZERO)
        else:
            amount = _single(config, total)
    return amount


def grouped_tiered_amounts(
    config: GroupedTieredConfig, groups: Mapping[str, Decimal | int]
) -> dict[str, Decimal]:
    """Each group's amount: the tiers restart for every value of the grouping key."""
    bands = [
        (tier.tier_lower_bound, nxt.tier_lower_bound if nxt else None, tier.unit_amount)
        for tier, nxt in zip(config.tiers, (*config.tiers[1:], None))
    ]
    with localcontext(EXACT_ARITHMETIC):
        return {group: _graduated(bands, _quantity(f"groups[{group!r}]", q)) for group, q in groups.items()}


def matrix_amounts(
    config: MatrixConfig, matrix_quantities: Mapping[MatrixKey, Decimal | int]
) -> dict[MatrixKey, Decimal]:
    """Each matrix cell's amount; a combination no matrix_value names is priced at the default."""
    cells = {cell.dimension_values: cell for cell in config.matrix_values}
    with localcontext(EXACT_ARITHMETIC):
        result: dict[MatrixKey, Decimal] = {}
        for key, value in matrix_quantities.items():
            if not isinstance(key, tuple) or len(key) != len(config.dimensions):
                raise ValueError(f"matrix key {key!r} must be a tuple of {len(config.dimensions)} value(s)")
            quantity = _quantity(f"matrix_quantities[{key!r}]", value)
            cell = cells.get(key)
            if cell is None:
                result[key] = _scaled(quantity, config.scaling_factor) * config.default_unit_amount
            else:
                result[key] = _scaled(quantity, cell.scaling_factor) * cell.unit_amount
        return result


# --- the models priced on one total quantity ---------------------------------------------------


def _single(config: SingleQuantityConfig, quantity: Decimal) -> Decimal:
    if isinstance(config, UnitConfig):
        return _scaled(quantity, config.scaling_factor) * config.unit_amount
    if isinstance(config, TieredConfig):
        # Graduated: each unit is priced by the tier it falls in, (first_unit, last_unit].
        return _graduated([(t.first_unit, t.last_unit, t.unit_amount) for t in config.tiers], quantity)
    if isinstance(config, PackageConfig):
        return _packages(quantity, Decimal(config.package_size)) * config.package_amount
    if isinstance(config, BulkConfig):
        return quantity * _bulk_rate(config, quantity)
    if isinstance(config, TieredPackageConfig):
        return _tiered_package(config, quantity)
    return _threshold_total(config, quantity)


def _graduated(bands: list[tuple[Decimal, Decimal | None, Decimal]], quantity: Decimal) -> Decimal:
    """Sum over bands (lower, upper or None, rate) of rate x the part of quantity inside the band.

    Whether a boundary unit belongs below or above does not change a graduated sum, so the same
    function serves Orb's (first_unit, last_unit] tiers and its exclusive tier_lower_bound tiers.
    """
    amount = ZERO
    for lower, upper, rate in bands:
        if quantity <= lower:
            break
        top = quantity if upper is None else min(quantity, upper)
        amount += (top - lower) * rate
    return amount


def _packages(quantity: Decimal, size: Decimal) -> Decimal:
    """Whole packages needed for quantity: a started package counts in full (Orb rounds up)."""
    whole, rest = divmod(quantity, size)
    return whole + 1 if rest else whole


def _bulk_rate(config: BulkConfig, quantity: Decimal) -> Decimal:
    """The rate of the first tier whose maximum_units (inclusive) holds the whole quantity.

    Orb's own bulk example ends in a bounded tier; past it, the last tier's rate goes on applying,
    since a larger volume should never fall back to a smaller one's rate or have no price.
    """
    for tier in config.tiers:
        if tier.maximum_units is None or quantity <= tier.maximum_units:
            return tier.unit_amount
    return config.tiers[-1].unit_amount


def _tiered_package(config: TieredPackageConfig, quantity: Decimal) -> Decimal:
    """Round the quantity up to whole packages, then price packages graduated by tier.

    Tier bounds are in units and multiples of package_size (validated), so each tier holds whole
    packages, and per_unit is Orb's price per package.
    """
    size = config.package_size
    rounded = _packages(quantity, size) * size
    amount = ZERO
    for tier, nxt in zip(config.tiers, (*config.tiers[1:], None)):
        if rounded <= tier.tier_lower_bound:
            break
        top = rounded if nxt is None else min(rounded, nxt.tier_lower_bound)
        amount += ((top - tier.tier_lower_bound) // size) * tier.per_unit
    return amount


def _threshold_total(config: ThresholdTotalAmountConfig, quantity: Decimal) -> Decimal:
    """The total_amount of the highest threshold the quantity has reached (>=), else nothing.

    The total replaces, not adds to, the totals of lower thresholds: it is "the" total.
    """
    amount = ZERO
    for row in config.consumption_table:
        if quantity < row.threshold:
            break
        amount = row.total_amount
    return amount


# --- inputs ------------------------------------------------------------------------------------


def _scaled(quantity: Decimal, factor: Decimal | None) -> Decimal:
    return quantity if factor is None else quantity * factor


def _quantity(name: str, value: Decimal | int) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise TypeError(f"{name} must be a Decimal or an int, not {type(value).__name__}")
    quantity = Decimal(value)
    if not quantity.is_finite() or quantity < 0:
        raise ValueError(f"{name} must be a finite quantity >= 0, got {value}")
    # copy_abs only turns a "-0" into "0", so that no amount ever prints as "-0".
    return quantity.copy_abs()


def _check_split(name: str, parts: Iterable[Decimal | int], total: Decimal) -> None:
    if sum((_quantity(name, part) for part in parts), ZERO) != total:
        raise ValueError(f"the {name} must add up to the quantity ({total})")
