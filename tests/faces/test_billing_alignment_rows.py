"""The billing fields Orb documents on subscription create, update and schedule_plan_change, on /v1, the
graph and JSON-RPC: what is honoured shows in the subscription; what is refused is a 400 naming the field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domains.billing.periods import billing_period_for

# Orb documents these; Accrual refuses each, naming it (its 400 on /v1, the same field on the other faces).
REFUSED_ON_CREATE = ("price_overrides", "add_prices", "replace_prices", "remove_prices", "add_adjustments",
                     "replace_adjustments", "remove_adjustments", "coupon_redemption_code", "credits_overage_rate",
                     "per_credit_overage_amount", "usage_customer_ids", "filter", "invoicing_threshold",
                     "auto_issuance", "aws_region", "external_marketplace",
                     "external_marketplace_reporting_id", "name")
REFUSED_ON_PLAN_CHANGE = ("price_overrides", "add_prices", "replace_prices", "remove_prices", "add_adjustments",
                          "replace_adjustments", "remove_adjustments", "coupon_redemption_code",
                          "credits_overage_rate", "per_credit_overage_amount", "usage_customer_ids", "filter",
                          "invoicing_threshold", "auto_issuance",
                          "billing_cycle_anchor_configuration", "initial_phase_order")
GRAPH_NAMES = {"price_overrides": "priceOverrides", "add_prices": "addPrices", "usage_customer_ids": "usageCustomerIds",
               "invoicing_threshold": "invoicingThreshold", "coupon_redemption_code": "couponRedemptionCode"}


async def _call(client, key, method, path, body=None):
    response = await client.request(method, path, json=body, headers={"Authorization": f"Bearer {key}"})
    return response.status, await response.json()


async def _plan(client, key, name, fee):
    _, item = await _call(client, key, "POST", "/v1/items", {"name": f"{name} platform"})
    status, plan = await _call(client, key, "POST", "/v1/plans", {
        "name": name, "currency": "USD", "external_plan_id": name.lower(),
        "prices": [{"name": f"{name} fee", "item_id": item["id"], "cadence": "monthly", "model_type": "unit",
                    "unit_config": {"unit_amount": fee}}]})
    assert status == 201, plan
    return plan


async def _world(client, key):
    basic = await _plan(client, key, "Basic", "31.00")
    pro = await _plan(client, key, "Pro", "62.00")
    _, customer = await _call(client, key, "POST", "/v1/customers", {"name": "Acme", "email": "billing@acme.com"})
    return basic, pro, customer


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def test_orb_create_with_a_day_anchor_an_end_date_a_trial_and_a_memo(client, tenant):
    key = tenant.key
    basic, _, customer = await _world(client, key)
    status, sub = await _call(client, key, "POST", "/v1/subscriptions", {
        "customer_id": customer["id"], "plan_id": basic["id"], "start_date": "2024-01-15T00:00:00Z",
        "end_date": "2099-01-01T00:00:00Z", "billing_cycle_anchor_configuration": {"day": 1},
        "align_billing_with_subscription_start_date": False, "trial_duration_days": 3,
        "default_invoice_memo": "Net 30, thanks", "currency": "USD", "plan_version_number": 1})
    assert status == 201, sub
    assert (sub["billing_cycle_day"], sub["billing_cycle_anchor_configuration"]) == (
        1, {"day": 1, "month": None, "year": None})
    assert (sub["end_date"], sub["trial_info"], sub["default_invoice_memo"]) == (
        "2099-01-01T00:00:00Z", {"end_date": "2024-01-18T00:00:00Z"}, "Net 30, thanks")
    now = datetime.now(UTC)
    period = billing_period_for(datetime(2024, 2, 1, tzinfo=UTC), "monthly", now)
    assert (sub["current_billing_period_start_date"], sub["current_billing_period_end_date"]) == (
        _iso(period.start), _iso(period.end))
    assert sub["price_intervals"][0]["billing_cycle_day"] == 1
    status, updated = await _call(client, key, "PUT", f"/v1/subscriptions/{sub['id']}", {
        "net_terms": 45, "auto_collection": True, "default_invoice_memo": None})
    assert status == 200, updated
    assert (updated["net_terms"], updated["auto_collection"], updated["default_invoice_memo"]) == (45, True, None)
    status, error = await _call(client, key, "PUT", f"/v1/subscriptions/{sub['id']}", {"auto_issuance": True})
    assert status == 400 and error["validation_errors"][0]["field"] == "auto_issuance", error


@pytest.mark.parametrize("field", REFUSED_ON_CREATE)
async def test_orb_create_refuses_what_it_does_not_support_naming_the_field(client, tenant, field):
    basic, _, customer = await _world(client, tenant.key)
    status, error = await _call(client, tenant.key, "POST", "/v1/subscriptions", {
        "customer_id": customer["id"], "plan_id": basic["id"], field: None})
    assert status == 400 and error["type"].endswith("#400-request-validation-errors"), error
    assert error["validation_errors"][0]["field"] == field
    _, page = await _call(client, tenant.key, "GET", "/v1/subscriptions")
    assert page["data"] == []


async def test_orb_plan_change_aligned_to_its_date_and_to_the_start_of_month(client, tenant):
    key = tenant.key
    basic, pro, customer = await _world(client, key)
    _, sub = await _call(client, key, "POST", "/v1/subscriptions", {
        "customer_id": customer["id"], "plan_id": basic["id"], "start_date": "2024-01-15T00:00:00Z"})
    path = f"/v1/subscriptions/{sub['id']}"
    status, changed = await _call(client, key, "POST", f"{path}/schedule_plan_change", {
        "plan_id": pro["id"], "change_option": "requested_date", "change_date": "2024-03-10T00:00:00Z",
        "billing_cycle_alignment": "plan_change_date", "net_terms": 10, "auto_collection": False,
        "default_invoice_memo": "Pro plan", "trial_duration_days": 0, "plan_version_number": 1})
    assert status == 200, changed
    now = datetime.now(UTC)
    period = billing_period_for(datetime(2024, 3, 10, tzinfo=UTC), "monthly", now)
    assert changed["billing_cycle_day"] == 10
    assert (changed["current_billing_period_start_date"], changed["current_billing_period_end_date"]) == (
        _iso(period.start), _iso(period.end))
    assert (changed["net_terms"], changed["auto_collection"], changed["default_invoice_memo"]) == (
        10, False, "Pro plan")
    # Basic's interval keeps its own day; Pro's follows the change.
    assert [(i["price"]["id"], i["billing_cycle_day"]) for i in changed["price_intervals"]] == [
        (basic["prices"][0]["id"], 15), (pro["prices"][0]["id"], 10)]
    status, moved = await _call(client, key, "POST", f"{path}/schedule_plan_change", {
        "plan_id": pro["id"], "change_option": "requested_date", "change_date": "2024-03-10T00:00:00Z",
        "align_billing_with_plan_change_date": False, "billing_cycle_alignment": "start_of_month"})
    assert status == 400 and moved["validation_errors"][0]["field"] == "align_billing_with_plan_change_date"
    status, moved = await _call(client, key, "POST", f"{path}/schedule_plan_change", {
        "plan_id": pro["id"], "change_option": "requested_date", "change_date": "2024-03-10T00:00:00Z",
        "billing_cycle_alignment": "start_of_month"})
    assert status == 200 and moved["billing_cycle_day"] == 1, moved
    period = billing_period_for(datetime(2024, 4, 1, tzinfo=UTC), "monthly", now)
    assert moved["current_billing_period_start_date"] == _iso(period.start)
    for field in REFUSED_ON_PLAN_CHANGE:
        status, error = await _call(client, key, "POST", f"{path}/schedule_plan_change", {
            "plan_id": basic["id"], "change_option": "immediate", field: None})
        assert status == 400 and error["validation_errors"][0]["field"] == field, (field, error)
    for route, body in (("cancel", {"cancel_option": "immediate", "allow_invoice_credit_or_void": True}),
                        ("update_fixed_fee_quantity", {"price_id": pro["prices"][0]["id"], "quantity": 2,
                                                       "allow_invoice_credit_or_void": True})):
        status, error = await _call(client, key, "POST", f"{path}/{route}", body)
        assert status == 400 and error["validation_errors"][0]["field"] == "allow_invoice_credit_or_void", error
    _, fetched = await _call(client, key, "GET", path)
    assert fetched == moved  # the refusals changed nothing


async def test_the_graph_and_json_rpc_take_the_same_fields_and_refuse_the_same(client, tenant):
    key = tenant.key
    basic, pro, customer = await _world(client, key)

    async def graph(query, variables):
        response = await client.post("/graphql", json={"query": query, "variables": variables}, headers=tenant.bearer)
        return await response.json()

    async def rpc(method, params):
        response = await client.post("/", json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
                                     headers={"X-Api-Key": key})
        return await response.json()

    created = await graph("""mutation($input: SubscriptionInput!) { createSubscription(input: $input) {
        id billingCycleDay endDate defaultInvoiceMemo trialInfo { endDate } } }""", {"input": {
        "customerId": customer["id"], "planId": basic["id"], "startDate": "2024-01-15T00:00:00Z",
        "endDate": "2099-01-01T00:00:00Z", "billingCycleAnchorConfiguration": {"day": 20},
        "defaultInvoiceMemo": "Hello", "trialDurationDays": 2}})
    sub = created["data"]["createSubscription"]
    assert {k: v for k, v in sub.items() if k != "id"} == {
        "billingCycleDay": 20, "endDate": "2099-01-01T00:00:00Z", "defaultInvoiceMemo": "Hello",
        "trialInfo": {"endDate": "2024-01-17T00:00:00Z"}}
    changed = await graph("""mutation($id: ID!, $input: PlanChangeInput!) { schedulePlanChange(id: $id, input: $input)
        { billingCycleDay netTerms } }""", {"id": sub["id"], "input": {
        "planId": pro["id"], "changeOption": "requested_date", "changeDate": "2024-02-05T00:00:00Z",
        "billingCycleAlignment": "plan_change_date", "netTerms": 7}})
    assert changed["data"]["schedulePlanChange"] == {"billingCycleDay": 5, "netTerms": 7}
    updated = await graph("""mutation($id: ID!, $input: SubscriptionUpdateInput!) { updateSubscription(id: $id,
        input: $input) { defaultInvoiceMemo autoCollection } }""", {"id": sub["id"], "input": {
        "defaultInvoiceMemo": "Bye", "autoCollection": False}})
    assert updated["data"]["updateSubscription"] == {"defaultInvoiceMemo": "Bye", "autoCollection": False}
    for field, name in GRAPH_NAMES.items():
        refused = await graph("""mutation($id: ID!, $input: PlanChangeInput!) { schedulePlanChange(id: $id,
            input: $input) { id } }""", {"id": sub["id"], "input": {"planId": basic["id"],
                                                                     "changeOption": "immediate", name: []}})
        assert refused["data"] is None and name in refused["errors"][0]["message"], refused

    made = await rpc("subscriptions.create", {
        "customer_id": customer["id"], "plan_id": basic["id"], "start_date": "2024-01-15T00:00:00Z",
        "billing_cycle_anchor_configuration": {"day": 3}, "default_invoice_memo": "RPC"})
    assert (made["result"]["billing_cycle_day"], made["result"]["default_invoice_memo"]) == (3, "RPC")
    moved = await rpc("subscriptions.schedule_plan_change", {
        "id": made["result"]["id"], "plan_id": pro["id"], "change_option": "requested_date",
        "change_date": "2024-02-10T00:00:00Z", "align_billing_with_plan_change_date": True})
    assert moved["result"]["billing_cycle_day"] == 10, moved
    for field in REFUSED_ON_PLAN_CHANGE:
        refused = await rpc("subscriptions.schedule_plan_change", {
            "id": made["result"]["id"], "plan_id": basic["id"], "change_option": "immediate", field: None})
        assert refused["error"]["code"] == -32602 and refused["error"]["data"]["field"] == field, (field, refused)
    refused = await rpc("subscriptions.create", {"customer_id": customer["id"], "plan_id": basic["id"],
                                                 "price_overrides": []})
    assert refused["error"]["data"]["field"] == "price_overrides", refused


async def test_an_anchor_month_reads_back_as_configured_until_a_re_anchoring_takes_over(client, tenant):
    key = tenant.key
    basic, pro, customer = await _world(client, key)
    body = {"customer_id": customer["id"], "plan_id": basic["id"], "start_date": "2024-01-15T00:00:00Z"}
    status, sub = await _call(client, key, "POST", "/v1/subscriptions", {
        **body, "billing_cycle_anchor_configuration": {"day": 15, "month": 2}})
    assert status == 201 and sub["billing_cycle_anchor_configuration"] == {"day": 15, "month": 2, "year": None}, sub
    status, day_only = await _call(client, key, "POST", "/v1/subscriptions", {
        **body, "billing_cycle_anchor_configuration": {"day": 15}})
    assert status == 201 and day_only["billing_cycle_anchor_configuration"] == {"day": 15, "month": None, "year": None}
    path = f"/v1/subscriptions/{sub['id']}"
    # A re-anchoring change still pending leaves the configured anchor (and its month) in effect.
    status, pending = await _call(client, key, "POST", f"{path}/schedule_plan_change", {
        "plan_id": pro["id"], "change_option": "requested_date", "change_date": "2090-03-10T00:00:00Z",
        "billing_cycle_alignment": "plan_change_date"})
    assert status == 200 and pending["billing_cycle_anchor_configuration"] == {"day": 15, "month": 2, "year": None}
    _, fetched = await _call(client, key, "GET", path)
    assert fetched["billing_cycle_anchor_configuration"] == {"day": 15, "month": 2, "year": None}
    # In effect, it anchors billing on its date: a day, no configured month any more.
    status, moved = await _call(client, key, "POST", f"{path}/schedule_plan_change", {
        "plan_id": pro["id"], "change_option": "requested_date", "change_date": "2024-03-10T00:00:00Z",
        "billing_cycle_alignment": "plan_change_date"})
    assert status == 200 and moved["billing_cycle_anchor_configuration"] == {"day": 10, "month": None, "year": None}
    # A change that keeps the billing cycle keeps the configured month.
    status, kept = await _call(client, key, "POST", f"{path}/schedule_plan_change", {
        "plan_id": basic["id"], "change_option": "requested_date", "change_date": "2024-03-10T00:00:00Z"})
    assert status == 200 and kept["billing_cycle_anchor_configuration"] == {"day": 15, "month": 2, "year": None}

    response = await client.post("/graphql", headers=tenant.bearer, json={"query": """
        mutation($input: SubscriptionInput!) { createSubscription(input: $input) {
            billingCycleAnchorConfiguration { day month year } } }""", "variables": {"input": {
        "customerId": customer["id"], "planId": basic["id"], "startDate": "2024-01-15T00:00:00Z",
        "billingCycleAnchorConfiguration": {"day": 28, "month": 11}}}})
    created = await response.json()
    assert created["data"]["createSubscription"]["billingCycleAnchorConfiguration"] == {
        "day": 28, "month": 11, "year": None}, created
