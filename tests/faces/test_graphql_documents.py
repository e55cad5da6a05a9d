"""`/graphql` answers known query documents from their compiled form: the same JSON Strawberry's executor
gives, every error still shaped by Strawberry, and documents the compiler does not take left to it."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.faces.compiled import CompiledOperation
from gateway.graphql import view
from tests.faces.test_compiled import seeded  # noqa: F401 (fixture)

CUSTOMER_FIELDS = """id externalCustomerId name email currency timezone balance paymentProvider autoCollection
  exemptFromAutomatedTax emailDelivery additionalEmails status creditLimit notes createdAt updatedAt metadata
  billingAddress { city country line1 } taxId { country type value } customFields
  accountingSyncConfiguration { excluded accountingProviders { providerType externalProviderId } }
  parent { id name } children { id name parent { id } } hierarchy { parent { id } children { id } }"""

COMPILED = [
    ("query One($id: ID!) { customer(id: $id) { " + CUSTOMER_FIELDS + " } }", {"id": "parent"}),
    ("query($id: ID!) { c: customer(id: $id) { __typename id children { id __typename } } }", {"id": "parent"}),
    ("query($e: String!) { customerByExternalId(externalCustomerId: $e) { id name } }", {"e": "parent-1"}),
    ("{ customers(first: 10) { nodes { " + CUSTOMER_FIELDS + " } pageInfo { hasNextPage endCursor } } }", None),
    ("query($n: Int) { customers(first: $n) { nodes { id parent { id } } } }", {"n": 1}),
    ("query($id: ID!) { plan(id: $id) { id name currency netTerms prices { id modelType cadence item { id name } } } }",
     {"id": "plan"}),
    ("{ items(first: 5) { nodes { id name createdAt } } }", None),
    ("query($id: ID!) { metric(id: $id) { id name sql item { id } } }", {"id": "metric"}),
]

NOT_COMPILED = [
    # Mutations, fragments, several root fields, variables below the root, introspection.
    "mutation($id: ID!) { updateCustomer(id: $id, input: {notes: \"x\"}) { id notes } }",
    "query($id: ID!) { customer(id: $id) { ...F } } fragment F on Customer { id name }",
    "query($id: ID!) { customer(id: $id) { id } items(first: 1) { nodes { id } } }",
    "query($id: ID!, $k: [String!]) { customer(id: $id) { id customFields(keys: $k) } }",
    "{ __typename }",
]


def _resolve(variables: dict[str, Any] | None, names: dict[str, Any]) -> dict[str, Any] | None:
    if variables is None:
        return None
    return {name: names[value] if isinstance(value, str) and value in names else value
            for name, value in variables.items()}


@pytest.fixture
def executions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the documents the compiled path executed."""
    ran: list[str] = []
    original = CompiledOperation.execute

    async def spy(self: CompiledOperation, context: Any, variables: dict[str, Any]) -> Any:
        ran.append(self.root_node.name.value)
        return await original(self, context, variables)

    monkeypatch.setattr(CompiledOperation, "execute", spy)
    return ran


async def _both(client, tenant, query: str, variables: dict[str, Any] | None, monkeypatch) -> tuple[Any, Any]:
    """The response of the compiled path, then Strawberry's for the same request."""
    payload = {"query": query, "variables": variables}
    compiled = await client.post("/graphql", json=payload, headers=tenant.bearer)
    with monkeypatch.context() as patch:
        patch.setattr(view.DOCUMENTS, "lookup", lambda *_: None)
        executed = await client.post("/graphql", json=payload, headers=tenant.bearer)
    assert compiled.status == executed.status
    return await compiled.json(), await executed.json()


@pytest.mark.parametrize(("query", "variables"), COMPILED, ids=[q[:40] for q, _ in COMPILED])
async def test_compiled_documents_answer_as_strawberry_does(client, tenant, seeded, executions, monkeypatch,  # noqa: F811
                                                            query, variables):
    ours, theirs = await _both(client, tenant, query, _resolve(variables, seeded), monkeypatch)
    assert executions, "the document was not compiled"
    assert "errors" not in ours
    assert ours == theirs


@pytest.mark.parametrize("query", NOT_COMPILED, ids=[q[:40] for q in NOT_COMPILED])
async def test_other_documents_go_to_strawberry(client, tenant, seeded, executions, monkeypatch, query):  # noqa: F811
    ours, theirs = await _both(client, tenant, query, {"id": seeded["child"], "k": ["a"]}, monkeypatch)
    assert executions == []
    assert ours == theirs


@pytest.mark.parametrize("variables", [
    {"id": "01m0000000000000000000000"},  # the compiled path fails (not found): Strawberry answers
    {"id": 12},  # an Int for ID! is coerced by graphql-core, not by the shortcut
    {},  # a required variable missing
    {"id": None},
])
async def test_errors_are_strawberry_s(client, tenant, seeded, monkeypatch, variables):  # noqa: F811
    query = "query($id: ID!) { customer(id: $id) { id name } }"
    ours, theirs = await _both(client, tenant, query, variables, monkeypatch)
    assert ours == theirs
    assert ours["data"] is None and ours["errors"][0]["extensions"]["code"]


async def test_another_tenant_s_id_is_unknown_on_the_compiled_path(client, other_tenant, seeded):  # noqa: F811
    response = await client.post("/graphql", headers=other_tenant.bearer, json={
        "query": "query($id: ID!) { customer(id: $id) { id } }", "variables": {"id": seeded["parent"]}})
    body = await response.json()
    assert body["data"] is None and body["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_operation_name_must_match(client, tenant, seeded, executions):  # noqa: F811
    query = "query Named($id: ID!) { customer(id: $id) { id } }"
    response = await client.post("/graphql", headers=tenant.bearer, json={
        "query": query, "variables": {"id": seeded["child"]}, "operationName": "Other"})
    assert executions == [] and response.status == 400  # Strawberry: unknown operation name
    assert response.content_type == "application/json"
    assert (await response.json())["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    response = await client.post("/graphql", headers=tenant.bearer, json={
        "query": query, "variables": {"id": seeded["child"]}, "operationName": "Named"})
    assert (await response.json()) == {"data": {"customer": {"id": seeded["child"]}}}
    assert executions == ["customer"]


async def test_the_depth_limit_holds_on_the_compiled_path(client, tenant, seeded, executions):  # noqa: F811
    deep = "id " + "parent { " * 14 + "id" + " }" * 14
    response = await client.post("/graphql", headers=tenant.bearer, json={
        "query": "query($id: ID!) { customer(id: $id) { " + deep + " } }", "variables": {"id": seeded["child"]}})
    body = await response.json()
    assert executions == [] and body["data"] is None and "depth" in body["errors"][0]["message"]


async def test_what_strawberry_refuses_before_executing_answers_in_the_graph_s_json_shape(client, tenant):
    for body, reason in ((b"{not json", "JSON"), (b'{"variables": {}}', "query")):
        response = await client.post("/graphql", headers={**tenant.bearer, "Content-Type": "application/json"},
                                     data=body)
        assert response.status == 400 and response.content_type == "application/json"
        answer = await response.json()
        assert answer["data"] is None and answer["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
        assert reason in answer["errors"][0]["message"]
