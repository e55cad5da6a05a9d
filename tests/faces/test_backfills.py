"""Backfills through Orb's /v1 (and JSON-RPC): pending events are invisible, closing a replacing backfill
changes what a price evaluates to, reverting restores it, bad inputs and transitions are named; both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

UNKNOWN_ID = "01m0000000000000000000000x"


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def _call(client, key, method, path, body=None, params=None) -> tuple[int, Any]:
    response = await client.request(method, path, json=body, params=params, headers={"Authorization": f"Bearer {key}"})
    return response.status, await response.json()


def _llm(key: str, moment: datetime, tokens: int, customer: str = "acme") -> dict[str, Any]:
    return {"event_name": "llm", "timestamp": _iso(moment), "idempotency_key": key, "external_customer_id": customer,
            "properties": {"tokens": tokens}}


@pytest.fixture
async def billing(client, tenant):
    return await set_up_billing(client, tenant)


async def set_up_billing(client, tenant) -> dict[str, Any]:
    """Two customers, a SUM(tokens) metric and a unit price of 1 per token."""
    key = tenant.key
    customers = {}
    for external_id in ("acme", "beta"):
        _, customers[external_id] = await _call(client, key, "POST", "/v1/customers", {
            "name": external_id.title(), "email": f"{external_id}@example.com", "external_customer_id": external_id})
    _, item = await _call(client, key, "POST", "/v1/items", {"name": "Tokens"})
    _, metric = await _call(client, key, "POST", "/v1/metrics", {
        "name": "Tokens", "item_id": item["id"], "sql": "SELECT SUM(tokens) FROM events WHERE event_name = 'llm'"})
    status, _ = await _call(client, key, "POST", "/v1/prices", {
        "name": "Tokens", "item_id": item["id"], "billable_metric_id": metric["id"], "cadence": "monthly",
        "currency": "USD", "model_type": "unit", "external_price_id": "tokens", "unit_config": {"unit_amount": "1"}})
    assert status == 201
    return {"now": datetime.now(UTC), "customers": customers}


async def _usage(client, key, customer: str, start: datetime, end: datetime) -> str:
    status, body = await _call(client, key, "POST", "/v1/prices/evaluate", {
        "timeframe_start": _iso(start), "timeframe_end": _iso(end), "external_customer_id": customer,
        "price_evaluations": [{"external_price_id": "tokens"}]})
    assert status == 200, body
    return body["data"][0]["amount"]


async def _ingest(client, key, events, backfill_id=None) -> dict[str, Any]:
    params = {"debug": "true"} | ({"backfill_id": backfill_id} if backfill_id else {})
    status, body = await _call(client, key, "POST", "/v1/ingest", {"events": events}, params=params)
    assert status == 200, body
    return body


async def _search(client, key, ids) -> list[str]:
    status, body = await _call(client, key, "POST", "/v1/events/search", {"event_ids": ids})
    assert status == 200, body
    return sorted(event["id"] for event in body["data"])


async def test_replacing_backfill_changes_usage_on_close_and_revert_restores_it(client, tenant, billing):
    key, now = tenant.key, billing["now"]
    window = (now - timedelta(hours=8), now + timedelta(minutes=1))
    await _ingest(client, key, [_llm("old-1", now - timedelta(hours=3), 100), _llm("old-2", now - timedelta(hours=2), 50),
                                _llm("beta-1", now - timedelta(hours=3), 7, "beta"),
                                _llm("late", now - timedelta(minutes=30), 1)])
    assert await _usage(client, key, "acme", *window) == "151.00"

    status, backfill = await _call(client, key, "POST", "/v1/events/backfills", {
        "timeframe_start": _iso(now - timedelta(hours=6)), "timeframe_end": _iso(now - timedelta(hours=1)),
        "external_customer_id": "acme", "replace_existing_events": True})
    assert status == 201, backfill
    assert backfill["status"] == "pending" and backfill["events_ingested"] == 0
    assert backfill["customer_id"] == billing["customers"]["acme"]["id"]
    assert backfill["replace_existing_events"] is True and backfill["reverted_at"] is None
    assert backfill["deprecation_filter"] is None
    assert datetime.fromisoformat(backfill["close_time"]) > now + timedelta(hours=23)  # Orb's default: one day

    result = await _ingest(client, key, [
        _llm("new-1", now - timedelta(hours=5), 10), _llm("new-2", now - timedelta(hours=4), 20),
        _llm("outside", now - timedelta(minutes=30), 99),  # after the timeframe
        _llm("other-customer", now - timedelta(hours=4), 99, "beta"),
    ], backfill_id=backfill["id"])
    assert result["debug"]["ingested"] == ["new-1", "new-2"]
    failed = {f["idempotency_key"]: f["validation_errors"] for f in result["validation_failed"]}
    assert "outside the backfill's timeframe" in failed["outside"][0]
    assert "not the backfill's customer" in failed["other-customer"][0]

    # Pending: stored, counted on the backfill, invisible to usage, search and volume.
    _, fetched = await _call(client, key, "GET", f"/v1/events/backfills/{backfill['id']}")
    assert (fetched["status"], fetched["events_ingested"]) == ("pending", 2)
    assert await _usage(client, key, "acme", *window) == "151.00"
    assert await _search(client, key, ["new-1", "new-2", "old-1"]) == ["old-1"]
    _, volume = await _call(client, key, "GET", "/v1/events/volume", params={"timeframe_start": _iso(window[0])})
    assert sum(bucket["count"] for bucket in volume["data"]) == 4

    status, closed = await _call(client, key, "POST", f"/v1/events/backfills/{backfill['id']}/close")
    assert status == 200, closed
    assert closed["status"] == "reflected" and datetime.fromisoformat(closed["close_time"]) <= datetime.now(UTC)
    # acme's two events in the timeframe are replaced by the backfill's; the later one and beta's still count.
    assert await _usage(client, key, "acme", *window) == "31.00"
    assert await _usage(client, key, "beta", *window) == "7.00"
    assert await _search(client, key, ["new-1", "new-2", "old-1", "old-2", "late"]) == ["late", "new-1", "new-2"]

    status, reverted = await _call(client, key, "POST", f"/v1/events/backfills/{backfill['id']}/revert")
    assert status == 200, reverted
    assert reverted["status"] == "reverted" and reverted["reverted_at"] is not None
    assert await _usage(client, key, "acme", *window) == "151.00"
    assert await _search(client, key, ["new-1", "new-2", "old-1", "old-2"]) == ["old-1", "old-2"]

    # Terminal: no second revert, no close, no more events.
    for verb in ("close", "revert"):
        status, error = await _call(client, key, "POST", f"/v1/events/backfills/{backfill['id']}/{verb}")
        assert status == 409 and "reverted" in error["detail"], error
    status, error = await _call(client, key, "POST", "/v1/ingest", {"events": [_llm("x", now - timedelta(hours=5), 1)]},
                                params={"backfill_id": backfill["id"]})
    assert status == 409 and "accepts no more events" in error["detail"]


async def test_additive_backfill_takes_events_older_than_the_grace_period(client, tenant, billing):
    key, now = tenant.key, billing["now"]
    old = now - timedelta(days=3)
    window = (now - timedelta(days=4), now + timedelta(minutes=1))
    refused = await _ingest(client, key, [_llm("too-old", old, 5)])
    assert "grace period" in refused["validation_failed"][0]["validation_errors"][0]
    await _ingest(client, key, [_llm("recent", now - timedelta(hours=1), 100)])

    _, backfill = await _call(client, key, "POST", "/v1/events/backfills", {
        "timeframe_start": _iso(old - timedelta(hours=1)), "timeframe_end": _iso(old + timedelta(hours=1))})
    assert backfill["replace_existing_events"] is False and backfill["customer_id"] is None
    result = await _ingest(client, key, [_llm("too-old", old, 5), _llm("beta-old", old, 3, "beta")],
                           backfill_id=backfill["id"])
    assert result["debug"]["ingested"] == ["too-old", "beta-old"] and result["validation_failed"] == []
    assert await _usage(client, key, "acme", *window) == "100.00"
    await _call(client, key, "POST", f"/v1/events/backfills/{backfill['id']}/close")
    assert await _usage(client, key, "acme", *window) == "105.00"  # added, nothing replaced
    assert await _usage(client, key, "beta", *window) == "3.00"
    status, error = await _call(client, key, "POST", f"/v1/events/backfills/{backfill['id']}/close")
    assert status == 409 and "reflected" in error["detail"]


async def test_reverting_a_pending_backfill_discards_its_events(client, tenant, billing):
    key, now = tenant.key, billing["now"]
    window = (now - timedelta(hours=8), now + timedelta(minutes=1))
    await _ingest(client, key, [_llm("kept", now - timedelta(hours=3), 40)])
    _, backfill = await _call(client, key, "POST", "/v1/events/backfills", {
        "timeframe_start": _iso(now - timedelta(hours=6)), "timeframe_end": _iso(now - timedelta(hours=1)),
        "replace_existing_events": True})
    await _ingest(client, key, [_llm("discarded", now - timedelta(hours=2), 9)], backfill_id=backfill["id"])
    status, reverted = await _call(client, key, "POST", f"/v1/events/backfills/{backfill['id']}/revert")
    assert status == 200 and reverted["status"] == "reverted" and reverted["events_ingested"] == 1
    assert await _usage(client, key, "acme", *window) == "40.00"
    assert await _search(client, key, ["kept", "discarded"]) == ["kept"]


async def test_a_later_backfill_replacing_a_reverted_ones_events_does_not_revive_them(client, tenant, billing):
    key, now = tenant.key, billing["now"]
    window = (now - timedelta(hours=8), now + timedelta(minutes=1))
    timeframe = {"timeframe_start": _iso(now - timedelta(hours=6)), "timeframe_end": _iso(now - timedelta(hours=1)),
                 "replace_existing_events": True}
    await _ingest(client, key, [_llm("original", now - timedelta(hours=3), 1000)])
    _, first = await _call(client, key, "POST", "/v1/events/backfills", timeframe)
    await _ingest(client, key, [_llm("first", now - timedelta(hours=3), 100)], backfill_id=first["id"])
    await _call(client, key, "POST", f"/v1/events/backfills/{first['id']}/close")
    _, second = await _call(client, key, "POST", "/v1/events/backfills", timeframe)
    await _ingest(client, key, [_llm("second", now - timedelta(hours=3), 10)], backfill_id=second["id"])
    await _call(client, key, "POST", f"/v1/events/backfills/{second['id']}/close")
    assert await _usage(client, key, "acme", *window) == "10.00"
    await _call(client, key, "POST", f"/v1/events/backfills/{first['id']}/revert")  # its events were replaced already
    assert await _usage(client, key, "acme", *window) == "1010.00"  # the original is back
    await _call(client, key, "POST", f"/v1/events/backfills/{second['id']}/revert")
    assert await _usage(client, key, "acme", *window) == "1000.00"  # `first` stays reverted


@pytest.mark.parametrize(("change", "field"), [
    ({"timeframe_end": "START"}, "timeframe_end"),
    ({"timeframe_end": "2000-01-01T00:00:00Z"}, "timeframe_end"),
    ({"timeframe_start": "2000-01-01T00:00:00Z"}, "timeframe_end"),  # longer than 31 days
    ({"timeframe_start": "yesterday"}, "timeframe_start"),
    ({"customer_id": "CUSTOMER", "external_customer_id": "acme"}, "customer_id"),
    ({"customer_id": UNKNOWN_ID}, "customer_id"),
    ({"external_customer_id": "nobody"}, "external_customer_id"),
    ({"deprecation_filter": "region = 'eu'"}, "deprecation_filter"),
    ({"close_time": "2000-01-01T00:00:00Z"}, "close_time"),
    ({"replace_existing_events": "yes"}, "replace_existing_events"),
    ({"replace_existing": True}, "replace_existing"),
])
async def test_bad_backfills_are_refused_naming_the_field(client, tenant, billing, change, field):
    now = billing["now"]
    body = {"timeframe_start": _iso(now - timedelta(hours=6)), "timeframe_end": _iso(now - timedelta(hours=1))}
    for name, value in change.items():
        value = {"START": body["timeframe_start"], "CUSTOMER": billing["customers"]["acme"]["id"]}.get(value, value)
        body[name] = value
    status, error = await _call(client, tenant.key, "POST", "/v1/events/backfills", body)
    assert status == 400, error
    assert error["validation_errors"][0]["field"] == field, error
    _, page = await _call(client, tenant.key, "GET", "/v1/events/backfills")
    assert page["data"] == []  # nothing half-created


async def test_unknown_and_foreign_backfills_are_not_found(client, tenant, other_tenant, billing):
    now = billing["now"]
    _, theirs = await _call(client, other_tenant.key, "POST", "/v1/events/backfills", {
        "timeframe_start": _iso(now - timedelta(hours=6)), "timeframe_end": _iso(now - timedelta(hours=1))})
    for backfill_id in (UNKNOWN_ID, theirs["id"]):
        for method, path in (("GET", ""), ("POST", "/close"), ("POST", "/revert")):
            status, error = await _call(client, tenant.key, method, f"/v1/events/backfills/{backfill_id}{path}")
            assert status == 404 and "backfill" in error["detail"], (path, error)
        status, error = await _call(client, tenant.key, "POST", "/v1/ingest",
                                    {"events": [_llm("k", now - timedelta(hours=2), 1)]}, params={"backfill_id": backfill_id})
        assert status == 404, error
    _, still = await _call(client, other_tenant.key, "GET", f"/v1/events/backfills/{theirs['id']}")
    assert still["status"] == "pending"


async def test_backfills_list_newest_first_in_cursor_pages_and_by_status(client, tenant, billing):
    now, key = billing["now"], tenant.key
    made = []
    for hours in (6, 5, 4):
        _, backfill = await _call(client, key, "POST", "/v1/events/backfills", {
            "timeframe_start": _iso(now - timedelta(hours=hours)), "timeframe_end": _iso(now - timedelta(hours=1))})
        made.append(backfill["id"])
    await _call(client, key, "POST", f"/v1/events/backfills/{made[0]}/close")
    status, first = await _call(client, key, "GET", "/v1/events/backfills", params={"limit": "2"})
    assert status == 200 and [b["id"] for b in first["data"]] == [made[2], made[1]]
    assert first["pagination_metadata"]["has_more"] is True
    _, rest = await _call(client, key, "GET", "/v1/events/backfills",
                          params={"limit": "2", "cursor": first["pagination_metadata"]["next_cursor"]})
    assert [b["id"] for b in rest["data"]] == [made[0]]
    assert rest["pagination_metadata"] == {"has_more": False, "next_cursor": None}
    _, reflected = await _call(client, key, "GET", "/v1/events/backfills", params={"status": "reflected"})
    assert [b["id"] for b in reflected["data"]] == [made[0]]
    status, error = await _call(client, key, "GET", "/v1/events/backfills", params={"status": "done"})
    assert status == 400 and error["validation_errors"][0]["field"] == "status"


async def test_backfills_over_json_rpc(client, tenant, billing):
    now = billing["now"]

    async def rpc(method, params):
        response = await client.post("/", json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
                                     headers={"X-Api-Key": tenant.key})
        return await response.json()

    created = await rpc("events.backfills.create", {
        "timeframe_start": _iso(now - timedelta(hours=6)), "timeframe_end": _iso(now - timedelta(hours=1)),
        "external_customer_id": "acme", "replace_existing_events": True})
    backfill_id = created["result"]["id"]
    ingested = await rpc("events.ingest", {"events": [_llm("r1", now - timedelta(hours=2), 8)], "debug": True,
                                           "backfill_id": backfill_id})
    assert ingested["result"]["debug"]["ingested"] == ["r1"]
    assert (await rpc("events.search", {"event_ids": ["r1"]}))["result"] == []
    closed = await rpc("events.backfills.close", {"id": backfill_id})
    assert closed["result"]["status"] == "reflected" and closed["result"]["events_ingested"] == 1
    assert [e["id"] for e in (await rpc("events.search", {"event_ids": ["r1"]}))["result"]] == ["r1"]
    listed = await rpc("events.backfills.list", {"status": "reflected"})
    assert [b["id"] for b in listed["result"]["data"]] == [backfill_id]
    assert (await rpc("events.backfills.get", {"id": backfill_id}))["result"]["status"] == "reflected"
    again = await rpc("events.backfills.close", {"id": backfill_id})
    assert "error" in again and "reflected" in again["error"]["message"]
    volume = await rpc("events.volume", {"timeframe_start": _iso(now - timedelta(hours=6))})
    assert sum(b["count"] for b in volume["result"]) == 1
    reverted = await rpc("events.backfills.revert", {"id": backfill_id})
    assert reverted["result"]["status"] == "reverted"
