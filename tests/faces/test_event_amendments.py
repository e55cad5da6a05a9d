"""PUT /v1/events/{id}/amend (and the SDK's PUT /v1/events/{id}) and /deprecate: the amended event is what
counts, the original kept; the organisation's grace period decides what may change; both databases."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from domains.unit_of_work import UnitOfWork
from persistence.db import session_factory
from persistence.tables import Event
from tests.faces.test_backfills import _call, _ingest, _iso, _llm, _search, _usage, set_up_billing


@pytest.fixture
async def billing(client, tenant):
    return await set_up_billing(client, tenant)


def _amend(event: dict[str, Any], **change: Any) -> dict[str, Any]:
    body = {k: v for k, v in event.items() if k != "idempotency_key"}
    return {**body, **change}


async def _gql(client, tenant, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=tenant.bearer)
    return await response.json()


async def test_an_amended_event_replaces_the_original_for_usage(client, tenant, database, billing):
    key, now = tenant.key, billing["now"]
    window = (now - timedelta(hours=2), now + timedelta(minutes=1))
    original = _llm("e1", now - timedelta(minutes=30), 100)
    await _ingest(client, key, [original, _llm("e2", now - timedelta(minutes=20), 5)])
    assert await _usage(client, key, "acme", *window) == "105.00"

    status, body = await _call(client, key, "PUT", "/v1/events/e1/amend", _amend(original, properties={"tokens": 40}))
    assert (status, body) == (200, {"amended": "e1"})
    assert await _usage(client, key, "acme", *window) == "45.00"
    # The SDK's path (`client.events.update`), amending the amendment.
    status, body = await _call(client, key, "PUT", "/v1/events/e1",
                               _amend(original, properties={"tokens": 7}, event_name="llm"))
    assert (status, body) == (200, {"amended": "e1"})
    assert await _usage(client, key, "acme", *window) == "12.00"
    _, found = await _call(client, key, "POST", "/v1/events/search", {"event_ids": ["e1"]})
    assert [(e["id"], e["properties"], e["deprecated"]) for e in found["data"]] == [("e1", {"tokens": 7}, False)]

    # Audit-safe: every version is kept, only the last counts; a replay of the key is still a duplicate.
    unit = UnitOfWork(session_factory(database.engine))
    try:
        rows = (await unit.session.execute(select(Event).where(Event.org_id == tenant.org_id,
                                                               Event.idempotency_key == "e1")
                                           .order_by(Event.amendment))).scalars().all()
    finally:
        await unit.close()
    assert [(r.amendment, r.properties["tokens"], r.deprecated_by is None) for r in rows] == [
        (0, 100, False), (1, 40, False), (2, 7, True)]
    result = await _ingest(client, key, [original])
    assert result["debug"] == {"ingested": [], "duplicate": ["e1"]}


async def test_deprecated_events_stop_counting(client, tenant, billing):
    key, now = tenant.key, billing["now"]
    window = (now - timedelta(hours=2), now + timedelta(minutes=1))
    await _ingest(client, key, [_llm("d1", now - timedelta(minutes=30), 100), _llm("d2", now - timedelta(minutes=20), 5)])
    status, body = await _call(client, key, "PUT", "/v1/events/d1/deprecate")
    assert (status, body) == (200, {"deprecated": "d1"})
    assert await _usage(client, key, "acme", *window) == "5.00"
    assert await _search(client, key, ["d1", "d2"]) == ["d2"]
    for method, path, body in (("PUT", "/v1/events/d1/deprecate", None),
                               ("PUT", "/v1/events/d1/amend", _amend(_llm("d1", now - timedelta(minutes=30), 1)))):
        status, error = await _call(client, key, method, path, body)
        assert status == 404 and error["type"].endswith("404-resource-not-found"), error


@pytest.mark.parametrize(("change", "status", "field"), [
    ({"timestamp": "SHIFTED"}, 400, "timestamp"),
    ({"timestamp": "yesterday"}, 400, "timestamp"),
    ({"properties": {"nested": {"a": 1}}}, 400, "properties"),
    ({"event_name": ""}, 400, "event_name"),
    ({"external_customer_id": "beta"}, 400, "external_customer_id"),
    ({"external_customer_id": None, "customer_id": "BETA"}, 400, "customer_id"),
    ({"customer_id": "ACME"}, 400, "customer_id"),  # both ids
    ({"idempotency_key": "e9"}, 400, "idempotency_key"),  # Orb takes no key: the path names the event
])
async def test_bad_amendments_are_refused_naming_the_field(client, tenant, billing, change, status, field):
    key, now = tenant.key, billing["now"]
    original = _llm("a1", now - timedelta(minutes=30), 100)
    await _ingest(client, key, [original])
    substitutes = {"SHIFTED": _iso(now - timedelta(minutes=29)), "BETA": billing["customers"]["beta"]["id"],
                   "ACME": billing["customers"]["acme"]["id"]}
    body = _amend(original, **{k: substitutes.get(v, v) if isinstance(v, str) else v for k, v in change.items()})
    got, error = await _call(client, key, "PUT", "/v1/events/a1/amend", body)
    assert got == status and error["validation_errors"][0]["field"] == field, error
    assert await _usage(client, key, "acme", now - timedelta(hours=1), now + timedelta(minutes=1)) == "100.00"


async def test_unknown_foreign_and_pending_backfill_events_cannot_be_amended(client, tenant, other_tenant, billing):
    key, now = tenant.key, billing["now"]
    event = _llm("mine", now - timedelta(minutes=30), 1)
    await _call(client, other_tenant.key, "POST", "/v1/customers", {"name": "A", "external_customer_id": "acme"})
    await _ingest(client, other_tenant.key, [event])
    _, backfill = await _call(client, key, "POST", "/v1/events/backfills", {
        "timeframe_start": _iso(now - timedelta(hours=1)), "timeframe_end": _iso(now)})
    await _ingest(client, key, [_llm("pending", now - timedelta(minutes=30), 1)], backfill_id=backfill["id"])
    for event_id in ("nothing", "mine", "pending"):
        status, error = await _call(client, key, "PUT", f"/v1/events/{event_id}/amend", _amend(event))
        assert status == 404, (event_id, error)
        status, error = await _call(client, key, "PUT", f"/v1/events/{event_id}/deprecate")
        assert status == 404, (event_id, error)


async def test_the_organisations_grace_period_governs_ingest_amend_and_deprecate(client, tenant, other_tenant, billing):
    key, now = tenant.key, billing["now"]
    event = _llm("g1", now - timedelta(hours=2), 10)
    await _ingest(client, key, [event])  # within the default 12 hours
    settings = await _gql(client, tenant, "{ organisation { id eventGracePeriodSeconds } }")
    assert settings["data"]["organisation"] == {"id": tenant.org_id, "eventGracePeriodSeconds": 43200}

    changed = await _gql(client, tenant, "mutation { setEventGracePeriod(seconds: 3600) { eventGracePeriodSeconds } }")
    assert changed["data"]["setEventGracePeriod"] == {"eventGracePeriodSeconds": 3600}
    refused = await _ingest(client, key, [_llm("g2", now - timedelta(hours=2), 10)])
    assert "older than the grace period (1:00:00)" in refused["validation_failed"][0]["validation_errors"][0]
    status, error = await _call(client, key, "PUT", "/v1/events/g1/amend", _amend(event, properties={"tokens": 1}))
    assert status == 400 and error["validation_errors"][0]["field"] == "timestamp" and "backfill" in error["detail"]
    status, error = await _call(client, key, "PUT", "/v1/events/g1/deprecate")
    assert status == 400 and error["validation_errors"][0]["field"] == "event_id"
    # Another organisation keeps Orb's default.
    other = await _ingest(client, other_tenant.key, [_llm("g2", now - timedelta(hours=2), 10)])
    assert other["debug"]["ingested"] == ["g2"]

    for bad in (0, 59, 31 * 86400 + 1):
        refused = await _gql(client, tenant, "mutation($s: Int!) { setEventGracePeriod(seconds: $s) { name } }",
                             {"s": bad})
        assert refused["errors"][0]["extensions"] == {"code": "VALIDATION_FAILED",
                                                      "field": "event_grace_period_seconds"}, refused


async def test_amend_and_deprecate_over_json_rpc(client, tenant, billing):
    now = billing["now"]

    async def rpc(method, params):
        response = await client.post("/", json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
                                     headers={"X-Api-Key": tenant.key})
        return await response.json()

    original = _llm("j1", now - timedelta(minutes=10), 9)
    await _ingest(client, tenant.key, [original, _llm("j2", now - timedelta(minutes=5), 1)])
    amended = await rpc("events.amend", {"event_id": "j1", **_amend(original, properties={"tokens": 3})})
    assert amended["result"] == {"amended": "j1"}
    assert (await rpc("events.deprecate", {"event_id": "j2"}))["result"] == {"deprecated": "j2"}
    assert await _usage(client, tenant.key, "acme", now - timedelta(hours=1), now + timedelta(minutes=1)) == "3.00"
    missing = await rpc("events.deprecate", {"event_id": "j2"})
    assert "error" in missing and "j2" in missing["error"]["message"]
