"""One customer with its parent and children in one read, a page with its children in one read: the pieces
every face shows of customers."""

from __future__ import annotations

import pytest

from domains.customers import service as customers
from domains.errors import NotFound


async def _create(uow, tenant, name: str, parent_id: str | None = None):
    fields = {"name": name, "email": f"{name.lower()}@example.com"}
    if parent_id:
        fields["hierarchy"] = {"parent_customer_id": parent_id}
    return await customers.create_customer(uow, principal=tenant.principal, fields=fields)


async def test_customer_comes_with_its_parent_and_children_oldest_first(uow, tenant, other_tenant):
    parent = await _create(uow, tenant, "Parent")
    first = await _create(uow, tenant, "First", parent.id)
    second = await _create(uow, tenant, "Second", parent.id)
    await _create(uow, tenant, "Unrelated")
    await _create(uow, other_tenant, "Foreign")

    family = await customers.get_customer_family(uow, principal=tenant.principal, customer_id=parent.id)
    assert family.customer.id == parent.id and family.customer.name == "Parent" and family.parent is None
    assert [child.id for child in family.children] == [first.id, second.id]
    assert family.children[0].parent_id == parent.id and family.children[0].created_at == first.created_at

    family = await customers.get_customer_family(uow, principal=tenant.principal, customer_id=first.id)
    assert family.customer.id == first.id and family.customer.parent_id == parent.id and family.children == []
    assert family.parent is not None and (family.parent.id, family.parent.name) == (parent.id, "Parent")


async def test_another_tenant_s_customer_is_not_found(uow, tenant, other_tenant):
    parent = await _create(uow, tenant, "Parent")
    await _create(uow, tenant, "Child", parent.id)
    with pytest.raises(NotFound):
        await customers.get_customer_family(uow, principal=other_tenant.principal, customer_id=parent.id)


async def test_page_comes_with_its_rows_children_as_list_and_children_reads_give_them(uow, tenant, other_tenant):
    parent = await _create(uow, tenant, "Parent")
    first = await _create(uow, tenant, "First", parent.id)
    lone = await _create(uow, tenant, "Lone")
    second = await _create(uow, tenant, "Second", parent.id)
    archived = await _create(uow, tenant, "Archived")
    await customers.update_customer(uow, principal=tenant.principal, customer_id=archived.id,
                                    fields={"status": "archived"})
    await _create(uow, other_tenant, "Foreign")
    principal = tenant.principal

    # Two pages of two, then the rest: the parent's children sit on the first page, the parent on the last.
    for limit, after_id in ((2, None), (2, second.id), (10, first.id), (3, None)):
        statuses = ["active"]
        page, grouped = await customers.list_customers_with_children(
            uow, principal=principal, limit=limit, after_id=after_id, statuses=statuses)
        plain = await customers.list_customers(uow, principal=principal, limit=limit, after_id=after_id,
                                               statuses=statuses)
        assert [row.id for row in page.items] == [row.id for row in plain.items]
        assert (page.has_more, page.next_cursor) == (plain.has_more, plain.next_cursor)
        expected = await customers.children_by_parent_ids(uow, principal=principal,
                                                          parent_ids=[row.id for row in page.items])
        assert {key: [row.id for row in rows] for key, rows in grouped.items() if key in {r.id for r in page.items}} \
            == {key: [row.id for row in rows] for key, rows in expected.items()}

    page, grouped = await customers.list_customers_with_children(uow, principal=principal, limit=10)
    assert [row.id for row in page.items] == [archived.id, second.id, lone.id, first.id, parent.id]
    assert [row.id for row in grouped[parent.id]] == [first.id, second.id]
    assert page.items[-1].name == "Parent" and grouped[parent.id][0].parent_id == parent.id

    page, grouped = await customers.list_customers_with_children(uow, principal=other_tenant.principal, limit=10)
    assert [row.name for row in page.items] == ["Foreign"] and not grouped
