"""Every refusal of a pricing-model config names the exact input at fault, by its dotted path."""

from __future__ import annotations

from typing import Any

import pytest

from domains.catalog.config_parsing import parse_config
from domains.errors import ValidationFailed
from tests.domains.catalog.price_examples import EXAMPLES


def refusal(model: str, config: Any) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        parse_config(model, config)
    return caught.value


def _tiers(*bounds: tuple[Any, Any]) -> dict[str, Any]:
    return {"tiers": [{"first_unit": lo, "last_unit": hi, "unit_amount": "1"} for lo, hi in bounds]}


REFUSALS: list[tuple[str, Any, str, str]] = [
    # amounts
    ("unit", {"unit_amount": 0.5}, "unit_config.unit_amount", "not a JSON number"),
    ("unit", {"unit_amount": "-1"}, "unit_config.unit_amount", "must not be negative"),
    ("unit", {"unit_amount": "abc"}, "unit_config.unit_amount", "decimal string"),
    ("unit", {"unit_amount": "NaN"}, "unit_config.unit_amount", "decimal string"),
    ("unit", {"unit_amount": "1e3"}, "unit_config.unit_amount", "decimal string"),
    ("unit", {"unit_amount": " 1"}, "unit_config.unit_amount", "decimal string"),
    ("unit", {"unit_amount": True}, "unit_config.unit_amount", "decimal string"),
    ("unit", {"unit_amount": "0." + "0" * 24 + "1"}, "unit_config.unit_amount", "at most 24 decimal places"),
    ("unit", {"unit_amount": "1" + "0" * 26}, "unit_config.unit_amount", "at most 26 digits"),
    ("unit", {"unit_amount": None}, "unit_config.unit_amount", "is required"),
    ("unit", {}, "unit_config.unit_amount", "is required"),
    ("unit", {"unit_amount": "1", "amount": "1"}, "unit_config.amount", "is not a known field"),
    ("unit", "1.00", "unit_config", "must be an object"),
    ("unit", {"unit_amount": "1", "prorated": "yes"}, "unit_config.prorated", "true or false"),
    (
        "unit",
        {"unit_amount": "1", "scaling_factor": -2},
        "unit_config.scaling_factor",
        "must not be negative",
    ),
    ("unit", {"unit_amount": "1", "scaling_factor": float("inf")}, "unit_config.scaling_factor", "finite"),
    # tiered
    ("tiered", {"tiers": []}, "tiered_config.tiers", "at least 1"),
    ("tiered", {"tiers": {"first_unit": 0}}, "tiered_config.tiers", "must be a list"),
    ("tiered", _tiers((1, 10), (10, None)), "tiered_config.tiers[0].first_unit", "must be 0"),
    (
        "tiered",
        _tiers((0, 10), (11, None)),
        "tiered_config.tiers[1].first_unit",
        "previous tier's last_unit (10)",
    ),
    ("tiered", _tiers((0, 10), (5, None)), "tiered_config.tiers[1].first_unit", "contiguous"),
    ("tiered", _tiers((0, 10), (10, 20), (10, None)), "tiered_config.tiers[2].first_unit", "(20)"),
    ("tiered", _tiers((0, None), (10, None)), "tiered_config.tiers[0].last_unit", "only the last tier"),
    ("tiered", _tiers((0, 10), (10, 20)), "tiered_config.tiers[1].last_unit", "must be null"),
    (
        "tiered",
        _tiers((0, 10), (10, 10), (10, None)),
        "tiered_config.tiers[1].last_unit",
        "greater than first_unit",
    ),
    ("tiered", _tiers((0, -1), (-1, None)), "tiered_config.tiers[0].last_unit", "must not be negative"),
    (
        "tiered",
        {
            "tiers": [
                {"first_unit": 0, "last_unit": 10, "unit_amount": "1"},
                {"first_unit": 10, "unit_amount": 0.5},
            ]
        },
        "tiered_config.tiers[1].unit_amount",
        "not a JSON number",
    ),
    (
        "tiered",
        {"tiers": [{"first_unit": 0, "unit_amount": "1", "flat_amount": "2"}]},
        "tiered_config.tiers[0].flat_amount",
        "is not a known field",
    ),
    ("tiered", _tiers(*[(i, i + 1) for i in range(100)], (100, None)), "tiered_config.tiers", "at most 100"),
    # package
    ("package", {"package_amount": "5", "package_size": 0}, "package_config.package_size", "greater than 0"),
    ("package", {"package_amount": "5", "package_size": 2.5}, "package_config.package_size", "whole number"),
    (
        "package",
        {"package_amount": "5", "package_size": -10},
        "package_config.package_size",
        "not be negative",
    ),
    (
        "package",
        {"package_amount": 5.0, "package_size": 10},
        "package_config.package_amount",
        "not a JSON number",
    ),
    # matrix
    (
        "matrix",
        {"dimensions": [], "default_unit_amount": "0", "matrix_values": []},
        "matrix_config.dimensions",
        "at least 1",
    ),
    (
        "matrix",
        {"dimensions": ["a", "b", "c"], "default_unit_amount": "0", "matrix_values": []},
        "matrix_config.dimensions",
        "at most 2",
    ),
    (
        "matrix",
        {"dimensions": [None], "default_unit_amount": "0", "matrix_values": []},
        "matrix_config.dimensions[0]",
        "event property",
    ),
    (
        "matrix",
        {"dimensions": ["region", "region"], "default_unit_amount": "0", "matrix_values": []},
        "matrix_config.dimensions[1]",
        "repeats",
    ),
    (
        "matrix",
        {**EXAMPLES["matrix"], "matrix_values": [{"dimension_values": ["us-east"], "unit_amount": "1"}]},
        "matrix_config.matrix_values[0].dimension_values",
        "must have 2 value(s), one per dimension (region, tier)",
    ),
    (
        "matrix",
        {
            **EXAMPLES["matrix"],
            "matrix_values": [
                {"dimension_values": ["us-east", "gpu"], "unit_amount": "1"},
                {"dimension_values": ["eu-west", "gpu"], "unit_amount": "2"},
                {"dimension_values": ["us-east", "gpu"], "unit_amount": "3"},
            ],
        },
        "matrix_config.matrix_values[2].dimension_values",
        "duplicates matrix_values[0]",
    ),
    (
        "matrix",
        {**EXAMPLES["matrix"], "matrix_values": [{"dimension_values": ["us-east", 5], "unit_amount": "1"}]},
        "matrix_config.matrix_values[0].dimension_values[1]",
        "must be a string",
    ),
    (
        "matrix",
        {**EXAMPLES["matrix"], "matrix_values": [{"dimension_values": ["a", "b"], "unit_amount": "-0.1"}]},
        "matrix_config.matrix_values[0].unit_amount",
        "must not be negative",
    ),
    (
        "matrix",
        {"dimensions": ["region"], "matrix_values": []},
        "matrix_config.default_unit_amount",
        "is required",
    ),
    # bulk
    (
        "bulk",
        {"tiers": [{"unit_amount": "1"}, {"maximum_units": 10, "unit_amount": "1"}]},
        "bulk_config.tiers[0].maximum_units",
        "only the last tier may be unbounded",
    ),
    (
        "bulk",
        {"tiers": [{"maximum_units": 100, "unit_amount": "1"}, {"maximum_units": 50, "unit_amount": "1"}]},
        "bulk_config.tiers[1].maximum_units",
        "greater than the previous tier's maximum_units (100)",
    ),
    (
        "bulk",
        {"tiers": [{"maximum_units": 0, "unit_amount": "1"}, {"unit_amount": "1"}]},
        "bulk_config.tiers[0].maximum_units",
        "greater than 0",
    ),
    ("bulk", {"tiers": [{"unit_amount": "1.5.0"}]}, "bulk_config.tiers[0].unit_amount", "decimal string"),
    # tiered_package
    (
        "tiered_package",
        {**EXAMPLES["tiered_package"], "package_size": "0"},
        "tiered_package_config.package_size",
        "greater than 0",
    ),
    (
        "tiered_package",
        {**EXAMPLES["tiered_package"], "package_size": 10.0},
        "tiered_package_config.package_size",
        "not a JSON number",
    ),
    (
        "tiered_package",
        {
            "package_size": "10",
            "tiers": [
                {"tier_lower_bound": "0", "per_unit": "1"},
                {"tier_lower_bound": "25", "per_unit": "1"},
            ],
        },
        "tiered_package_config.tiers[1].tier_lower_bound",
        "multiple of package_size (10)",
    ),
    (
        "tiered_package",
        {"package_size": "10", "tiers": [{"tier_lower_bound": "10", "per_unit": "1"}]},
        "tiered_package_config.tiers[0].tier_lower_bound",
        "must be 0",
    ),
    (
        "tiered_package",
        {
            "package_size": "10",
            "tiers": [
                {"tier_lower_bound": "0", "per_unit": "1"},
                {"tier_lower_bound": "20", "per_unit": "1"},
                {"tier_lower_bound": "20", "per_unit": "1"},
            ],
        },
        "tiered_package_config.tiers[2].tier_lower_bound",
        "greater than the previous tier's tier_lower_bound (20)",
    ),
    (
        "tiered_package",
        {"package_size": "10", "tiers": [{"tier_lower_bound": "0", "per_unit": "-5"}]},
        "tiered_package_config.tiers[0].per_unit",
        "must not be negative",
    ),
    # grouped_tiered
    (
        "grouped_tiered",
        {**EXAMPLES["grouped_tiered"], "grouping_key": " "},
        "grouped_tiered_config.grouping_key",
        "event property",
    ),
    (
        "grouped_tiered",
        {
            "grouping_key": "p",
            "tiers": [
                {"tier_lower_bound": "0", "unit_amount": "1"},
                {"tier_lower_bound": "0", "unit_amount": "1"},
            ],
        },
        "grouped_tiered_config.tiers[1].tier_lower_bound",
        "greater than the previous",
    ),
    (
        "grouped_tiered",
        {"grouping_key": "p", "tiers": [{"tier_lower_bound": "0", "unit_amount": 1.25}]},
        "grouped_tiered_config.tiers[0].unit_amount",
        "not a JSON number",
    ),
    (
        "grouped_tiered",
        {"grouping_key": "p", "tiers": [{"tier_lower_bound": "0", "unit_amount": "1", "per_unit": "1"}]},
        "grouped_tiered_config.tiers[0].per_unit",
        "is not a known field",
    ),
    # threshold_total_amount
    (
        "threshold_total_amount",
        {"consumption_table": []},
        "threshold_total_amount_config.consumption_table",
        "at least 1",
    ),
    (
        "threshold_total_amount",
        {
            "consumption_table": [
                {"threshold": "10", "total_amount": "1"},
                {"threshold": "10", "total_amount": "2"},
            ]
        },
        "threshold_total_amount_config.consumption_table[1].threshold",
        "greater than the previous threshold (10)",
    ),
    (
        "threshold_total_amount",
        {"consumption_table": [{"threshold": 10.5, "total_amount": "1"}]},
        "threshold_total_amount_config.consumption_table[0].threshold",
        "not a JSON number",
    ),
    (
        "threshold_total_amount",
        {"consumption_table": [{"threshold": "10", "total_amount": "-1"}]},
        "threshold_total_amount_config.consumption_table[0].total_amount",
        "must not be negative",
    ),
    (
        "threshold_total_amount",
        {**EXAMPLES["threshold_total_amount"], "prorate": "no"},
        "threshold_total_amount_config.prorate",
        "true or false",
    ),
]


@pytest.mark.parametrize(
    ("model", "config", "field", "message"), REFUSALS, ids=[f"{r[2]}:{r[3]}" for r in REFUSALS]
)
def test_refusals_name_the_offending_input(model: str, config: Any, field: str, message: str) -> None:
    failure = refusal(model, config)
    assert failure.field == field
    assert message in failure.message
    assert failure.code == "VALIDATION_FAILED"


def test_orbs_older_inclusive_tier_example_is_refused_with_a_pointer_to_the_fix() -> None:
    # docs.withorb.com once showed tiers 1-10 and 11-null; the SDK's bounds are (first_unit, last_unit].
    failure = refusal("tiered", _tiers((1, 10), (11, None)))
    assert failure.field == "tiered_config.tiers[0].first_unit"
    assert "must be 0" in failure.message
