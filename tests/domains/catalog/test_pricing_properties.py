"""Pricing properties that hold for any valid config (hypothesis), checked against independent sums."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from domains.catalog.config_parsing import parse_config
from domains.catalog.price_configs import (
    MODEL_TYPES,
    BulkConfig,
    GroupedTieredConfig,
    PriceConfig,
    ThresholdTotalAmountConfig,
    TieredPackageConfig,
    config_to_json,
)
from domains.catalog.pricing import amount_for

D = Decimal
BULK_CLIFF = {
    "tiers": [{"maximum_units": 10, "unit_amount": "1.00"}, {"maximum_units": None, "unit_amount": "0.50"}]
}


# --- strategies: valid configs as the JSON a client would send ---------------------------------

money = st.decimals(min_value=0, max_value=1000, places=4).map(str)
quantities = st.decimals(min_value=0, max_value=100_000, places=3)


@st.composite
def ascending(draw: st.DrawFn, count: int, step: int = 1) -> list[int]:
    """`count` distinct positive multiples of `step`, ascending."""
    values = draw(st.sets(st.integers(1, 2_000), min_size=count, max_size=count))
    return sorted(v * step for v in values)


@st.composite
def tiered_json(draw: st.DrawFn) -> dict[str, Any]:
    bounds = draw(ascending(draw(st.integers(0, 5))))
    edges = [0, *bounds]
    uppers: list[int | None] = [*bounds, None]
    return {
        "tiers": [
            {"first_unit": lo, "last_unit": hi, "unit_amount": draw(money)} for lo, hi in zip(edges, uppers)
        ]
    }


@st.composite
def bulk_json(draw: st.DrawFn) -> dict[str, Any]:
    bounds: list[int | None] = list(draw(ascending(draw(st.integers(1, 5)))))
    if draw(st.booleans()):
        bounds[-1] = None
    return {"tiers": [{"maximum_units": bound, "unit_amount": draw(money)} for bound in bounds]}


@st.composite
def tiered_package_json(draw: st.DrawFn) -> dict[str, Any]:
    size = draw(st.integers(1, 50))
    bounds = [0, *draw(ascending(draw(st.integers(0, 4)), step=size))]
    return {
        "package_size": str(size),
        "tiers": [{"tier_lower_bound": str(b), "per_unit": draw(money)} for b in bounds],
    }


@st.composite
def grouped_tiered_json(draw: st.DrawFn) -> dict[str, Any]:
    bounds = [0, *draw(ascending(draw(st.integers(0, 4))))]
    return {
        "grouping_key": "g",
        "tiers": [{"tier_lower_bound": str(b), "unit_amount": draw(money)} for b in bounds],
    }


@st.composite
def threshold_json(draw: st.DrawFn) -> dict[str, Any]:
    bounds = draw(ascending(draw(st.integers(1, 5))))
    return {"consumption_table": [{"threshold": str(b), "total_amount": draw(money)} for b in bounds]}


@st.composite
def matrix_json(draw: st.DrawFn) -> dict[str, Any]:
    cells = draw(
        st.lists(st.tuples(st.sampled_from(["us", "eu", None]), st.sampled_from(["a", "b"])), unique=True)
    )
    return {
        "dimensions": ["region", "size"],
        "default_unit_amount": draw(money),
        "matrix_values": [{"dimension_values": list(cell), "unit_amount": draw(money)} for cell in cells],
    }


MODEL_JSON = {
    "unit": st.builds(lambda amount: {"unit_amount": amount}, money),
    "tiered": tiered_json(),
    "package": st.builds(
        lambda amount, size: {"package_amount": amount, "package_size": size}, money, st.integers(1, 1000)
    ),
    "matrix": matrix_json(),
    "bulk": bulk_json(),
    "tiered_package": tiered_package_json(),
    "grouped_tiered": grouped_tiered_json(),
    "threshold_total_amount": threshold_json(),
}
assert set(MODEL_JSON) == set(MODEL_TYPES)

any_config = st.sampled_from(MODEL_TYPES).flatmap(
    lambda model: MODEL_JSON[model].map(lambda config: parse_config(model, config))
)
# Models whose amount can only grow with usage, whatever the config.
monotone_config = st.sampled_from(
    ["unit", "tiered", "package", "matrix", "tiered_package", "grouped_tiered"]
).flatmap(lambda model: MODEL_JSON[model].map(lambda config: parse_config(model, config)))


def total(config: PriceConfig, quantity: Decimal) -> Decimal:
    """Price the whole quantity as one group / the default matrix cell."""
    groups = {"all": quantity} if isinstance(config, GroupedTieredConfig) else None
    return amount_for(config, quantity, groups=groups)


# --- properties --------------------------------------------------------------------------------


@given(any_config, quantities)
def test_amounts_are_never_negative_and_the_same_inputs_give_the_same_amount(
    config: PriceConfig, quantity: Decimal
) -> None:
    amount = total(config, quantity)
    assert amount >= 0
    again = total(parse_config(config.model_type, config_to_json(config)), D(str(quantity)))
    assert (again, str(again)) == (amount, str(amount))


@given(any_config)
def test_every_config_survives_a_round_trip_through_storage(config: PriceConfig) -> None:
    assert parse_config(config.model_type, config_to_json(config)) == config


@given(monotone_config, quantities, quantities)
def test_more_usage_never_costs_less(config: PriceConfig, a: Decimal, b: Decimal) -> None:
    low, high = sorted((a, b))
    assert total(config, low) <= total(config, high)


@given(MODEL_JSON["unit"], quantities, quantities)
def test_unit_is_additive(config_json: dict[str, Any], a: Decimal, b: Decimal) -> None:
    config = parse_config("unit", config_json)
    assert amount_for(config, a + b) == amount_for(config, a) + amount_for(config, b)


@given(tiered_json(), st.integers(0, 3_000))
def test_tiered_equals_the_price_of_each_unit_summed_one_by_one(
    config_json: dict[str, Any], quantity: int
) -> None:
    def rate_of_unit(n: int) -> Decimal:  # unit n lies in (first_unit, last_unit]
        for t in config_json["tiers"]:
            if t["first_unit"] < n and (t["last_unit"] is None or n <= t["last_unit"]):
                return D(t["unit_amount"])
        raise AssertionError(n)

    expected = sum((rate_of_unit(n) for n in range(1, quantity + 1)), D(0))
    assert amount_for(parse_config("tiered", config_json), D(quantity)) == expected


@given(tiered_json(), quantities)
def test_tiered_equals_the_sum_over_tiers(config_json: dict[str, Any], quantity: Decimal) -> None:
    expected = D(0)
    for t in config_json["tiers"]:
        upper = quantity if t["last_unit"] is None else min(quantity, D(t["last_unit"]))
        expected += max(D(0), upper - D(t["first_unit"])) * D(t["unit_amount"])
    assert amount_for(parse_config("tiered", config_json), quantity) == expected


@given(tiered_json(), st.data())
def test_tiered_at_a_boundary_is_exactly_the_full_tiers_below_it(
    config_json: dict[str, Any], data: st.DataObject
) -> None:
    tiers = config_json["tiers"]
    k = data.draw(st.integers(0, len(tiers) - 1))
    boundary = D(tiers[k]["first_unit"])
    full = sum((D(t["last_unit"] - t["first_unit"]) * D(t["unit_amount"]) for t in tiers[:k]), D(0))
    assert amount_for(parse_config("tiered", config_json), boundary) == full


@given(bulk_json(), quantities)
def test_bulk_is_the_whole_quantity_at_one_tiers_rate(config_json: dict[str, Any], quantity: Decimal) -> None:
    tiers = config_json["tiers"]
    holding = [t for t in tiers if t["maximum_units"] is None or quantity <= t["maximum_units"]]
    rate = D((holding[0] if holding else tiers[-1])["unit_amount"])
    assert amount_for(parse_config("bulk", config_json), quantity) == quantity * rate


@given(bulk_json(), st.data())
def test_bulk_boundaries_are_inclusive(config_json: dict[str, Any], data: st.DataObject) -> None:
    bounded = [i for i, t in enumerate(config_json["tiers"]) if t["maximum_units"] is not None]
    if not bounded:
        return
    i = data.draw(st.sampled_from(bounded))
    tiers = config_json["tiers"]
    edge = D(tiers[i]["maximum_units"])
    config = parse_config("bulk", config_json)
    assert amount_for(config, edge) == edge * D(tiers[i]["unit_amount"])
    above = edge + D("0.001")
    next_rate = D(tiers[min(i + 1, len(tiers) - 1)]["unit_amount"])
    assert amount_for(config, above) == above * next_rate


@given(bulk_json(), quantities, quantities)
def test_bulk_is_monotone_within_a_tier_and_when_rates_do_not_fall(
    config_json: dict[str, Any], a: Decimal, b: Decimal
) -> None:
    config = parse_config("bulk", config_json)
    assert isinstance(config, BulkConfig)
    low, high = sorted((a, b))

    def tier_index(q: Decimal) -> int:
        return next(
            (i for i, t in enumerate(config.tiers) if t.maximum_units is None or q <= t.maximum_units), -1
        )

    rates = [t.unit_amount for t in config.tiers]
    if tier_index(low) == tier_index(high) or rates == sorted(rates):
        assert amount_for(config, low) <= amount_for(config, high)


def test_bulk_is_not_monotone_in_general() -> None:
    # The cliff that bulk pricing is for: the 11th unit makes all eleven cheaper.
    config = parse_config("bulk", BULK_CLIFF)
    assert amount_for(config, D(11)) < amount_for(config, D(10))


@given(st.integers(1, 1000), money, quantities)
def test_package_bills_the_started_packages(size: int, amount: str, quantity: Decimal) -> None:
    config = parse_config("package", {"package_amount": amount, "package_size": size})
    packages = math.ceil(Fraction(quantity) / size)
    assert amount_for(config, quantity) == packages * D(amount)
    # Never less than the pro-rata price, and less than one package more.
    pro_rata = Fraction(quantity) / size * Fraction(amount)
    charged = Fraction(amount_for(config, quantity))
    assert pro_rata <= charged
    assert charged < pro_rata + Fraction(amount) or charged == pro_rata == 0


@given(tiered_package_json(), st.integers(0, 5_000))
def test_tiered_package_equals_pricing_each_package_one_by_one(
    config_json: dict[str, Any], quantity: int
) -> None:
    config = parse_config("tiered_package", config_json)
    assert isinstance(config, TieredPackageConfig)
    size = int(config.package_size)
    expected = D(0)
    for n in range(1, math.ceil(quantity / size) + 1):  # package n covers units ((n-1)*size, n*size]
        last_unit = n * size
        expected += [t.per_unit for t in config.tiers if t.tier_lower_bound < last_unit][-1]
    assert amount_for(config, D(quantity)) == expected


@given(grouped_tiered_json(), st.dictionaries(st.text(min_size=1, max_size=3), quantities, max_size=4))
def test_grouped_tiered_is_tiered_pricing_of_each_group_summed(
    config_json: dict[str, Any], groups: dict[str, Decimal]
) -> None:
    config = parse_config("grouped_tiered", config_json)
    bounds = [t["tier_lower_bound"] for t in config_json["tiers"]]
    as_tiered = parse_config(
        "tiered",
        {
            "tiers": [
                {"first_unit": lo, "last_unit": hi, "unit_amount": t["unit_amount"]}
                for t, lo, hi in zip(config_json["tiers"], bounds, [*bounds[1:], None])
            ]
        },
    )
    expected = sum((amount_for(as_tiered, q) for q in groups.values()), D(0))
    assert amount_for(config, sum(groups.values(), D(0)), groups=groups) == expected


@given(
    matrix_json(),
    st.dictionaries(
        st.tuples(st.sampled_from(["us", "eu", "ap", None]), st.sampled_from(["a", "b"])), quantities
    ),
)
def test_matrix_is_each_cell_at_its_own_rate_or_the_default(
    config_json: dict[str, Any], usage: dict[tuple[str | None, ...], Decimal]
) -> None:
    rates = {tuple(v["dimension_values"]): D(v["unit_amount"]) for v in config_json["matrix_values"]}
    default = D(config_json["default_unit_amount"])
    expected = sum((q * rates.get(key, default) for key, q in usage.items()), D(0))
    config = parse_config("matrix", config_json)
    assert amount_for(config, sum(usage.values(), D(0)), matrix_quantities=usage) == expected


@given(threshold_json(), quantities)
def test_threshold_total_is_one_configured_total_or_nothing(
    config_json: dict[str, Any], quantity: Decimal
) -> None:
    config = parse_config("threshold_total_amount", config_json)
    assert isinstance(config, ThresholdTotalAmountConfig)
    reached = [row.total_amount for row in config.consumption_table if quantity >= row.threshold]
    assert amount_for(config, quantity) == (reached[-1] if reached else 0)


@given(threshold_json(), quantities, quantities)
def test_threshold_total_grows_with_usage_when_its_totals_do(
    config_json: dict[str, Any], a: Decimal, b: Decimal
) -> None:
    config = parse_config("threshold_total_amount", config_json)
    assert isinstance(config, ThresholdTotalAmountConfig)
    totals = [row.total_amount for row in config.consumption_table]
    low, high = sorted((a, b))
    if totals == sorted(totals):
        assert amount_for(config, low) <= amount_for(config, high)
