"""One customer with its children in one read: the pieces every face shows of a customer."""

from __future__ import annotations

import pytest

from domains.customers import service as customers
from domains.errors import NotFound


async def _create(uow, tenant, name: str, parent_id: str | None = None):
    fields = {"name": name, "email": f"{name.lower()}@example.com"}
    if parent_id:
        fields["hierarchy"] = {"parent_customer_id": parent_id}
    return await customers.create_customer(uow, principal=tenant.principal, fields=fields)


async def test_customer_comes_with_its_children_oldest_first(uow, tenant, other_tenant):
    parent = await _create(uow, tenant, "Parent")
    first = await _create(uow, tenant, "First", parent.id)
    second = await _create(uow, tenant, "Second", parent.id)
    await _create(uow, tenant, "Unrelated")
    await _create(uow, other_tenant, "Foreign")

    customer, children = await customers.get_customer_with_children(uow, principal=tenant.principal, customer_id=parent.id)
    assert customer.id == parent.id and customer.name == "Parent"
    assert [child.id for child in children] == [first.id, second.id]
    assert children[0].parent_id == parent.id and children[0].created_at == first.created_at

    customer, children = await customers.get_customer_with_children(uow, principal=tenant.principal, customer_id=first.id)
    assert customer.id == first.id and customer.parent_id == parent.id and children == []


async def test_another_tenant_s_customer_is_not_found(uow, tenant, other_tenant):
    parent = await _create(uow, tenant, "Parent")
    await _create(uow, tenant, "Child", parent.id)
    with pytest.raises(NotFound):
        await customers.get_customer_with_children(uow, principal=other_tenant.principal, customer_id=parent.id)
