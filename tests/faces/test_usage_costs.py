"""A subscription's usage and costs, and a customer's costs, on Orb's /v1, the graph and JSON-RPC.

The scenario (amounts by hand): Acme subscribes to Basic on 2024-01-01 (a 30.00 monthly fee, tokens at
0.01, distinct users at 1.00) and moves to Pro on 2024-01-16 (a 90.00 monthly fee, tokens at 0.02).
Events: Jan 3 100 tokens (user a) and 50 (user b), Jan 5 200 (a), Jan 20 400 (c), Feb 2 1,000 (a).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domains.clock import FixedClock
from domains.metering import events
from domains.unit_of_work import UnitOfWork
from gateway.context import Context
from gateway.graphql.schema import schema
from persistence.db import session_factory

EVENTS = [(datetime(2024, 1, 3, 9, tzinfo=UTC), 100, "a"), (datetime(2024, 1, 3, 23, 59, tzinfo=UTC), 50, "b"),
          (datetime(2024, 1, 5, tzinfo=UTC), 200, "a"), (datetime(2024, 1, 20, 12, tzinfo=UTC), 400, "c"),
          (datetime(2024, 2, 2, tzinfo=UTC), 1000, "a")]


async def _call(client, key, method, path, body=None):
    response = await client.request(method, path, json=body, headers={"Authorization": f"Bearer {key}"})
    return response.status, await response.json()


async def _created(client, key, path, body):
    status, made = await _call(client, key, "POST", path, body)
    assert status == 201, made
    return made


def _price(name, item_id, amount, metric_id=None):
    price = {"name": name, "item_id": item_id, "cadence": "monthly", "model_type": "unit",
             "unit_config": {"unit_amount": amount}}
    if metric_id is None:
        price["fixed_price_quantity"] = "1"
    else:
        price["billable_metric_id"] = metric_id
    return price


@pytest.fixture
async def world(client, tenant, database):
    key = tenant.key
    item = await _created(client, key, "/v1/items", {"name": "Platform"})
    tokens = await _created(client, key, "/v1/metrics", {
        "name": "Tokens", "item_id": item["id"], "sql": "SELECT SUM(tokens) FROM events WHERE event_name = 'llm'"})
    users = await _created(client, key, "/v1/metrics", {
        "name": "Users", "item_id": item["id"],
        "sql": "SELECT COUNT(DISTINCT user_id) FROM events WHERE event_name = 'llm'"})
    basic = await _created(client, key, "/v1/plans", {"name": "Basic", "currency": "USD", "prices": [
        _price("Basic fee", item["id"], "30.00"), _price("Basic tokens", item["id"], "0.01", tokens["id"]),
        _price("Users", item["id"], "1.00", users["id"])]})
    pro = await _created(client, key, "/v1/plans", {"name": "Pro", "currency": "USD", "external_plan_id": "pro",
                                                    "prices": [_price("Pro fee", item["id"], "90.00"),
                                                               _price("Pro tokens", item["id"], "0.02", tokens["id"])]})
    customer = await _created(client, key, "/v1/customers", {"name": "Acme", "email": "a@acme.com",
                                                             "external_customer_id": "acme"})
    sub = await _created(client, key, "/v1/subscriptions", {"customer_id": customer["id"], "plan_id": basic["id"],
                                                             "start_date": "2024-01-01T00:00:00Z"})
    status, changed = await _call(client, key, "POST", f"/v1/subscriptions/{sub['id']}/schedule_plan_change", {
        "plan_id": pro["id"], "change_option": "requested_date", "change_date": "2024-01-16T00:00:00Z"})
    assert status == 200, changed
    # The events are from 2024: ingested as if live then (a fixed clock), past the grace period now.
    for n, (when, count, user) in enumerate(EVENTS):
        unit = UnitOfWork(session_factory(database.engine), clock=FixedClock(when))
        try:
            result = await events.ingest_events(unit, principal=tenant.principal, events=[{
                "event_name": "llm", "timestamp": when.isoformat(), "idempotency_key": f"e{n}",
                "customer_id": customer["id"], "properties": {"tokens": count, "user_id": user}}])
            assert result.ingested == [f"e{n}"]
        finally:
            await unit.close()
    prices = {p["name"]: p["id"] for plan in (basic, pro) for p in plan["prices"]}
    return {"key": key, "sub": sub["id"], "customer": customer["id"], "tokens": tokens["id"], "users": users["id"],
            "prices": prices}


def _quantities(entry):
    return [(u["timeframe_start"][:10], u["quantity"]) for u in entry["usage"]]


async def test_usage_per_day_periodic_and_cumulative_and_over_the_window(client, world):
    key, path = world["key"], f"/v1/subscriptions/{world['sub']}/usage"
    window = "timeframe_start=2024-01-01T00:00:00Z&timeframe_end=2024-01-06T00:00:00Z"
    status, body = await _call(client, key, "GET", f"{path}?{window}&granularity=day")
    assert status == 200, body
    assert [(e["billable_metric"], e["view_mode"]) for e in body["data"]] == [
        ({"id": world["tokens"], "name": "Tokens"}, "periodic"), ({"id": world["users"], "name": "Users"}, "periodic")]
    tokens, users = body["data"]
    assert _quantities(tokens) == [("2024-01-01", "0.00"), ("2024-01-02", "0.00"), ("2024-01-03", "150.00"),
                                   ("2024-01-04", "0.00"), ("2024-01-05", "200.00")]
    assert tokens["usage"][0]["timeframe_end"] == "2024-01-02T00:00:00Z"
    assert [q for _, q in _quantities(users)] == ["0.00", "0.00", "2.00", "0.00", "1.00"]

    status, body = await _call(client, key, "GET", f"{path}?{window}&granularity=day&view_mode=cumulative")
    assert status == 200, body
    tokens, users = body["data"]
    assert [q for _, q in _quantities(tokens)] == ["0.00", "0.00", "150.00", "150.00", "350.00"]
    # User a, seen again on Jan 5, counts once.
    assert [q for _, q in _quantities(users)] == ["0.00", "0.00", "2.00", "2.00", "2.00"]

    # A window cut mid-day, one metric, no granularity: one bucket for the whole window.
    status, body = await _call(client, key, "GET", f"{path}?timeframe_start=2024-01-03T12:00:00Z"
                               f"&timeframe_end=2024-02-01T00:00:00Z&billable_metric_id={world['users']}")
    assert status == 200, body
    assert body["data"] == [{"billable_metric": {"id": world["users"], "name": "Users"}, "view_mode": "periodic",
                             "usage": [{"quantity": "3.00", "timeframe_start": "2024-01-03T12:00:00Z",
                                        "timeframe_end": "2024-02-01T00:00:00Z"}]}]
    status, body = await _call(client, key, "GET", f"{path}?timeframe_start=2024-01-03T12:00:00Z"
                               "&timeframe_end=2024-01-05T06:00:00Z&granularity=day")
    assert [(u["timeframe_start"], u["timeframe_end"], u["quantity"]) for u in body["data"][0]["usage"]] == [
        ("2024-01-03T12:00:00Z", "2024-01-04T00:00:00Z", "50.00"),
        ("2024-01-04T00:00:00Z", "2024-01-05T00:00:00Z", "0.00"),
        ("2024-01-05T00:00:00Z", "2024-01-05T06:00:00Z", "200.00")]


def _costs(frame):
    return [(c["price"]["name"], c["quantity"], c["subtotal"], c["total"]) for c in frame["per_price_costs"]]


# January, by hand: Basic's fee for 15 of 31 days: R(30 x 15/31) = 14.52; Basic tokens 350 x 0.01 = 3.50;
# users a, b = 2.00; Pro's fee for the 16 days left: 90.00 - R(90 x 15/31 = 43.548) = 46.45; Pro tokens
# 400 x 0.02 = 8.00. 74.47 in all. February: 90.00 and 1,000 x 0.02 = 20.00, 110.00.
JANUARY = [("Basic fee", "1.00", "14.52", "14.52"), ("Basic tokens", "350.00", "3.50", "3.50"),
           ("Users", "2.00", "2.00", "2.00"), ("Pro fee", "1.00", "46.45", "46.45"),
           ("Pro tokens", "400.00", "8.00", "8.00")]


async def test_costs_across_a_plan_change_periodic_and_cumulative(client, world):
    key, path = world["key"], f"/v1/subscriptions/{world['sub']}/costs"
    window = "timeframe_start=2024-01-10T00:00:00Z&timeframe_end=2024-02-10T00:00:00Z"
    status, body = await _call(client, key, "GET", f"{path}?{window}")
    assert status == 200, body
    january, february = body["data"]
    assert (january["timeframe_start"], january["timeframe_end"], january["subtotal"], january["total"]) == (
        "2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z", "74.47", "74.47")
    assert _costs(january) == JANUARY
    assert january["per_price_costs"][0]["price"]["id"] == world["prices"]["Basic fee"]
    assert (february["timeframe_start"], february["timeframe_end"], february["subtotal"]) == (
        "2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z", "110.00")
    assert _costs(february) == [("Pro fee", "1.00", "90.00", "90.00"), ("Pro tokens", "1000.00", "20.00", "20.00")]

    status, body = await _call(client, key, "GET", f"{path}?{window}&view_mode=cumulative")
    assert status == 200, body
    first, both = body["data"]
    assert _costs(first) == JANUARY and first["subtotal"] == "74.47"
    assert (both["timeframe_start"], both["timeframe_end"], both["subtotal"]) == (
        "2024-01-01T00:00:00Z", "2024-03-01T00:00:00Z", "184.47")
    assert _costs(both) == JANUARY[:3] + [("Pro fee", "1.00", "136.45", "136.45"),
                                          ("Pro tokens", "1400.00", "28.00", "28.00")]

    # The customer's costs: its one subscription's, by id and by external id.
    status, by_id = await _call(client, key, "GET", f"/v1/customers/{world['customer']}/costs?{window}")
    assert status == 200 and [f["subtotal"] for f in by_id["data"]] == ["74.47", "110.00"]
    status, by_external = await _call(client, key, "GET", f"/v1/customers/external_customer_id/acme/costs?{window}")
    assert status == 200 and by_external == by_id


async def test_bad_inputs_are_named_and_foreign_subscriptions_are_not_found(client, world, other_tenant):
    key, sub = world["key"], world["sub"]
    window = "timeframe_start=2024-01-01T00:00:00Z&timeframe_end=2024-01-06T00:00:00Z"
    for query, field in [
        ("timeframe_start=2024-01-06T00:00:00Z&timeframe_end=2024-01-01T00:00:00Z", "timeframe_end"),
        (f"{window}&billable_metric_id=nope", "billable_metric_id"),
        (f"{window}&group_by=region", "billable_metric_id"),  # Orb: the two go together
        (f"{window}&granularity=hour", "granularity"),
        (f"{window}&view_mode=daily", "view_mode"),
        ("timeframe_start=2024-01-01T00:00:00Z&timeframe_end=2025-06-01T00:00:00Z&granularity=day", "timeframe_end"),
        ("timeframe_start=yesterday&timeframe_end=2024-01-06T00:00:00Z", "timeframe_start"),
    ]:
        status, error = await _call(client, key, "GET", f"/v1/subscriptions/{sub}/usage?{query}")
        assert status == 400 and error["validation_errors"][0]["field"] == field, (query, error)
    status, error = await _call(client, key, "GET", f"/v1/subscriptions/{sub}/costs?timeframe_start="
                                "2024-02-01T00:00:00Z&timeframe_end=2024-01-01T00:00:00Z")
    assert status == 400 and error["validation_errors"][0]["field"] == "timeframe_end"
    for path in (f"/v1/subscriptions/{sub}/usage?{window}", f"/v1/subscriptions/{sub}/costs?{window}",
                 f"/v1/customers/{world['customer']}/costs?{window}", "/v1/customers/external_customer_id/acme/costs"):
        status, error = await _call(client, other_tenant.key, "GET", path)
        assert status == 404, (path, error)


async def test_graph_fields_and_json_rpc_methods(client, world, tenant):
    response = await client.post("/graphql", headers=tenant.bearer, json={
        "query": """query($id: ID!, $c: ID!) {
            subscription(id: $id) {
              usage(timeframeStart: "2024-01-01T00:00:00Z", timeframeEnd: "2024-01-06T00:00:00Z",
                    granularity: "day", viewMode: "cumulative") { billableMetric { name } usage { quantity } }
              costs(timeframeStart: "2024-01-01T00:00:00Z", timeframeEnd: "2024-02-01T00:00:00Z") { subtotal }
            }
            customer(id: $c) { costs(timeframeStart: "2024-01-01T00:00:00Z", timeframeEnd: "2024-03-01T00:00:00Z",
                                     viewMode: "cumulative") { timeframeEnd total } }
        }""", "variables": {"id": world["sub"], "c": world["customer"]}})
    body = await response.json()
    subscription = body["data"]["subscription"]
    assert subscription["usage"][0] == {"billableMetric": {"name": "Tokens"}, "usage": [
        {"quantity": q} for q in ("0.00", "0.00", "150.00", "150.00", "350.00")]}
    assert subscription["costs"] == [{"subtotal": "74.47"}]
    assert body["data"]["customer"]["costs"] == [{"timeframeEnd": "2024-02-01T00:00:00Z", "total": "74.47"},
                                                 {"timeframeEnd": "2024-03-01T00:00:00Z", "total": "184.47"}]
    refused = await client.post("/graphql", headers=tenant.bearer, json={
        "query": 'query($id: ID!) { subscriptionUsage(id: $id, groupBy: "region") { viewMode } }',
        "variables": {"id": world["sub"]}})
    assert (await refused.json())["errors"][0]["extensions"]["field"] == "billable_metric_id"

    async def rpc(method, params):
        response = await client.post("/", json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
                                     headers={"X-Api-Key": tenant.key})
        return await response.json()

    usage = await rpc("subscriptions.usage", {"id": world["sub"], "timeframe_start": "2024-01-01T00:00:00Z",
                                              "timeframe_end": "2024-02-01T00:00:00Z"})
    assert [(e["billable_metric"]["name"], e["usage"][0]["quantity"]) for e in usage["result"]] == [
        ("Tokens", "750.00"), ("Users", "3.00")]
    costs = await rpc("subscriptions.costs", {"id": world["sub"], "timeframe_start": "2024-01-01T00:00:00Z",
                                              "timeframe_end": "2024-02-01T00:00:00Z"})
    assert _costs(costs["result"][0]) == JANUARY
    by_customer = await rpc("customers.costs", {"external_customer_id": "acme",
                                                "timeframe_start": "2024-01-01T00:00:00Z",
                                                "timeframe_end": "2024-02-01T00:00:00Z"})
    assert by_customer["result"] == costs["result"]
    refused = await rpc("subscriptions.usage", {"id": world["sub"], "timeframe_start": "2024-01-05T00:00:00Z",
                                                "timeframe_end": "2024-01-01T00:00:00Z"})
    assert refused["error"]["data"]["field"] == "timeframe_end", refused
    both = await rpc("customers.costs", {"id": world["customer"], "external_customer_id": "acme"})
    assert both["error"]["data"]["field"] == "external_customer_id", both



async def test_daily_usage_is_one_statement_per_metric_not_per_day(database, world, tenant, count_queries):
    query = """query($id: ID!, $mode: String) { subscriptionUsage(id: $id, timeframeStart: "2024-01-01T00:00:00Z",
        timeframeEnd: "2024-02-01T00:00:00Z", granularity: "day", viewMode: $mode) { usage { quantity } } }"""
    uow = UnitOfWork(session_factory(database.engine))
    try:
        for mode in ("periodic", "cumulative"):
            with count_queries() as counter:
                result = await schema.execute(query, variable_values={"id": world["sub"], "mode": mode},
                                              context_value=Context(principal=tenant.principal, uow=uow))
            assert result.errors is None, result.errors
            found = result.data["subscriptionUsage"]
            assert [len(e["usage"]) for e in found] == [31, 31]
            on_events = [s for s in counter.statements if " events" in s.lower()]
            assert len(on_events) == 2, on_events
    finally:
        await uow.close()
    assert [u["quantity"] for u in found[0]["usage"]][18:21] == ["350.00", "750.00", "750.00"]
