"""Pricing models on Orb's documented worked examples, and the contract of amount_for's inputs."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from domains.catalog.config_parsing import parse_config
from domains.catalog.price_configs import GroupedTieredConfig, MatrixConfig
from domains.catalog.pricing import MatrixKey, amount_for, grouped_tiered_amounts, matrix_amounts

D = Decimal


def price(model: str, config: dict[str, Any], quantity: Any, **split: Any) -> Decimal:
    return amount_for(parse_config(model, config), D(quantity), **split)


TIERED = {
    "tiers": [
        {"first_unit": 0, "last_unit": 10, "unit_amount": "1.00"},
        {"first_unit": 10, "last_unit": None, "unit_amount": "0.50"},
    ]
}
BULK = {
    "tiers": [{"maximum_units": 10, "unit_amount": "1.00"}, {"maximum_units": None, "unit_amount": "0.50"}]
}
MATRIX = {
    "dimensions": ["region", "tier"],
    "default_unit_amount": "0.10",
    "matrix_values": [
        {"dimension_values": ["us-east", "standard"], "unit_amount": "0.50"},
        {"dimension_values": ["eu-west", "premium"], "unit_amount": "1.00"},
    ],
}
TIERED_PACKAGE = {
    "package_size": "10",
    "tiers": [{"tier_lower_bound": "0", "per_unit": "5.00"}, {"tier_lower_bound": "20", "per_unit": "3.00"}],
}
GROUPED = {
    "grouping_key": "project_id",
    "tiers": [
        {"tier_lower_bound": "0", "unit_amount": "1.00"},
        {"tier_lower_bound": "100", "unit_amount": "0.50"},
    ],
}
THRESHOLDS = {
    "consumption_table": [
        {"threshold": "1000", "total_amount": "100.00"},
        {"threshold": "5000", "total_amount": "400.00"},
    ]
}


def test_unit_is_quantity_times_unit_amount_unrounded() -> None:
    assert price("unit", {"unit_amount": "0.50"}, 15) == D("7.50")
    # Not rounded to cents here: invoicing rounds once, later.
    assert price("unit", {"unit_amount": "0.000015"}, 3) == D("0.000045")
    # scaling_factor multiplies the quantity first (e.g. bytes billed per thousand).
    assert price("unit", {"unit_amount": "2", "scaling_factor": 0.001}, 2000) == D("4")


@pytest.mark.parametrize(
    ("quantity", "expected"), [(0, "0"), (5, "5.00"), (10, "10.00"), (15, "12.50"), ("10.5", "10.25")]
)
def test_tiered_prices_each_unit_in_its_own_tier(quantity: Any, expected: str) -> None:
    # 0-10 at $1, then $0.50: 15 units = 10 x 1 + 5 x 0.50.
    assert price("tiered", TIERED, quantity) == D(expected)


@pytest.mark.parametrize(
    ("quantity", "expected"), [(0, "0"), (5, "5.00"), (10, "10.00"), (11, "5.50"), (15, "7.50")]
)
def test_bulk_prices_every_unit_at_the_tier_the_total_falls_in(quantity: int, expected: str) -> None:
    # Same tiers as tiered, but 15 units are all at $0.50; 10 is still in the first tier (inclusive).
    assert price("bulk", BULK, quantity) == D(expected)


def test_bulk_orbs_documented_example_and_usage_past_a_bounded_last_tier() -> None:
    # docs.withorb.com: up to 10 at $0.50, then $0.40 each: 101 units = $40.40.
    orb = {
        "tiers": [
            {"maximum_units": 10, "unit_amount": "0.50"},
            {"maximum_units": 1000, "unit_amount": "0.40"},
        ]
    }
    assert price("bulk", orb, 10) == D("5.00")
    assert price("bulk", orb, 101) == D("40.40")
    # Past the last bound the last tier's rate goes on applying.
    assert price("bulk", orb, 2000) == D("800.00")


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [(0, "0"), (1, "5.00"), (10, "5.00"), (25, "15.00"), (30, "15.00"), ("30.01", "20.00")],
)
def test_package_rounds_up_to_whole_packages(quantity: Any, expected: str) -> None:
    # $5 per 10 units: 25 units are 3 packages.
    assert price("package", {"package_amount": "5.00", "package_size": 10}, quantity) == D(expected)


def test_package_orbs_documented_example() -> None:
    # docs.withorb.com: package size 5, 4 units billed as 5 and 6 units as 10.
    config = {"package_amount": "1", "package_size": 5}
    assert (price("package", config, 4), price("package", config, 6)) == (D(1), D(2))


def test_matrix_prices_each_cell_and_the_rest_at_the_default() -> None:
    usage: dict[MatrixKey, Decimal] = {
        ("us-east", "standard"): D(100),
        ("eu-west", "premium"): D(10),
        ("ap-south", "standard"): D(50),
    }
    config = parse_config("matrix", MATRIX)
    assert isinstance(config, MatrixConfig)
    assert matrix_amounts(config, usage) == {
        ("us-east", "standard"): D("50.00"),
        ("eu-west", "premium"): D("10.00"),
        ("ap-south", "standard"): D("5.00"),  # no matrix value: default $0.10
    }
    assert amount_for(config, D(160), matrix_quantities=usage) == D("65.00")
    # Without a split, everything is priced at the default.
    assert amount_for(config, D(160)) == D("16.00")


def test_matrix_single_dimension_and_missing_property() -> None:
    config = {
        "dimensions": ["region"],
        "default_unit_amount": "1",
        "matrix_values": [
            {"dimension_values": [None], "unit_amount": "0"},
            {"dimension_values": ["eu"], "unit_amount": "2"},
        ],
    }
    assert price("matrix", config, 6, matrix_quantities={("eu",): D(1), (None,): D(2), ("us",): D(3)}) == D(5)


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [(0, "0"), (1, "5.00"), (20, "10.00"), (21, "13.00"), (35, "16.00"), (40, "16.00")],
)
def test_tiered_package_rounds_up_then_prices_packages_by_tier(quantity: int, expected: str) -> None:
    # 10-unit packages, $5 a package up to 20 units, $3 a package above: 35 units -> 40 units
    # -> 2 packages at $5 + 2 packages at $3 = $16.
    assert price("tiered_package", TIERED_PACKAGE, quantity) == D(expected)


def test_grouped_tiered_restarts_the_tiers_for_each_group() -> None:
    config = parse_config("grouped_tiered", GROUPED)
    assert isinstance(config, GroupedTieredConfig)
    groups = {"project-a": D(150), "project-b": D(50)}
    assert grouped_tiered_amounts(config, groups) == {"project-a": D("125.00"), "project-b": D("50.00")}
    assert amount_for(config, D(200), groups=groups) == D("175.00")
    # The same 200 units in one group would be 100 + 50 = $150.
    assert amount_for(config, D(200), groups={"only": D(200)}) == D("150.00")


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [(0, "0"), (999, "0"), (1000, "100.00"), (4999, "100.00"), (5000, "400.00"), (10**6, "400.00")],
)
def test_threshold_total_amount_charges_the_total_of_the_highest_threshold_reached(
    quantity: int, expected: str
) -> None:
    assert price("threshold_total_amount", THRESHOLDS, quantity) == D(expected)


def test_a_split_must_add_up_and_belongs_to_its_model_only() -> None:
    grouped = parse_config("grouped_tiered", GROUPED)
    with pytest.raises(ValueError, match="add up"):
        amount_for(grouped, D(10), groups={"a": D(4)})
    with pytest.raises(ValueError, match="needs the quantity of each group"):
        amount_for(grouped, D(10))
    with pytest.raises(ValueError, match="takes no groups"):
        amount_for(parse_config("unit", {"unit_amount": "1"}), D(1), groups={"a": D(1)})
    matrix = parse_config("matrix", MATRIX)
    with pytest.raises(ValueError, match="tuple of 2"):
        amount_for(matrix, D(1), matrix_quantities={("us-east",): D(1)})
    with pytest.raises(ValueError, match="add up"):
        amount_for(matrix, D(2), matrix_quantities={("us-east", "standard"): D(1)})


def test_quantities_are_exact_and_never_negative() -> None:
    unit = parse_config("unit", {"unit_amount": "1"})
    with pytest.raises(TypeError):
        amount_for(unit, 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        amount_for(unit, D(-1))
    with pytest.raises(ValueError):
        amount_for(unit, D("NaN"))
    assert str(amount_for(unit, D("-0"))) == "0"
