"""Orb's `/v1` beyond parity: the exact error bodies and `type` URIs Orb's SDKs dispatch on, body
validation, the full customer object, metadata and hierarchy rules, external-id routes,
`Idempotency-Key`, and reseller-scoped keys."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import Any

import pytest

from domains.tenancy.service import create_api_key
from tests.conftest import make_tenant

DOCS = "https://docs.withorb.com/reference/error-responses"
ERROR_KEYS = {"status", "type", "title", "detail"}
UNKNOWN_ID = "01m0000000000000000000000"

# The customer object as Orb returns it (orb-endpoint-list.txt).
ORB_CUSTOMER_KEYS = {
    "metadata", "id", "external_customer_id", "name", "email", "timezone", "payment_provider_id", "payment_provider",
    "created_at", "shipping_address", "billing_address", "balance", "currency", "tax_id", "auto_collection",
    "exempt_from_automated_tax", "email_delivery", "additional_emails", "portal_url",
    "accounting_sync_configuration", "reporting_configuration", "hierarchy",
}
# Optional fields of the official SDK's Customer model that a response may also carry.
ORB_OPTIONAL_KEYS = {"auto_issuance", "payment_configuration", "automatic_tax_enabled", "default_payment_method"}
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def _fields(**extra: Any) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    return {"name": f"Orb Co {suffix}", "email": f"orb+{suffix}@example.com", **extra}


async def _create(client, tenant, **extra: Any) -> dict[str, Any]:
    response = await client.post("/v1/customers", json=_fields(**extra), headers=tenant.bearer)
    assert response.status == 201, await response.text()
    return await response.json()


async def _get(client, tenant, customer_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/customers/{customer_id}", headers=tenant.bearer)
    assert response.status == 200, await response.text()
    return await response.json()


async def _ids(client, tenant, key: str | None = None) -> list[str]:
    headers = {"Authorization": f"Bearer {key}"} if key else tenant.bearer
    response = await client.get("/v1/customers", params={"limit": "100"}, headers=headers)
    assert response.status == 200
    return [c["id"] for c in (await response.json())["data"]]


async def _error(response, status: int, fragment: str) -> dict[str, Any]:
    """The body of an Orb error, checked for its exact shape."""
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body = await response.json()
    expected = ERROR_KEYS | ({"validation_errors"} if status == 400 else set())
    assert set(body) == expected, body
    assert body["status"] == status
    assert body["type"] == f"{DOCS}#{fragment}"
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    if status == 400:
        assert isinstance(body["validation_errors"], list) and body["validation_errors"]
    return body


def _field_of(body: dict[str, Any]) -> str:
    return body["validation_errors"][0]["field"]


# --- error bodies -------------------------------------------------------------------------------

async def test_not_found_body(client, tenant):
    body = await _error(await client.get(f"/v1/customers/{UNKNOWN_ID}", headers=tenant.bearer),
                        404, "404-resource-not-found")
    assert body["title"] == "Resource not found"
    assert UNKNOWN_ID in body["detail"]


async def test_validation_error_body(client, tenant):
    response = await client.post("/v1/customers", json={"name": "No Email"}, headers=tenant.bearer)
    body = await _error(response, 400, "400-request-validation-errors")
    assert body["validation_errors"] == [{"field": "email", "message": "is required"}]


async def test_duplicate_resource_body(client, tenant):
    await _create(client, tenant, external_customer_id="orb-dup")
    response = await client.post("/v1/customers", json=_fields(external_customer_id="orb-dup"), headers=tenant.bearer)
    body = await _error(response, 400, "400-duplicate-resource-creation")
    assert "orb-dup" in body["detail"]
    assert _field_of(body) == "external_customer_id"
    assert len(await _ids(client, tenant)) == 1


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer one_pk_wrong"}, {"Authorization": "Bearer "}, {"Authorization": "Token abc"}],
    ids=["missing", "wrong", "empty", "not-bearer"],
)
async def test_authentication_error_body(client, tenant, headers):
    for method, path, payload in [("GET", "/v1/customers", None), ("POST", "/v1/customers", _fields()),
                                  ("DELETE", f"/v1/customers/{UNKNOWN_ID}", None)]:
        response = await client.request(method, path, json=payload, headers=headers)
        await _error(response, 401, "401-authentication-error")
    assert await _ids(client, tenant) == []


async def test_unknown_url_body(client, tenant):
    body = await _error(await client.get("/v1/nope", headers=tenant.bearer), 404, "404-url-not-found")
    assert "/v1/nope" in body["detail"]
    await _error(await client.get("/v1/customers/a/b/c", headers=tenant.bearer), 404, "404-url-not-found")


async def test_request_too_large_body(client, tenant):
    huge = _fields(metadata={"blob": "x" * (300 * 1024)})
    response = await client.post("/v1/customers", json=huge, headers=tenant.bearer)
    await _error(response, 413, "413-request-too-large")
    assert await _ids(client, tenant) == []


async def test_body_just_under_the_limit_is_accepted(client, tenant):
    created = await _create(client, tenant, metadata={"blob": "y" * (200 * 1024)})
    assert len(created["metadata"]["blob"]) == 200 * 1024


# --- body validation ----------------------------------------------------------------------------

async def test_malformed_json_names_body(client, tenant):
    response = await client.post("/v1/customers", data=b'{"name": "Acme", "email": ',
                                 headers={**tenant.bearer, "Content-Type": "application/json"})
    body = await _error(response, 400, "400-request-validation-errors")
    assert _field_of(body) == "body"
    assert await _ids(client, tenant) == []


async def test_body_that_is_not_an_object_names_body(client, tenant):
    response = await client.post("/v1/customers", json=["Acme", "a@b.example.com"], headers=tenant.bearer)
    body = await _error(response, 400, "400-request-validation-errors")
    assert _field_of(body) == "body"


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"name": 5}, "name"),
        ({"auto_collection": "yes"}, "auto_collection"),
        ({"additional_emails": "x"}, "additional_emails"),
        ({"additional_emails": ["ok@example.com", "nope"]}, "additional_emails[1]"),
        ({"email_delivery": 1}, "email_delivery"),
        ({"metadata": "x"}, "metadata"),
        ({"billing_address": "x"}, "billing_address"),
        ({"billing_address": {"street": "1 Main St"}}, "billing_address.street"),
        ({"currency": 5}, "currency"),
        ({"payment_provider": "paypal"}, "payment_provider"),
        ({"tax_id": {"country": "FR", "type": "eu_vat"}}, "tax_id.value"),
        ({"hierarchy": {"parent_customer_id": UNKNOWN_ID}}, "hierarchy.parent_customer_id"),
    ],
)
async def test_wrong_types_name_the_field_and_create_nothing(client, tenant, extra, field):
    response = await client.post("/v1/customers", json={**_fields(), **extra}, headers=tenant.bearer)
    body = await _error(response, 400, "400-request-validation-errors")
    assert _field_of(body) == field
    assert await _ids(client, tenant) == []


async def test_unknown_body_field_is_refused(client, tenant):
    response = await client.post("/v1/customers", json=_fields(nickname="Bob"), headers=tenant.bearer)
    body = await _error(response, 400, "400-request-validation-errors")
    assert _field_of(body) == "nickname"
    assert "nickname" in body["detail"]
    assert await _ids(client, tenant) == []


async def test_wrong_types_on_update_change_nothing(client, tenant):
    created = await _create(client, tenant)
    for payload, field in [({"name": "Renamed", "auto_collection": "yes"}, "auto_collection"),
                           ({"name": "Renamed", "nickname": "Bob"}, "nickname")]:
        response = await client.put(f"/v1/customers/{created['id']}", json=payload, headers=tenant.bearer)
        assert _field_of(await _error(response, 400, "400-request-validation-errors")) == field
    assert await _get(client, tenant, created["id"]) == created


# --- the customer object ------------------------------------------------------------------------

async def test_minimal_customer_has_every_orb_field(client, tenant):
    created = await _create(client, tenant)
    assert ORB_CUSTOMER_KEYS <= set(created), ORB_CUSTOMER_KEYS - set(created)
    assert set(created) - ORB_CUSTOMER_KEYS <= ORB_OPTIONAL_KEYS, set(created) - ORB_CUSTOMER_KEYS
    assert ISO_UTC.match(created["created_at"]), created["created_at"]
    assert created["balance"] == "0.00"
    assert created["metadata"] == {}
    assert created["external_customer_id"] is None
    assert created["timezone"] == "UTC"
    assert created["currency"] is None
    assert created["payment_provider"] is None and created["payment_provider_id"] is None
    assert created["auto_collection"] is True
    assert created["email_delivery"] is True
    assert created["exempt_from_automated_tax"] is False
    assert created["additional_emails"] == []
    assert created["billing_address"] is None and created["shipping_address"] is None
    assert created["tax_id"] is None
    assert created["portal_url"] is None
    assert created["accounting_sync_configuration"] is None
    assert created["reporting_configuration"] is None
    assert created["hierarchy"] == {"parent": None, "children": []}
    assert isinstance(created["id"], str) and len(created["id"]) >= 20


async def test_full_customer_round_trips_every_field(client, tenant):
    address = {"line1": "1 Rue de Rivoli", "line2": None, "city": "Paris", "state": None,
               "postal_code": "75001", "country": "FR"}
    created = await _create(
        client, tenant,
        external_customer_id="orb-full-1", currency="eur", timezone="Europe/Paris",
        payment_provider="stripe_charge", payment_provider_id="cus_123",
        auto_collection=False, email_delivery=False, additional_emails=["ap@example.com", "cfo@example.com"],
        metadata={"plan": "pro", "region": "eu"},
        billing_address=address, shipping_address={**address, "line1": "2 Quai"},
        tax_id={"country": "FR", "type": "eu_vat", "value": "FR12345678901"},
        accounting_sync_configuration={"excluded": False, "accounting_providers": [
            {"provider_type": "netsuite", "external_provider_id": "ns-1"}]},
        reporting_configuration={"exempt": True},
        tax_configuration={"tax_exempt": True, "tax_provider": "avalara"},
    )
    assert created["external_customer_id"] == "orb-full-1"
    assert created["currency"] == "EUR"
    assert created["timezone"] == "Europe/Paris"
    assert created["payment_provider"] == "stripe_charge"
    assert created["payment_provider_id"] == "cus_123"
    assert created["auto_collection"] is False
    assert created["email_delivery"] is False
    assert created["additional_emails"] == ["ap@example.com", "cfo@example.com"]
    assert created["metadata"] == {"plan": "pro", "region": "eu"}
    assert created["billing_address"] == address
    assert created["shipping_address"] == {**address, "line1": "2 Quai"}
    assert created["tax_id"] == {"country": "FR", "type": "eu_vat", "value": "FR12345678901"}
    assert created["accounting_sync_configuration"] == {
        "excluded": False, "accounting_providers": [{"provider_type": "netsuite", "external_provider_id": "ns-1"}]}
    assert created["reporting_configuration"] == {"exempt": True}
    assert created["exempt_from_automated_tax"] is True
    assert created["balance"] == "0.00"
    assert await _get(client, tenant, created["id"]) == created
    listed = await (await client.get("/v1/customers", headers=tenant.bearer)).json()
    assert listed["data"] == [created]
    assert listed["pagination_metadata"] == {"has_more": False, "next_cursor": None}


# --- metadata -----------------------------------------------------------------------------------

async def test_metadata_merges_on_put(client, tenant):
    created = await _create(client, tenant, metadata={"a": "1", "b": "2"})
    path = f"/v1/customers/{created['id']}"
    merged = await (await client.put(path, json={"metadata": {"a": None, "c": "3"}}, headers=tenant.bearer)).json()
    assert merged["metadata"] == {"b": "2", "c": "3"}
    renamed = await (await client.put(path, json={"name": "Renamed"}, headers=tenant.bearer)).json()
    assert renamed["metadata"] == {"b": "2", "c": "3"}
    overwritten = await (await client.put(path, json={"metadata": {"b": "20"}}, headers=tenant.bearer)).json()
    assert overwritten["metadata"] == {"b": "20", "c": "3"}
    unchanged = await (await client.put(path, json={"metadata": {}}, headers=tenant.bearer)).json()
    assert unchanged["metadata"] == {"b": "20", "c": "3"}
    assert (await _get(client, tenant, created["id"]))["metadata"] == {"b": "20", "c": "3"}


async def test_metadata_null_clears_the_whole_mapping(client, tenant):
    # Orb: "the entire metadata mapping can be cleared by setting `metadata` to `null`".
    created = await _create(client, tenant, metadata={"a": "1", "b": "2"})
    response = await client.put(f"/v1/customers/{created['id']}", json={"metadata": None}, headers=tenant.bearer)
    assert response.status == 200
    assert (await response.json())["metadata"] == {}
    assert (await _get(client, tenant, created["id"]))["metadata"] == {}


async def test_metadata_values_must_be_strings(client, tenant):
    created = await _create(client, tenant, metadata={"a": "1"})
    response = await client.put(f"/v1/customers/{created['id']}", json={"metadata": {"n": 5}}, headers=tenant.bearer)
    assert _field_of(await _error(response, 400, "400-request-validation-errors")) == "metadata.n"
    assert (await _get(client, tenant, created["id"]))["metadata"] == {"a": "1"}


# --- hierarchy ----------------------------------------------------------------------------------

async def test_hierarchy_rules(client, tenant):
    parent = await _create(client, tenant, external_customer_id="orb-parent")
    child = await _create(client, tenant, external_customer_id="orb-child",
                          hierarchy={"parent_customer_id": parent["id"]})
    assert child["hierarchy"] == {"parent": {"id": parent["id"], "external_customer_id": "orb-parent"},
                                  "children": []}
    assert (await _get(client, tenant, parent["id"]))["hierarchy"] == {
        "parent": None, "children": [{"id": child["id"], "external_customer_id": "orb-child"}]}

    # One level deep: a child of a child is refused, and nothing is created.
    response = await client.post("/v1/customers", json=_fields(hierarchy={"parent_customer_id": child["id"]}),
                                 headers=tenant.bearer)
    body = await _error(response, 400, "400-constraint-violation")
    assert _field_of(body) == "hierarchy.parent_customer_id"
    assert len(await _ids(client, tenant)) == 2

    # A customer with children cannot become a child.
    other = await _create(client, tenant)
    response = await client.put(f"/v1/customers/{parent['id']}",
                                json={"hierarchy": {"parent_customer_id": other["id"]}}, headers=tenant.bearer)
    await _error(response, 400, "400-constraint-violation")
    assert (await _get(client, tenant, parent["id"]))["hierarchy"]["parent"] is None

    # Nor its own parent.
    response = await client.put(f"/v1/customers/{other['id']}",
                                json={"hierarchy": {"parent_customer_id": other["id"]}}, headers=tenant.bearer)
    await _error(response, 400, "400-constraint-violation")


async def test_children_given_on_the_parent(client, tenant):
    first = await _create(client, tenant)
    second = await _create(client, tenant)
    parent = await _create(client, tenant, hierarchy={"child_customer_ids": [first["id"], second["id"]]})
    assert [c["id"] for c in parent["hierarchy"]["children"]] == [first["id"], second["id"]]
    assert (await _get(client, tenant, first["id"]))["hierarchy"]["parent"]["id"] == parent["id"]
    # A child cannot adopt children of its own.
    response = await client.put(f"/v1/customers/{first['id']}",
                                json={"hierarchy": {"child_customer_ids": [second["id"]]}}, headers=tenant.bearer)
    await _error(response, 400, "400-constraint-violation")


async def test_deleting_a_parent_detaches_its_children(client, tenant):
    parent = await _create(client, tenant)
    child = await _create(client, tenant, hierarchy={"parent_customer_id": parent["id"]})
    response = await client.delete(f"/v1/customers/{parent['id']}", headers=tenant.bearer)
    assert response.status == 204
    assert await response.read() == b""
    assert (await _get(client, tenant, child["id"]))["hierarchy"] == {"parent": None, "children": []}
    assert await _ids(client, tenant) == [child["id"]]


async def test_parent_from_another_organisation_is_not_accepted(client, tenant, other_tenant):
    theirs = await _create(client, other_tenant)
    response = await client.post("/v1/customers", json=_fields(hierarchy={"parent_customer_id": theirs["id"]}),
                                 headers=tenant.bearer)
    assert _field_of(await _error(response, 400, "400-request-validation-errors")) == "hierarchy.parent_customer_id"
    assert (await _get(client, other_tenant, theirs["id"]))["hierarchy"]["children"] == []


# --- delete -------------------------------------------------------------------------------------

async def test_delete_returns_204_with_an_empty_body(client, tenant):
    created = await _create(client, tenant)
    response = await client.delete(f"/v1/customers/{created['id']}", headers=tenant.bearer)
    assert response.status == 204
    assert await response.read() == b""
    await _error(await client.get(f"/v1/customers/{created['id']}", headers=tenant.bearer), 404, "404-resource-not-found")
    await _error(await client.delete(f"/v1/customers/{created['id']}", headers=tenant.bearer),
                 404, "404-resource-not-found")


# --- external-id routes -------------------------------------------------------------------------

async def test_external_id_get_and_put(client, tenant, other_tenant):
    created = await _create(client, tenant, external_customer_id="acct/42 é")
    path = "/v1/customers/external_customer_id/acct%2F42%20%C3%A9"
    response = await client.get(path, headers=tenant.bearer)
    assert response.status == 200, await response.text()
    assert await response.json() == created

    response = await client.put(path, json={"name": "Via External", "metadata": {"k": "v"}}, headers=tenant.bearer)
    assert response.status == 200
    updated = await response.json()
    assert updated["id"] == created["id"]
    assert updated["name"] == "Via External"
    assert updated["metadata"] == {"k": "v"}
    assert (await _get(client, tenant, created["id"]))["name"] == "Via External"

    # Renaming the external id moves the route.
    response = await client.put(path, json={"external_customer_id": "acct-43"}, headers=tenant.bearer)
    assert (await response.json())["external_customer_id"] == "acct-43"
    await _error(await client.get(path, headers=tenant.bearer), 404, "404-resource-not-found")
    moved = await client.get("/v1/customers/external_customer_id/acct-43", headers=tenant.bearer)
    assert (await moved.json())["id"] == created["id"]

    # Another organisation's external id is unknown here, for reads and writes.
    await _create(client, other_tenant, external_customer_id="theirs-1")
    for response in (await client.get("/v1/customers/external_customer_id/theirs-1", headers=tenant.bearer),
                     await client.put("/v1/customers/external_customer_id/theirs-1", json={"name": "x"},
                                      headers=tenant.bearer)):
        await _error(response, 404, "404-resource-not-found")


async def test_external_id_put_to_a_taken_id_is_a_duplicate(client, tenant):
    await _create(client, tenant, external_customer_id="ext-a")
    await _create(client, tenant, external_customer_id="ext-b")
    response = await client.put("/v1/customers/external_customer_id/ext-b", json={"external_customer_id": "ext-a"},
                                headers=tenant.bearer)
    await _error(response, 400, "400-duplicate-resource-creation")
    assert (await (await client.get("/v1/customers/external_customer_id/ext-b", headers=tenant.bearer)).json())[
        "external_customer_id"] == "ext-b"


# --- Idempotency-Key ----------------------------------------------------------------------------

def _with_key(tenant, key: str) -> dict[str, str]:
    return {**tenant.bearer, "Idempotency-Key": key}


async def test_same_key_same_body_replays(client, tenant):
    key, fields = f"idem-{uuid.uuid4().hex}", _fields()
    first = await client.post("/v1/customers", json=fields, headers=_with_key(tenant, key))
    assert first.status == 201
    assert "Idempotent-Replayed" not in first.headers
    first_body = await first.read()
    second = await client.post("/v1/customers", json=fields, headers=_with_key(tenant, key))
    assert second.status == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.content_type == "application/json"
    assert await second.read() == first_body
    assert await _ids(client, tenant) == [json.loads(first_body)["id"]]


async def test_same_key_same_json_with_other_whitespace_replays(client, tenant):
    key, fields = f"idem-{uuid.uuid4().hex}", _fields(currency="USD")
    first = await client.post("/v1/customers", data=json.dumps(fields).encode(),
                              headers={**_with_key(tenant, key), "Content-Type": "application/json"})
    assert first.status == 201
    second = await client.post("/v1/customers", data=json.dumps(fields, indent=2).encode(),
                               headers={**_with_key(tenant, key), "Content-Type": "application/json"})
    assert second.status == 201, await second.text()
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert len(await _ids(client, tenant)) == 1


async def test_same_key_same_object_with_members_in_another_order_replays(client, tenant):
    # JSON object members are unordered (RFC 8259): {"name", "email"} and {"email", "name"} are the same request.
    key, fields = f"idem-{uuid.uuid4().hex}", _fields(currency="USD")
    first = await client.post("/v1/customers", json=fields, headers=_with_key(tenant, key))
    assert first.status == 201
    reordered = dict(reversed(list(fields.items())))
    second = await client.post("/v1/customers", json=reordered, headers=_with_key(tenant, key))
    assert second.status == 201, await second.text()
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert (await second.json())["id"] == (await first.json())["id"]
    assert len(await _ids(client, tenant)) == 1


async def test_same_key_different_body_is_a_conflict(client, tenant):
    key = f"idem-{uuid.uuid4().hex}"
    first = await client.post("/v1/customers", json=_fields(), headers=_with_key(tenant, key))
    assert first.status == 201
    response = await client.post("/v1/customers", json=_fields(), headers=_with_key(tenant, key))
    body = await _error(response, 409, "409-resource-conflict")
    assert "Idempotency-Key" in body["detail"]
    assert "Idempotent-Replayed" not in response.headers
    assert await _ids(client, tenant) == [(await first.json())["id"]]


async def test_same_key_in_another_organisation_is_independent(client, tenant, other_tenant):
    key, fields = f"idem-{uuid.uuid4().hex}", _fields()
    mine = await client.post("/v1/customers", json=fields, headers=_with_key(tenant, key))
    theirs = await client.post("/v1/customers", json=fields, headers=_with_key(other_tenant, key))
    assert mine.status == theirs.status == 201
    assert "Idempotent-Replayed" not in theirs.headers
    mine_id, theirs_id = (await mine.json())["id"], (await theirs.json())["id"]
    assert mine_id != theirs_id
    assert await _ids(client, tenant) == [mine_id]
    assert await _ids(client, other_tenant) == [theirs_id]


async def test_concurrent_duplicates_create_exactly_one_customer(client, tenant):
    key, fields = f"idem-{uuid.uuid4().hex}", _fields()
    responses = await asyncio.gather(*(client.post("/v1/customers", json=fields, headers=_with_key(tenant, key))
                                       for _ in range(5)))
    assert [r.status for r in responses] == [201] * 5
    bodies = [await r.json() for r in responses]
    assert len({b["id"] for b in bodies}) == 1
    assert all(b == bodies[0] for b in bodies)
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in responses) == 4
    assert await _ids(client, tenant) == [bodies[0]["id"]]


async def test_failed_request_does_not_consume_the_key(client, tenant):
    key = f"idem-{uuid.uuid4().hex}"
    bad = await client.post("/v1/customers", json={"name": "No Email"}, headers=_with_key(tenant, key))
    await _error(bad, 400, "400-request-validation-errors")
    # The failed operation rolled back with its claim: the same key is free for the corrected request.
    fields = _fields()
    good = await client.post("/v1/customers", json=fields, headers=_with_key(tenant, key))
    assert good.status == 201, await good.text()
    assert "Idempotent-Replayed" not in good.headers
    replay = await client.post("/v1/customers", json=fields, headers=_with_key(tenant, key))
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert (await replay.json())["id"] == (await good.json())["id"]
    assert len(await _ids(client, tenant)) == 1


async def test_failed_request_is_validated_again_not_replayed(client, tenant):
    # A 400 is not stored: the same bad request under the same key is validated again, not replayed.
    key = f"idem-{uuid.uuid4().hex}"
    for _ in range(2):
        response = await client.post("/v1/customers", json=_fields(currency="ZZZ"), headers=_with_key(tenant, key))
        await _error(response, 400, "400-request-validation-errors")
        assert "Idempotent-Replayed" not in response.headers
    assert await _ids(client, tenant) == []


async def test_overlong_idempotency_key_is_refused(client, tenant):
    response = await client.post("/v1/customers", json=_fields(), headers=_with_key(tenant, "k" * 256))
    assert _field_of(await _error(response, 400, "400-request-validation-errors")) == "Idempotency-Key"
    assert await _ids(client, tenant) == []


# --- reseller-scoped keys -----------------------------------------------------------------------

async def test_reseller_key_sees_only_its_customers(client, tenant, uow):
    r1 = await create_api_key(uow, org_id=tenant.org_id, reseller_id="r1")
    r2 = await create_api_key(uow, org_id=tenant.org_id, reseller_id="r2")
    r1_headers = {"Authorization": f"Bearer {r1.secret}"}

    direct = await _create(client, tenant, external_customer_id="direct-1")
    response = await client.post("/v1/customers", json=_fields(external_customer_id="resold-1"), headers=r1_headers)
    assert response.status == 201
    resold = await response.json()

    assert await _ids(client, tenant, r1.secret) == [resold["id"]]
    assert await _ids(client, tenant, r2.secret) == []
    assert await _ids(client, tenant) == [resold["id"], direct["id"]]  # the unscoped key sees all

    for response in (
        await client.get(f"/v1/customers/{direct['id']}", headers=r1_headers),
        await client.put(f"/v1/customers/{direct['id']}", json={"name": "taken"}, headers=r1_headers),
        await client.delete(f"/v1/customers/{direct['id']}", headers=r1_headers),
        await client.get("/v1/customers/external_customer_id/direct-1", headers=r1_headers),
        await client.get(f"/v1/customers/{resold['id']}", headers={"Authorization": f"Bearer {r2.secret}"}),
    ):
        await _error(response, 404, "404-resource-not-found")
    assert (await _get(client, tenant, direct["id"]))["name"] == direct["name"]

    fetched = await client.get(f"/v1/customers/{resold['id']}", headers=r1_headers)
    assert (await fetched.json()) == resold
    assert (await _get(client, tenant, resold["id"])) == resold


async def test_reseller_key_of_another_organisation_sees_nothing_here(client, tenant, database):
    foreign_reseller = await make_tenant(database, reseller_id="r1")
    await _create(client, tenant)
    assert await _ids(client, tenant, foreign_reseller.key) == []


async def test_idempotent_replay_never_shows_another_resellers_customer(client, tenant, uow):
    # Keys are unique per organisation; a replay must still not hand a reseller-scoped key a customer it
    # cannot see (the unscoped key's), whatever the fix: a conflict, or a customer of its own.
    r1 = await create_api_key(uow, org_id=tenant.org_id, reseller_id="r1")
    key, fields = f"idem-{uuid.uuid4().hex}", _fields()
    first = await client.post("/v1/customers", json=fields, headers=_with_key(tenant, key))
    assert first.status == 201
    direct_id = (await first.json())["id"]
    second = await client.post("/v1/customers", json=fields,
                               headers={"Authorization": f"Bearer {r1.secret}", "Idempotency-Key": key})
    body = await second.json()
    assert direct_id not in json.dumps(body), (second.status, body)
    if second.status == 201:
        assert await _ids(client, tenant, r1.secret) == [body["id"]]
    else:
        await _error(second, 409, "409-resource-conflict")


# --- state rules and races ----------------------------------------------------------------------

async def test_currency_cannot_change_once_set(client, tenant):
    created = await _create(client, tenant, currency="USD")
    path = f"/v1/customers/{created['id']}"
    body = await _error(await client.put(path, json={"currency": "EUR"}, headers=tenant.bearer),
                        400, "400-constraint-violation")
    assert _field_of(body) == "currency"
    same = await client.put(path, json={"currency": "usd"}, headers=tenant.bearer)
    assert same.status == 200
    assert (await same.json())["currency"] == "USD"
    unset = await _create(client, tenant)
    first_time = await client.put(f"/v1/customers/{unset['id']}", json={"currency": "EUR"}, headers=tenant.bearer)
    assert (await first_time.json())["currency"] == "EUR"


async def test_concurrent_creates_with_one_external_id_make_one_customer(client, tenant):
    responses = await asyncio.gather(*(
        client.post("/v1/customers", json=_fields(external_customer_id="race-1"), headers=tenant.bearer)
        for _ in range(5)))
    statuses = sorted(r.status for r in responses)
    assert statuses == [201, 400, 400, 400, 400], [await r.text() for r in responses]
    for response in responses:
        if response.status == 400:
            await _error(response, 400, "400-duplicate-resource-creation")
    assert len(await _ids(client, tenant)) == 1


async def test_every_face_answers_with_the_request_id_and_unknown_urls_in_its_shape(client, tenant):
    sent = {**tenant.bearer, "X-Request-Id": "req-from-the-caller"}
    response = await client.get("/v1/customers", headers=sent)
    assert response.status == 200 and response.headers["X-Request-Id"] == "req-from-the-caller"
    for method, path, body in (("GET", f"/v1/customers/{UNKNOWN_ID}", None), ("POST", "/graphql", {"query": "{ __typename }"}),
                               ("POST", "/", {"jsonrpc": "2.0", "id": 1, "method": "customers.list"}),
                               ("GET", "/api/v1/customers", None), ("GET", "/v1/nope", None)):
        response = await client.request(method, path, json=body, headers=tenant.bearer)
        assert response.headers["X-Request-Id"].startswith("req_"), (method, path)
    # A path of the face with a method it does not take: Orb's unknown URL, naming the methods it has.
    body = await _error(await client.patch("/v1/customers", headers=tenant.bearer), 404, "404-url-not-found")
    assert "PATCH /v1/customers" in body["detail"] and "GET" in body["detail"] and "POST" in body["detail"]
    await _error(await client.get("/v1", headers=tenant.bearer), 404, "404-url-not-found")
    response = await client.get("/api/v1/nope", headers=tenant.bearer)
    assert response.status == 404 and "error" in await response.json()
