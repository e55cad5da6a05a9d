"""The metering part of the graph: billable metrics and events (backfills in backfills.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from domains.metering import amendments, events, metrics
from gateway.context import Context
from gateway.graphql.catalog import ItemType
from gateway.graphql.inputs import to_fields
from gateway.graphql.pagination import PageInfo, page_arguments
from persistence.tables import BillableMetric as MetricRow
from persistence.tables import Event as EventRow

Resolve = Info[Context, None]


@strawberry.type(name="BillableMetric", description="Named SQL over events that a usage price bills.")
class BillableMetricType:
    id: strawberry.ID
    name: str
    description: str | None
    sql: str
    status: str
    created_at: datetime

    @strawberry.field(description="Key/value strings attached by the caller.")
    @staticmethod
    def metadata(root: MetricRow) -> JSON:
        return root.metric_metadata

    @strawberry.field(description="The item this metric meters.")
    @staticmethod
    def item(root: MetricRow, info: Resolve) -> ItemType:
        # The loader's future itself: sibling metrics' items load in one statement.
        return info.context.loaders.item_by_id.load(root.item_id)  # type: ignore[return-value]


@strawberry.type
class BillableMetricConnection:
    nodes: list[BillableMetricType]
    page_info: PageInfo


@strawberry.input
class BillableMetricInput:
    name: str
    sql: str
    item_id: str
    description: str | None = strawberry.UNSET
    metadata: JSON | None = strawberry.UNSET


@strawberry.type
class MeteringQueries:
    @strawberry.field(description="A billable metric by id.")
    async def metric(self, info: Resolve, id: strawberry.ID) -> BillableMetricType:
        ctx = info.context
        return await metrics.get_metric(ctx.uow, principal=ctx.principal, metric_id=id)  # type: ignore[return-value]

    @strawberry.field(description="Billable metrics, newest first, a page at a time.")
    async def metrics(self, info: Resolve, first: int | None = None, after: str | None = None) -> BillableMetricConnection:
        ctx = info.context
        limit, after_id = page_arguments(first, after)
        page = await metrics.list_metrics(ctx.uow, principal=ctx.principal, limit=limit, after_id=after_id)
        return BillableMetricConnection(nodes=page.items, page_info=PageInfo.of(page))  # type: ignore[arg-type]


@strawberry.type
class MeteringMutations:
    @strawberry.mutation(description="Create a billable metric; its SQL must be in the metric language.")
    async def create_metric(self, info: Resolve, input: BillableMetricInput) -> BillableMetricType:
        ctx = info.context
        return await metrics.create_metric(ctx.uow, principal=ctx.principal, fields=to_fields(input))  # type: ignore[return-value]


@strawberry.input
class IngestInput:
    # Each event is checked by the domain on its own (a bad one is reported, the rest stored), so
    # the list holds JSON objects rather than an input type the graph would coerce all or nothing.
    events: list[JSON] = strawberry.field(description=(
        "Events as Orb writes them: event_name, timestamp (ISO 8601, UTC), idempotency_key, "
        "customer_id or external_customer_id, properties (numbers, booleans, strings)."))


@strawberry.type
class EventValidationFailure:
    idempotency_key: str
    validation_errors: list[str]


@strawberry.type
class IngestDebug:
    ingested: list[str]
    duplicate: list[str]


@strawberry.type
class IngestResult:
    validation_failed: list[EventValidationFailure]
    debug: IngestDebug | None


@strawberry.input
class EventAmendInput:
    event_name: str
    timestamp: datetime
    properties: JSON
    customer_id: str | None = strawberry.UNSET
    external_customer_id: str | None = strawberry.UNSET


@strawberry.type
class EventAmendment:
    amended: str = strawberry.field(description="The id (idempotency key) of the amended event.")


@strawberry.type
class EventDeprecation:
    deprecated: str = strawberry.field(description="The id (idempotency key) of the deprecated event.")


@strawberry.type
class EventMutations:
    @strawberry.mutation(description="Ingest up to 500 events; each idempotency key is stored once per organisation.")
    async def ingest_events(
        self, info: Resolve, input: IngestInput, debug: bool = False,
        backfill_id: Annotated[str | None, strawberry.argument(description=(
            "A pending backfill: events of its timeframe are taken however old, and count once it is closed."))] = None,
    ) -> IngestResult:
        ctx = info.context
        outcome = await events.ingest_events(ctx.uow, principal=ctx.principal, events=input.events,
                                             backfill_id=backfill_id)
        return IngestResult(
            validation_failed=[EventValidationFailure(idempotency_key=key, validation_errors=errors)
                               for key, errors in outcome.validation_failed],
            debug=IngestDebug(ingested=outcome.ingested, duplicate=outcome.duplicate) if debug else None,
        )

    @strawberry.mutation(description=(
        "Replace an event (by id, its idempotency key) for usage; the original is kept but no longer counts. "
        "Timestamp and customer must stay the event's, within the grace period."))
    async def amend_event(self, info: Resolve, event_id: str, input: EventAmendInput) -> EventAmendment:
        ctx = info.context
        amended = await amendments.amend_event(ctx.uow, principal=ctx.principal, event_id=event_id,
                                               fields=to_fields(input))
        return EventAmendment(amended=amended)

    @strawberry.mutation(description="Stop counting an event (kept for audit), within the grace period.")
    async def deprecate_event(self, info: Resolve, event_id: str) -> EventDeprecation:
        ctx = info.context
        deprecated = await amendments.deprecate_event(ctx.uow, principal=ctx.principal, event_id=event_id)
        return EventDeprecation(deprecated=deprecated)


@strawberry.type(name="Event", description="An ingested usage event; its id is the client's idempotency key.")
class EventType:
    customer_id: str | None
    external_customer_id: str | None
    event_name: str
    timestamp: datetime

    @strawberry.field
    @staticmethod
    def id(root: EventRow) -> strawberry.ID:
        return strawberry.ID(root.idempotency_key)

    @strawberry.field
    @staticmethod
    def properties(root: EventRow) -> JSON:
        return root.properties

    @strawberry.field(description="Whether the event no longer counts (reads return only events that count).")
    @staticmethod
    def deprecated(root: EventRow) -> bool:
        return root.deprecated_by is not None


@strawberry.type
class EventVolumeBucket:
    timeframe_start: datetime
    timeframe_end: datetime
    count: int


@strawberry.type
class EventQueries:
    @strawberry.field(description="Events by id and/or timeframe, newest first (at most 500).")
    async def events(
        self, info: Resolve, event_ids: list[str] | None = None, timeframe_start: datetime | None = None,
        timeframe_end: datetime | None = None,
    ) -> list[EventType]:
        ctx = info.context
        return await events.search_events(  # type: ignore[return-value]
            ctx.uow, principal=ctx.principal, event_ids=event_ids, timeframe_start=timeframe_start,
            timeframe_end=timeframe_end)

    @strawberry.field(description="How many events each hour of a timeframe holds (hours with none left out).")
    async def event_volume(
        self, info: Resolve, timeframe_start: datetime, timeframe_end: datetime | None = None
    ) -> list[EventVolumeBucket]:
        ctx = info.context
        buckets = await events.event_volume(ctx.uow, principal=ctx.principal, timeframe_start=timeframe_start,
                                            timeframe_end=timeframe_end)
        return [EventVolumeBucket(timeframe_start=b.timeframe_start, timeframe_end=b.timeframe_end, count=b.count)
                for b in buckets]
