"""JSON-RPC 2.0 at `POST /`: the spec's request/response rules (single, batch, notifications, error codes),
`X-Api-Key` auth (HTTP 401, -32005), the `__tz` output timezone, and the application error codes."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from domains.tenancy.service import create_api_key

RPC_VERSION = "2.0"


def _fields(**extra: Any) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    return {"name": f"Rpc Co {suffix}", "email": f"rpc+{suffix}@example.com", **extra}


def _call(method: str, params: Any = None, call_id: Any = 1) -> dict[str, Any]:
    call: dict[str, Any] = {"jsonrpc": RPC_VERSION, "method": method, "id": call_id}
    if params is not None:
        call["params"] = params
    return call


def _notification(method: str, params: Any = None) -> dict[str, Any]:
    call: dict[str, Any] = {"jsonrpc": RPC_VERSION, "method": method}
    if params is not None:
        call["params"] = params
    return call


async def _post(client, tenant, payload: Any, headers: dict[str, str] | None = None):
    return await client.post("/", json=payload, headers=headers if headers is not None else {"X-Api-Key": tenant.key})


async def _rpc(client, tenant, payload: Any) -> Any:
    response = await _post(client, tenant, payload)
    assert response.status == 200, await response.text()
    assert response.content_type == "application/json"
    return await response.json()


async def _listed_names(client, tenant) -> list[str]:
    reply = await _rpc(client, tenant, _call("customers.list", {}, "list"))
    return [c["name"] for c in reply["result"]["data"]]


# --- single calls -------------------------------------------------------------------------------

async def test_single_call_returns_result_with_the_callers_id(client, tenant):
    fields = _fields(external_customer_id="rpc-ext-1", currency="gbp")
    reply = await _rpc(client, tenant, _call("customers.create", fields, "create-1"))
    assert set(reply) == {"jsonrpc", "result", "id"}
    assert reply["jsonrpc"] == "2.0"
    assert reply["id"] == "create-1"
    created = reply["result"]
    assert created["name"] == fields["name"]
    assert created["email"] == fields["email"]
    assert created["external_customer_id"] == "rpc-ext-1"
    assert created["currency"] == "GBP"
    assert created["status"] == "active"
    assert created["balance"] == "0.00"
    assert created["created_at"].endswith("Z")

    fetched = await _rpc(client, tenant, _call("customers.get", {"id": created["id"]}, 7))
    assert fetched["id"] == 7
    assert fetched["result"] == created

    by_external = await _rpc(client, tenant, _call("customers.get_by_external_id",
                                                   {"external_customer_id": "rpc-ext-1"}, 8))
    assert by_external["result"]["id"] == created["id"]


async def test_update_and_delete_over_rpc(client, tenant):
    created = (await _rpc(client, tenant, _call("customers.create", _fields())))["result"]
    updated = await _rpc(client, tenant, _call("customers.update",
                                               {"id": created["id"], "name": "Renamed", "credit_limit": "250.75"}, 2))
    assert updated["result"]["name"] == "Renamed"
    assert updated["result"]["credit_limit"] == "250.75"
    assert updated["result"]["email"] == created["email"]
    deleted = await _rpc(client, tenant, _call("customers.delete", {"id": created["id"]}, 3))
    assert deleted["result"] == {"id": created["id"], "deleted": True}
    gone = await _rpc(client, tenant, _call("customers.get", {"id": created["id"]}, 4))
    assert gone["error"]["code"] == -32004


# --- batches ------------------------------------------------------------------------------------

async def test_batch_replies_in_order_and_omits_notifications(client, tenant):
    first, second, quiet = _fields(), _fields(), _fields()
    batch = [
        _call("customers.create", first, "a"),
        _notification("customers.create", quiet),
        _call("customers.create", {"name": "Bad", "email": "not-an-email"}, "b"),
        _call("customers.create", second, 3),
        _call("no.such.method", {}, "d"),
    ]
    replies = await _rpc(client, tenant, batch)
    assert isinstance(replies, list)
    assert [r["id"] for r in replies] == ["a", "b", 3, "d"]
    assert replies[0]["result"]["name"] == first["name"]
    assert replies[1]["error"]["code"] == -32602
    assert replies[1]["error"]["data"]["field"] == "email"
    assert replies[2]["result"]["name"] == second["name"]
    assert replies[3]["error"]["code"] == -32601
    assert all(r["jsonrpc"] == "2.0" for r in replies)
    # The notification ran (without a reply); the failed call wrote nothing.
    assert sorted(await _listed_names(client, tenant)) == sorted([first["name"], second["name"], quiet["name"]])


async def test_batch_of_notifications_only_returns_no_body(client, tenant):
    names = [_fields(), _fields()]
    response = await _post(client, tenant, [_notification("customers.create", f) for f in names])
    assert response.status == 204
    assert await response.read() == b""
    assert sorted(await _listed_names(client, tenant)) == sorted(f["name"] for f in names)


async def test_single_notification_gets_no_reply(client, tenant):
    fields = _fields()
    response = await _post(client, tenant, _notification("customers.create", fields))
    assert response.status == 204
    assert await response.read() == b""
    assert await _listed_names(client, tenant) == [fields["name"]]


async def test_failing_notification_gets_no_reply_either(client, tenant):
    response = await _post(client, tenant, _notification("customers.create", {"name": "x", "email": "nope"}))
    assert response.status == 204
    assert await response.read() == b""
    assert await _listed_names(client, tenant) == []


# --- the spec's error codes -----------------------------------------------------------------------

async def test_parse_error_has_null_id(client, tenant):
    response = await client.post("/", data=b'{"jsonrpc": "2.0", "method": "customers.list", "id": 1',
                                 headers={"X-Api-Key": tenant.key, "Content-Type": "application/json"})
    reply = await response.json()
    assert reply["jsonrpc"] == "2.0"
    assert reply["id"] is None
    assert reply["error"]["code"] == -32700
    assert "result" not in reply


async def test_missing_jsonrpc_member_is_invalid_request(client, tenant):
    reply = await _rpc(client, tenant, {"method": "customers.list", "params": {}, "id": 1})
    assert reply["error"]["code"] == -32600
    assert reply["id"] == 1
    assert "result" not in reply


async def test_wrong_jsonrpc_version_is_invalid_request(client, tenant):
    reply = await _rpc(client, tenant, {"jsonrpc": "1.0", "method": "customers.list", "params": {}, "id": 2})
    assert reply["error"]["code"] == -32600


async def test_method_not_a_string_is_invalid_request(client, tenant):
    reply = await _rpc(client, tenant, {"jsonrpc": "2.0", "method": 1, "params": {}, "id": 3})
    assert reply["error"]["code"] == -32600
    assert reply["id"] == 3


async def test_invalid_request_without_id_still_gets_an_error_reply(client, tenant):
    # The spec's own example: `{"jsonrpc": "2.0", "method": 1, "params": "bar"}` is not a Request object
    # (so not a notification either) and is answered with -32600 and id null.
    response = await _post(client, tenant, {"jsonrpc": "2.0", "method": 1, "params": "bar"})
    assert response.status == 200
    reply = await response.json()
    assert reply["id"] is None
    assert reply["error"]["code"] == -32600


async def test_empty_batch_is_a_single_invalid_request(client, tenant):
    reply = await _rpc(client, tenant, [])
    assert isinstance(reply, dict)
    assert reply["id"] is None
    assert reply["error"]["code"] == -32600


async def test_batch_of_non_objects_answers_each_with_invalid_request(client, tenant):
    replies = await _rpc(client, tenant, [1, 2, 3])
    assert [(r["id"], r["error"]["code"]) for r in replies] == [(None, -32600)] * 3


async def test_id_of_wrong_type_is_invalid_request(client, tenant):
    reply = await _rpc(client, tenant, {"jsonrpc": "2.0", "method": "customers.list", "params": {}, "id": {"x": 1}})
    assert reply["error"]["code"] == -32600


async def test_unknown_method(client, tenant):
    reply = await _rpc(client, tenant, _call("customers.explode", {}, 11))
    assert reply["id"] == 11
    assert reply["error"]["code"] == -32601
    assert "customers.explode" in reply["error"]["message"]


@pytest.mark.parametrize(
    ("method", "params", "field"),
    [
        ("customers.create", {"name": "Bad", "email": "not-an-email"}, "email"),
        ("customers.create", {"name": "Bad", "email": "a@b.example.com", "nickname": "Bob"}, "nickname"),
        ("customers.create", {"name": 5, "email": "a@b.example.com"}, "name"),
        ("customers.create", {"email": "a@b.example.com"}, "name"),
        ("customers.get", {"id": "x", "verbose": True}, "verbose"),
        ("customers.get", {}, "id"),
        ("customers.list", {"limit": "ten"}, "limit"),
        ("customers.update", {"id": "x", "auto_collection": "yes"}, "auto_collection"),
    ],
)
async def test_invalid_params_name_the_field(client, tenant, method, params, field):
    reply = await _rpc(client, tenant, _call(method, params, "p"))
    assert reply["id"] == "p"
    assert reply["error"]["code"] == -32602, reply
    assert reply["error"]["data"]["field"] == field
    assert await _listed_names(client, tenant) == []


async def test_positional_params_are_invalid_params(client, tenant):
    reply = await _rpc(client, tenant, _call("customers.create", ["Acme", "billing@acme.example.com"], 5))
    assert reply["error"]["code"] == -32602
    assert reply["error"]["data"]["field"] == "params"
    assert await _listed_names(client, tenant) == []


async def test_not_found_is_minus_32004(client, tenant, other_tenant):
    reply = await _rpc(client, tenant, _call("customers.get", {"id": "01m0000000000000000000000"}, 9))
    assert reply["id"] == 9
    assert reply["error"]["code"] == -32004
    assert reply["error"]["data"]["type"] == "NOT_FOUND"
    theirs = (await _rpc(client, other_tenant, _call("customers.create", _fields())))["result"]
    for method, params in [("customers.get", {"id": theirs["id"]}),
                           ("customers.update", {"id": theirs["id"], "name": "mine"}),
                           ("customers.delete", {"id": theirs["id"]})]:
        reply = await _rpc(client, tenant, _call(method, params, method))
        assert reply["error"]["code"] == -32004, (method, reply)
    still = await _rpc(client, other_tenant, _call("customers.get", {"id": theirs["id"]}))
    assert still["result"]["name"] == theirs["name"]


async def test_duplicate_external_id_is_an_application_error(client, tenant):
    await _rpc(client, tenant, _call("customers.create", _fields(external_customer_id="rpc-dup")))
    reply = await _rpc(client, tenant, _call("customers.create", _fields(external_customer_id="rpc-dup"), 2))
    assert reply["error"]["code"] == -32009
    assert reply["error"]["data"] == {"type": "DUPLICATE_RESOURCE", "field": "external_customer_id"}


# --- auth ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Api-Key": "one_pk_not-a-real-key"}, {"X-Api-Key": "garbage"}],
    ids=["missing", "wrong", "malformed"],
)
async def test_missing_or_wrong_key_is_http_401_with_minus_32005(client, tenant, headers):
    response = await client.post("/", json=_call("customers.list", {}, 42), headers=headers)
    assert response.status == 401
    reply = await response.json()
    assert reply["jsonrpc"] == "2.0"
    assert reply["id"] == 42
    assert reply["error"]["code"] == -32005
    assert "result" not in reply


async def test_wrong_key_writes_nothing(client, tenant):
    fields = _fields()
    response = await client.post("/", json=_call("customers.create", fields), headers={"X-Api-Key": "one_pk_wrong"})
    assert response.status == 401
    assert await _listed_names(client, tenant) == []


async def test_reseller_key_over_rpc_sees_only_its_customers(client, tenant, uow):
    reseller = await create_api_key(uow, org_id=tenant.org_id, reseller_id="rpc-r1")
    mine = (await _rpc(client, tenant, _call("customers.create", _fields())))["result"]
    response = await client.post("/", json=_call("customers.create", _fields()), headers={"X-Api-Key": reseller.secret})
    theirs = (await response.json())["result"]
    response = await client.post("/", json=[_call("customers.list", {}, 1), _call("customers.get", {"id": mine["id"]}, 2)],
                                 headers={"X-Api-Key": reseller.secret})
    listed, fetched = await response.json()
    assert [c["id"] for c in listed["result"]["data"]] == [theirs["id"]]
    assert fetched["error"]["code"] == -32004
    everything = await _rpc(client, tenant, _call("customers.list", {}))
    assert {c["id"] for c in everything["result"]["data"]} == {mine["id"], theirs["id"]}


# --- __tz ---------------------------------------------------------------------------------------

def _offset(text: str) -> timedelta:
    parsed = datetime.fromisoformat(text)
    assert parsed.utcoffset() is not None, text
    return parsed.utcoffset()  # type: ignore[return-value]


async def test_tz_renders_instants_in_the_given_zone(client, tenant):
    created = (await _rpc(client, tenant, _call("customers.create", _fields())))["result"]
    utc = datetime.fromisoformat(created["created_at"])
    reply = await _rpc(client, tenant, _call("customers.get", {"id": created["id"], "__tz": "America/New_York"}))
    local = reply["result"]["created_at"]
    assert not local.endswith("Z")
    assert _offset(local) in (timedelta(hours=-5), timedelta(hours=-4))
    assert datetime.fromisoformat(local) == utc  # the same instant
    assert _offset(reply["result"]["updated_at"]) in (timedelta(hours=-5), timedelta(hours=-4))

    tokyo = await _rpc(client, tenant, _call("customers.get", {"id": created["id"], "__tz": "Asia/Tokyo"}))
    assert _offset(tokyo["result"]["created_at"]) == timedelta(hours=9)
    assert datetime.fromisoformat(tokyo["result"]["created_at"]) == utc

    # Conversion is per request: without __tz the next call is UTC again.
    again = await _rpc(client, tenant, _call("customers.get", {"id": created["id"]}))
    assert again["result"]["created_at"] == created["created_at"]


async def test_tz_applies_to_lists_and_writes(client, tenant):
    created = await _rpc(client, tenant, _call("customers.create", {**_fields(), "__tz": "Europe/Paris"}))
    assert _offset(created["result"]["created_at"]) in (timedelta(hours=1), timedelta(hours=2))
    listed = await _rpc(client, tenant, _call("customers.list", {"__tz": "America/New_York"}))
    rows = listed["result"]["data"]
    assert len(rows) == 1
    assert _offset(rows[0]["created_at"]) in (timedelta(hours=-5), timedelta(hours=-4))


async def test_tz_does_not_rewrite_caller_strings_that_look_like_instants(client, tenant):
    # __tz converts the result's date-times; a caller's own string (metadata, a name) is data, not an instant.
    stamp = "2026-01-15T12:00:00Z"
    created = (await _rpc(client, tenant, _call("customers.create",
                                                _fields(metadata={"signed_at": stamp}, notes=stamp))))["result"]
    reply = await _rpc(client, tenant, _call("customers.get", {"id": created["id"], "__tz": "America/New_York"}))
    assert reply["result"]["metadata"] == {"signed_at": stamp}
    assert reply["result"]["notes"] == stamp


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "", 5, "../../etc/passwd"])
async def test_bad_tz_is_invalid_params_naming_tz(client, tenant, zone):
    reply = await _rpc(client, tenant, _call("customers.list", {"__tz": zone}, "tz"))
    assert reply["id"] == "tz"
    assert reply["error"]["code"] == -32602
    assert reply["error"]["data"]["field"] == "__tz"


async def test_bad_tz_on_a_write_writes_nothing(client, tenant):
    reply = await _rpc(client, tenant, _call("customers.create", {**_fields(), "__tz": "Nowhere/Land"}))
    assert reply["error"]["code"] == -32602
    assert await _listed_names(client, tenant) == []


async def test_batch_over_the_limit_is_refused_whole(client, tenant):
    batch = [_call("customers.create", _fields(), i) for i in range(51)]
    reply = await _rpc(client, tenant, batch)
    assert isinstance(reply, dict)
    assert reply["id"] is None
    assert reply["error"]["code"] == -32600
    assert await _listed_names(client, tenant) == []


async def test_client_mistakes_in_notifications_are_not_logged_as_server_errors(client, tenant, caplog):
    # A notification's error has no reply; it is the caller's mistake, not an unexpected server failure.
    with caplog.at_level("ERROR"):
        response = await _post(client, tenant, [_notification("no.such.method", {}),
                                                _notification("customers.create", {"name": "x", "email": "bad"})])
    assert response.status == 204
    assert [r.getMessage() for r in caplog.records if r.name.startswith("accrual")] == []
