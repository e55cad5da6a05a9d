"""POST /v1/prices/evaluate: the customer's metered usage in a window, priced exactly by the model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def _post(client, key, path, body):
    response = await client.post(path, json=body, headers={"Authorization": f"Bearer {key}"})
    return response.status, await response.json()


@pytest.fixture
async def setup(client, tenant):
    key = tenant.key
    _, customer = await _post(client, key, "/v1/customers", {"name": "Acme", "email": "a@example.com",
                                                              "external_customer_id": "acme"})
    _, item = await _post(client, key, "/v1/items", {"name": "Tokens"})
    _, metric = await _post(client, key, "/v1/metrics", {"name": "Tokens", "item_id": item["id"],
                                                          "sql": "SELECT SUM(tokens) FROM events WHERE event_name = 'llm'"})
    _, tiered = await _post(client, key, "/v1/prices", {
        "name": "Tokens", "item_id": item["id"], "billable_metric_id": metric["id"], "cadence": "monthly",
        "currency": "USD", "model_type": "tiered", "external_price_id": "tokens",
        "tiered_config": {"tiers": [{"first_unit": "0", "last_unit": "1000", "unit_amount": "0.002"},
                                    {"first_unit": "1000", "last_unit": None, "unit_amount": "0.0015"}]}})
    _, fee = await _post(client, key, "/v1/prices", {
        "name": "Fee", "item_id": item["id"], "cadence": "monthly", "currency": "USD", "model_type": "unit",
        "unit_config": {"unit_amount": "49.99"}, "fixed_price_quantity": "2"})
    now = datetime.now(UTC)
    events = [{"event_name": "llm", "timestamp": _iso(now - timedelta(minutes=i + 1)), "idempotency_key": f"e{i}",
               "external_customer_id": "acme", "properties": {"tokens": 300 + i, "region": "eu" if i % 2 else "us"}}
              for i in range(5)]
    events.append({**events[0], "idempotency_key": "other-name", "event_name": "embedding"})
    status, body = await _post(client, key, "/v1/ingest", {"events": events})
    assert status == 200 and body["validation_failed"] == [], body
    return {"customer": customer, "tiered": tiered, "fee": fee, "start": _iso(now - timedelta(hours=1)),
            "end": _iso(now + timedelta(minutes=1))}


async def test_tiered_usage_and_fixed_fee_are_priced_exactly(client, tenant, setup):
    status, body = await _post(client, tenant.key, "/v1/prices/evaluate", {
        "timeframe_start": setup["start"], "timeframe_end": setup["end"], "external_customer_id": "acme",
        "price_evaluations": [{"external_price_id": "tokens"}, {"price_id": setup["fee"]["id"]},
                              {"price_id": setup["tiered"]["id"], "filter": "region = 'eu'"}]})
    assert status == 200, body
    # Usage 300+301+302+303+304 = 1510: 1000 x 0.002 + 510 x 0.0015 = 2.765
    # region = 'eu' (i = 1, 3): 301 + 303 = 604 x 0.002 = 1.208
    assert body == {"data": [
        {"price_id": setup["tiered"]["id"], "external_price_id": "tokens", "currency": "USD",
         "quantity": "1510.00", "amount": "2.765"},
        {"price_id": setup["fee"]["id"], "external_price_id": None, "currency": "USD",
         "quantity": "2.00", "amount": "99.98"},
        {"price_id": setup["tiered"]["id"], "external_price_id": "tokens", "currency": "USD",
         "quantity": "604.00", "amount": "1.208"},
    ]}


@pytest.mark.parametrize(("change", "field"), [
    ({"price_evaluations": [{"price_id": "01m0000000000000000000000"}]}, "price_evaluations[0].price_id"),
    ({"price_evaluations": [{"external_price_id": "tokens", "filter": "region = (SELECT 1)"}]},
     "price_evaluations[0].filter"),
    ({"price_evaluations": []}, "price_evaluations"),
    ({"timeframe_end": "2000-01-01T00:00:00Z"}, "timeframe_end"),
    ({"customer_id": "x"}, "customer_id"),
])
async def test_bad_evaluations_name_the_field(client, tenant, setup, change, field):
    body = {"timeframe_start": setup["start"], "timeframe_end": setup["end"], "external_customer_id": "acme",
            "price_evaluations": [{"external_price_id": "tokens"}], **change}
    status, error = await _post(client, tenant.key, "/v1/prices/evaluate", body)
    assert status == 400 and error["validation_errors"][0]["field"] == field, error
