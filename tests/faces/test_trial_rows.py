"""Free trials on Orb's /v1 and JSON-RPC: a plan's trial_config, the subscription's trial_info, update_trial,
and the costs it changes (a 31.00 monthly fee is 1.00 a day in January)."""

from __future__ import annotations


async def _call(client, key, method, path, body=None):
    response = await client.request(method, path, json=body, headers={"Authorization": f"Bearer {key}"})
    return response.status, await response.json()


async def _trial_subscription(client, key):
    _, item = await _call(client, key, "POST", "/v1/items", {"name": "Seat"})
    status, plan = await _call(client, key, "POST", "/v1/plans", {
        "name": "Trial", "currency": "USD", "trial_config": {"trial_period": 10, "trial_period_unit": "days"},
        "prices": [{"name": "Fee", "item_id": item["id"], "cadence": "monthly", "model_type": "unit",
                    "unit_config": {"unit_amount": "31.00"}, "fixed_price_quantity": "1"}]})
    assert status == 201 and plan["trial_config"] == {"trial_period": 10, "trial_period_unit": "days"}, plan
    _, customer = await _call(client, key, "POST", "/v1/customers", {"name": "Acme", "email": "a@acme.com"})
    status, sub = await _call(client, key, "POST", "/v1/subscriptions", {
        "customer_id": customer["id"], "plan_id": plan["id"], "start_date": "2024-01-01T00:00:00Z"})
    assert status == 201, sub
    return sub


JANUARY = "timeframe_start=2024-01-01T00:00:00Z&timeframe_end=2024-02-01T00:00:00Z"


async def test_orb_trial_info_update_trial_and_the_costs_it_changes(client, tenant):
    key = tenant.key
    sub = await _trial_subscription(client, key)
    path = f"/v1/subscriptions/{sub['id']}"
    assert sub["trial_info"] == {"end_date": "2024-01-11T00:00:00Z"}
    _, costs = await _call(client, key, "GET", f"{path}/costs?{JANUARY}")
    assert costs["data"][0]["subtotal"] == "21.00"  # Jan 11 - Feb 1: 21 days
    status, moved = await _call(client, key, "POST", f"{path}/update_trial",
                                {"trial_end_date": "2024-01-21T00:00:00Z", "shift": False})
    assert status == 200 and moved["trial_info"] == {"end_date": "2024-01-21T00:00:00Z"}
    _, costs = await _call(client, key, "GET", f"{path}/costs?{JANUARY}")
    assert costs["data"][0]["subtotal"] == "11.00"
    for body, field in [({"trial_end_date": "2023-12-01T00:00:00Z"}, "trial_end_date"),
                        ({"trial_end_date": "tomorrow"}, "trial_end_date"),
                        ({"trial_end_date": "immediate", "shift": "no"}, "shift"),
                        ({"trial_end_date": "immediate", "extend": True}, "extend")]:
        status, error = await _call(client, key, "POST", f"{path}/update_trial", body)
        assert status == 400 and error["validation_errors"][0]["field"] == field, (body, error)
    _, still = await _call(client, key, "GET", path)
    assert still["trial_info"] == {"end_date": "2024-01-21T00:00:00Z"}
    status, error = await _call(client, key, "POST", "/v1/plans", {
        "name": "Bad", "currency": "USD", "trial_config": {"trial_period": 5, "trial_period_unit": "months"}})
    assert status == 400 and error["validation_errors"][0]["field"] == "trial_config.trial_period_unit"


async def test_update_trial_over_json_rpc_and_another_tenant_is_not_found(client, tenant, other_tenant):
    sub = await _trial_subscription(client, tenant.key)
    response = await client.post("/", headers={"X-Api-Key": tenant.key}, json={
        "jsonrpc": "2.0", "id": 1, "method": "subscriptions.update_trial",
        "params": {"id": sub["id"], "trial_end_date": "immediate"}})
    ended = (await response.json())["result"]
    assert ended["trial_info"]["end_date"] is not None and ended["trial_info"]["end_date"] > "2024-01-11"
    status, _ = await _call(client, other_tenant.key, "POST", f"/v1/subscriptions/{sub['id']}/update_trial",
                            {"trial_end_date": "immediate"})
    assert status == 404
