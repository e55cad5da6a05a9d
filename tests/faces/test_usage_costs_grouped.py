"""Grouped usage (group_by with billable_metric_id) on Orb's /v1, the graph and JSON-RPC, both databases.

Acme's `llm` events (tokens, region): Jan 2 10 eu, Jan 2 30 us, Jan 3 5 eu, Jan 3 7 with no region,
Jan 5 50 eu. Globex, on the same plan, sends 100 eu on Jan 2: never in Acme's groups.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domains.clock import FixedClock
from domains.metering import events
from domains.unit_of_work import UnitOfWork
from persistence.db import session_factory

ACME = [(datetime(2024, 1, 2, 1, tzinfo=UTC), {"tokens": 10, "region": "eu"}),
        (datetime(2024, 1, 2, 23, tzinfo=UTC), {"tokens": 30, "region": "us"}),
        (datetime(2024, 1, 3, tzinfo=UTC), {"tokens": 5, "region": "eu"}),
        (datetime(2024, 1, 3, 12, tzinfo=UTC), {"tokens": 7}),
        (datetime(2024, 1, 5, 12, tzinfo=UTC), {"tokens": 50, "region": "eu"})]
WINDOW = "timeframe_start=2024-01-01T00:00:00Z&timeframe_end=2024-01-06T00:00:00Z"


async def _call(client, key, method, path, body=None):
    response = await client.request(method, path, json=body, headers={"Authorization": f"Bearer {key}"})
    return response.status, await response.json()


async def _created(client, key, path, body):
    status, made = await _call(client, key, "POST", path, body)
    assert status == 201, made
    return made


async def _ingest(database, principal, customer_id, when, properties, key):
    unit = UnitOfWork(session_factory(database.engine), clock=FixedClock(when))
    try:
        result = await events.ingest_events(unit, principal=principal, events=[{
            "event_name": "llm", "timestamp": when.isoformat(), "idempotency_key": key,
            "customer_id": customer_id, "properties": properties}])
        assert result.ingested == [key]
    finally:
        await unit.close()


@pytest.fixture
async def world(client, tenant, database):
    key = tenant.key
    item = await _created(client, key, "/v1/items", {"name": "Platform"})
    tokens = await _created(client, key, "/v1/metrics", {
        "name": "Tokens", "item_id": item["id"], "sql": "SELECT SUM(tokens) FROM events WHERE event_name = 'llm'"})
    calls = await _created(client, key, "/v1/metrics", {
        "name": "Calls", "item_id": item["id"], "sql": "SELECT COUNT(*) FROM events WHERE event_name = 'llm'"})
    plan = await _created(client, key, "/v1/plans", {"name": "Usage", "currency": "USD", "prices": [
        {"name": name, "item_id": item["id"], "cadence": "monthly", "model_type": "unit",
         "unit_config": {"unit_amount": "1.00"}, "billable_metric_id": metric["id"]}
        for name, metric in (("Tokens", tokens), ("Calls", calls))]})
    subs = {}
    for name in ("acme", "globex"):
        customer = await _created(client, key, "/v1/customers", {"name": name, "email": f"a@{name}.com"})
        subs[name] = await _created(client, key, "/v1/subscriptions", {
            "customer_id": customer["id"], "plan_id": plan["id"], "start_date": "2024-01-01T00:00:00Z"})
    for n, (when, properties) in enumerate(ACME):
        await _ingest(database, tenant.principal, subs["acme"]["customer"]["id"], when, properties, f"a{n}")
    await _ingest(database, tenant.principal, subs["globex"]["customer"]["id"], datetime(2024, 1, 2, tzinfo=UTC),
                  {"tokens": 100, "region": "eu"}, "g0")
    return {"key": key, "sub": subs["acme"]["id"], "globex": subs["globex"]["id"], "tokens": tokens["id"],
            "calls": calls["id"]}


def _groups(data):
    return [(e["metric_group"]["property_value"], [u["quantity"] for u in e["usage"]]) for e in data]


async def test_orb_grouped_usage(client, world):
    key, path = world["key"], f"/v1/subscriptions/{world['sub']}/usage"
    status, body = await _call(client, key, "GET", f"{path}?{WINDOW}&group_by=region&billable_metric_id="
                                                   f"{world['tokens']}")
    assert status == 200, body
    assert body["pagination_metadata"] == {"has_more": False, "next_cursor": None}
    # Events without a region are a null group on the graph and JSON-RPC; Orb's string value has no
    # place for it.
    assert [e["metric_group"] for e in body["data"]] == [
        {"property_key": "region", "property_value": v} for v in ("eu", "us")]
    assert {e["billable_metric"]["id"] for e in body["data"]} == {world["tokens"]}
    assert _groups(body["data"]) == [("eu", ["65.00"]), ("us", ["30.00"])]
    assert body["data"][0]["usage"][0]["timeframe_start"] == "2024-01-01T00:00:00Z"
    assert body["data"][0]["usage"][0]["timeframe_end"] == "2024-01-06T00:00:00Z"

    status, body = await _call(client, key, "GET", f"{path}?{WINDOW}&group_by=region&billable_metric_id="
                                                   f"{world['calls']}&granularity=day&view_mode=cumulative")
    assert status == 200, body
    assert {e["view_mode"] for e in body["data"]} == {"cumulative"}
    assert _groups(body["data"]) == [("eu", ["0.00", "1.00", "2.00", "2.00", "3.00"]),
                                     ("us", ["0.00", "1.00", "1.00", "1.00", "1.00"])]
    assert [u["timeframe_start"][:10] for u in body["data"][0]["usage"]] == [
        "2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]
    status, body = await _call(client, key, "GET", f"{path}?{WINDOW}&group_by=region&billable_metric_id="
                                                   f"{world['tokens']}&granularity=day")
    assert _groups(body["data"]) == [("eu", ["0.00", "10.00", "5.00", "0.00", "50.00"]),
                                     ("us", ["0.00", "30.00", "0.00", "0.00", "0.00"])]

    # Ungrouped usage keeps Orb's ungrouped shape: no metric_group, no pagination_metadata.
    status, body = await _call(client, key, "GET", f"{path}?{WINDOW}")
    assert status == 200 and list(body) == ["data"]
    assert [sorted(e) for e in body["data"]] == [["billable_metric", "usage", "view_mode"]] * 2
    assert [e["usage"][0]["quantity"] for e in body["data"]] == ["102.00", "5.00"]

    # Globex's groups are its own.
    status, body = await _call(client, key, "GET", f"/v1/subscriptions/{world['globex']}/usage?{WINDOW}"
                                                   f"&group_by=region&billable_metric_id={world['tokens']}")
    assert _groups(body["data"]) == [("eu", ["100.00"])]


async def test_orb_bad_input_is_named(client, world, other_tenant):
    key, path = world["key"], f"/v1/subscriptions/{world['sub']}/usage?{WINDOW}"
    tokens = world["tokens"]
    for query, field in [
        ("&group_by=region", "billable_metric_id"),
        ("&group_by=region&billable_metric_id=nope", "billable_metric_id"),
        (f"&group_by=a%20b&billable_metric_id={tokens}", "group_by"),
        (f"&group_by=&billable_metric_id={tokens}", "group_by"),
        (f"&group_by=region&billable_metric_id={tokens}&second_dimension_key=user", "second_dimension_key"),
        (f"&group_by=region&billable_metric_id={tokens}&view_mode=daily", "view_mode"),
        (f"&group_by=region&billable_metric_id={tokens}&granularity=hour", "granularity"),
    ]:
        status, error = await _call(client, key, "GET", path + query)
        assert status == 400 and error["validation_errors"][0]["field"] == field, (query, error)
    status, error = await _call(client, other_tenant.key, "GET",
                                f"{path}&group_by=region&billable_metric_id={tokens}")
    assert status == 404, error


async def test_graph_and_json_rpc(client, world, tenant):
    async def graph(query, variables):
        response = await client.post("/graphql", headers=tenant.bearer, json={"query": query, "variables": variables})
        return await response.json()

    body = await graph("""query($id: ID!, $m: String) {
        subscriptionUsage(id: $id, timeframeStart: "2024-01-01T00:00:00Z", timeframeEnd: "2024-01-06T00:00:00Z",
                          groupBy: "region", billableMetricId: $m, granularity: "day", viewMode: "cumulative") {
          billableMetric { name } metricGroup { propertyKey propertyValue } usage { quantity } }
        subscription(id: $id) {
          usage(timeframeStart: "2024-01-01T00:00:00Z", timeframeEnd: "2024-01-06T00:00:00Z", groupBy: "region",
                billableMetricId: $m) { metricGroup { propertyValue } usage { quantity } }
          ungrouped: usage(timeframeStart: "2024-01-01T00:00:00Z", timeframeEnd: "2024-01-06T00:00:00Z",
                           billableMetricId: $m) { metricGroup { propertyValue } usage { quantity } }
        } }""", {"id": world["sub"], "m": world["tokens"]})
    assert "errors" not in body, body
    assert body["data"]["subscriptionUsage"] == [
        {"billableMetric": {"name": "Tokens"}, "metricGroup": {"propertyKey": "region", "propertyValue": value},
         "usage": [{"quantity": q} for q in quantities]}
        for value, quantities in (("eu", ("0.00", "10.00", "15.00", "15.00", "65.00")),
                                  ("us", ("0.00", "30.00", "30.00", "30.00", "30.00")),
                                  (None, ("0.00", "0.00", "7.00", "7.00", "7.00")))]
    assert body["data"]["subscription"]["usage"] == [
        {"metricGroup": {"propertyValue": v}, "usage": [{"quantity": q}]}
        for v, q in (("eu", "65.00"), ("us", "30.00"), (None, "7.00"))]
    assert body["data"]["subscription"]["ungrouped"] == [{"metricGroup": None, "usage": [{"quantity": "102.00"}]}]

    usage_query = """query($id: ID!, $g: String, $m: String, $s: String) {
        subscriptionUsage(id: $id, groupBy: $g, billableMetricId: $m, secondDimensionKey: $s,
                          timeframeStart: "2024-01-01T00:00:00Z") { viewMode } }"""
    for variables, field in [({"g": "region"}, "billable_metric_id"), ({"g": "region", "m": "nope"},
                                                                       "billable_metric_id"),
                             ({"g": "a.b", "m": world["tokens"]}, "group_by"),
                             ({"g": "region", "m": world["tokens"], "s": "user"}, "second_dimension_key")]:
        refused = await graph(usage_query, {"id": world["sub"], **variables})
        assert refused["errors"][0]["extensions"]["field"] == field, (variables, refused)
    # A non-string groupBy is the graph's own type error, naming the variable that carried it.
    refused = await graph(usage_query, {"id": world["sub"], "g": 5, "m": world["tokens"]})
    assert refused["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED", refused
    assert "'$g'" in refused["errors"][0]["message"] and "String" in refused["errors"][0]["message"]

    async def rpc(params):
        response = await client.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "subscriptions.usage",
                                                "params": params}, headers={"X-Api-Key": tenant.key})
        return await response.json()

    window = {"id": world["sub"], "timeframe_start": "2024-01-01T00:00:00Z", "timeframe_end": "2024-01-06T00:00:00Z"}
    grouped = await rpc({**window, "group_by": "region", "billable_metric_id": world["calls"]})
    assert _groups(grouped["result"]) == [("eu", ["3.00"]), ("us", ["1.00"]), (None, ["1.00"])]
    assert grouped["result"][0]["metric_group"] == {"property_key": "region", "property_value": "eu"}
    ungrouped = await rpc(window)
    assert [sorted(e) for e in ungrouped["result"]] == [["billable_metric", "usage", "view_mode"]] * 2
    for params, field in [({"group_by": "region"}, "billable_metric_id"),
                          ({"group_by": 5, "billable_metric_id": world["calls"]}, "group_by"),
                          ({"group_by": "region", "billable_metric_id": "nope"}, "billable_metric_id"),
                          ({"group_by": "region", "billable_metric_id": world["calls"], "second_dimension_key": "x"},
                           "second_dimension_key")]:
        refused = await rpc({**window, **params})
        assert refused["error"]["data"]["field"] == field, (params, refused)
