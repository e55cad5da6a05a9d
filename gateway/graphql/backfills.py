"""Backfills in the graph: events for a past timeframe, held back until closed (domains/metering/backfills.py)."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from domains.metering import backfills
from gateway.context import Context
from gateway.graphql.inputs import to_fields
from gateway.graphql.pagination import PageInfo, page_arguments

Resolve = Info[Context, None]


@strawberry.type(name="EventBackfill", description=(
    "Events for a past timeframe: held back while pending, counted once closed (reflected), optionally "
    "replacing the timeframe's existing events; a revert undoes it."))
class EventBackfillType:
    id: strawberry.ID
    status: str = strawberry.field(description="pending, reflected or reverted (Orb's pending_revert is never "
                                               "seen: a revert happens at once).")
    events_ingested: int
    created_at: datetime
    timeframe_start: datetime
    timeframe_end: datetime
    customer_id: str | None = strawberry.field(description="The customer it is limited to; null for all customers.")
    close_time: datetime = strawberry.field(description="When it stops accepting events; once closed, when it was.")
    reverted_at: datetime | None
    replace_existing_events: bool
    deprecation_filter: str | None


@strawberry.type
class EventBackfillConnection:
    nodes: list[EventBackfillType]
    page_info: PageInfo


@strawberry.input
class EventBackfillInput:
    timeframe_start: datetime
    timeframe_end: datetime
    close_time: datetime | None = strawberry.UNSET
    customer_id: str | None = strawberry.UNSET
    external_customer_id: str | None = strawberry.UNSET
    replace_existing_events: bool | None = strawberry.UNSET
    deprecation_filter: str | None = strawberry.field(default=strawberry.UNSET, description="Not supported: refused.")


@strawberry.type
class BackfillQueries:
    @strawberry.field(description="A backfill by id.")
    async def backfill(self, info: Resolve, id: strawberry.ID) -> EventBackfillType:
        ctx = info.context
        return await backfills.get_backfill(ctx.uow, principal=ctx.principal, backfill_id=id)  # type: ignore[return-value]

    @strawberry.field(description="Backfills, newest first, a page at a time.")
    async def backfills(
        self, info: Resolve, first: int | None = None, after: str | None = None, status: str | None = None,
        customer_id: str | None = None,
    ) -> EventBackfillConnection:
        ctx = info.context
        limit, after_id = page_arguments(first, after)
        page = await backfills.list_backfills(ctx.uow, principal=ctx.principal, limit=limit, after_id=after_id,
                                              status=status, customer_id=customer_id)
        return EventBackfillConnection(nodes=page.items, page_info=PageInfo.of(page))  # type: ignore[arg-type]


@strawberry.type
class BackfillMutations:
    @strawberry.mutation(description="Open a pending backfill; ingest into it with ingestEvents(backfillId).")
    async def create_backfill(self, info: Resolve, input: EventBackfillInput) -> EventBackfillType:
        ctx = info.context
        return await backfills.create_backfill(  # type: ignore[return-value]
            ctx.uow, principal=ctx.principal, fields=to_fields(input))

    @strawberry.mutation(description="Close a pending backfill: its events count (replacing, if it replaces).")
    async def close_backfill(self, info: Resolve, id: strawberry.ID) -> EventBackfillType:
        ctx = info.context
        return await backfills.close_backfill(ctx.uow, principal=ctx.principal, backfill_id=id)  # type: ignore[return-value]

    @strawberry.mutation(description="Revert a backfill: a pending one is discarded, a reflected one undone.")
    async def revert_backfill(self, info: Resolve, id: strawberry.ID) -> EventBackfillType:
        ctx = info.context
        return await backfills.revert_backfill(ctx.uow, principal=ctx.principal, backfill_id=id)  # type: ignore[return-value]
