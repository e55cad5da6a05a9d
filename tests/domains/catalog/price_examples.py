"""One complete, valid config per pricing model, as a client sends it (every key Orb's SDK declares)."""

from __future__ import annotations

from typing import Any

EXAMPLES: dict[str, dict[str, Any]] = {
    "unit": {"unit_amount": "0.50", "scaling_factor": 1, "prorated": False},
    "tiered": {
        "tiers": [
            {"first_unit": 0, "last_unit": 10, "unit_amount": "1.00"},
            {"first_unit": 10, "last_unit": None, "unit_amount": "0.50"},
        ],
        "prorated": False,
    },
    "package": {"package_amount": "5.00", "package_size": 10},
    "matrix": {
        "dimensions": ["region", "tier"],
        "default_unit_amount": "0.10",
        "matrix_values": [
            {"dimension_values": ["us-east", "standard"], "unit_amount": "0.50", "scaling_factor": None},
            {"dimension_values": ["eu-west", "premium"], "unit_amount": "1.00"},
        ],
        "scaling_factor": None,
    },
    "bulk": {
        "tiers": [
            {"maximum_units": 10, "unit_amount": "1.00"},
            {"maximum_units": None, "unit_amount": "0.50"},
        ]
    },
    "tiered_package": {
        "package_size": "10",
        "tiers": [
            {"tier_lower_bound": "0", "per_unit": "5.00"},
            {"tier_lower_bound": "20", "per_unit": "3.00"},
        ],
    },
    "grouped_tiered": {
        "grouping_key": "project_id",
        "tiers": [
            {"tier_lower_bound": "0", "unit_amount": "1.00"},
            {"tier_lower_bound": "100", "unit_amount": "0.50"},
        ],
    },
    "threshold_total_amount": {
        "consumption_table": [
            {"threshold": "1000", "total_amount": "100"},
            {"threshold": "5000", "total_amount": "400"},
        ],
        "prorate": None,
    },
}
