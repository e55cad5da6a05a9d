"""Graph edges go through per-request dataloaders: statements do not grow with the number of rows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domains.billing import invoices, schedule
from domains.billing.periods import billing_period_for
from domains.catalog import prices
from domains.customers import service as customers
from domains.unit_of_work import UnitOfWork
from gateway.context import Context
from gateway.graphql.schema import schema
from persistence.db import session_factory
from tests.domains.billing.billing_world import make_plan, make_subscription

QUERY = """
query($first: Int) {
  customers(first: $first) {
    nodes { id name parent { id name } children { id name } hierarchy { parent { id } children { id } } }
  }
}
"""


async def _seed(uow: UnitOfWork, principal, parents: int, children_each: int) -> None:
    for p in range(parents):
        parent = await customers.create_customer(uow, principal=principal,
                                                 fields={"name": f"P{p}", "email": f"p{p}@example.com"})
        for c in range(children_each):
            await customers.create_customer(uow, principal=principal, fields={
                "name": f"C{p}.{c}", "email": f"c{p}.{c}@example.com", "hierarchy": {"parent_customer_id": parent.id}})


@pytest.mark.parametrize("size", [10, 100])
async def test_statement_count_does_not_grow_with_rows(database, tenant, count_queries, size):
    seed_uow = UnitOfWork(session_factory(database.engine))
    await _seed(seed_uow, tenant.principal, parents=-(-size // 4), children_each=3)
    await seed_uow.close()

    uow = UnitOfWork(session_factory(database.engine))
    try:
        with count_queries() as counter:
            result = await schema.execute(QUERY, variable_values={"first": size},
                                          context_value=Context(principal=tenant.principal, uow=uow))
    finally:
        await uow.close()
    assert result.errors is None
    nodes = result.data["customers"]["nodes"]
    assert len(nodes) == size
    children = [n for n in nodes if n["parent"] is not None]
    assert children and all(n["parent"]["name"].startswith("P") for n in children)
    parents = [n for n in nodes if n["children"]]
    assert all(len(p["children"]) == 3 for p in parents if p["name"] != nodes[-1]["name"])
    # One page query, one batch of parents (primed from the page, so often none), one batch of children.
    assert counter.count <= 3, counter.statements


async def _page_statements(database, tenant, count_queries, query: str) -> tuple[dict, list[str]]:
    uow = UnitOfWork(session_factory(database.engine))
    try:
        with count_queries() as counter:
            result = await schema.execute(query, context_value=Context(principal=tenant.principal, uow=uow))
    finally:
        await uow.close()
    assert result.errors is None, result.errors
    return result.data, counter.statements


async def test_a_page_reads_its_childrens_edges_once_however_they_are_selected(database, tenant, count_queries):
    seed_uow = UnitOfWork(session_factory(database.engine))
    await _seed(seed_uow, tenant.principal, parents=3, children_each=2)
    await seed_uow.close()
    expected = {f"P{p}": [f"C{p}.0", f"C{p}.1"] for p in range(3)} | {f"C{p}.{c}": [] for p in range(3) for c in range(2)}

    # Children asked for through a fragment, an inline fragment and edges { node }: one read of the page
    # with its children, nothing per row.
    for query in (
        "fragment Kids on Customer { children { name } } query { customers { nodes { name ...Kids } } }",
        "query { customers { edges { node { name ... on Customer { hierarchy { children { name } } } } } } }",
    ):
        data, statements = await _page_statements(database, tenant, count_queries, query)
        page = data["customers"]
        nodes = page["nodes"] if "nodes" in page else [edge["node"] for edge in page["edges"]]
        kids = {n["name"]: [c["name"] for c in (n["children"] if "children" in n else n["hierarchy"]["children"])] for n in nodes}
        assert kids == expected
        assert len(statements) == 1, statements

    # A page that does not show children does not read them.
    data, statements = await _page_statements(database, tenant, count_queries,
                                              "query { customers { nodes { name parent { name } } } }")
    assert len(data["customers"]["nodes"]) == 9
    assert len(statements) == 1, statements  # every parent is on the page


INVOICE_QUERY = """
query($first: Int) {
  invoices(first: $first) {
    nodes {
      id invoiceNumber total customer { id name } subscription { id status plan { id } }
      lineItems { name amount price { id name item { id } } item { id name } }
    }
  }
}
"""


async def _seed_invoices(uow: UnitOfWork, principal, count: int) -> None:
    """Subscription invoices of closed monthly periods (lines with catalogue prices) and one-offs."""
    plan = await make_plan(uow, principal)
    start = datetime(2020, 1, 1, tzinfo=UTC)
    made = 0
    while made < count - count // 10:
        subscription = await make_subscription(uow, principal, plan, start)
        for month in range(min(12, count - count // 10 - made)):
            period = billing_period_for(start, "monthly", datetime(2020, 1 + month, 15, tzinfo=UTC))
            assert await invoices.issue_subscription_invoice(uow, principal=principal, subscription=subscription,
                                                             period=period)
            made += 1
    for n in range(count // 10):
        await invoices.create_invoice(uow, principal=principal, fields={
            "customer_id": subscription.customer_id, "currency": "USD", "invoice_date": "2024-03-01",
            "line_items": [{"name": f"One-off {n}", "quantity": 2, "unit_config": {"unit_amount": "5"}}]})


@pytest.mark.parametrize("size", [10, 100])
async def test_an_invoice_page_with_its_edges_is_a_constant_number_of_statements(
        database, tenant, count_queries, size):
    seed_uow = UnitOfWork(session_factory(database.engine))
    await _seed_invoices(seed_uow, tenant.principal, size)
    await seed_uow.close()

    uow = UnitOfWork(session_factory(database.engine))
    try:
        with count_queries() as counter:
            result = await schema.execute(INVOICE_QUERY, variable_values={"first": size},
                                          context_value=Context(principal=tenant.principal, uow=uow))
    finally:
        await uow.close()
    assert result.errors is None, result.errors
    nodes = result.data["invoices"]["nodes"]
    assert len(nodes) == size
    from_subscriptions = [n for n in nodes if n["subscription"] is not None]
    assert len(from_subscriptions) == size - size // 10
    assert all(n["customer"]["name"] == "Acme" for n in nodes)
    fees = [line for n in from_subscriptions for line in n["lineItems"] if line["name"] == "Platform fee"]
    assert len(fees) == len(from_subscriptions) and all(f["amount"] == "20.00" and f["price"]["id"] for f in fees)
    one_offs = [n for n in nodes if n["subscription"] is None]
    assert all(n["lineItems"][0]["amount"] == "10.00" and n["lineItems"][0]["price"] is None for n in one_offs)
    # The page, then one batch each: line items, customers, subscriptions, their plan changes (the
    # current plan is derived from them), prices, plans, items.
    assert counter.count <= 8, counter.statements


SUBSCRIPTION_QUERY = """
query($first: Int) {
  subscriptions(first: $first) {
    nodes {
      id name status customer { id name } plan { id name prices { id } }
      priceIntervals {
        id startDate endDate currentBillingPeriodStartDate canDeferBilling
        fixedFeeQuantityTransitions { priceId effectiveDate quantity }
        price { id name item { id name } billableMetric { id } }
      }
      fixedFeeQuantitySchedule { priceId startDate endDate quantity }
    }
  }
}
"""


async def _seed_subscriptions(uow: UnitOfWork, principal, count: int) -> tuple[str, str]:
    """Subscriptions on Pro, every other one moving to Scale later, with a fixed fee quantity change."""
    pro = await make_plan(uow, principal, name="Pro")
    scale = await make_plan(uow, principal, name="Scale", fee="90.00")
    start = datetime(2020, 1, 1, tzinfo=UTC)
    pro_prices = (await prices.prices_by_plan_ids(uow, principal=principal, plan_ids=[pro.id]))[pro.id]
    for n in range(count):
        subscription = await make_subscription(uow, principal, pro, start)
        if n % 2:
            await schedule.schedule_plan_change(uow, principal=principal, subscription_id=subscription.id, fields={
                "change_option": "requested_date", "change_date": datetime(2020, 3, 1, tzinfo=UTC),
                "plan_id": scale.id})
            await schedule.change_fixed_fee_quantity(uow, principal=principal, subscription_id=subscription.id,
                                                     fields={"price_id": pro_prices[0].id, "quantity": 2,
                                                             "effective_date": "2020-02-01"})
    return pro.id, scale.id


@pytest.mark.parametrize("size", [10, 100])
async def test_a_subscription_page_with_price_intervals_is_a_constant_number_of_statements(
        database, tenant, count_queries, size):
    seed_uow = UnitOfWork(session_factory(database.engine))
    pro_id, scale_id = await _seed_subscriptions(seed_uow, tenant.principal, size)
    await seed_uow.close()

    uow = UnitOfWork(session_factory(database.engine))
    try:
        with count_queries() as counter:
            result = await schema.execute(SUBSCRIPTION_QUERY, variable_values={"first": size},
                                          context_value=Context(principal=tenant.principal, uow=uow))
    finally:
        await uow.close()
    assert result.errors is None, result.errors
    nodes = result.data["subscriptions"]["nodes"]
    assert len(nodes) == size
    moved = [n for n in nodes if n["plan"]["id"] == scale_id]
    stayed = [n for n in nodes if n["plan"]["id"] == pro_id]
    assert len(moved) == len(stayed) == size // 2
    assert all(n["name"] == "Scale" for n in moved) and all(n["name"] == "Pro" for n in stayed)
    # Two prices per phase; the movers have a Pro phase (to March) and a Scale phase (from March).
    assert all(len(n["priceIntervals"]) == 2 for n in stayed) and all(len(n["priceIntervals"]) == 4 for n in moved)
    for node in moved:
        fee, tokens, scale_fee, _ = node["priceIntervals"]
        assert (fee["startDate"], fee["endDate"]) == ("2020-01-01T00:00:00Z", "2020-03-01T00:00:00Z")
        assert [t["quantity"] for t in fee["fixedFeeQuantityTransitions"]] == ["1.00", "2.00"]
        assert tokens["fixedFeeQuantityTransitions"] is None and tokens["canDeferBilling"] is True
        assert tokens["price"]["billableMetric"]["id"] and tokens["price"]["item"]["name"] == "Pro tokens"
        assert scale_fee["startDate"] == "2020-03-01T00:00:00Z" and scale_fee["endDate"] is None
        assert scale_fee["price"]["item"]["name"] == "Scale platform"
        assert [e["quantity"] for e in node["fixedFeeQuantitySchedule"]] == ["1.00", "2.00", "1.00"]
    # The page, then one batch each: plan changes, prices of the plans, plans, quantity changes,
    # customers, items, billable metrics.
    assert counter.count <= 8, counter.statements
