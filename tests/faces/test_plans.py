"""Plans with inline prices on every face: one currency, all-or-nothing creation, external ids."""

from __future__ import annotations

import pytest


async def _post(client, key, path, body, method="POST"):
    response = await client.request(method, path, json=body, headers={"Authorization": f"Bearer {key}"})
    return response.status, await response.json()


async def _catalog(client, key):
    _, item = await _post(client, key, "/v1/items", {"name": "API"})
    _, metric = await _post(client, key, "/v1/metrics", {"name": "Calls", "item_id": item["id"],
                                                          "sql": "SELECT COUNT(*) FROM events"})
    return item["id"], metric["id"]


def _plan(item_id, metric_id, **extra):
    return {"name": "Pro", "currency": "eur", "net_terms": 30, "external_plan_id": "pro", "metadata": {"tier": "2"},
            "prices": [
                {"name": "Platform", "item_id": item_id, "cadence": "monthly", "model_type": "unit",
                 "unit_config": {"unit_amount": "49.00"}},
                {"price": {"name": "Calls", "item_id": item_id, "billable_metric_id": metric_id, "cadence": "monthly",
                           "model_type": "tiered", "tiered_config": {"tiers": [
                               {"first_unit": "0", "last_unit": "1000", "unit_amount": "0"},
                               {"first_unit": "1000", "last_unit": None, "unit_amount": "0.01"}]}}},
            ], **extra}


async def test_plan_with_both_price_spellings_reads_the_same_everywhere(client, tenant):
    item_id, metric_id = await _catalog(client, tenant.key)
    status, plan = await _post(client, tenant.key, "/v1/plans", _plan(item_id, metric_id))
    assert status == 201, plan
    assert (plan["name"], plan["currency"], plan["status"], plan["net_terms"]) == ("Pro", "EUR", "active", 30)
    assert [p["name"] for p in plan["prices"]] == ["Platform", "Calls"]
    assert [p["price_type"] for p in plan["prices"]] == ["fixed_price", "usage_price"]
    assert all(p["currency"] == "EUR" for p in plan["prices"])
    headers = {"Authorization": f"Bearer {tenant.key}"}
    assert await (await client.get(f"/v1/plans/{plan['id']}", headers=headers)).json() == plan
    assert await (await client.get("/v1/plans/external_plan_id/pro", headers=headers)).json() == plan
    rpc = await (await client.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "plans.get",
                                              "params": {"id": plan["id"]}}, headers={"X-Api-Key": tenant.key})).json()
    assert rpc["result"] == plan


async def test_update_changes_metadata_and_external_id_only(client, tenant):
    item_id, metric_id = await _catalog(client, tenant.key)
    _, plan = await _post(client, tenant.key, "/v1/plans", _plan(item_id, metric_id))
    status, updated = await _post(client, tenant.key, f"/v1/plans/{plan['id']}",
                                  {"metadata": {"tier": None, "region": "eu"}, "external_plan_id": "pro-2024"}, "PUT")
    assert status == 200
    assert updated == {**plan, "metadata": {"region": "eu"}, "external_plan_id": "pro-2024"}
    status, error = await _post(client, tenant.key, f"/v1/plans/{plan['id']}", {"currency": "USD"}, "PUT")
    assert status == 400 and error["validation_errors"][0]["field"] == "currency"


@pytest.mark.parametrize(("change", "field"), [
    ({"currency": "ZZZ"}, "currency"),
    ({"status": "archived"}, "status"),
    ({"net_terms": -1}, "net_terms"),
    ({"name": " "}, "name"),
])
async def test_bad_plans_are_refused_naming_the_field(client, tenant, change, field):
    item_id, metric_id = await _catalog(client, tenant.key)
    status, error = await _post(client, tenant.key, "/v1/plans", _plan(item_id, metric_id, **change))
    assert status == 400 and error["validation_errors"][0]["field"] == field, error


async def test_one_bad_price_refuses_the_whole_plan(client, tenant):
    item_id, metric_id = await _catalog(client, tenant.key)
    body = _plan(item_id, metric_id)
    body["prices"][1]["price"]["currency"] = "USD"
    status, error = await _post(client, tenant.key, "/v1/plans", body)
    assert status == 400 and error["validation_errors"][0]["field"] == "prices[1].currency", error
    body = _plan(item_id, metric_id)
    body["prices"][0]["unit_config"] = {"unit_amount": "-1"}
    status, error = await _post(client, tenant.key, "/v1/plans", body)
    assert status == 400 and error["validation_errors"][0]["field"].startswith("prices[0]."), error
    headers = {"Authorization": f"Bearer {tenant.key}"}
    assert (await (await client.get("/v1/plans", headers=headers)).json())["data"] == []
    assert (await (await client.get("/v1/prices", headers=headers)).json())["data"] == []


async def test_duplicate_external_plan_id(client, tenant):
    item_id, metric_id = await _catalog(client, tenant.key)
    assert (await _post(client, tenant.key, "/v1/plans", _plan(item_id, metric_id)))[0] == 201
    status, error = await _post(client, tenant.key, "/v1/plans", {"name": "Again", "currency": "EUR",
                                                                   "external_plan_id": "pro"})
    assert status == 400 and error["type"].endswith("#400-duplicate-resource-creation")
