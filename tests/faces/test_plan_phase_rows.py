"""Plan phases on every face: plan_phases and each price's plan_phase_order on plan create (bad ones named
by field on GraphQL, Orb's /v1 and JSON-RPC), active_plan_phase_order, price intervals per phase and
trigger_phase with the costs it changes (a 31.00 monthly fee is 1.00 a day in January 2024)."""

from __future__ import annotations

import pytest

from tests.faces.drivers import RPC_KINDS

JANUARY = "timeframe_start=2024-01-01T00:00:00Z&timeframe_end=2024-02-01T00:00:00Z"
# A long intro phase so the real clock is still in it: only a trigger moves the subscription on.
PHASES = [{"order": 1, "duration": 10, "duration_unit": "annual"}, {"order": 2, "duration": None}]


async def _call(client, key, method, path, body=None):
    response = await client.request(method, path, json=body, headers={"Authorization": f"Bearer {key}"})
    return response.status, await response.json()


async def _rpc(client, key, method, params):
    response = await client.post("/", headers={"X-Api-Key": key},
                                 json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    return await response.json()


async def _graphql(client, key, query, variables):
    response = await client.post("/graphql", headers={"Authorization": f"Bearer {key}"},
                                 json={"query": query, "variables": variables})
    return await response.json()


def _fee(item_id, name, amount, order, flat=False):
    price = {"name": name, "item_id": item_id, "cadence": "monthly", "model_type": "unit",
             "unit_config": {"unit_amount": amount}, "fixed_price_quantity": "1"}
    return {**price, "plan_phase_order": order} if flat else {"price": price, "plan_phase_order": order}


async def _phased_plan(client, key, phases=PHASES):
    _, item = await _call(client, key, "POST", "/v1/items", {"name": "Seat"})
    # One price in the SDKs' shape, one flat (the API reference's) with its phase beside it.
    status, plan = await _call(client, key, "POST", "/v1/plans", {
        "name": "Phased", "currency": "USD", "plan_phases": phases,
        "prices": [_fee(item["id"], "Intro", "10.00", 1), _fee(item["id"], "Platform", "31.00", 2, flat=True)]})
    assert status == 201, plan
    return item["id"], plan


async def _subscription(client, key, plan_id, **extra):
    _, customer = await _call(client, key, "POST", "/v1/customers", {"name": "Acme", "email": "a@acme.com"})
    status, sub = await _call(client, key, "POST", "/v1/subscriptions", {
        "customer_id": customer["id"], "plan_id": plan_id, "start_date": "2024-01-01T00:00:00Z", **extra})
    assert status == 201, sub
    return sub


async def test_orb_plan_phases_read_back_on_the_plan_and_its_prices(client, tenant):
    _, plan = await _phased_plan(client, tenant.key)
    assert [(p["order"], p["duration"], p["duration_unit"], p["name"]) for p in plan["plan_phases"]] == [
        (1, 10, "annual", "Phase 1"), (2, None, None, "Phase 2")]
    assert plan["plan_phases"][0]["id"] == f"{plan['id']}_phase_1"
    assert [(p["name"], p["plan_phase_order"]) for p in plan["prices"]] == [("Intro", 1), ("Platform", 2)]
    _, fetched = await _call(client, tenant.key, "GET", f"/v1/plans/{plan['id']}")
    assert fetched == plan
    rpc = await _rpc(client, tenant.key, "plans.get", {"id": plan["id"]})
    assert rpc["result"] == plan
    _, item = await _call(client, tenant.key, "POST", "/v1/items", {"name": "Plain"})
    status, plain = await _call(client, tenant.key, "POST", "/v1/plans", {"name": "Plain", "currency": "USD",
        "prices": [{"name": "Fee", "item_id": item["id"], "cadence": "monthly", "model_type": "unit",
                    "unit_config": {"unit_amount": "5.00"}}]})
    assert status == 201 and plain["plan_phases"] is None and plain["prices"][0]["plan_phase_order"] is None


BAD = [
    ([{"order": 1, "duration": 1, "duration_unit": "monthly"}, {"order": 3}], [1, 2], "plan_phases[1].order"),
    ([{"order": 1, "duration": 0, "duration_unit": "monthly"}, {"order": 2}], [1, 2], "plan_phases[0].duration"),
    ([{"order": 1}, {"order": 2, "duration": 1, "duration_unit": "daily"}], [1, 2], "plan_phases[0].duration"),
    ([{"order": 1, "duration": 2, "duration_unit": "weekly"}, {"order": 2}], [1, 2], "plan_phases[0].duration_unit"),
    (PHASES, [1, 3], "prices[1].plan_phase_order"),
    (PHASES, [1, None], "prices[1].plan_phase_order"),
]


@pytest.mark.parametrize(("phases", "orders", "field"), BAD)
async def test_bad_phases_are_refused_naming_the_field_on_every_face(client, tenant, phases, orders, field):
    key = tenant.key
    _, item = await _call(client, key, "POST", "/v1/items", {"name": "Seat"})
    prices = [_fee(item["id"], f"Fee {i}", "1.00", order) for i, order in enumerate(orders)]
    body = {"name": "Bad", "currency": "USD", "plan_phases": phases, "prices": prices}
    status, error = await _call(client, key, "POST", "/v1/plans", body)
    assert status == 400 and error["validation_errors"][0]["field"] == field, error
    rpc = await _rpc(client, key, "plans.create", body)
    assert RPC_KINDS[rpc["error"]["code"]] == "validation" and rpc["error"]["data"]["field"] == field, rpc
    graph = await _graphql(client, key, "mutation($input: PlanInput!) { createPlan(input: $input) { id } }", {
        "input": {"name": "Bad", "currency": "USD", "planPhases": phases,
                  "prices": [{"price": {"name": p["price"]["name"], "itemId": item["id"], "cadence": "monthly",
                                        "modelType": "unit", "unitConfig": {"unitAmount": "1.00"}},
                              "planPhaseOrder": p["plan_phase_order"]} for p in prices]}})
    assert graph["errors"][0]["extensions"] == {"code": "VALIDATION_FAILED", "field": field}, graph
    _, listed = await _call(client, key, "GET", "/v1/plans")
    assert listed["data"] == []  # nothing of a refused plan was written


async def test_orb_trigger_phase_moves_on_and_prorates_the_costs(client, tenant):
    key = tenant.key
    _, plan = await _phased_plan(client, key)
    sub = await _subscription(client, key, plan["id"])
    path = f"/v1/subscriptions/{sub['id']}"
    assert sub["active_plan_phase_order"] == 1
    assert [(i["price"]["name"], i["start_date"], i["end_date"]) for i in sub["price_intervals"]] == [
        ("Intro", "2024-01-01T00:00:00Z", "2034-01-01T00:00:00Z"), ("Platform", "2034-01-01T00:00:00Z", None)]
    _, costs = await _call(client, key, "GET", f"{path}/costs?{JANUARY}")
    assert costs["data"][0]["subtotal"] == "10.00"

    # Phase 2 from Jan 20, 2024: the intro fee for 19 of 31 days R(10.00 x 19/31) = 6.13, the platform fee for 12.
    status, moved = await _call(client, key, "POST", f"{path}/trigger_phase",
                                {"effective_date": "2024-01-20", "allow_invoice_credit_or_void": True})
    assert status == 200 and moved["id"] == sub["id"] and moved["active_plan_phase_order"] == 2, moved
    assert [(i["price"]["name"], i["start_date"], i["end_date"]) for i in moved["price_intervals"]] == [
        ("Intro", "2024-01-01T00:00:00Z", "2024-01-20T00:00:00Z"), ("Platform", "2024-01-20T00:00:00Z", None)]
    _, costs = await _call(client, key, "GET", f"{path}/costs?{JANUARY}")
    assert costs["data"][0]["subtotal"] == "18.13"
    assert sorted((c["price"]["name"], c["subtotal"]) for c in costs["data"][0]["per_price_costs"]) == [
        ("Intro", "6.13"), ("Platform", "12.00")]

    status, error = await _call(client, key, "POST", f"{path}/trigger_phase", {})
    assert status == 400 and error["type"].endswith("#400-constraint-violation"), error  # already the last phase
    status, error = await _call(client, key, "POST", f"{path}/trigger_phase", {"effective_date": "yesterday"})
    assert status == 400 and error["validation_errors"][0]["field"] == "effective_date", error
    status, error = await _call(client, key, "POST", f"{path}/trigger_phase", {"phase": 3})
    assert status == 400, error


async def test_trigger_phase_over_graphql_and_json_rpc_and_refusals(client, tenant, other_tenant):
    key = tenant.key
    item_id, plan = await _phased_plan(client, key, [
        {"order": 1, "duration": 10, "duration_unit": "annual"},
        {"order": 2, "duration": 10, "duration_unit": "annual"}, {"order": 3}])
    sub = await _subscription(client, key, plan["id"])
    graph = await _graphql(client, key, """mutation($id: ID!, $input: TriggerPhaseInput) {
        triggerPhase(id: $id, input: $input) { id activePlanPhaseOrder } }""",
                           {"id": sub["id"], "input": {"effectiveDate": "2024-02-01"}})
    assert graph["data"]["triggerPhase"] == {"id": sub["id"], "activePlanPhaseOrder": 2}, graph
    rpc = await _rpc(client, key, "subscriptions.trigger_phase", {"id": sub["id"], "effective_date": "2024-01-10"})
    assert rpc["error"]["data"]["field"] == "effective_date", rpc  # before the phase in effect now began
    rpc = await _rpc(client, key, "subscriptions.trigger_phase", {"id": sub["id"]})
    assert rpc["result"]["active_plan_phase_order"] == 3, rpc
    graph = await _graphql(client, key, "query($id: ID!) { subscription(id: $id) { schedule { planPhaseOrder "
                                        "startDate } } }", {"id": sub["id"]})
    phases = graph["data"]["subscription"]["schedule"]
    assert [p["planPhaseOrder"] for p in phases] == [1, 2, 3] and phases[1]["startDate"] == "2024-02-01T00:00:00Z"
    # Started in the last phase (initial_phase_order): nothing to trigger; a plain plan has no phases.
    last = await _subscription(client, key, plan["id"], initial_phase_order=3)
    assert last["active_plan_phase_order"] == 3
    status, error = await _call(client, key, "POST", f"/v1/subscriptions/{last['id']}/trigger_phase", {})
    assert status == 400 and "last phase" in error["detail"], error
    status, plain = await _call(client, key, "POST", "/v1/plans", {"name": "Plain", "currency": "USD", "prices": [
        {"name": "Fee", "item_id": item_id, "cadence": "monthly", "model_type": "unit",
         "unit_config": {"unit_amount": "5.00"}}]})
    unphased = await _subscription(client, key, plain["id"])
    assert unphased["active_plan_phase_order"] is None
    status, error = await _call(client, key, "POST", f"/v1/subscriptions/{unphased['id']}/trigger_phase", {})
    assert status == 400 and "no plan_phases" in error["detail"], error
    status, _ = await _call(client, other_tenant.key, "POST", f"/v1/subscriptions/{sub['id']}/trigger_phase", {})
    assert status == 404


ALIGNED = [{"order": 1, "duration": 10, "duration_unit": "annual"},
           {"order": 2, "duration": None, "align_billing_with_phase_start_date": True}]


async def test_align_billing_with_phase_start_date_on_every_face(client, tenant):
    key = tenant.key
    item_id, plan = await _phased_plan(client, key, ALIGNED)
    # Orb's plan read has no such field on a phase: taken on create, not shown there; the graph shows it.
    assert [sorted(p) for p in plan["plan_phases"]] == [sorted(plan["plan_phases"][0])] * 2
    assert "align_billing_with_phase_start_date" not in plan["plan_phases"][1]
    graph = await _graphql(client, key, "query($id: ID!) { plan(id: $id) { planPhases { order "
                                        "alignBillingWithPhaseStartDate } } }", {"id": plan["id"]})
    assert graph["data"]["plan"]["planPhases"] == [{"order": 1, "alignBillingWithPhaseStartDate": False},
                                                   {"order": 2, "alignBillingWithPhaseStartDate": True}], graph
    body = {"name": "Aligned", "currency": "USD", "plan_phases": ALIGNED,
            "prices": [_fee(item_id, "Intro", "10.00", 1), _fee(item_id, "Platform", "31.00", 2)]}
    rpc = await _rpc(client, key, "plans.create", body)
    assert rpc["result"]["plan_phases"][1]["order"] == 2, rpc
    created = await _graphql(client, key, "mutation($input: PlanInput!) { createPlan(input: $input) { planPhases { "
                                          "alignBillingWithPhaseStartDate } } }", {"input": {
        "name": "Aligned", "currency": "USD", "planPhases": ALIGNED,
        "prices": [{"price": {"name": "Intro", "itemId": item_id, "cadence": "monthly", "modelType": "unit",
                              "unitConfig": {"unit_amount": "10.00"}}, "planPhaseOrder": 1},
                   {"price": {"name": "Platform", "itemId": item_id, "cadence": "monthly", "modelType": "unit",
                              "unitConfig": {"unit_amount": "31.00"}}, "planPhaseOrder": 2}]}})
    assert [p["alignBillingWithPhaseStartDate"] for p in created["data"]["createPlan"]["planPhases"]] == [
        False, True], created
    bad = [{**ALIGNED[0], "align_billing_with_phase_start_date": "yes"}, ALIGNED[1]]
    status, error = await _call(client, key, "POST", "/v1/plans", {**body, "plan_phases": bad})
    assert status == 400 and error["validation_errors"][0]["field"] == \
        "plan_phases[0].align_billing_with_phase_start_date", error

    # Phase 2 triggered on Jan 20, 2024: billing re-anchors there, so the 20th is the billing cycle day and
    # Jan 1-20 is a short period: the intro fee for 19 of 31 days R(10.00 x 19/31) = 6.13.
    sub = await _subscription(client, key, plan["id"])
    assert sub["billing_cycle_day"] == 1
    path = f"/v1/subscriptions/{sub['id']}"
    status, moved = await _call(client, key, "POST", f"{path}/trigger_phase", {"effective_date": "2024-01-20"})
    assert status == 200 and moved["billing_cycle_day"] == 20, moved
    assert moved["current_billing_period_start_date"][8:] == "20T00:00:00Z", moved
    platform = [i for i in moved["price_intervals"] if i["price"]["name"] == "Platform"]
    assert platform[0]["billing_cycle_day"] == 20 and platform[0]["current_billing_period_start_date"] == \
        moved["current_billing_period_start_date"]
    _, costs = await _call(client, key, "GET",
                           f"{path}/costs?timeframe_start=2024-01-01T00:00:00Z&timeframe_end=2024-02-20T00:00:00Z")
    assert [(c["timeframe_start"], c["timeframe_end"], c["subtotal"]) for c in costs["data"]] == [
        ("2024-01-01T00:00:00Z", "2024-01-20T00:00:00Z", "6.13"),
        ("2024-01-20T00:00:00Z", "2024-02-20T00:00:00Z", "31.00")], costs


async def test_an_anchor_month_reads_back_until_a_phase_aligning_billing_starts(client, tenant):
    key = tenant.key
    _, plan = await _phased_plan(client, key, ALIGNED)
    sub = await _subscription(client, key, plan["id"], billing_cycle_anchor_configuration={"day": 1, "month": 2})
    assert sub["billing_cycle_anchor_configuration"] == {"day": 1, "month": 2, "year": None}, sub
    # Phase 2 re-anchors billing at its start (Jan 20): its anchor is that date, with no configured month.
    status, moved = await _call(client, key, "POST", f"/v1/subscriptions/{sub['id']}/trigger_phase",
                                {"effective_date": "2024-01-20"})
    assert status == 200 and moved["billing_cycle_anchor_configuration"] == {"day": 20, "month": None, "year": None}
