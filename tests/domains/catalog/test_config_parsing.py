"""Pricing-model configs: Orb's field names accepted, every refusal names the exact input at fault."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any, Required, get_origin, get_type_hints

import pytest
from orb.types.shared_params import (
    bulk_config,
    bulk_tier,
    matrix_config,
    matrix_value,
    package_config,
    tier,
    tiered_config,
    unit_config,
)
from orb.types.shared_params import new_floating_grouped_tiered_price as grouped_tiered_price
from orb.types.shared_params import new_floating_threshold_total_amount_price as threshold_price
from orb.types.shared_params import new_floating_tiered_package_price as tiered_package_price

from domains.catalog.config_parsing import parse_config
from domains.catalog.price_configs import (
    MODEL_TYPES,
    MatrixConfig,
    PackageConfig,
    Tier,
    TieredConfig,
    UnitConfig,
    config_to_json,
)
from domains.errors import ValidationFailed
from tests.domains.catalog.price_examples import EXAMPLES

# (model, the SDK TypedDict of its config, the key of its nested list, the TypedDict of one entry)
SDK_SHAPES = [
    ("unit", unit_config.UnitConfig, None, None),
    ("tiered", tiered_config.TieredConfig, "tiers", tier.Tier),
    ("package", package_config.PackageConfig, None, None),
    ("matrix", matrix_config.MatrixConfig, "matrix_values", matrix_value.MatrixValue),
    ("bulk", bulk_config.BulkConfig, "tiers", bulk_tier.BulkTier),
    (
        "tiered_package",
        tiered_package_price.TieredPackageConfig,
        "tiers",
        tiered_package_price.TieredPackageConfigTier,
    ),
    (
        "grouped_tiered",
        grouped_tiered_price.GroupedTieredConfig,
        "tiers",
        grouped_tiered_price.GroupedTieredConfigTier,
    ),
    (
        "threshold_total_amount",
        threshold_price.ThresholdTotalAmountConfig,
        "consumption_table",
        threshold_price.ThresholdTotalAmountConfigConsumptionTable,
    ),
]


def _keys(typed_dict: type) -> tuple[set[str], set[str]]:
    hints = get_type_hints(typed_dict, include_extras=True)
    required = {key for key, hint in hints.items() if get_origin(hint) is Required}
    return set(hints), required


def refusal(model: str, config: Any) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        parse_config(model, config)
    return caught.value


@pytest.mark.parametrize(("model", "shape", "nested", "entry"), SDK_SHAPES, ids=[s[0] for s in SDK_SHAPES])
def test_every_key_of_orbs_sdk_is_accepted_and_its_required_keys_are_required(
    model: str, shape: type, nested: str | None, entry: type | None
) -> None:
    example = EXAMPLES[model]
    keys, required = _keys(shape)
    assert set(example) == keys, "the example should use every key the SDK declares"
    parse_config(model, example)
    for key in required:
        config = {k: v for k, v in example.items() if k != key}
        failure = refusal(model, config)
        assert (failure.field, failure.message) == (f"{model}_config.{key}", "is required")
    if nested is None or entry is None:
        return
    entry_keys, entry_required = _keys(entry)
    assert set().union(*(set(item) for item in example[nested])) == entry_keys
    for key in entry_required:
        config = copy.deepcopy(example)
        del config[nested][0][key]
        assert refusal(model, config).field == f"{model}_config.{nested}[0].{key}"


def test_parsed_values_are_exact_decimals_in_typed_objects() -> None:
    assert parse_config("unit", {"unit_amount": "0.000015"}) == UnitConfig(unit_amount=Decimal("0.000015"))
    assert parse_config("package", {"package_amount": 5, "package_size": "10"}) == PackageConfig(
        Decimal(5), 10
    )
    tiered = parse_config("tiered", EXAMPLES["tiered"])
    assert tiered == TieredConfig(
        tiers=(Tier(Decimal(0), Decimal(10), Decimal("1.00")), Tier(Decimal(10), None, Decimal("0.50"))),
        prorated=False,
    )
    matrix = parse_config("matrix", EXAMPLES["matrix"])
    assert isinstance(matrix, MatrixConfig)
    assert matrix.matrix_values[0].dimension_values == ("us-east", "standard")


def test_orb_number_fields_accept_a_float_as_the_literal_the_client_wrote() -> None:
    # Orb types first_unit/last_unit/maximum_units/scaling_factor as JSON numbers.
    config = parse_config(
        "tiered",
        {
            "tiers": [
                {"first_unit": 0.0, "last_unit": 0.1, "unit_amount": "1"},
                {"first_unit": 0.1, "unit_amount": "2"},
            ]
        },
    )
    assert isinstance(config, TieredConfig)
    assert config.tiers[0].last_unit == Decimal("0.1")  # not 0.1000000000000000055511151231257827


@pytest.mark.parametrize("model", MODEL_TYPES)
def test_config_to_json_round_trips_exactly(model: str) -> None:
    config = parse_config(model, EXAMPLES[model])
    stored = config_to_json(config)
    assert parse_config(model, stored) == config
    assert config_to_json(parse_config(model, stored)) == stored


def test_config_to_json_keeps_amounts_as_the_text_the_client_sent() -> None:
    stored = config_to_json(parse_config("tiered", EXAMPLES["tiered"]))
    assert stored["tiers"][1] == {"first_unit": "10", "last_unit": None, "unit_amount": "0.50"}


def test_an_unknown_model_is_refused_on_model_type() -> None:
    failure = refusal("bps", {})
    assert failure.field == "model_type"
    assert "threshold_total_amount" in failure.message
