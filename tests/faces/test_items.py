"""Items on every face that serves them: same data, same errors, on both databases."""

from __future__ import annotations

import pytest

from tests.faces.drivers import GRAPHQL_KINDS, ORB_KINDS, RPC_KINDS


async def _graphql(client, key, query, variables):
    response = await client.post("/graphql", json={"query": query, "variables": variables},
                                 headers={"Authorization": f"Bearer {key}"})
    return await response.json()


async def test_item_created_on_orb_reads_the_same_on_graphql_and_rpc(client, tenant):
    headers = {"Authorization": f"Bearer {tenant.key}"}
    response = await client.post("/v1/items", json={"name": "Compute", "metadata": {"unit": "second"}}, headers=headers)
    assert response.status == 201
    created = await response.json()
    assert created["name"] == "Compute" and created["metadata"] == {"unit": "second"}
    assert created["external_connections"] == [] and created["archived_at"] is None
    assert created["created_at"].endswith("Z")

    fetched = await (await client.get(f"/v1/items/{created['id']}", headers=headers)).json()
    assert fetched == created
    rpc = await (await client.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "items.get",
                                              "params": {"id": created["id"]}},
                                   headers={"X-Api-Key": tenant.key})).json()
    assert rpc["result"] == created
    body = await _graphql(client, tenant.key, "query($id: ID!) { item(id: $id) { id name metadata createdAt } }",
                          {"id": created["id"]})
    assert body["data"]["item"] == {"id": created["id"], "name": "Compute", "metadata": {"unit": "second"},
                                    "createdAt": created["created_at"]}


async def test_items_page_newest_first(client, tenant):
    headers = {"Authorization": f"Bearer {tenant.key}"}
    ids = [(await (await client.post("/v1/items", json={"name": f"I{i}"}, headers=headers)).json())["id"]
           for i in range(3)]
    first = await (await client.get("/v1/items", params={"limit": "2"}, headers=headers)).json()
    assert [i["id"] for i in first["data"]] == ids[::-1][:2]
    assert first["pagination_metadata"]["has_more"] is True
    rest = await (await client.get("/v1/items", params={"cursor": first["pagination_metadata"]["next_cursor"]},
                                   headers=headers)).json()
    assert [i["id"] for i in rest["data"]] == ids[:1]
    assert rest["pagination_metadata"] == {"has_more": False, "next_cursor": None}


@pytest.mark.parametrize(("body", "field"), [
    ({}, "name"), ({"name": ""}, "name"), ({"name": "x", "price": 1}, "price"), ({"name": 5}, "name"),
    ({"name": "x", "metadata": {"a": 1}}, "metadata.a"),
])
async def test_bad_items_are_refused_naming_the_field(client, tenant, body, field):
    response = await client.post("/v1/items", json=body, headers={"Authorization": f"Bearer {tenant.key}"})
    payload = await response.json()
    assert response.status == 400
    assert ORB_KINDS["#" + payload["type"].split("#")[1]] == "validation"
    assert payload["validation_errors"][0]["field"] == field
    listed = await (await client.get("/v1/items", headers={"Authorization": f"Bearer {tenant.key}"})).json()
    assert listed["data"] == []


async def test_another_organisations_item_is_not_found_everywhere(client, tenant, other_tenant):
    theirs = await (await client.post("/v1/items", json={"name": "Theirs"},
                                      headers={"Authorization": f"Bearer {other_tenant.key}"})).json()
    orb_response = await client.get(f"/v1/items/{theirs['id']}", headers={"Authorization": f"Bearer {tenant.key}"})
    assert orb_response.status == 404
    rpc = await (await client.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "items.get",
                                              "params": {"id": theirs["id"]}},
                                   headers={"X-Api-Key": tenant.key})).json()
    assert RPC_KINDS[rpc["error"]["code"]] == "not_found"
    body = await _graphql(client, tenant.key, "query($id: ID!) { item(id: $id) { id } }", {"id": theirs["id"]})
    assert GRAPHQL_KINDS[body["errors"][0]["extensions"]["code"]] == "not_found"
