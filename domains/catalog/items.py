"""Items: what a business sells. Prices point at an item; invoices and tax sync group by it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, select

from domains.errors import NotFound, ValidationFailed
from domains.metadata import merge_metadata
from domains.pagination import Page, page_size
from domains.tenancy.service import Principal
from domains.text import refuse_unknown, text
from domains.unit_of_work import UnitOfWork
from persistence.ids import new_id
from persistence.tables import Item

EXTERNAL_CONNECTIONS = ("stripe", "quickbooks", "bill.com", "netsuite", "taxjar", "avalara", "anrok", "numeral",
                        "stripe_tax")
_FIELDS = frozenset({"name", "metadata", "external_connections"})
_READ_COLUMNS = [
    column.label("item_metadata") if column.name == "metadata" else column
    for column in Item.__table__.columns  # type: ignore[attr-defined]
]


@cache
def _read_statement(*, by_id: bool = False, many: bool = False, after: bool = False) -> Select[Any]:
    statement = select(*_READ_COLUMNS).where(Item.org_id == bindparam("org_id"))
    if by_id:
        statement = statement.where(Item.id.in_(bindparam("ids", expanding=True)) if many  # type: ignore[attr-defined]
                                    else Item.id == bindparam("id"))
        return statement
    if after:
        statement = statement.where(Item.id < bindparam("after_id"))
    return statement.order_by(Item.id.desc()).limit(bindparam("limit"))  # type: ignore[attr-defined]


def _external_connections(value: Any) -> list[dict[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValidationFailed("external_connections", "must be a list")
    cleaned = []
    for index, connection in enumerate(value):
        field = f"external_connections[{index}]"
        if not isinstance(connection, Mapping):
            raise ValidationFailed(field, "must be an object")
        name = connection.get("external_connection_name")
        if name not in EXTERNAL_CONNECTIONS:
            raise ValidationFailed(f"{field}.external_connection_name", f"must be one of {', '.join(EXTERNAL_CONNECTIONS)}")
        entity = connection.get("external_entity_id")
        if not isinstance(entity, str) or not entity:
            raise ValidationFailed(f"{field}.external_entity_id", "is required")
        cleaned.append({"external_connection_name": name, "external_entity_id": entity})
    return cleaned


async def create_item(uow: UnitOfWork, *, principal: Principal, fields: Mapping[str, Any]) -> Item:
    """Create an item; `name` is required."""
    refuse_unknown(fields, _FIELDS, "an item field")
    item = Item(
        id=new_id(), org_id=principal.org_id, name=text("name", fields.get("name"), required=True),  # type: ignore[arg-type]
        item_metadata=merge_metadata("metadata", fields.get("metadata")),
        external_connections=_external_connections(fields.get("external_connections")),
        created_at=uow.clock.now(),
    )
    async with uow.transaction():
        uow.session.add(item)
    return item


async def get_item(uow: UnitOfWork, *, principal: Principal, item_id: str) -> Item:
    rows = await uow.rows(_read_statement(by_id=True), {"org_id": principal.org_id, "id": item_id})
    if not rows:
        raise NotFound(f"item {item_id!r} was not found", field="item_id")
    return rows[0]  # type: ignore[return-value]


async def items_by_ids(uow: UnitOfWork, *, principal: Principal, ids: Sequence[str]) -> dict[str, Item]:
    if not ids:
        return {}
    rows = await uow.rows(_read_statement(by_id=True, many=True), {"org_id": principal.org_id, "ids": list(set(ids))})
    return {row.id: row for row in rows}  # type: ignore[misc]


async def list_items(
    uow: UnitOfWork, *, principal: Principal, limit: int | None = None, after_id: str | None = None
) -> Page[Item]:
    """Newest first, by keyset on the time-ordered id."""
    limit = page_size(limit)
    params: dict[str, Any] = {"org_id": principal.org_id, "limit": limit + 1}
    if after_id is not None:
        params["after_id"] = after_id
    return Page.from_rows(await uow.rows(_read_statement(after=after_id is not None), params), limit)
