"""Billable metrics on every face: SQL checked at creation, the item edge batched, tenants apart."""

from __future__ import annotations

import pytest

SQL = "SELECT SUM(tokens) FROM events WHERE event_name = 'llm' AND region = 'eu'"


async def _item(client, key: str, name: str = "LLM tokens") -> str:
    response = await client.post("/v1/items", json={"name": name}, headers={"Authorization": f"Bearer {key}"})
    return (await response.json())["id"]


async def _rpc(client, key: str, method: str, params: dict) -> dict:
    response = await client.post("/", json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
                                 headers={"X-Api-Key": key})
    return await response.json()


async def test_metric_created_on_orb_reads_the_same_everywhere(client, tenant):
    headers = {"Authorization": f"Bearer {tenant.key}"}
    item_id = await _item(client, tenant.key)
    response = await client.post("/v1/metrics", json={"name": "Tokens", "description": "EU tokens", "sql": SQL,
                                                      "item_id": item_id, "metadata": {"team": "ml"}}, headers=headers)
    assert response.status == 201
    metric = await response.json()
    assert {k: metric[k] for k in ("name", "description", "sql", "status", "metadata")} == {
        "name": "Tokens", "description": "EU tokens", "sql": SQL, "status": "active", "metadata": {"team": "ml"}}
    assert metric["item"]["id"] == item_id and metric["item"]["name"] == "LLM tokens"
    assert await (await client.get(f"/v1/metrics/{metric['id']}", headers=headers)).json() == metric
    assert (await _rpc(client, tenant.key, "metrics.get", {"id": metric["id"]}))["result"] == metric
    listed = await (await client.get("/v1/metrics", headers=headers)).json()
    assert listed == {"data": [metric], "pagination_metadata": {"has_more": False, "next_cursor": None}}


@pytest.mark.parametrize(("sql", "mentions"), [
    ("SELECT SUM(x) FROM customers", "events table"),
    ("SELECT pg_sleep(5) FROM events", "pg_sleep"),
    ("SELECT SUM(x) FROM events; DROP TABLE events", "exactly one"),
    ("SELECT SUM(x) FROM events WHERE y IN (SELECT org_id FROM api_keys)", "subquery"),
])
async def test_bad_sql_is_refused_on_every_face_naming_sql(client, tenant, sql, mentions):
    item_id = await _item(client, tenant.key)
    response = await client.post("/v1/metrics", json={"name": "m", "sql": sql, "item_id": item_id},
                                 headers={"Authorization": f"Bearer {tenant.key}"})
    body = await response.json()
    assert response.status == 400
    assert body["type"].endswith("#400-request-validation-errors")
    assert body["validation_errors"][0]["field"] == "sql" and mentions in body["detail"]
    rpc = await _rpc(client, tenant.key, "metrics.create", {"name": "m", "sql": sql, "item_id": item_id})
    assert rpc["error"]["code"] == -32602 and rpc["error"]["data"]["field"] == "sql"
    graphql = await (await client.post("/graphql", json={
        "query": "mutation($i: BillableMetricInput!) { createMetric(input: $i) { id } }",
        "variables": {"i": {"name": "m", "sql": sql, "itemId": item_id}}},
        headers={"Authorization": f"Bearer {tenant.key}"})).json()
    assert graphql["errors"][0]["extensions"] == {"code": "VALIDATION_FAILED", "field": "sql"}
    listed = await (await client.get("/v1/metrics", headers={"Authorization": f"Bearer {tenant.key}"})).json()
    assert listed["data"] == []


async def test_another_organisations_item_is_refused_like_an_unknown_one(client, tenant, other_tenant):
    theirs = await _item(client, other_tenant.key)
    for item_id in (theirs, "01m0000000000000000000000"):
        response = await client.post("/v1/metrics", json={"name": "m", "sql": SQL, "item_id": item_id},
                                     headers={"Authorization": f"Bearer {tenant.key}"})
        body = await response.json()
        assert response.status == 400 and body["validation_errors"][0]["field"] == "item_id"
        assert "exists" in body["detail"]


async def test_metrics_item_edges_load_in_one_statement(database, tenant, count_queries):
    from domains.catalog import items
    from domains.metering import metrics
    from domains.unit_of_work import UnitOfWork
    from gateway.context import Context
    from gateway.graphql.schema import schema
    from persistence.db import session_factory

    uow = UnitOfWork(session_factory(database.engine))
    for i in range(12):
        item = await items.create_item(uow, principal=tenant.principal, fields={"name": f"item {i}"})
        await metrics.create_metric(uow, principal=tenant.principal,
                                    fields={"name": f"m{i}", "sql": "SELECT COUNT(*) FROM events", "item_id": item.id})
    await uow.close()
    uow = UnitOfWork(session_factory(database.engine))
    try:
        with count_queries() as counter:
            result = await schema.execute("{ metrics(first: 12) { nodes { name item { name } } } }",
                                          context_value=Context(principal=tenant.principal, uow=uow))
    finally:
        await uow.close()
    assert result.errors is None
    nodes = result.data["metrics"]["nodes"]
    assert [n["item"]["name"] for n in nodes] == [f"item {i}" for i in reversed(range(12))]
    assert counter.count == 2, counter.statements  # the page, then every item at once
