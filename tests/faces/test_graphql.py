"""`/graphql`: typed errors as `extensions.code`/`.field`, a failed mutation writes nothing, the depth
limit, GraphiQL for browsers, and authentication for everything else."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from gateway.graphql.schema import MAX_DEPTH

UNKNOWN_ID = "01m0000000000000000000000"

CREATE = "mutation($i: CustomerInput!) { createCustomer(input: $i) { id name email externalCustomerId } }"
UPDATE = "mutation($id: ID!, $i: CustomerInput!) { updateCustomer(id: $id, input: $i) { id name notes } }"
LIST = "{ customers(first: 100) { totalCount nodes { id name notes creditLimit } } }"


def _input(**extra: Any) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    return {"name": f"Graph Co {suffix}", "email": f"gql+{suffix}@example.com", **extra}


async def _post(client, tenant, query: str, variables: dict[str, Any] | None = None):
    return await client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=tenant.bearer)


async def _gql(client, tenant, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await _post(client, tenant, query, variables)
    assert response.content_type == "application/json"
    return await response.json()


async def _create(client, tenant, **extra: Any) -> dict[str, Any]:
    body = await _gql(client, tenant, CREATE, {"i": _input(**extra)})
    assert not body.get("errors"), body
    return body["data"]["createCustomer"]


async def _listed(client, tenant) -> dict[str, Any]:
    body = await _gql(client, tenant, LIST)
    assert not body.get("errors"), body
    return body["data"]["customers"]


# --- typed errors -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"currency": "ZZZ"}, "currency"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"billingAddress": {"country": "France"}}, "billing_address.country"),
        ({"metadata": {"k": 1}}, "metadata.k"),
        ({"customFields": {"tier": "gold"}}, "custom_fields.tier"),
    ],
)
async def test_validation_errors_carry_code_and_field(client, tenant, extra, field):
    body = await _gql(client, tenant, CREATE, {"i": _input(**extra)})
    assert body["data"] is None
    assert len(body["errors"]) == 1
    error = body["errors"][0]
    assert error["extensions"] == {"code": "VALIDATION_FAILED", "field": field}
    assert error["path"] == ["createCustomer"]
    assert error["message"]
    assert (await _listed(client, tenant))["nodes"] == []


async def test_not_found_carries_its_code(client, tenant, other_tenant):
    theirs = await _create(client, other_tenant)
    for customer_id in (UNKNOWN_ID, theirs["id"]):
        body = await _gql(client, tenant, "query($id: ID!) { customer(id: $id) { id name } }", {"id": customer_id})
        assert body["data"] is None
        error = body["errors"][0]
        assert error["extensions"]["code"] == "NOT_FOUND"
        assert error["path"] == ["customer"]
        assert customer_id in error["message"]


async def test_duplicate_and_constraint_errors_carry_code_and_field(client, tenant):
    parent = await _create(client, tenant, externalCustomerId="gql-dup")
    duplicate = await _gql(client, tenant, CREATE, {"i": _input(externalCustomerId="gql-dup")})
    assert duplicate["errors"][0]["extensions"] == {"code": "DUPLICATE_RESOURCE", "field": "external_customer_id"}

    child = await _create(client, tenant, hierarchy={"parentCustomerId": parent["id"]})
    grandchild = await _gql(client, tenant, CREATE, {"i": _input(hierarchy={"parentCustomerId": child["id"]})})
    assert grandchild["errors"][0]["extensions"] == {"code": "CONSTRAINT_VIOLATION",
                                                     "field": "hierarchy.parent_customer_id"}
    assert (await _listed(client, tenant))["totalCount"] == 2


async def test_argument_errors_name_the_graphs_argument(client, tenant):
    body = await _gql(client, tenant, "{ customers(first: 0) { nodes { id } } }")
    assert body["errors"][0]["extensions"] == {"code": "VALIDATION_FAILED", "field": "first"}
    body = await _gql(client, tenant, '{ customers(after: "bm90LWEtY3Vyc29y") { nodes { id } } }')
    assert body["errors"][0]["extensions"] == {"code": "VALIDATION_FAILED", "field": "after"}


async def test_documents_that_do_not_validate_have_a_code(client, tenant):
    body = await _gql(client, tenant, "{ customers { nodes { id nickname } } }")
    assert body["data"] is None
    assert body["errors"][0]["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}
    assert "nickname" in body["errors"][0]["message"]


async def test_documents_that_do_not_parse_have_a_code(client, tenant):
    body = await _gql(client, tenant, "{ customers { nodes { id ")
    assert body["data"] is None
    assert body["errors"][0]["message"].startswith("Syntax Error")
    assert body["errors"][0].get("extensions") == {"code": "GRAPHQL_VALIDATION_FAILED"}


async def test_variable_of_the_wrong_type_is_refused_with_a_code(client, tenant):
    body = await _gql(client, tenant, CREATE, {"i": _input(name=5)})
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert (await _listed(client, tenant))["nodes"] == []


# --- a failed mutation writes nothing -----------------------------------------------------------

async def test_mutation_document_is_all_or_nothing(client, tenant):
    kept, lost = _input(), _input()
    body = await _gql(client, tenant, """
      mutation($a: CustomerInput!, $b: CustomerInput!) {
        first: createCustomer(input: $a) { id }
        second: createCustomer(input: $b) { id }
      }""", {"a": kept, "b": {**lost, "email": "nope"}})
    assert body["errors"][0]["extensions"] == {"code": "VALIDATION_FAILED", "field": "email"}
    assert body["errors"][0]["path"] == ["second"]
    # The first field ran, but the operation failed: its customer was rolled back with it.
    assert (await _listed(client, tenant)) == {"totalCount": 0, "nodes": []}


async def test_update_then_failing_field_rolls_back_the_update(client, tenant):
    created = await _create(client, tenant)
    body = await _gql(client, tenant, """
      mutation($id: ID!) {
        renamed: updateCustomer(id: $id, input: {name: "Renamed", notes: "noted", creditLimit: "99.90"}) { id name }
        missing: updateCustomer(id: "01m0000000000000000000000", input: {name: "x"}) { id }
      }""", {"id": created["id"]})
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert (await _listed(client, tenant))["nodes"] == [
        {"id": created["id"], "name": created["name"], "notes": None, "creditLimit": None}]


async def test_one_bad_field_in_an_update_changes_nothing(client, tenant):
    created = await _create(client, tenant)
    body = await _gql(client, tenant, UPDATE, {"id": created["id"],
                                               "i": {"name": "Renamed", "notes": "n", "email": "bad"}})
    assert body["errors"][0]["extensions"] == {"code": "VALIDATION_FAILED", "field": "email"}
    assert (await _listed(client, tenant))["nodes"] == [
        {"id": created["id"], "name": created["name"], "notes": None, "creditLimit": None}]


async def test_successful_mutation_document_commits_every_field(client, tenant):
    first, second = _input(), _input()
    body = await _gql(client, tenant, """
      mutation($a: CustomerInput!, $b: CustomerInput!) {
        first: createCustomer(input: $a) { id name }
        second: createCustomer(input: $b) { id name }
      }""", {"a": first, "b": second})
    assert "errors" not in body
    assert (await _listed(client, tenant))["totalCount"] == 2
    names = {c["name"] for c in (await _listed(client, tenant))["nodes"]}
    assert names == {first["name"], second["name"]}


# --- depth limit --------------------------------------------------------------------------------

def _nested_parents(levels: int) -> str:
    selection = "id"
    for _ in range(levels):
        selection = f"id parent {{ {selection} }}"
    return "query Deep($id: ID!) { customer(id: $id) { " + selection + " } }"


async def test_query_within_the_depth_limit_runs(client, tenant):
    parent = await _create(client, tenant)
    child = await _create(client, tenant, hierarchy={"parentCustomerId": parent["id"]})
    body = await _gql(client, tenant, _nested_parents(MAX_DEPTH - 1), {"id": child["id"]})
    assert "errors" not in body, body
    assert body["data"]["customer"]["id"] == child["id"]
    assert body["data"]["customer"]["parent"]["id"] == parent["id"]
    assert body["data"]["customer"]["parent"]["parent"] is None


@pytest.mark.parametrize("levels", [MAX_DEPTH, MAX_DEPTH + 8])
async def test_query_beyond_the_depth_limit_is_refused(client, tenant, levels):
    created = await _create(client, tenant)
    body = await _gql(client, tenant, _nested_parents(levels), {"id": created["id"]})
    assert body.get("data") is None
    assert body["errors"]
    for error in body["errors"]:
        assert error["message"] == f"'Deep' exceeds maximum operation depth of {MAX_DEPTH}"
        assert error["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}


async def test_depth_limit_sees_through_fragments(client, tenant):
    created = await _create(client, tenant)
    fragments = "fragment F0 on Customer { id }\n" + "\n".join(
        f"fragment F{i} on Customer {{ id parent {{ ...F{i - 1} }} }}" for i in range(1, MAX_DEPTH + 3))
    query = f"query($id: ID!) {{ customer(id: $id) {{ ...F{MAX_DEPTH + 2} }} }}\n{fragments}"
    body = await _gql(client, tenant, query, {"id": created["id"]})
    assert body.get("data") is None
    assert "exceeds maximum operation depth" in body["errors"][0]["message"]


# --- GraphiQL and authentication ----------------------------------------------------------------

async def test_graphiql_is_served_to_browsers_without_a_key(client):
    response = await client.get("/graphql", headers={"Accept": "text/html,application/xhtml+xml"})
    assert response.status == 200
    assert response.content_type == "text/html"
    page = await response.text()
    assert "<html" in page.lower()
    assert "graphiql" in page.lower()


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer one_pk_wrong"}, {"X-Api-Key": "nope"}],
                         ids=["missing", "wrong", "malformed"])
async def test_post_without_a_valid_key_is_401(client, tenant, headers):
    response = await client.post("/graphql", json={"query": CREATE, "variables": {"i": _input()}}, headers=headers)
    assert response.status == 401
    body = await response.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert body["errors"][0]["message"]
    assert (await _listed(client, tenant))["nodes"] == []


async def test_get_query_without_a_key_is_401(client):
    response = await client.get("/graphql", params={"query": "{ customers { nodes { id } } }"},
                                headers={"Accept": "application/json"})
    assert response.status == 401
    assert (await response.json())["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_get_runs_queries_but_never_mutations(client, tenant):
    created = await _create(client, tenant)
    response = await client.get("/graphql", params={"query": "{ customers { totalCount } }"},
                                headers={**tenant.bearer, "Accept": "application/json"})
    assert response.status == 200
    assert (await response.json())["data"] == {"customers": {"totalCount": 1}}

    mutation = 'mutation($id: ID!) { deleteCustomer(id: $id) { id deleted } }'
    variables = json.dumps({"id": created["id"]})
    response = await client.get("/graphql", params={"query": mutation, "variables": variables},
                                headers={**tenant.bearer, "Accept": "application/json"})
    assert response.status in (400, 405)
    assert (await _listed(client, tenant))["totalCount"] == 1


@pytest.mark.parametrize("body", [b'{"query": "{ customers { totalCount } }", "variables": {"a": NaN}}',
                                  b'{"query": "\\ud800"}', b"\xff\xfe"])
async def test_malformed_json_bodies_are_400_not_500(client, tenant, body):
    response = await client.post("/graphql", data=body, headers={**tenant.bearer, "Content-Type": "application/json"})
    assert response.status == 400
