"""Builders shared by the invoicing tests: a customer, plans with a fixed fee and a tiered usage
price, a subscription, and events ingested at the clock's instant (the clock is moved to them)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from domains.billing import subscriptions as subs
from domains.catalog import items, plans
from domains.customers import service as customers
from domains.metering import events, metrics
from persistence.ids import new_id

TIERS = [{"first_unit": "0", "last_unit": "1000", "unit_amount": "0.01"},
         {"first_unit": "1000", "last_unit": None, "unit_amount": "0.005"}]


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def tiered_amount(tokens: int) -> Decimal:
    """The TIERS price of a quantity, by hand: 1 cent each up to 1,000, then half a cent."""
    first = min(tokens, 1000)
    return Decimal(first) * Decimal("0.01") + Decimal(max(tokens - 1000, 0)) * Decimal("0.005")


async def make_plan(uow: Any, principal: Any, *, fee: str = "20.00", usage: dict[str, Any] | None = None,
                    name: str = "Pro", fee_cadence: str = "monthly") -> Any:
    item = await items.create_item(uow, principal=principal, fields={"name": f"{name} platform"})
    tokens = await items.create_item(uow, principal=principal, fields={"name": f"{name} tokens"})
    metric = await metrics.create_metric(uow, principal=principal, fields={
        "name": f"{name} tokens", "item_id": tokens.id,
        "sql": "SELECT SUM(tokens) FROM events WHERE event_name = 'llm'"})
    prices = [
        {"name": "Platform fee", "item_id": item.id, "cadence": fee_cadence, "model_type": "unit",
         "unit_config": {"unit_amount": fee}, "fixed_price_quantity": "1"},
        {"name": "Tokens", "item_id": tokens.id, "billable_metric_id": metric.id, "cadence": "monthly",
         **(usage or {"model_type": "tiered", "tiered_config": {"tiers": TIERS}})},
    ]
    return await plans.create_plan(uow, principal=principal, fields={
        "name": name, "currency": "USD", "prices": prices, "net_terms": 30})


async def make_subscription(uow: Any, principal: Any, plan: Any, start: datetime, **fields: Any) -> Any:
    customer = await customers.create_customer(uow, principal=principal, fields={
        "name": "Acme", "email": "billing@acme.com", "external_customer_id": f"acme-{new_id()}"})
    return await subs.create_subscription(uow, principal=principal, fields={
        "customer_id": customer.id, "plan_id": plan.id, "start_date": start, **fields})


async def send_tokens(uow: Any, principal: Any, subscription: Any, when: datetime, tokens: int, key: str) -> None:
    """One `llm` event of ``tokens`` at ``when``; the clock is set there, as if it arrived live."""
    uow.clock.advance(when - uow.clock.now())
    result = await events.ingest_events(uow, principal=principal, events=[{
        "event_name": "llm", "timestamp": when.isoformat(), "idempotency_key": key,
        "customer_id": subscription.customer_id, "properties": {"tokens": tokens}}])
    assert result.ingested == [key], result
