"""Event ingestion: per-event validation, set-based storage once per idempotency key (also under
concurrent replays), external ids resolved later, tenants apart; on both databases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from domains.unit_of_work import UnitOfWork
from persistence.db import session_factory
from persistence.tables import Event


def _now(offset: timedelta = timedelta()) -> str:
    return (datetime.now(UTC) + offset).isoformat().replace("+00:00", "Z")


def _event(key: str, **extra):
    return {"event_name": "api_call", "timestamp": _now(timedelta(minutes=-1)), "idempotency_key": key,
            "external_customer_id": "acme", "properties": {"tokens": 12, "region": "eu", "cached": False}, **extra}


async def _ingest(client, key, events, debug=True):
    response = await client.post("/v1/ingest", json={"events": events}, params={"debug": str(debug).lower()},
                                 headers={"Authorization": f"Bearer {key}"})
    return response.status, await response.json()


async def _stored(database, org_id) -> list[Event]:
    uow = UnitOfWork(session_factory(database.engine))
    try:
        rows = await uow.session.execute(select(Event).where(Event.org_id == org_id).order_by(Event.idempotency_key))
        return list(rows.scalars())
    finally:
        await uow.close()


async def test_valid_batch_is_stored_once_and_replays_are_duplicates(client, tenant, database):
    batch = [_event(f"k{i}") for i in range(5)]
    status, body = await _ingest(client, tenant.key, batch)
    assert status == 200
    assert body == {"validation_failed": [], "debug": {"ingested": [f"k{i}" for i in range(5)], "duplicate": []}}
    status, body = await _ingest(client, tenant.key, batch)
    assert body["debug"] == {"ingested": [], "duplicate": [f"k{i}" for i in range(5)]}
    stored = await _stored(database, tenant.org_id)
    assert [e.idempotency_key for e in stored] == [f"k{i}" for i in range(5)]
    assert stored[0].properties == {"tokens": 12, "region": "eu", "cached": False}
    assert stored[0].timestamp.tzinfo is not None and stored[0].customer_id is None


async def test_without_debug_the_debug_block_is_null(client, tenant):
    status, body = await _ingest(client, tenant.key, [_event("only")], debug=False)
    assert (status, body) == (200, {"validation_failed": [], "debug": None})
    response = await client.post("/v1/ingest", json={"events": [_event("no-param")]},
                                 headers={"Authorization": f"Bearer {tenant.key}"})
    assert response.status == 200 and (await response.json())["debug"] is None  # `debug` is optional


@pytest.mark.parametrize(("change", "reason"), [
    ({"properties": "tokens=1"}, "properties must be an object"),
    ({"properties": {"nested": {"a": 1}}}, "must be a number, boolean or string"),
    ({"properties": {"list": [1, 2]}}, "must be a number, boolean or string"),
    ({"timestamp": _now(timedelta(hours=2))}, "in the future"),
    ({"timestamp": _now(timedelta(hours=-13))}, "grace period"),
    ({"timestamp": "yesterday"}, "not ISO 8601"),
    ({"customer_id": "01m0000000000000000000000"}, "exactly one of customer_id and external_customer_id"),
    ({"external_customer_id": None}, "exactly one of customer_id and external_customer_id"),
    ({"event_name": ""}, "event_name is required"),
    ({"idempotency_key": ""}, "idempotency_key is required"),
])
async def test_invalid_events_are_reported_and_the_rest_stored(client, tenant, database, change, reason):
    bad = {**_event("bad"), **change}
    status, body = await _ingest(client, tenant.key, [_event("good"), bad])
    assert status == 200
    assert body["debug"]["ingested"] == ["good"]
    [failure] = body["validation_failed"]
    assert failure["idempotency_key"] == bad["idempotency_key"]
    assert any(reason in message for message in failure["validation_errors"]), failure
    assert [e.idempotency_key for e in await _stored(database, tenant.org_id)] == ["good"]


async def test_a_batch_over_500_events_is_refused_whole(client, tenant, database):
    status, body = await _ingest(client, tenant.key, [_event(f"k{i}") for i in range(501)])
    assert status == 400 and body["validation_errors"][0]["field"] == "events" and "500" in body["detail"]
    assert await _stored(database, tenant.org_id) == []


async def test_unknown_body_field_is_refused(client, tenant):
    response = await client.post("/v1/ingest", json={"events": [], "evnts": []},
                                 headers={"Authorization": f"Bearer {tenant.key}"})
    body = await response.json()
    assert response.status == 400 and body["validation_errors"][0]["field"] == "evnts"


async def test_concurrent_replays_store_each_event_once(client, tenant, database):
    batch = [_event(f"c{i}") for i in range(50)]
    results = await asyncio.gather(*(_ingest(client, tenant.key, batch) for _ in range(5)))
    ingested = [key for _, body in results for key in body["debug"]["ingested"]]
    assert sorted(ingested) == sorted(f"c{i}" for i in range(50))
    assert len(await _stored(database, tenant.org_id)) == 50


async def test_events_of_an_unknown_external_id_join_the_customer_when_it_appears(client, tenant, database):
    await _ingest(client, tenant.key, [_event("early")])
    response = await client.post("/v1/customers", json={"name": "Acme", "email": "a@example.com",
                                                         "external_customer_id": "acme"},
                                 headers={"Authorization": f"Bearer {tenant.key}"})
    customer = await response.json()
    await _ingest(client, tenant.key, [_event("late")])
    await _ingest(client, tenant.key, [_event("by-id", external_customer_id=None, customer_id=customer["id"])])
    stored = {e.idempotency_key: e.customer_id for e in await _stored(database, tenant.org_id)}
    assert stored == {"early": customer["id"], "late": customer["id"], "by-id": customer["id"]}


async def test_tenants_are_apart(client, tenant, other_tenant, database):
    response = await client.post("/v1/customers", json={"name": "Theirs", "email": "t@example.com"},
                                 headers={"Authorization": f"Bearer {other_tenant.key}"})
    theirs = await response.json()
    _, body = await _ingest(client, tenant.key, [_event("x", external_customer_id=None, customer_id=theirs["id"])])
    assert "does not exist" in body["validation_failed"][0]["validation_errors"][0]
    await _ingest(client, other_tenant.key, [_event("same-key")])
    _, body = await _ingest(client, tenant.key, [_event("same-key")])
    assert body["debug"]["ingested"] == ["same-key"]  # idempotency keys are per organisation
    counts = []
    for org_id in (tenant.org_id, other_tenant.org_id):
        counts.append(len(await _stored(database, org_id)))
    assert counts == [1, 1]


async def test_rpc_and_graphql_ingest_the_same_way(client, tenant, database):
    rpc = await (await client.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "events.ingest",
                                              "params": {"events": [_event("r1"), {**_event("r2"), "properties": 1}],
                                                         "debug": True}},
                                   headers={"X-Api-Key": tenant.key})).json()
    assert rpc["result"]["debug"] == {"ingested": ["r1"], "duplicate": []}
    assert rpc["result"]["validation_failed"][0]["idempotency_key"] == "r2"
    graphql = await (await client.post("/graphql", json={
        "query": "mutation($e: [JSON!]!) { ingestEvents(input: {events: $e}, debug: true) "
                 "{ validationFailed { idempotencyKey } debug { ingested duplicate } } }",
        "variables": {"e": [{"event_name": "api_call", "timestamp": _now(), "idempotency_key": "r1",
                             "external_customer_id": "acme", "properties": {}}]}},
        headers={"Authorization": f"Bearer {tenant.key}"})).json()
    assert graphql["data"]["ingestEvents"] == {"validationFailed": [], "debug": {"ingested": [], "duplicate": ["r1"]}}
    uow = UnitOfWork(session_factory(database.engine))
    try:
        count = (await uow.session.execute(select(func.count()).select_from(Event)
                                           .where(Event.org_id == tenant.org_id))).scalar_one()
    finally:
        await uow.close()
    assert count == 1


async def test_a_null_in_the_events_list_is_refused_naming_its_place(client, tenant, database):
    status, body = await _ingest(client, tenant.key, [_event("k0"), None])
    assert status == 400 and body["validation_errors"][0]["field"] == "events[1]", body
    assert "must not be null" in body["detail"] and await _stored(database, tenant.org_id) == []


async def test_a_reseller_key_meters_only_its_resellers_customers(client, tenant, database, uow):
    from domains.tenancy.service import create_api_key

    reseller = await create_api_key(uow, org_id=tenant.org_id, reseller_id="r1")
    headers = {"Authorization": f"Bearer {reseller.secret}"}
    resold = await (await client.post("/v1/customers", json={"name": "Resold", "email": "r@example.com",
                                                             "external_customer_id": "resold"}, headers=headers)).json()
    direct = await (await client.post("/v1/customers", json={"name": "Direct", "email": "d@example.com",
                                                             "external_customer_id": "direct"},
                                      headers={"Authorization": f"Bearer {tenant.key}"})).json()
    status, body = await _ingest(client, reseller.secret, [
        _event("resold-by-external", external_customer_id="resold"),
        _event("resold-by-id", external_customer_id=None, customer_id=resold["id"]),
        _event("direct-by-id", external_customer_id=None, customer_id=direct["id"]),
        _event("direct-by-external", external_customer_id="direct"),
    ])
    assert status == 200
    assert body["validation_failed"] == [{"idempotency_key": "direct-by-id",
                                          "validation_errors": [f"customer_id {direct['id']!r} does not exist"]}]
    assert body["debug"]["ingested"] == ["resold-by-external", "resold-by-id", "direct-by-external"]
    stored = {e.idempotency_key: (e.customer_id, e.external_customer_id) for e in await _stored(database, tenant.org_id)}
    # The other customer's external id is not resolved for this key: stored as sent, unattached.
    assert stored == {"resold-by-external": (resold["id"], "resold"), "resold-by-id": (resold["id"], None),
                      "direct-by-external": (None, "direct")}


async def test_one_batch_mixing_ids_external_ids_faults_and_repeats(client, tenant, database):
    customer = await (await client.post("/v1/customers", json={"name": "Acme", "email": "a@example.com",
                                                               "external_customer_id": "acme"},
                                        headers={"Authorization": f"Bearer {tenant.key}"})).json()
    naive = (datetime.now(UTC) - timedelta(minutes=2)).replace(tzinfo=None).isoformat()
    offset = (datetime.now(UTC) - timedelta(minutes=3)).astimezone(timezone(timedelta(hours=2))).isoformat()
    batch = [
        _event("a"),
        _event("b", external_customer_id=None, customer_id=customer["id"]),
        _event("c", timestamp=naive),  # no offset: read as UTC
        _event("d", timestamp=offset),  # another offset: converted to UTC
        _event("a", event_name="again"),  # the same key again in the batch: the first one counts
        {**_event("e"), "extra": 1, "event_name": " ", "properties": {"n": [1]}},
        _event("f", external_customer_id=None, customer_id="nobody"),
        _event("g", external_customer_id="someone-new"),
        "not an event",
    ]
    status, body = await _ingest(client, tenant.key, batch)
    assert status == 200
    assert body["validation_failed"] == [
        {"idempotency_key": "e", "validation_errors": [
            "extra is not an event field", "event_name is required (a string of 1 to 255 characters)",
            "property 'n' must be a number, boolean or string (not an object or list)"]},
        {"idempotency_key": "", "validation_errors": [
            "idempotency_key is required (a string of 1 to 255 characters)", "an event must be an object"]},
        {"idempotency_key": "f", "validation_errors": ["customer_id 'nobody' does not exist"]},
    ]
    assert body["debug"] == {"ingested": ["a", "b", "c", "d", "g"], "duplicate": ["a"]}
    stored = {e.idempotency_key: e for e in await _stored(database, tenant.org_id)}
    assert {key: event.customer_id for key, event in stored.items()} == {
        "a": customer["id"], "b": customer["id"], "c": customer["id"], "d": customer["id"], "g": None}
    assert stored["a"].event_name == "api_call"
    assert stored["c"].timestamp == datetime.fromisoformat(naive).replace(tzinfo=UTC)
    assert stored["d"].timestamp == datetime.fromisoformat(offset)
    assert all(event.timestamp.tzinfo is not None for event in stored.values())


async def test_a_batch_partly_stored_before_reports_each_key_where_it_belongs(client, tenant, database):
    await _ingest(client, tenant.key, [_event("k1"), _event("k3")])
    status, body = await _ingest(client, tenant.key, [_event(f"k{i}") for i in range(5)] + [_event("k0")])
    assert status == 200
    assert body["debug"] == {"ingested": ["k0", "k2", "k4"], "duplicate": ["k0", "k1", "k3"]}
    assert [e.idempotency_key for e in await _stored(database, tenant.org_id)] == [f"k{i}" for i in range(5)]


def test_the_json_scalar_parses_a_value_as_itself():
    # The faces take a list of JSON values without a call per item on this ground (engine._is_json).
    from gateway.graphql.schema import schema

    value = {"events": [{"a": [1, 2]}]}
    assert schema._schema.get_type("JSON").parse_value(value) is value
