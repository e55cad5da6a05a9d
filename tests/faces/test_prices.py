"""Prices on every face: each pricing model's config validated on the way in, item and metric edges,
external ids, tenants apart."""

from __future__ import annotations

import pytest

TIERS = {"tiers": [{"first_unit": "0", "last_unit": "1000", "unit_amount": "0.002"},
                   {"first_unit": "1000", "last_unit": None, "unit_amount": "0.001"}]}


async def _post(client, key, path, body):
    response = await client.post(path, json=body, headers={"Authorization": f"Bearer {key}"})
    return response.status, await response.json()


async def _catalog(client, key):
    _, item = await _post(client, key, "/v1/items", {"name": "Tokens"})
    _, metric = await _post(client, key, "/v1/metrics", {"name": "Tokens", "item_id": item["id"],
                                                          "sql": "SELECT SUM(tokens) FROM events"})
    return item["id"], metric["id"]


async def test_usage_price_round_trips_on_every_face(client, tenant):
    item_id, metric_id = await _catalog(client, tenant.key)
    status, price = await _post(client, tenant.key, "/v1/prices", {
        "name": "Tokens", "item_id": item_id, "billable_metric_id": metric_id, "cadence": "monthly",
        "currency": "usd", "model_type": "tiered", "tiered_config": TIERS, "external_price_id": "tok-1",
        "metadata": {"plan": "pro"}})
    assert status == 201, price
    assert price["price_type"] == "usage_price" and price["model_type"] == "tiered"
    assert price["currency"] == "USD" and price["cadence"] == "monthly"
    # Orb's optional config keys come back explicitly null.
    assert price["tiered_config"] == {**TIERS, "prorated": None} and price["unit_config"] is None
    assert price["item"] == {"id": item_id, "name": "Tokens"} and price["billable_metric"] == {"id": metric_id}
    assert price["fixed_price_quantity"] is None and price["metadata"] == {"plan": "pro"}
    headers = {"Authorization": f"Bearer {tenant.key}"}
    assert await (await client.get(f"/v1/prices/{price['id']}", headers=headers)).json() == price
    assert await (await client.get("/v1/prices/external_price_id/tok-1", headers=headers)).json() == price
    rpc = await (await client.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "prices.get",
                                              "params": {"id": price["id"]}}, headers={"X-Api-Key": tenant.key})).json()
    assert rpc["result"] == price


async def test_fixed_price_defaults_to_one_unit(client, tenant):
    item_id, _ = await _catalog(client, tenant.key)
    status, price = await _post(client, tenant.key, "/v1/prices", {
        "name": "Platform fee", "item_id": item_id, "cadence": "monthly", "currency": "EUR", "model_type": "unit",
        "unit_config": {"unit_amount": "49.00"}})
    assert status == 201
    assert (price["price_type"], price["fixed_price_quantity"], price["billable_metric"]) == ("fixed_price", "1.00", None)
    assert price["unit_config"] == {"unit_amount": "49.00", "prorated": None, "scaling_factor": None}


@pytest.mark.parametrize(("change", "field"), [
    ({"model_type": "linear"}, "model_type"),
    ({"tiered_config": None}, "tiered_config"),
    ({"unit_config": {"unit_amount": "1"}}, "unit_config"),
    ({"tiered_config": {"tiers": [{"first_unit": "0", "last_unit": "10", "unit_amount": "1"},
                                  {"first_unit": "20", "last_unit": None, "unit_amount": "1"}]}},
     "tiered_config.tiers[1].first_unit"),
    ({"tiered_config": {"tiers": [{"first_unit": "0", "last_unit": None, "unit_amount": 0.1}]}},
     "tiered_config.tiers[0].unit_amount"),
    ({"cadence": "weekly"}, "cadence"),
    ({"currency": "ZZZ"}, "currency"),
    ({"item_id": "01m0000000000000000000000"}, "item_id"),
    ({"billable_metric_id": "01m0000000000000000000000"}, "billable_metric_id"),
    ({"fixed_price_quantity": "2"}, "fixed_price_quantity"),
    ({"conversion_rate": 1.5}, "conversion_rate"),
])
async def test_bad_prices_are_refused_naming_the_field(client, tenant, change, field):
    item_id, metric_id = await _catalog(client, tenant.key)
    body = {"name": "Tokens", "item_id": item_id, "billable_metric_id": metric_id, "cadence": "monthly",
            "currency": "USD", "model_type": "tiered", "tiered_config": TIERS, **change}
    status, error = await _post(client, tenant.key, "/v1/prices", body)
    assert status == 400, error
    assert error["validation_errors"][0]["field"] == field, error
    listed = await (await client.get("/v1/prices", headers={"Authorization": f"Bearer {tenant.key}"})).json()
    assert listed["data"] == []


async def test_duplicate_external_price_id(client, tenant):
    item_id, _ = await _catalog(client, tenant.key)
    body = {"name": "Fee", "item_id": item_id, "cadence": "annual", "currency": "USD", "model_type": "unit",
            "unit_config": {"unit_amount": "10"}, "external_price_id": "fee"}
    assert (await _post(client, tenant.key, "/v1/prices", body))[0] == 201
    status, error = await _post(client, tenant.key, "/v1/prices", body)
    assert status == 400 and error["type"].endswith("#400-duplicate-resource-creation")


async def test_another_organisations_price_metric_and_item_are_unknown(client, tenant, other_tenant):
    item_id, metric_id = await _catalog(client, other_tenant.key)
    status, theirs = await _post(client, other_tenant.key, "/v1/prices", {
        "name": "Theirs", "item_id": item_id, "cadence": "monthly", "currency": "USD", "model_type": "unit",
        "unit_config": {"unit_amount": "1"}})
    assert status == 201
    response = await client.get(f"/v1/prices/{theirs['id']}", headers={"Authorization": f"Bearer {tenant.key}"})
    assert response.status == 404
    my_item, _ = await _catalog(client, tenant.key)
    status, error = await _post(client, tenant.key, "/v1/prices", {
        "name": "x", "item_id": my_item, "billable_metric_id": metric_id, "cadence": "monthly", "currency": "USD",
        "model_type": "unit", "unit_config": {"unit_amount": "1"}})
    assert status == 400 and error["validation_errors"][0]["field"] == "billable_metric_id"
