"""OneBusiness' `/api/v1/customers`: status filter, `{meta, data}` envelopes, sparse fieldsets, PATCH with
`changed`/`rejected`, per-organisation custom-field definitions, and the `{"error": {code, ...}}` shape."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import text

PROFILE_KEYS = {"id", "party_id", "name", "status", "account_number", "payment_terms", "default_currency",
                "credit_limit", "billing_email", "contact_first_name", "contact_last_name", "contact_email",
                "contact_phone", "notes", "custom_fields", "created_at", "updated_at"}
UNKNOWN_ID = "01m0000000000000000000000"


def _fields(**extra: Any) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    return {"name": f"Profile {suffix}", "email": f"ap+{suffix}@example.com", **extra}


async def _create(client, tenant, **extra: Any) -> dict[str, Any]:
    response = await client.post("/v1/customers", json=_fields(**extra), headers=tenant.bearer)
    assert response.status == 201, await response.text()
    return await response.json()


async def _graphql(client, tenant, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=tenant.bearer)
    return await response.json()


DEFINE = """mutation($input: CustomFieldDefinitionInput!) {
  defineCustomField(input: $input) { id key type required allowedValues label }
}"""


async def _define(client, tenant, key: str, type_: str, *, required: bool = False,
                  allowed: list[str] | None = None) -> dict[str, Any]:
    body = await _graphql(client, tenant, DEFINE, {"input": {"key": key, "type": type_, "required": required,
                                                             "allowedValues": allowed}})
    assert not body.get("errors"), body
    return body["data"]["defineCustomField"]


async def _define_standard_fields(client, tenant) -> None:
    await _define(client, tenant, "tier", "enum", allowed=["gold", "silver", "bronze"])
    await _define(client, tenant, "seats", "number")
    await _define(client, tenant, "vip", "boolean")
    await _define(client, tenant, "renewal", "date")
    await _define(client, tenant, "region", "string", required=True)


async def _get(client, tenant, customer_id: str, **params: str):
    return await client.get(f"/api/v1/customers/{customer_id}", params=params, headers=tenant.bearer)


async def _patch(client, tenant, customer_id: str, body: Any):
    return await client.patch(f"/api/v1/customers/{customer_id}", json=body, headers=tenant.bearer)


async def _list(client, tenant, **params: str) -> dict[str, Any]:
    response = await client.get("/api/v1/customers", params=params, headers=tenant.bearer)
    assert response.status == 200, await response.text()
    return await response.json()


# --- list ---------------------------------------------------------------------------------------

async def test_list_defaults_to_active_and_filters_by_status(client, tenant):
    active = await _create(client, tenant)
    archived = await _create(client, tenant)
    inactive = await _create(client, tenant)
    response = await _patch(client, tenant, archived["id"], {"status": "archived"})
    assert response.status == 200
    assert (await response.json())["changed"] == ["status"]
    assert (await _patch(client, tenant, inactive["id"], {"status": "inactive"})).status == 200

    default = await _list(client, tenant)
    assert [row["id"] for row in default["data"]] == [active["id"]]
    assert default["meta"] == {"version": 1, "total": 1}
    assert default["data"][0]["status"] == "active"

    only_archived = await _list(client, tenant, status="archived")
    assert [row["id"] for row in only_archived["data"]] == [archived["id"]]
    assert only_archived["data"][0]["status"] == "archived"
    assert only_archived["meta"]["total"] == 1

    everything = await _list(client, tenant, status="all")
    assert [row["id"] for row in everything["data"]] == [inactive["id"], archived["id"], active["id"]]
    assert everything["meta"] == {"version": 1, "total": 3}
    assert [row["id"] for row in (await _list(client, tenant, status="active"))["data"]] == [active["id"]]


async def test_list_rows_are_full_profiles(client, tenant):
    created = await _create(client, tenant, currency="USD")
    rows = (await _list(client, tenant))["data"]
    assert len(rows) == 1
    row = rows[0]
    assert set(row) == PROFILE_KEYS
    assert row["id"] == row["party_id"] == created["id"]
    assert row["name"] == created["name"]
    assert row["billing_email"] == created["email"]
    assert row["default_currency"] == "USD"
    assert row["custom_fields"] == {}
    assert row["credit_limit"] is None
    assert row["created_at"] == created["created_at"]
    assert row["updated_at"].endswith("Z")


async def test_list_of_an_empty_organisation(client, tenant):
    assert await _list(client, tenant) == {"meta": {"version": 1, "total": 0}, "data": []}


async def test_bad_status_filter_is_a_validation_error(client, tenant):
    response = await client.get("/api/v1/customers", params={"status": "deleted"}, headers=tenant.bearer)
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["field"] == "status"


async def test_list_only_shows_the_callers_organisation(client, tenant, other_tenant):
    mine = await _create(client, tenant)
    await _create(client, other_tenant)
    listed = await _list(client, tenant, status="all")
    assert [row["id"] for row in listed["data"]] == [mine["id"]]
    assert listed["meta"]["total"] == 1


# --- sparse fieldsets ---------------------------------------------------------------------------

async def test_fields_selects_top_level_keys(client, tenant):
    first = await _create(client, tenant)
    second = await _create(client, tenant)
    listed = await _list(client, tenant, fields="id,name")
    assert listed["data"] == [{"id": second["id"], "name": second["name"]},
                              {"id": first["id"], "name": first["name"]}]
    assert listed["meta"] == {"version": 1, "total": 2}


async def test_fields_drops_unknown_keys_silently(client, tenant):
    created = await _create(client, tenant)
    listed = await _list(client, tenant, fields="id, nickname ,,status")
    assert listed["data"] == [{"id": created["id"], "status": "active"}]


async def test_fields_selects_one_custom_field(client, tenant):
    await _define_standard_fields(client, tenant)
    created = await _create(client, tenant)
    response = await _patch(client, tenant, created["id"],
                            {"custom_fields": {"tier": "gold", "region": "EMEA", "vip": True}})
    assert (await response.json())["rejected"] == {}

    listed = await _list(client, tenant, fields="custom_fields.tier")
    assert listed["data"] == [{"custom_fields": {"tier": "gold"}}]
    both = await _list(client, tenant, fields="id,custom_fields.tier,custom_fields.vip")
    assert both["data"] == [{"id": created["id"], "custom_fields": {"tier": "gold", "vip": True}}]
    whole = await _list(client, tenant, fields="custom_fields")
    assert whole["data"] == [{"custom_fields": {"tier": "gold", "region": "EMEA", "vip": True}}]
    unset = await _list(client, tenant, fields="id,custom_fields.seats")
    assert unset["data"] == [{"id": created["id"], "custom_fields": {}}]


async def test_get_one_with_fields(client, tenant):
    await _define(client, tenant, "tier", "enum", allowed=["gold", "silver"])
    created = await _create(client, tenant)
    await _patch(client, tenant, created["id"], {"custom_fields": {"tier": "silver"}, "notes": "hello"})

    full = await _get(client, tenant, created["id"])
    assert full.status == 200
    body = await full.json()
    assert body["meta"] == {"version": 1}
    assert set(body["data"]) == PROFILE_KEYS
    assert body["data"]["notes"] == "hello"
    assert body["data"]["custom_fields"] == {"tier": "silver"}

    sparse = await (await _get(client, tenant, created["id"], fields="name,notes,custom_fields.tier")).json()
    assert sparse == {"meta": {"version": 1},
                      "data": {"name": created["name"], "notes": "hello", "custom_fields": {"tier": "silver"}}}


# --- PATCH top-level fields ---------------------------------------------------------------------

async def test_patch_maps_onebusiness_names_and_reports_changes(client, tenant):
    created = await _create(client, tenant)
    response = await _patch(client, tenant, created["id"], {
        "default_currency": "eur", "billing_email": "finance@example.com", "credit_limit": "1500.50",
        "account_number": "ACC-42", "payment_terms": "net_30", "contact_first_name": "Ada",
        "contact_last_name": "Lovelace", "contact_email": "ada@example.com", "contact_phone": "+44 20 7946 0000",
        "notes": "key account",
    })
    assert response.status == 200, await response.text()
    body = await response.json()
    assert set(body) == {"meta", "data", "changed", "rejected"}
    assert body["meta"] == {"version": 1}
    assert body["rejected"] == {}
    assert sorted(body["changed"]) == sorted([
        "default_currency", "billing_email", "credit_limit", "account_number", "payment_terms",
        "contact_first_name", "contact_last_name", "contact_email", "contact_phone", "notes"])
    data = body["data"]
    assert data["default_currency"] == "EUR"
    assert data["billing_email"] == "finance@example.com"
    assert data["credit_limit"] == "1500.50"
    assert data["account_number"] == "ACC-42"
    assert data["contact_phone"] == "+44 20 7946 0000"

    # The same customer everywhere: Orb's currency/email are OneBusiness' default_currency/billing_email.
    orb = await (await client.get(f"/v1/customers/{created['id']}", headers=tenant.bearer)).json()
    assert orb["currency"] == "EUR"
    assert orb["email"] == "finance@example.com"
    fetched = await (await _get(client, tenant, created["id"])).json()
    assert fetched["data"] == data


async def test_patch_lists_only_what_changed(client, tenant):
    created = await _create(client, tenant)
    first = await (await _patch(client, tenant, created["id"], {"notes": "same", "payment_terms": "net_15"})).json()
    assert sorted(first["changed"]) == ["notes", "payment_terms"]
    second = await (await _patch(client, tenant, created["id"], {"notes": "same", "payment_terms": "net_30"})).json()
    assert second["changed"] == ["payment_terms"]
    third = await (await _patch(client, tenant, created["id"], {"notes": "same"})).json()
    assert third["changed"] == []
    assert third["data"]["notes"] == "same"
    cleared = await (await _patch(client, tenant, created["id"], {"notes": None})).json()
    assert cleared["changed"] == ["notes"]
    assert cleared["data"]["notes"] is None


@pytest.mark.parametrize(
    ("sent", "shown"),
    [("1500.50", "1500.50"), ("0.1", "0.10"), (1500, "1500.00"), ("12345678901234567.125", "12345678901234567.125")],
)
async def test_credit_limit_is_exact(client, tenant, sent, shown):
    created = await _create(client, tenant)
    body = await (await _patch(client, tenant, created["id"], {"credit_limit": sent})).json()
    assert body["data"]["credit_limit"] == shown
    assert body["changed"] == ["credit_limit"]
    again = await (await _get(client, tenant, created["id"], fields="credit_limit")).json()
    assert again["data"] == {"credit_limit": shown}


async def test_credit_limit_as_a_float_or_negative_is_refused(client, tenant):
    created = await _create(client, tenant)
    for value in (1500.5, "-1", "lots"):
        response = await _patch(client, tenant, created["id"], {"credit_limit": value})
        assert response.status == 400, value
        error = (await response.json())["error"]
        assert error["code"] == "VALIDATION_ERROR"
        assert error["field"] == "credit_limit"
    assert (await (await _get(client, tenant, created["id"])).json())["data"]["credit_limit"] is None


async def test_unknown_top_level_field_is_refused_and_nothing_changes(client, tenant):
    await _define(client, tenant, "tier", "enum", allowed=["gold", "silver"])
    created = await _create(client, tenant)
    before = await (await _get(client, tenant, created["id"])).json()
    response = await _patch(client, tenant, created["id"],
                            {"notes": "changed?", "nickname": "Bob", "custom_fields": {"tier": "gold"}})
    assert response.status == 400
    body = await response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == "VALIDATION_ERROR"
    assert body["error"]["field"] == "nickname"
    assert "nickname" in body["error"]["message"]
    after = await (await _get(client, tenant, created["id"])).json()
    assert after == before


async def test_name_is_not_patchable_here(client, tenant):
    created = await _create(client, tenant)
    response = await _patch(client, tenant, created["id"], {"name": "Renamed"})
    assert response.status == 400
    assert (await response.json())["error"]["field"] == "name"
    assert (await (await _get(client, tenant, created["id"])).json())["data"]["name"] == created["name"]


async def test_invalid_top_level_value_fails_the_whole_patch(client, tenant):
    await _define(client, tenant, "tier", "enum", allowed=["gold", "silver"])
    created = await _create(client, tenant)
    before = await (await _get(client, tenant, created["id"])).json()
    response = await _patch(client, tenant, created["id"],
                            {"notes": "n", "billing_email": "not-an-email", "custom_fields": {"tier": "gold"}})
    assert response.status == 400
    error = (await response.json())["error"]
    assert error == {"code": "VALIDATION_ERROR", "message": error["message"], "field": "billing_email"}
    assert (await (await _get(client, tenant, created["id"])).json()) == before


@pytest.mark.parametrize("status", ["deleted", "ACTIVE", 1])
async def test_bad_status_value_is_refused(client, tenant, status):
    created = await _create(client, tenant)
    response = await _patch(client, tenant, created["id"], {"status": status})
    assert response.status == 400
    assert (await response.json())["error"]["field"] == "status"


async def test_patch_body_must_be_an_object(client, tenant):
    created = await _create(client, tenant)
    response = await _patch(client, tenant, created["id"], ["notes", "x"])
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "VALIDATION_ERROR"
    malformed = await client.patch(f"/api/v1/customers/{created['id']}", data=b"{notes:",
                                   headers={**tenant.bearer, "Content-Type": "application/json"})
    assert malformed.status == 400
    error = (await malformed.json())["error"]
    assert (error["code"], error["field"]) == ("VALIDATION_ERROR", "body")


# --- PATCH custom fields ------------------------------------------------------------------------

async def test_custom_fields_apply_or_are_rejected_one_by_one(client, tenant):
    await _define_standard_fields(client, tenant)
    created = await _create(client, tenant)
    response = await _patch(client, tenant, created["id"], {
        "notes": "top-level still applies",
        "custom_fields": {
            "tier": "gold", "seats": "12.50", "vip": True, "renewal": "2027-03-31", "region": "EMEA",
        },
    })
    assert response.status == 200
    body = await response.json()
    assert body["rejected"] == {}
    assert body["data"]["custom_fields"] == {"tier": "gold", "seats": "12.50", "vip": True, "renewal": "2027-03-31",
                                             "region": "EMEA"}
    assert sorted(body["changed"]) == sorted(["notes", "custom_fields.tier", "custom_fields.seats",
                                              "custom_fields.vip", "custom_fields.renewal", "custom_fields.region"])

    response = await _patch(client, tenant, created["id"], {"custom_fields": {
        "tier": "platinum",        # not an allowed value
        "seats": "many",           # not a number
        "vip": "yes",              # not a boolean
        "renewal": "2027-02-30",   # not a date
        "region": "APAC",          # fine
        "colour": "blue",          # not defined
    }})
    assert response.status == 200
    body = await response.json()
    assert set(body["rejected"]) == {"tier", "seats", "vip", "renewal", "colour"}
    assert all(isinstance(reason, str) and reason for reason in body["rejected"].values())
    assert "gold" in body["rejected"]["tier"]  # the reason names what is allowed
    assert "defined" in body["rejected"]["colour"]
    assert body["changed"] == ["custom_fields.region"]
    assert body["data"]["custom_fields"] == {"tier": "gold", "seats": "12.50", "vip": True, "renewal": "2027-03-31",
                                             "region": "APAC"}
    fetched = await (await _get(client, tenant, created["id"], fields="custom_fields")).json()
    assert fetched["data"]["custom_fields"] == body["data"]["custom_fields"]


async def test_number_custom_field_keeps_exact_text(client, tenant):
    await _define(client, tenant, "seats", "number")
    created = await _create(client, tenant)
    body = await (await _patch(client, tenant, created["id"], {"custom_fields": {"seats": 40}})).json()
    assert body["data"]["custom_fields"] == {"seats": "40"}
    body = await (await _patch(client, tenant, created["id"], {"custom_fields": {"seats": "0.10"}})).json()
    assert body["data"]["custom_fields"] == {"seats": "0.10"}
    body = await (await _patch(client, tenant, created["id"], {"custom_fields": {"seats": True}})).json()
    assert set(body["rejected"]) == {"seats"}
    assert body["data"]["custom_fields"] == {"seats": "0.10"}


async def test_undefined_custom_field_is_rejected(client, tenant):
    created = await _create(client, tenant)
    body = await (await _patch(client, tenant, created["id"], {"custom_fields": {"tier": "gold"}})).json()
    assert body["rejected"] == {"tier": body["rejected"]["tier"]}
    assert body["rejected"]["tier"]
    assert body["changed"] == []
    assert body["data"]["custom_fields"] == {}


async def test_required_custom_field_cannot_be_cleared(client, tenant):
    await _define(client, tenant, "region", "string", required=True)
    await _define(client, tenant, "nickname", "string")
    created = await _create(client, tenant)
    set_up = await (await _patch(client, tenant, created["id"],
                                 {"custom_fields": {"region": "EMEA", "nickname": "Acme"}})).json()
    assert set_up["data"]["custom_fields"] == {"region": "EMEA", "nickname": "Acme"}

    body = await (await _patch(client, tenant, created["id"],
                               {"custom_fields": {"region": None, "nickname": None}})).json()
    assert set(body["rejected"]) == {"region"}
    assert "required" in body["rejected"]["region"]
    assert body["changed"] == ["custom_fields.nickname"]
    assert body["data"]["custom_fields"] == {"region": "EMEA"}


async def test_custom_fields_must_be_an_object(client, tenant):
    created = await _create(client, tenant)
    response = await _patch(client, tenant, created["id"], {"custom_fields": ["tier"]})
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["field"] == "custom_fields"


async def test_definitions_of_another_organisation_do_not_apply(client, tenant, other_tenant):
    await _define(client, other_tenant, "tier", "enum", allowed=["gold"])
    created = await _create(client, tenant)
    body = await (await _patch(client, tenant, created["id"], {"custom_fields": {"tier": "gold"}})).json()
    assert set(body["rejected"]) == {"tier"}
    assert body["data"]["custom_fields"] == {}


# --- custom-field definitions -------------------------------------------------------------------

LIST_DEFINITIONS = "{ customFieldDefinitions { key type required allowedValues label } }"


async def test_custom_field_definitions_are_per_organisation(client, tenant, other_tenant):
    defined = await _define(client, tenant, "tier", "enum", allowed=["gold", "silver"])
    assert defined["key"] == "tier"
    assert defined["type"] == "enum"
    assert defined["required"] is False
    assert defined["allowedValues"] == ["gold", "silver"]
    assert defined["id"]
    await _define(client, tenant, "region", "string", required=True)

    mine = await _graphql(client, tenant, LIST_DEFINITIONS)
    assert mine["data"]["customFieldDefinitions"] == [
        {"key": "region", "type": "string", "required": True, "allowedValues": None, "label": None},
        {"key": "tier", "type": "enum", "required": False, "allowedValues": ["gold", "silver"], "label": None},
    ]
    theirs = await _graphql(client, other_tenant, LIST_DEFINITIONS)
    assert theirs == {"data": {"customFieldDefinitions": []}}
    # The same key is free in another organisation.
    assert (await _define(client, other_tenant, "tier", "boolean"))["type"] == "boolean"
    assert (await _graphql(client, tenant, LIST_DEFINITIONS))["data"]["customFieldDefinitions"][1]["type"] == "enum"


@pytest.mark.parametrize(
    ("definition", "field"),
    [
        ({"key": "tier", "type": "colour"}, "type"),
        ({"key": "Tier!", "type": "string"}, "key"),
        ({"key": "tier", "type": "enum", "allowedValues": []}, "allowed_values"),
        ({"key": "tier", "type": "string", "allowedValues": ["a"]}, "allowed_values"),
    ],
)
async def test_bad_definition_is_refused(client, tenant, definition, field):
    body = await _graphql(client, tenant, DEFINE, {"input": definition})
    assert body["data"] is None
    assert body["errors"][0]["extensions"] == {"code": "VALIDATION_FAILED", "field": field}
    assert (await _graphql(client, tenant, LIST_DEFINITIONS))["data"]["customFieldDefinitions"] == []


async def test_duplicate_definition_key_is_refused(client, tenant):
    await _define(client, tenant, "tier", "string")
    body = await _graphql(client, tenant, DEFINE, {"input": {"key": "tier", "type": "number"}})
    assert body["errors"][0]["extensions"] == {"code": "DUPLICATE_RESOURCE", "field": "key"}
    listed = (await _graphql(client, tenant, LIST_DEFINITIONS))["data"]["customFieldDefinitions"]
    assert [(d["key"], d["type"]) for d in listed] == [("tier", "string")]


# --- errors: not found, auth --------------------------------------------------------------------

async def test_unknown_and_foreign_ids_are_not_found(client, tenant, other_tenant):
    theirs = await _create(client, other_tenant)
    for customer_id in (UNKNOWN_ID, theirs["id"]):
        for response in (await _get(client, tenant, customer_id),
                         await _patch(client, tenant, customer_id, {"notes": "mine now"})):
            assert response.status == 404
            body = await response.json()
            assert set(body) == {"error"}
            assert body["error"]["code"] == "NOT_FOUND"
            assert body["error"]["message"]
    untouched = await (await _get(client, other_tenant, theirs["id"])).json()
    assert untouched["data"]["notes"] is None


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer one_pk_wrong"}, {"Authorization": "Basic abc"}],
                         ids=["missing", "wrong", "not-bearer"])
async def test_requests_without_a_valid_key_are_unauthorized(client, tenant, headers):
    created = await _create(client, tenant)
    for method, path, body in [("GET", "/api/v1/customers", None),
                               ("GET", f"/api/v1/customers/{created['id']}", None),
                               ("PATCH", f"/api/v1/customers/{created['id']}", {"notes": "x"})]:
        response = await client.request(method, path, json=body, headers=headers)
        assert response.status == 401, (method, path)
        assert (await response.json())["error"]["code"] == "UNAUTHORIZED"
    assert (await (await _get(client, tenant, created["id"])).json())["data"]["notes"] is None


async def test_unknown_route_answers_in_the_onebusiness_shape(client, tenant):
    response = await client.get("/api/v1/nope", headers=tenant.bearer)
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "ROUTE_NOT_FOUND"


async def test_overlong_label_is_a_validation_error(client, tenant):
    body = await _graphql(client, tenant, DEFINE, {"input": {"key": "tier", "type": "string", "label": "L" * 300}})
    assert body["data"] is None, body
    assert body["errors"][0].get("extensions") == {"code": "VALIDATION_FAILED", "field": "label"}, body
    assert (await _graphql(client, tenant, LIST_DEFINITIONS))["data"]["customFieldDefinitions"] == []


async def test_concurrent_definitions_of_one_key_make_one(client, tenant, database):
    """Five requests define the same key at once: one wins, four are told it is a duplicate.

    On PostgreSQL the race is made certain: an EXCLUSIVE table lock (plain reads pass, inserts wait) is
    held until all five requests are waiting to insert, i.e. each has already checked the key is free."""
    def define_five() -> list[asyncio.Future[dict[str, Any]]]:
        return [asyncio.ensure_future(_graphql(client, tenant, DEFINE, {"input": {"key": "tier", "type": "string"}}))
                for _ in range(5)]

    if database.backend != "postgresql":
        define = define_five()  # SQLite: writers queue on BEGIN IMMEDIATE
    else:
        async with database.engine.connect() as locker, database.engine.connect() as watcher:
            await locker.execute(text("BEGIN"))
            await locker.execute(text("LOCK TABLE custom_field_definitions IN EXCLUSIVE MODE"))
            define = define_five()
            waiting = 0
            for _ in range(250):
                await asyncio.sleep(0.02)
                waiting = (await watcher.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"))).scalar_one()
                await watcher.commit()
                if waiting == 5 or all(task.done() for task in define):
                    break
            await locker.execute(text("COMMIT"))
            assert waiting == 5 or any(task.done() and task.result().get("errors") for task in define)
    bodies = await asyncio.gather(*define)
    created = [b for b in bodies if not b.get("errors")]
    refused = [b["errors"][0].get("extensions") for b in bodies if b.get("errors")]
    assert len(created) == 1, bodies
    assert refused == [{"code": "DUPLICATE_RESOURCE", "field": "key"}] * 4, bodies
    listed = (await _graphql(client, tenant, LIST_DEFINITIONS))["data"]["customFieldDefinitions"]
    assert [d["key"] for d in listed] == ["tier"]
