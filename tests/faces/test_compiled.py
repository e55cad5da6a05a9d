"""Every face row whose query is compiled gives exactly the JSON graphql-core gives for it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domains.billing import invoices, schedule, subscriptions
from domains.billing.periods import billing_period_for
from domains.catalog import items, plans, prices
from domains.customers import service as customers
from domains.metering import backfills, metrics
from domains.metering.events import ingest_events
from domains.unit_of_work import UnitOfWork
from gateway.context import Context
from gateway.faces.engine import CompiledRow, Inputs
from gateway.faces.onebusiness.face import ROWS as ONEBUSINESS_ROWS
from gateway.faces.orb.routes import ROWS as ORB_ROWS
from gateway.faces.rpc.methods import METHODS
from gateway.graphql.schema import schema
from persistence.db import session_factory

QUERY_ROWS = [CompiledRow(row, schema) for row in ORB_ROWS + ONEBUSINESS_ROWS + METHODS]
QUERY_ROWS = [row for row in QUERY_ROWS if row.kind == "query"]


def test_every_query_row_is_compiled() -> None:
    assert QUERY_ROWS and all(row.compiled is not None for row in QUERY_ROWS)


@pytest.fixture
async def seeded(database, tenant):
    uow = UnitOfWork(session_factory(database.engine))
    parent = await customers.create_customer(uow, principal=tenant.principal, fields={
        "name": "Parent", "email": "parent@example.com", "external_customer_id": "parent-1", "currency": "EUR",
        "metadata": {"tier": "gold"}, "billing_address": {"city": "Lyon", "country": "FR"},
        "tax_id": {"country": "FR", "type": "eu_vat", "value": "FR123"}, "credit_limit": "1500.50",
        "accounting_sync_configuration": {"excluded": False, "accounting_providers": [
            {"provider_type": "netsuite", "external_provider_id": "ns-1"}]},
        "reporting_configuration": {"exempt": True}, "additional_emails": ["ap@example.com"],
    })
    child = await customers.create_customer(uow, principal=tenant.principal, fields={
        "name": "Child", "email": "child@example.com", "hierarchy": {"parent_customer_id": parent.id}})
    item = await items.create_item(uow, principal=tenant.principal, fields={
        "name": "API calls", "metadata": {"unit": "call"},
        "external_connections": [{"external_connection_name": "stripe", "external_entity_id": "prod_1"}]})
    metric = await metrics.create_metric(uow, principal=tenant.principal, fields={
        "name": "Tokens", "item_id": item.id, "sql": "SELECT SUM(tokens) FROM events WHERE event_name = 'llm'"})
    price = await prices.create_price(uow, principal=tenant.principal, fields={
        "name": "Tokens", "item_id": item.id, "billable_metric_id": metric.id, "cadence": "monthly",
        "currency": "USD", "model_type": "tiered", "external_price_id": "tokens-1",
        "tiered_config": {"tiers": [{"first_unit": "0", "last_unit": "1000", "unit_amount": "0.002"},
                                    {"first_unit": "1000", "last_unit": None, "unit_amount": "0.001"}]}})
    plan = await plans.create_plan(uow, principal=tenant.principal, fields={
        "name": "Pro", "currency": "USD", "external_plan_id": "pro", "net_terms": 30, "prices": [
            {"price": {"name": "Platform", "item_id": item.id, "cadence": "monthly", "model_type": "unit",
                       "unit_config": {"unit_amount": "49"}}},
            {"name": "Tokens", "item_id": item.id, "billable_metric_id": metric.id, "cadence": "monthly",
             "model_type": "package", "package_config": {"package_amount": "5", "package_size": 1000}}]})
    subscription = await subscriptions.create_subscription(uow, principal=tenant.principal, fields={
        "customer_id": child.id, "plan_id": plan.id, "start_date": datetime(2024, 1, 31, tzinfo=UTC),
        "metadata": {"deal": "q1"}})
    # A plan change, so the subscription's plan and schedule come from its phases.
    basic = await plans.create_plan(uow, principal=tenant.principal, fields={
        "name": "Basic", "currency": "USD", "prices": [{"name": "Platform", "item_id": item.id, "cadence": "monthly",
                                                        "model_type": "unit", "unit_config": {"unit_amount": "19"}}]})
    await schedule.schedule_plan_change(uow, principal=tenant.principal, subscription_id=subscription.id, fields={
        "plan_id": basic.id, "change_option": "requested_date", "change_date": datetime(2024, 6, 1, tzinfo=UTC)})
    now = datetime.now(UTC)
    await ingest_events(uow, principal=tenant.principal, events=[
        {"event_name": "llm", "timestamp": (now - timedelta(minutes=5 * i + 1)).isoformat(), "customer_id": parent.id,
         "idempotency_key": f"ev-{i}", "properties": {"tokens": i * 10, "region": "eu"}} for i in range(3)])
    backfill = await backfills.create_backfill(uow, principal=tenant.principal, fields={
        "timeframe_start": now - timedelta(days=2), "timeframe_end": now - timedelta(days=1), "customer_id": parent.id,
        "replace_existing_events": True})
    one_off = await invoices.create_invoice(uow, principal=tenant.principal, fields={
        "customer_id": child.id, "currency": "USD", "invoice_date": "2024-03-01", "memo": "setup",
        "metadata": {"po": "7"}, "will_auto_issue": True, "line_items": [
            {"name": "Setup", "quantity": "3", "unit_config": {"unit_amount": "12.5"}, "item_id": item.id},
            {"name": "Extra", "quantity": 1, "unit_config": {"unit_amount": "1"}}]})
    closed = await invoices.issue_subscription_invoice(
        uow, principal=tenant.principal, subscription=subscription,
        period=billing_period_for(subscription.start_date, "monthly", datetime(2024, 2, 15, tzinfo=UTC)))
    await uow.close()
    return {"backfill": backfill.id, "invoice": one_off.id, "subscription_invoice": closed.id, "now": now, "parent": parent.id, "child": child.id, "external": "parent-1", "item": item.id, "metric": metric.id,
            "price": price.id, "external_price": "tokens-1", "plan": plan.id, "external_plan": "pro",
            "subscription": subscription.id}


def _inputs(row: CompiledRow, seeded: dict[str, str]) -> list[Inputs]:
    path = row.row.path
    if "{customer_id}" in path:
        return [Inputs(path={"customer_id": seeded["parent"]}), Inputs(path={"customer_id": seeded["child"]})]
    if "{external_customer_id}" in path:
        return [Inputs(path={"external_customer_id": seeded["external"]})]
    if "{item_id}" in path:
        return [Inputs(path={"item_id": seeded["item"]})]
    if row.row.method == "items.get":
        return [Inputs(body={"id": seeded["item"]})]
    if "{backfill_id}" in path:
        return [Inputs(path={"backfill_id": seeded["backfill"]})]
    if row.row.method == "events.backfills.get":
        return [Inputs(body={"id": seeded["backfill"]})]
    if row.row.method == "events.search":
        return [Inputs(body={"event_ids": ["ev-0", "ev-2"]})]
    if row.row.method == "events.volume":
        return [Inputs(body={"timeframe_start": (seeded["now"] - timedelta(hours=2)).isoformat()})]
    if path == "/events/search":
        return [Inputs(body={"event_ids": ["ev-0", "ev-2"]}),
                Inputs(body={"timeframe_start": (seeded["now"] - timedelta(hours=1)).isoformat()})]
    if path == "/events/volume":
        return [Inputs(query={"timeframe_start": (seeded["now"] - timedelta(hours=2)).isoformat()})]
    if path == "/prices/evaluate":
        return [Inputs(body={"timeframe_start": "2020-01-01T00:00:00Z", "timeframe_end": "2030-01-01T00:00:00Z",
                             "customer_id": seeded["parent"], "price_evaluations": [{"price_id": seeded["price"]}]})]
    if "{invoice_id}" in path or row.row.method == "invoices.get":
        return [Inputs(path={"invoice_id": seeded[key]}, body={"id": seeded[key]})
                for key in ("invoice", "subscription_invoice")]
    if path == "/invoices/upcoming" or row.row.method == "invoices.upcoming":
        return [Inputs(query={"subscription_id": seeded["subscription"]}, body={"subscription_id": seeded["subscription"]})]
    if path == "/invoices" or row.row.method == "invoices.list":
        return [Inputs(), Inputs(query={"limit": "1"}, body={"limit": 1}),
                Inputs(query={"external_customer_id": seeded["external"]}, body={"external_customer_id": seeded["external"]}),
                Inputs(query={"subscription_id": seeded["subscription"], "status": "issued"},
                       body={"subscription_id": seeded["subscription"], "status": "issued"})]
    if "{subscription_id}" in path:
        return [Inputs(path={"subscription_id": seeded["subscription"]})]
    if row.row.method in ("subscriptions.usage", "subscriptions.costs"):
        return [Inputs(body={"id": seeded["subscription"]}),
                Inputs(body={"id": seeded["subscription"], "granularity": "day", "view_mode": "cumulative"})]
    if row.row.method == "customers.costs":
        return [Inputs(body={"id": seeded["child"]}), Inputs(body={"external_customer_id": seeded["external"]})]
    if row.row.method in ("subscriptions.get", "subscriptions.schedule"):
        return [Inputs(body={"id": seeded["subscription"]})]
    if row.row.method == "subscriptions.list":
        return [Inputs(), Inputs(body={"status": "active", "customer_id": seeded["child"], "limit": 1})]
    if path == "/subscriptions":
        return [Inputs(), Inputs(query={"status": "active", "customer_id": seeded["child"]})]
    if "{plan_id}" in path:
        return [Inputs(path={"plan_id": seeded["plan"]})]
    if "{external_plan_id}" in path:
        return [Inputs(path={"external_plan_id": seeded["external_plan"]})]
    if row.row.method == "plans.get":
        return [Inputs(body={"id": seeded["plan"]})]
    if "{price_id}" in path:
        return [Inputs(path={"price_id": seeded["price"]})]
    if "{external_price_id}" in path:
        return [Inputs(path={"external_price_id": seeded["external_price"]})]
    if row.row.method == "prices.get":
        return [Inputs(body={"id": seeded["price"]})]
    if row.row.method == "prices.get_by_external_id":
        return [Inputs(body={"external_price_id": seeded["external_price"]})]
    if "{metric_id}" in path:
        return [Inputs(path={"metric_id": seeded["metric"]})]
    if row.row.method == "metrics.get":
        return [Inputs(body={"id": seeded["metric"]})]
    if "{id}" in path:
        return [Inputs(path={"id": seeded["parent"]})]
    if row.row.method == "customers.get":
        return [Inputs(body={"id": seeded["child"]})]
    if row.row.method == "customers.get_by_external_id":
        return [Inputs(body={"external_customer_id": seeded["external"]})]
    return [Inputs(), Inputs(query={"limit": "1"}, body={"limit": 1})]


@pytest.mark.parametrize("row", QUERY_ROWS, ids=lambda r: f"{r.row.method} {r.row.path}")
async def test_compiled_and_graphql_core_agree(database, tenant, seeded, row):
    for inputs in _inputs(row, seeded):
        # The compiled path takes the face's coerced variables; graphql-core coerces the raw ones itself.
        runs = [(lambda c, i=inputs: row.compiled.execute(c, row.variables(i, coerce=True), coerced=True)),  # type: ignore[union-attr]
                (lambda c, i=inputs: row.execute_with_graphql_core(c, row.variables(i)))]
        results = []
        for run in runs:
            uow = UnitOfWork(session_factory(database.engine))
            try:
                results.append(await run(Context(principal=tenant.principal, uow=uow, max_page_size=500)))
            finally:
                await uow.close()
        assert results[0] == results[1]
        assert results[0] is not None


# --- mutations: the face's coerced variables are graphql-core's coercion, so the compiler may skip it ---

MUTATION_INPUTS = {
    ("POST", "/customers"): Inputs(body={
        "name": "Acme", "email": "a@example.com", "currency": "EUR", "metadata": {"k": "v"},
        "billing_address": {"city": "Lyon"}, "hierarchy": {"child_customer_ids": []}}),
    ("POST", "/prices"): Inputs(body={
        "name": "Tokens", "item_id": "it", "cadence": "monthly", "currency": "USD", "model_type": "tiered",
        "tiered_config": {"tiers": [{"first_unit": "0", "last_unit": "1000", "unit_amount": "0.002"},
                                    {"first_unit": "1000", "unit_amount": "0.001"}]}}),
    ("POST", "/plans"): Inputs(body={
        "name": "Pro", "currency": "USD", "net_terms": 30, "prices": [
            {"price": {"name": "Fee", "item_id": "it", "cadence": "monthly", "model_type": "unit",
                       "unit_config": {"unit_amount": "49"}}}]}),
    ("POST", "/ingest"): Inputs(query={"debug": "true"}, body={"events": [
        {"event_name": "llm", "timestamp": "2026-01-31T12:00:00Z", "idempotency_key": "k1", "customer_id": "c",
         "properties": {"tokens": 3, "region": "eu", "ok": True}}]}),
    ("POST", "/subscriptions"): Inputs(body={"customer_id": "c", "plan_id": "p", "start_date": "2026-01-01T00:00:00Z",
                                             "metadata": {"a": "b"}}),
    ("POST", "/invoices"): Inputs(body={
        "customer_id": "c", "currency": "USD", "invoice_date": "2026-03-01", "net_terms": 0,
        "line_items": [{"name": "Setup", "quantity": 2, "unit_config": {"unit_amount": "5"},
                        "start_date": "2026-03-01", "end_date": "2026-03-02"}]}),
}


@pytest.mark.parametrize("key", list(MUTATION_INPUTS), ids=lambda key: " ".join(key))
def test_face_coercion_is_graphql_core_s(key):
    from graphql.execution.values import get_variable_values

    row = next(CompiledRow(r, schema) for r in ORB_ROWS if (r.method, r.path) == key)
    assert row.kind == "mutation" and row.compiled is not None
    inputs = MUTATION_INPUTS[key]
    theirs = get_variable_values(schema._schema, row.compiled.operation.variable_definitions, row.variables(inputs))
    assert not isinstance(theirs, list), theirs
    assert row.variables(inputs, coerce=True) == theirs.coerced


def test_plain_result_classes_are_remembered_but_never_generators_or_awaitables():
    """A class found not awaitable skips the probe next time; a generator never does (a coroutine
    decorator may flag one instance and not another), nor does anything awaitable."""
    import asyncio

    from gateway.faces.compiled import _PLAIN_CLASSES, _remember_plain

    class Plain:
        pass

    def generator():
        yield 1

    _remember_plain(Plain())
    _remember_plain(generator())
    assert Plain in _PLAIN_CLASSES
    assert type(generator()) not in _PLAIN_CLASSES
    assert asyncio.Future not in _PLAIN_CLASSES
    _PLAIN_CLASSES.discard(Plain)
