"""POST /v1/events/search and GET /v1/events/volume: what was ingested, by id, timeframe and hour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def test_search_by_id_and_timeframe_and_hourly_volume(client, tenant, other_tenant):
    headers = {"Authorization": f"Bearer {tenant.key}"}
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    moments = [hour - timedelta(hours=2) + timedelta(minutes=10), hour - timedelta(hours=2) + timedelta(minutes=20),
               hour - timedelta(hours=1) + timedelta(minutes=5)]
    events = [{"event_name": "call", "timestamp": _iso(m), "idempotency_key": f"s{i}", "external_customer_id": "acme",
               "properties": {"n": i}} for i, m in enumerate(moments)]
    assert (await client.post("/v1/ingest", json={"events": events}, headers=headers)).status == 200
    await client.post("/v1/ingest", json={"events": [{**events[0], "idempotency_key": "theirs"}]},
                      headers={"Authorization": f"Bearer {other_tenant.key}"})

    found = await (await client.post("/v1/events/search", json={"event_ids": ["s2", "s0", "theirs"]},
                                     headers=headers)).json()
    assert [e["id"] for e in found["data"]] == ["s2", "s0"]  # newest first; another org's event unseen
    assert found["data"][1] == {"id": "s0", "customer_id": None, "external_customer_id": "acme", "event_name": "call",
                                "properties": {"n": 0}, "timestamp": _iso(moments[0]), "deprecated": False}
    window = await (await client.post("/v1/events/search", json={
        "timeframe_start": _iso(hour - timedelta(hours=2)), "timeframe_end": _iso(hour - timedelta(hours=1))},
        headers=headers)).json()
    assert [e["id"] for e in window["data"]] == ["s1", "s0"]

    volume = await (await client.get("/v1/events/volume", params={"timeframe_start": _iso(hour - timedelta(hours=3))},
                                     headers=headers)).json()
    assert volume == {"data": [
        {"timeframe_start": _iso(hour - timedelta(hours=2)), "timeframe_end": _iso(hour - timedelta(hours=1)), "count": 2},
        {"timeframe_start": _iso(hour - timedelta(hours=1)), "timeframe_end": _iso(hour), "count": 1},
    ]}


async def test_bad_windows_are_refused_naming_the_field(client, tenant):
    headers = {"Authorization": f"Bearer {tenant.key}"}
    response = await client.get("/v1/events/volume", params={"timeframe_start": "2020-01-01T00:00:00Z"}, headers=headers)
    assert response.status == 400 and (await response.json())["validation_errors"][0]["field"] == "timeframe_start"
    response = await client.get("/v1/events/volume", headers=headers)
    assert response.status == 400 and (await response.json())["validation_errors"][0]["field"] == "timeframe_start"
    response = await client.get("/v1/events/volume", params={"timeframe_start": "yesterday"}, headers=headers)
    assert response.status == 400 and (await response.json())["validation_errors"][0]["field"] == "timeframe_start"
    response = await client.post("/v1/events/search", json={"event_ids": "s0"}, headers=headers)
    assert response.status == 400 and (await response.json())["validation_errors"][0]["field"] == "event_ids"
