"""Backfills and event amendments through the official Orb SDK, against the real server process."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orb
import pytest

pytestmark = pytest.mark.e2e


def _tokens(client: orb.Orb, start: datetime, end: datetime) -> str:
    evaluated = client.post("/prices/evaluate", cast_to=object, body={
        "timeframe_start": start.isoformat(), "timeframe_end": end.isoformat(), "external_customer_id": "acme",
        "price_evaluations": [{"external_price_id": "tokens"}]})
    return evaluated["data"][0]["quantity"]  # type: ignore[index]


def test_replacing_backfill_and_amendment_through_the_sdk(new_tenant: Callable[[], orb.Orb]) -> None:
    client = new_tenant()
    now = datetime.now(UTC)
    customer = client.customers.create(name="Acme", email="acme@example.com", external_customer_id="acme")
    item = client.items.create(name="Tokens")
    metric = client.metrics.create(name="Tokens", item_id=item.id, description=None,
                                   sql="SELECT SUM(tokens) FROM events WHERE event_name = 'llm'")
    client.prices.create(cadence="monthly", currency="USD", item_id=item.id, model_type="unit", name="Tokens",
                         unit_config={"unit_amount": "1"}, billable_metric_id=metric.id, external_price_id="tokens")
    window = (now - timedelta(hours=8), now + timedelta(minutes=1))
    client.events.ingest(events=[{"event_name": "llm", "timestamp": now - timedelta(hours=3), "idempotency_key": "old",
                                  "external_customer_id": "acme", "properties": {"tokens": 100}}])
    assert _tokens(client, *window) == "100.00"

    backfill = client.events.backfills.create(timeframe_start=now - timedelta(hours=6),
                                              timeframe_end=now - timedelta(hours=1), customer_id=customer.id,
                                              replace_existing_events=True)
    assert (backfill.status, backfill.customer_id, backfill.events_ingested) == ("pending", customer.id, 0)
    client.events.ingest(backfill_id=backfill.id, events=[
        {"event_name": "llm", "timestamp": now - timedelta(hours=4), "idempotency_key": "new",
         "customer_id": customer.id, "properties": {"tokens": 30}}])
    assert client.events.backfills.fetch(backfill.id).events_ingested == 1
    assert _tokens(client, *window) == "100.00"
    closed = client.events.backfills.close(backfill.id)
    assert closed.status == "reflected"
    assert _tokens(client, *window) == "30.00"
    assert [b.id for b in client.events.backfills.list(status="reflected")] == [backfill.id]

    amended = client.events.update("new", event_name="llm", timestamp=now - timedelta(hours=4),
                                   customer_id=customer.id, properties={"tokens": 12})
    assert amended.amended == "new"
    with pytest.raises(orb.BadRequestError):  # an amendment keeps the event's timestamp
        client.events.update("new", event_name="llm", timestamp=now - timedelta(hours=5),
                             customer_id=customer.id, properties={"tokens": 1})
    assert _tokens(client, *window) == "12.00"

    assert client.events.backfills.revert(backfill.id).status == "reverted"
    assert _tokens(client, *window) == "100.00"
    with pytest.raises(orb.ConflictError):
        client.events.backfills.revert(backfill.id)
    assert client.events.deprecate("old").deprecated == "old"
    assert _tokens(client, *window) == "0.00"
