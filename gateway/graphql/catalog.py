"""The catalog part of the graph: items (prices and plans follow)."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from domains.catalog import items
from gateway.context import Context
from gateway.graphql.inputs import to_fields
from gateway.graphql.pagination import PageInfo, page_arguments
from persistence.tables import Item as ItemRow

Resolve = Info[Context, None]


@strawberry.type
class ExternalConnection:
    external_connection_name: str
    external_entity_id: str


@strawberry.type(name="Item", description="What a business sells; prices point at an item.")
class ItemType:
    id: strawberry.ID
    name: str
    created_at: datetime
    archived_at: datetime | None

    @strawberry.field(description="Key/value strings attached by the caller.")
    @staticmethod
    def metadata(root: ItemRow) -> JSON:
        return root.item_metadata

    @strawberry.field(description="The item's identity in invoicing and tax systems.")
    @staticmethod
    def external_connections(root: ItemRow) -> list[ExternalConnection]:
        return [ExternalConnection(**connection) for connection in root.external_connections]


@strawberry.type
class ItemConnection:
    nodes: list[ItemType]
    page_info: PageInfo


@strawberry.input
class ExternalConnectionInput:
    external_connection_name: str
    external_entity_id: str


@strawberry.input
class ItemInput:
    name: str
    metadata: JSON | None = strawberry.UNSET
    external_connections: list[ExternalConnectionInput] | None = strawberry.UNSET


@strawberry.type
class CatalogQueries:
    @strawberry.field(description="An item by id.")
    async def item(self, info: Resolve, id: strawberry.ID) -> ItemType:
        ctx = info.context
        return await items.get_item(ctx.uow, principal=ctx.principal, item_id=id)  # type: ignore[return-value]

    @strawberry.field(description="Items, newest first, a page at a time.")
    async def items(self, info: Resolve, first: int | None = None, after: str | None = None) -> ItemConnection:
        ctx = info.context
        limit, after_id = page_arguments(first, after)
        page = await items.list_items(ctx.uow, principal=ctx.principal, limit=limit, after_id=after_id)
        return ItemConnection(nodes=page.items, page_info=PageInfo.of(page))  # type: ignore[arg-type]


@strawberry.type
class CatalogMutations:
    @strawberry.mutation(description="Create an item.")
    async def create_item(self, info: Resolve, input: ItemInput) -> ItemType:
        ctx = info.context
        return await items.create_item(ctx.uow, principal=ctx.principal, fields=to_fields(input))  # type: ignore[return-value]
