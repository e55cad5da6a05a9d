"""Items through the official Orb SDK, against the real server process."""

from __future__ import annotations

from collections.abc import Callable

import orb
import pytest

pytestmark = pytest.mark.e2e


def test_create_fetch_and_list_items(new_tenant: Callable[[], orb.Orb]) -> None:
    client = new_tenant()
    created = [client.items.create(name=f"Item {i}", metadata={"unit": "call"}) for i in range(3)]
    assert created[0].name == "Item 0"
    assert created[0].metadata == {"unit": "call"}
    assert created[0].external_connections == []
    fetched = client.items.fetch(created[1].id)
    assert (fetched.id, fetched.name, fetched.created_at) == (created[1].id, "Item 1", created[1].created_at)
    listed = [item.id for item in client.items.list(limit=2)]
    assert listed == [item.id for item in reversed(created)]


def test_unknown_item_is_resource_not_found(orb_client: orb.Orb) -> None:
    with pytest.raises(orb.ResourceNotFound):
        orb_client.items.fetch("01m0000000000000000000000")


def test_item_without_name_is_a_validation_error(orb_client: orb.Orb) -> None:
    with pytest.raises(orb.RequestValidationError) as refused:
        orb_client.items.create(name="   ")
    assert refused.value.validation_errors[0]["field"] == "name"  # type: ignore[index]


def test_prices_through_the_sdk(new_tenant: Callable[[], orb.Orb]) -> None:
    client = new_tenant()
    item = client.items.create(name="Seats")
    price = client.prices.create(cadence="monthly", currency="USD", item_id=item.id, model_type="unit", name="Seat",
                                 unit_config={"unit_amount": "12.50"}, external_price_id="seat")
    # The SDK names the discriminator `price_model_type` (wire name `model_type`).
    assert (price.price_model_type, price.price_type, price.cadence) == ("unit", "fixed_price", "monthly")
    assert price.unit_config.unit_amount == "12.50"  # type: ignore[union-attr]
    assert client.prices.fetch(price.id).id == price.id
    assert client.prices.external_price_id.fetch("seat").id == price.id
    assert [p.id for p in client.prices.list()] == [price.id]
    with pytest.raises(orb.RequestValidationError):
        client.prices.create(cadence="monthly", currency="USD", item_id=item.id, model_type="unit", name="Bad",
                             unit_config={"unit_amount": "-1"})


def test_plans_through_the_sdk(new_tenant: Callable[[], orb.Orb]) -> None:
    client = new_tenant()
    item = client.items.create(name="Seats")
    plan = client.plans.create(
        currency="USD", name="Team", external_plan_id="team", net_terms=15,
        prices=[{"price": {"cadence": "monthly", "item_id": item.id, "model_type": "unit", "name": "Seat",
                           "unit_config": {"unit_amount": "10.00"}}}],
    )
    assert (plan.name, plan.currency, plan.net_terms, plan.status) == ("Team", "USD", 15, "active")
    assert [price.name for price in plan.prices] == ["Seat"]
    assert client.plans.fetch(plan.id).id == plan.id
    assert client.plans.external_plan_id.fetch("team").id == plan.id
    updated = client.plans.update(plan.id, metadata={"segment": "smb"})
    assert updated.metadata == {"segment": "smb"}
    assert [p.id for p in client.plans.list()] == [plan.id]
