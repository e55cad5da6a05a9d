"""Graph edges go through per-request dataloaders: statements do not grow with the number of rows."""

from __future__ import annotations

import pytest

from domains.customers import service as customers
from domains.unit_of_work import UnitOfWork
from gateway.context import Context
from gateway.graphql.schema import schema
from persistence.db import session_factory

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
