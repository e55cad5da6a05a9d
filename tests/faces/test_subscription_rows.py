"""Subscriptions on Orb's /v1 and the graph: create, fetch, list with filters and pages, update, cancel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domains.billing.periods import billing_period_for


async def _call(client, key, method, path, body=None):
    response = await client.request(method, path, json=body, headers={"Authorization": f"Bearer {key}"})
    return response.status, await response.json()


async def _setup(client, key, *, currency="USD", external_plan_id="pro"):
    _, item = await _call(client, key, "POST", "/v1/items", {"name": "Platform"})
    status, plan = await _call(client, key, "POST", "/v1/plans", {
        "name": "Pro", "currency": currency, "net_terms": 15, "external_plan_id": external_plan_id,
        "prices": [{"name": "Platform fee", "item_id": item["id"], "cadence": "monthly", "model_type": "unit",
                    "unit_config": {"unit_amount": "49.00"}}]})
    assert status == 201, plan
    _, customer = await _call(client, key, "POST", "/v1/customers", {
        "name": "Acme", "email": "billing@acme.com", "external_customer_id": f"acme-{external_plan_id}"})
    return plan, customer


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def test_create_fetch_and_read_the_orb_shape(client, tenant):
    plan, customer = await _setup(client, tenant.key)
    status, sub = await _call(client, tenant.key, "POST", "/v1/subscriptions", {
        "external_customer_id": customer["external_customer_id"], "external_plan_id": "pro",
        "start_date": "2024-01-31T00:00:00Z", "metadata": {"deal": "q1"}})
    assert status == 201, sub
    current = billing_period_for(datetime(2024, 1, 31, tzinfo=UTC), "monthly", datetime.now(UTC))
    assert sub["customer"]["id"] == customer["id"] and sub["plan"]["id"] == plan["id"]
    assert sub["customer"]["currency"] == "USD"  # taken from the plan on the first subscription
    expected = {
        "status": "active", "start_date": "2024-01-31T00:00:00Z", "end_date": None, "net_terms": 15,
        "auto_collection": None, "metadata": {"deal": "q1"}, "billing_cycle_day": 31,
        "billing_cycle_anchor_configuration": {"day": 31, "month": None, "year": None},
        "current_billing_period_start_date": _iso(current.start), "current_billing_period_end_date": _iso(current.end),
        "trial_info": {"end_date": None}, "active_plan_phase_order": None, "redeemed_coupon": None,
        "discount_intervals": [], "adjustment_intervals": [], "minimum_intervals": [], "maximum_intervals": [],
    }
    assert {k: sub[k] for k in expected} == expected
    status, fetched = await _call(client, tenant.key, "GET", f"/v1/subscriptions/{sub['id']}")
    assert status == 200 and fetched == sub
    graph = await client.post("/graphql", json={"query": "query($id: ID!) { subscription(id: $id) { status plan "
                                                         "{ externalPlanId } customer { id } billingCycleDay } }",
                                                "variables": {"id": sub["id"]}}, headers=tenant.bearer)
    assert (await graph.json())["data"]["subscription"] == {
        "status": "active", "plan": {"externalPlanId": "pro"}, "customer": {"id": customer["id"]}, "billingCycleDay": 31}


async def test_list_filters_and_pages(client, tenant):
    plan, customer = await _setup(client, tenant.key)
    future = _iso(datetime.now(UTC) + timedelta(days=60))
    made = []
    for start in ("2024-01-01T00:00:00Z", future, "2024-02-01T00:00:00Z"):
        _, sub = await _call(client, tenant.key, "POST", "/v1/subscriptions",
                             {"customer_id": customer["id"], "plan_id": plan["id"], "start_date": start})
        made.append(sub["id"])
    status, page = await _call(client, tenant.key, "GET", "/v1/subscriptions?limit=2")
    assert status == 200 and [s["id"] for s in page["data"]] == made[::-1][:2]
    assert page["pagination_metadata"]["has_more"] is True
    cursor = page["pagination_metadata"]["next_cursor"]
    _, rest = await _call(client, tenant.key, "GET", f"/v1/subscriptions?limit=2&cursor={cursor}")
    assert [s["id"] for s in rest["data"]] == [made[0]] and rest["pagination_metadata"]["has_more"] is False
    _, upcoming = await _call(client, tenant.key, "GET", "/v1/subscriptions?status=upcoming")
    assert [s["id"] for s in upcoming["data"]] == [made[1]]
    assert upcoming["data"][0]["current_billing_period_start_date"] is None
    _, by_external = await _call(client, tenant.key, "GET",
                                 f"/v1/subscriptions?external_customer_id={customer['external_customer_id']}&status=active")
    assert [s["id"] for s in by_external["data"]] == [made[2], made[0]]
    status, error = await _call(client, tenant.key, "GET", "/v1/subscriptions?status=paused")
    assert status == 400 and error["validation_errors"][0]["field"] == "status"


async def test_update_metadata_cancel_and_unschedule(client, tenant):
    plan, customer = await _setup(client, tenant.key)
    _, sub = await _call(client, tenant.key, "POST", "/v1/subscriptions", {
        "customer_id": customer["id"], "plan_id": plan["id"], "start_date": "2024-01-15T00:00:00Z",
        "metadata": {"a": "1"}})
    path = f"/v1/subscriptions/{sub['id']}"
    status, updated = await _call(client, tenant.key, "PUT", path, {"metadata": {"a": None, "b": "2"}})
    assert status == 200 and updated["metadata"] == {"b": "2"}
    status, cancelled = await _call(client, tenant.key, "POST", f"{path}/cancel",
                                    {"cancel_option": "end_of_subscription_term"})
    term_end = billing_period_for(datetime(2024, 1, 15, tzinfo=UTC), "monthly", datetime.now(UTC)).end
    assert status == 200 and cancelled["end_date"] == _iso(term_end) and cancelled["status"] == "active"
    assert cancelled["current_billing_period_end_date"] == _iso(term_end)
    status, resumed = await _call(client, tenant.key, "POST", f"{path}/unschedule_cancellation")
    assert status == 200 and resumed["end_date"] is None
    status, ended = await _call(client, tenant.key, "POST", f"{path}/cancel", {"cancel_option": "immediate"})
    assert status == 200 and ended["status"] == "ended" and ended["current_billing_period_start_date"] is None
    status, error = await _call(client, tenant.key, "POST", f"{path}/cancel", {"cancel_option": "immediate"})
    assert status == 400 and error["type"].endswith("400-constraint-violation")
    assert error["validation_errors"][0]["field"] == "subscription_id"


@pytest.mark.parametrize(("body", "field"), [
    ({"cancel_option": "requested_date"}, "cancellation_date"),
    ({"cancel_option": "requested_date", "cancellation_date": "2023-12-01T00:00:00Z"}, "cancellation_date"),
    ({"cancel_option": "requested_date", "cancellation_date": "soon"}, "cancellation_date"),
    ({"cancel_option": "whenever"}, "cancel_option"),
    ({}, "cancel_option"),
    ({"cancel_option": "immediate", "refund": True}, "refund"),
])
async def test_bad_cancellations_are_400s_naming_the_field_and_change_nothing(client, tenant, body, field):
    plan, customer = await _setup(client, tenant.key)
    _, sub = await _call(client, tenant.key, "POST", "/v1/subscriptions", {
        "customer_id": customer["id"], "plan_id": plan["id"], "start_date": "2024-01-01T00:00:00Z"})
    status, error = await _call(client, tenant.key, "POST", f"/v1/subscriptions/{sub['id']}/cancel", body)
    assert status == 400 and error["validation_errors"][0]["field"] == field, error
    _, after = await _call(client, tenant.key, "GET", f"/v1/subscriptions/{sub['id']}")
    assert after == sub


@pytest.mark.parametrize(("change", "field"), [
    ({"plan_id": "nope"}, "plan_id"),
    ({"customer_id": None}, "customer_id"),
    ({"start_date": "2024-01-01"}, "start_date"),
    ({"net_terms": "thirty"}, "net_terms"),
    ({"trial_duration_days": -1}, "trial_duration_days"),
    ({"end_date": "2020-01-01T00:00:00Z", "start_date": "2024-01-01T00:00:00Z"}, "end_date"),
    ({"billing_cycle_anchor_configuration": {"day": 32}}, "billing_cycle_anchor_configuration.day"),
    ({"billing_cycle_anchor_configuration": {"day": 1, "year": 2024}}, "billing_cycle_anchor_configuration.year"),
    ({"billing_cycle_anchor_configuration": {"day": 1}, "align_billing_with_subscription_start_date": True},
     "align_billing_with_subscription_start_date"),
    ({"currency": "EUR"}, "currency"),
    # Orb documents these; Accrual refuses them, naming the field.
    ({"price_overrides": []}, "price_overrides"),
    ({"add_prices": []}, "add_prices"),
    ({"coupon_redemption_code": "WELCOME"}, "coupon_redemption_code"),
    ({"usage_customer_ids": ["c"]}, "usage_customer_ids"),
    ({"invoicing_threshold": "10.00"}, "invoicing_threshold"),
    ({"plan_version_number": 2}, "plan_version_number"),  # plans keep only version 1
])
async def test_bad_creations_are_400s_naming_the_field(client, tenant, change, field):
    plan, customer = await _setup(client, tenant.key)
    body = {"customer_id": customer["id"], "plan_id": plan["id"], **change}
    status, error = await _call(client, tenant.key, "POST", "/v1/subscriptions", body)
    assert status == 400 and error["validation_errors"][0]["field"] == field, error
    _, page = await _call(client, tenant.key, "GET", "/v1/subscriptions")
    assert page["data"] == []


async def test_a_plan_in_another_currency_is_refused(client, tenant):
    plan, customer = await _setup(client, tenant.key)
    await _setup(client, tenant.key, currency="EUR", external_plan_id="euro")
    status, _ = await _call(client, tenant.key, "POST", "/v1/subscriptions",
                            {"customer_id": customer["id"], "plan_id": plan["id"]})
    assert status == 201
    status, error = await _call(client, tenant.key, "POST", "/v1/subscriptions",
                                {"customer_id": customer["id"], "external_plan_id": "euro"})
    assert status == 400 and error["validation_errors"][0]["field"] == "external_plan_id", error


async def test_another_organisations_subscription_is_not_found(client, tenant, other_tenant):
    plan, customer = await _setup(client, tenant.key)
    _, sub = await _call(client, tenant.key, "POST", "/v1/subscriptions",
                         {"customer_id": customer["id"], "plan_id": plan["id"]})
    for method, suffix, body in [("GET", "", None), ("PUT", "", {"metadata": {}}),
                                 ("POST", "/cancel", {"cancel_option": "immediate"}),
                                 ("POST", "/unschedule_cancellation", None)]:
        status, error = await _call(client, other_tenant.key, method, f"/v1/subscriptions/{sub['id']}{suffix}", body)
        assert status == 404 and error["type"].endswith("404-resource-not-found"), (method, suffix, error)
