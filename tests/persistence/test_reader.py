"""The fast reader (outside transactions) gives what SQLAlchemy's own execution gives, IN lists included."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import bindparam, select

from domains.customers import service as customers
from persistence.tables import Customer


async def _seed(uow, tenant) -> list[str]:
    ids = []
    for index in range(4):
        customer = await customers.create_customer(uow, principal=tenant.principal, fields={
            "name": f"Reader {index}", "email": f"reader{index}@example.com", "credit_limit": f"{index}.50",
            "metadata": {"n": str(index)}})
        ids.append(customer.id)
    return ids


async def _both(uow, statement, params=None) -> tuple[list, list]:
    fast = [tuple(row) for row in await uow.rows(statement, params)]
    async with uow.transaction():  # inside a transaction reads go through the session
        slow = [tuple(row) for row in await uow.rows(statement, params)]
    return fast, slow


async def test_bound_in_lists_of_every_length(uow, tenant):
    ids = await _seed(uow, tenant)
    statement = (select(Customer.id, Customer.name, Customer.credit_limit, Customer.__table__.c.metadata, Customer.created_at)
                 .where(Customer.org_id == bindparam("org_id"), Customer.id.in_(bindparam("ids", expanding=True)))
                 .order_by(Customer.id))
    for chosen in ([], ids[:1], ids[1:4], ids[:2], [ids[0], ids[0], ids[3]]):
        fast, slow = await _both(uow, statement, {"org_id": tenant.org_id, "ids": chosen})
        assert fast == slow
        assert [row[0] for row in fast] == sorted(set(chosen))
    row = (await uow.rows(statement, {"org_id": tenant.org_id, "ids": ids[2:3]}))[0]
    assert row.credit_limit == Decimal("2.5") and row.metadata == {"n": "2"} and row.created_at.tzinfo is not None


async def test_literal_in_lists(uow, tenant):
    ids = await _seed(uow, tenant)
    statement = select(Customer.id).where(Customer.org_id == tenant.org_id, Customer.id.in_(ids[1:3])).order_by(Customer.id)
    fast, slow = await _both(uow, statement)
    assert fast == slow == [(ids[1],), (ids[2],)]


async def test_two_in_lists_in_one_statement(uow, tenant):
    ids = await _seed(uow, tenant)
    statement = (select(Customer.id)
                 .where(Customer.org_id == bindparam("org_id"), Customer.id.in_(bindparam("ids", expanding=True)),
                        Customer.name.in_(bindparam("names", expanding=True)))
                 .order_by(Customer.id))
    params = {"org_id": tenant.org_id, "ids": ids, "names": ["Reader 1", "Reader 3", "Nobody"]}
    fast, slow = await _both(uow, statement, params)
    assert fast == slow == [(ids[1],), (ids[3],)]


def test_statements_of_the_same_columns_share_one_row_class():
    """A statement prepared again (built per call, or let go by the cache) must not leave a new class
    behind each time: compiled faces remember the classes resolvers return."""
    from sqlalchemy.dialects import sqlite

    from persistence.db import _Prepared

    def prepared():
        return _Prepared.of(select(Customer.id, Customer.name).where(Customer.id == bindparam("id")), sqlite.dialect())

    first, again = prepared(), prepared()
    assert first is not again and first.row_type is again.row_type
    assert first.row_type._fields == ("id", "name")
