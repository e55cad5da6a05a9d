"""Plan changes and the plan schedule on Orb's /v1, the graph and JSON-RPC (with every subscription method)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domains.billing.periods import billing_period_for


async def _call(client, key, method, path, body=None):
    response = await client.request(method, path, json=body, headers={"Authorization": f"Bearer {key}"})
    return response.status, await response.json()


async def _plan(client, key, name, external_plan_id, *, currency="USD", status=None):
    _, item = await _call(client, key, "POST", "/v1/items", {"name": f"{name} platform"})
    body = {"name": name, "currency": currency, "external_plan_id": external_plan_id,
            "prices": [{"name": f"{name} fee", "item_id": item["id"], "cadence": "monthly", "model_type": "unit",
                        "unit_config": {"unit_amount": "49.00"}}]}
    if status is not None:
        body["status"] = status
    status_code, plan = await _call(client, key, "POST", "/v1/plans", body)
    assert status_code == 201, plan
    return plan


async def _subscribed(client, key):
    basic = await _plan(client, key, "Basic", "basic")
    pro = await _plan(client, key, "Pro", "pro")
    _, customer = await _call(client, key, "POST", "/v1/customers", {"name": "Acme", "email": "billing@acme.com"})
    status, sub = await _call(client, key, "POST", "/v1/subscriptions", {
        "customer_id": customer["id"], "plan_id": basic["id"], "start_date": "2024-01-15T00:00:00Z"})
    assert status == 201, sub
    return sub, basic, pro


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def test_orb_schedule_a_change_list_the_schedule_and_unschedule(client, tenant):
    key = tenant.key
    sub, basic, pro = await _subscribed(client, key)
    path = f"/v1/subscriptions/{sub['id']}"
    term_end = billing_period_for(datetime(2024, 1, 15, tzinfo=UTC), "monthly", datetime.now(UTC)).end
    status, changed = await _call(client, key, "POST", f"{path}/schedule_plan_change",
                                  {"external_plan_id": "pro", "change_option": "end_of_subscription_term"})
    assert status == 200 and changed["plan"]["id"] == basic["id"]  # pending: still on Basic
    status, page = await _call(client, key, "GET", f"{path}/schedule?limit=1")
    assert status == 200 and page["pagination_metadata"]["has_more"] is True
    first = page["data"][0]
    assert (first["start_date"], first["end_date"], first["plan"]) == (
        "2024-01-15T00:00:00Z", _iso(term_end), {"id": basic["id"], "external_plan_id": "basic", "name": "Basic"})
    assert first["created_at"] == sub["created_at"]
    cursor = page["pagination_metadata"]["next_cursor"]
    _, rest = await _call(client, key, "GET", f"{path}/schedule?limit=1&cursor={cursor}")
    assert [(e["start_date"], e["end_date"], e["plan"]["id"]) for e in rest["data"]] == [
        (_iso(term_end), None, pro["id"])]
    assert rest["pagination_metadata"] == {"has_more": False, "next_cursor": None}
    status, unscheduled = await _call(client, key, "POST", f"{path}/unschedule_pending_plan_changes")
    assert status == 200 and unscheduled["plan"]["id"] == basic["id"]
    _, page = await _call(client, key, "GET", f"{path}/schedule")
    assert [(e["start_date"], e["end_date"]) for e in page["data"]] == [("2024-01-15T00:00:00Z", None)]
    # Immediate: the subscription shows the new plan at once, and its billing period follows it.
    status, now_pro = await _call(client, key, "POST", f"{path}/schedule_plan_change",
                                  {"plan_id": pro["id"], "change_option": "immediate"})
    assert status == 200 and now_pro["plan"]["id"] == pro["id"]
    _, fetched = await _call(client, key, "GET", path)
    assert fetched["plan"]["external_plan_id"] == "pro"
    _, page = await _call(client, key, "GET", f"{path}/schedule")
    assert [e["plan"]["id"] for e in page["data"]] == [basic["id"], pro["id"]]
    assert page["data"][0]["end_date"] == page["data"][1]["start_date"]


async def test_orb_refusals_name_the_field_and_change_nothing(client, tenant):
    key = tenant.key
    sub, basic, pro = await _subscribed(client, key)
    await _plan(client, key, "Euro", "euro", currency="EUR")
    await _plan(client, key, "Draft", "draft", status="draft")
    path = f"/v1/subscriptions/{sub['id']}"
    cases = [
        ({"external_plan_id": "euro", "change_option": "immediate"}, "external_plan_id"),
        ({"external_plan_id": "draft", "change_option": "immediate"}, "external_plan_id"),
        ({"plan_id": pro["id"], "change_option": "requested_date"}, "change_date"),
        ({"plan_id": pro["id"], "change_option": "requested_date", "change_date": "2023-12-31T00:00:00Z"},
         "change_date"),
        ({"plan_id": pro["id"], "change_option": "later"}, "change_option"),
        ({"plan_id": pro["id"], "change_option": "immediate", "price_overrides": []}, "price_overrides"),
    ]
    for body, field in cases:
        status, error = await _call(client, key, "POST", f"{path}/schedule_plan_change", body)
        assert status == 400 and error["validation_errors"][0]["field"] == field, (body, error)
    status, error = await _call(client, key, "POST", f"{path}/unschedule_pending_plan_changes")
    assert status == 400 and error["validation_errors"][0]["field"] == "subscription_id"
    _, page = await _call(client, key, "GET", f"{path}/schedule")
    assert [(e["plan"]["id"], e["end_date"]) for e in page["data"]] == [(basic["id"], None)]
    # A change after a scheduled end is refused; once ended, no change at all.
    end = _iso(datetime.now(UTC) + timedelta(days=10))
    await _call(client, key, "POST", f"{path}/cancel", {"cancel_option": "requested_date", "cancellation_date": end})
    status, error = await _call(client, key, "POST", f"{path}/schedule_plan_change", {
        "plan_id": pro["id"], "change_option": "requested_date", "change_date": _iso(datetime.now(UTC) + timedelta(days=20))})
    assert status == 400 and error["validation_errors"][0]["field"] == "change_date"
    await _call(client, key, "POST", f"{path}/cancel", {"cancel_option": "immediate"})
    status, error = await _call(client, key, "POST", f"{path}/schedule_plan_change",
                                {"plan_id": pro["id"], "change_option": "immediate"})
    assert status == 400 and error["validation_errors"][0]["field"] == "subscription_id"
    status, _ = await _call(client, key, "GET", "/v1/subscriptions/nope/schedule")
    assert status == 404


async def test_graph_mutations_and_the_schedule_field(client, tenant):
    sub, basic, pro = await _subscribed(client, tenant.key)
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=40)

    async def graph(query, variables):
        response = await client.post("/graphql", json={"query": query, "variables": variables}, headers=tenant.bearer)
        return await response.json()

    changed = await graph("""mutation($id: ID!, $input: PlanChangeInput!) { schedulePlanChange(id: $id, input: $input)
        { plan { id } schedule { startDate endDate plan { externalPlanId } } } }""",
                          {"id": sub["id"], "input": {"externalPlanId": "pro", "changeOption": "requested_date",
                                                      "changeDate": _iso(later)}})
    assert changed["data"]["schedulePlanChange"] == {"plan": {"id": basic["id"]}, "schedule": [
        {"startDate": "2024-01-15T00:00:00Z", "endDate": _iso(later), "plan": {"externalPlanId": "basic"}},
        {"startDate": _iso(later), "endDate": None, "plan": {"externalPlanId": "pro"}}]}
    paged = await graph("query($id: ID!) { subscriptionSchedule(id: $id, first: 5) { nodes { startDate plan { id } } "
                        "pageInfo { hasNextPage } } }", {"id": sub["id"]})
    assert [n["plan"]["id"] for n in paged["data"]["subscriptionSchedule"]["nodes"]] == [basic["id"], pro["id"]]
    dropped = await graph("mutation($id: ID!) { unschedulePendingPlanChanges(id: $id) { schedule { endDate } } }",
                          {"id": sub["id"]})
    assert dropped["data"]["unschedulePendingPlanChanges"] == {"schedule": [{"endDate": None}]}
    refused = await graph("""mutation($id: ID!, $input: PlanChangeInput!) { schedulePlanChange(id: $id, input: $input)
        { id } }""", {"id": sub["id"], "input": {"planId": "nope", "changeOption": "immediate"}})
    assert refused["errors"][0]["extensions"]["field"] == "plan_id"


async def test_every_subscription_operation_over_json_rpc(client, tenant):
    basic = await _plan(client, tenant.key, "Basic", "basic")
    pro = await _plan(client, tenant.key, "Pro", "pro")
    _, customer = await _call(client, tenant.key, "POST", "/v1/customers",
                              {"name": "Acme", "email": "billing@acme.com", "external_customer_id": "acme"})

    async def rpc(method, params):
        response = await client.post("/", json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
                                     headers={"X-Api-Key": tenant.key})
        return await response.json()

    created = (await rpc("subscriptions.create", {"external_customer_id": "acme", "plan_id": basic["id"],
                                                  "start_date": "2024-01-15T00:00:00Z"}))["result"]
    sub_id = created["id"]
    assert created["customer"]["id"] == customer["id"] and created["status"] == "active"
    assert (await rpc("subscriptions.get", {"id": sub_id}))["result"] == created
    listed = await rpc("subscriptions.list", {"external_customer_id": "acme", "status": "active", "limit": 5})
    assert [s["id"] for s in listed["result"]["data"]] == [sub_id]
    updated = await rpc("subscriptions.update", {"id": sub_id, "metadata": {"deal": "q1"}})
    assert updated["result"]["metadata"] == {"deal": "q1"}
    changed = await rpc("subscriptions.schedule_plan_change", {"id": sub_id, "external_plan_id": "pro",
                                                               "change_option": "immediate"})
    assert changed["result"]["plan"]["id"] == pro["id"]
    phases = await rpc("subscriptions.schedule", {"id": sub_id})
    assert [p["plan"]["id"] for p in phases["result"]["data"]] == [basic["id"], pro["id"]]
    pending = await rpc("subscriptions.schedule_plan_change", {
        "id": sub_id, "plan_id": basic["id"], "change_option": "end_of_subscription_term"})
    assert pending["result"]["plan"]["id"] == pro["id"]
    dropped = await rpc("subscriptions.unschedule_pending_plan_changes", {"id": sub_id})
    assert len((await rpc("subscriptions.schedule", {"id": sub_id}))["result"]["data"]) == 2 and "result" in dropped
    cancelled = await rpc("subscriptions.cancel", {"id": sub_id, "cancel_option": "end_of_subscription_term"})
    assert cancelled["result"]["end_date"] is not None
    resumed = await rpc("subscriptions.unschedule_cancellation", {"id": sub_id})
    assert resumed["result"]["end_date"] is None
    bad = await rpc("subscriptions.schedule_plan_change", {"id": sub_id, "plan_id": pro["id"],
                                                           "change_option": "requested_date"})
    assert bad["error"]["code"] == -32602 and bad["error"]["data"]["field"] == "change_date"
    missing = await rpc("subscriptions.get", {"id": "nope"})
    assert missing["error"]["code"] == -32004


async def test_fixed_fee_quantities_on_orb_the_graph_and_json_rpc(client, tenant):
    key = tenant.key
    sub, basic, pro = await _subscribed(client, key)
    fee = basic["prices"][0]["id"]
    path = f"/v1/subscriptions/{sub['id']}"
    assert sub["fixed_fee_quantity_schedule"] == [
        {"price_id": fee, "start_date": "2024-01-15T00:00:00Z", "end_date": None, "quantity": "1.00"}]
    later = (datetime.now(UTC) + timedelta(days=40)).date().isoformat()
    status, changed = await _call(client, key, "POST", f"{path}/price_quantity",
                                  {"price_id": fee, "quantity": 4, "effective_date": later})
    assert status == 200, changed
    assert [(e["end_date"], e["quantity"]) for e in changed["fixed_fee_quantity_schedule"]] == [
        (f"{later}T00:00:00Z", "1.00"), (None, "4.00")]
    for body, field in (({"price_id": fee, "quantity": -1}, "quantity"),
                        ({"price_id": "nope", "quantity": 2}, "price_id"),
                        ({"price_id": pro["prices"][0]["id"], "quantity": 2}, "price_id"),
                        ({"price_id": fee, "quantity": 2, "effective_date": "2020-01-01"}, "effective_date")):
        status, error = await _call(client, key, "POST", f"{path}/price_quantity", body)
        assert status == 400 and error["validation_errors"][0]["field"] == field, (body, error)
    status, dropped = await _call(client, key, "POST", f"{path}/unschedule_fixed_fee_quantity_updates",
                                  {"price_id": fee})
    assert status == 200 and [e["quantity"] for e in dropped["fixed_fee_quantity_schedule"]] == ["1.00"]
    status, error = await _call(client, key, "POST", f"{path}/unschedule_fixed_fee_quantity_updates", {})
    assert status == 400 and error["validation_errors"][0]["field"] == "price_id"

    graph = await client.post("/graphql", headers=tenant.bearer, json={
        "query": """mutation($id: ID!, $input: FixedFeeQuantityInput!) { changeFixedFeeQuantity(id: $id, input: $input)
                    { fixedFeeQuantitySchedule { priceId quantity endDate } } }""",
        "variables": {"id": sub["id"], "input": {"priceId": fee, "quantity": "2.5"}}})
    schedule_now = (await graph.json())["data"]["changeFixedFeeQuantity"]["fixedFeeQuantitySchedule"]
    assert [(e["priceId"], e["quantity"]) for e in schedule_now] == [(fee, "1.00"), (fee, "2.50")]
    assert schedule_now[0]["endDate"] is not None and schedule_now[1]["endDate"] is None

    async def rpc(method, params):
        response = await client.post("/", json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
                                     headers={"X-Api-Key": key})
        return await response.json()

    pending = await rpc("subscriptions.update_fixed_fee_quantity", {
        "id": sub["id"], "price_id": fee, "quantity": 6, "change_option": "upcoming_invoice"})
    assert [e["quantity"] for e in pending["result"]["fixed_fee_quantity_schedule"]] == ["1.00", "2.50", "6.00"]
    dropped = await rpc("subscriptions.unschedule_fixed_fee_quantity_updates", {"id": sub["id"], "price_id": fee})
    assert [e["quantity"] for e in dropped["result"]["fixed_fee_quantity_schedule"]] == ["1.00", "2.50"]
    # After a plan change the schedule lists the new plan's fixed fee from the change on.
    changed = await rpc("subscriptions.schedule_plan_change", {"id": sub["id"], "plan_id": pro["id"],
                                                               "change_option": "immediate"})
    fees = changed["result"]["fixed_fee_quantity_schedule"]
    assert [(e["price_id"], e["quantity"]) for e in fees] == [(fee, "1.00"), (fee, "2.50"), (pro["prices"][0]["id"], "1.00")]
    assert fees[1]["end_date"] == fees[2]["start_date"] and fees[2]["end_date"] is None
