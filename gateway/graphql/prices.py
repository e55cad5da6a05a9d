"""Prices in the graph: the model's config as JSON beside typed fields, item and metric as edges."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from domains.catalog import price_evaluation, prices
from domains.catalog.price_configs import MODEL_TYPES
from gateway.context import Context
from gateway.graphql.catalog import ItemType
from gateway.graphql.inputs import to_fields
from gateway.graphql.metering import BillableMetricType
from gateway.graphql.pagination import PageInfo, page_arguments
from persistence.tables import Price as PriceRow

Resolve = Info[Context, None]


def _config_for(model: str):  # type: ignore[no-untyped-def]
    def resolve(root: PriceRow) -> JSON | None:
        return root.config if root.model_type == model else None

    resolve.__name__ = f"{model}_config"
    return strawberry.field(resolver=resolve, description=f"The config, when model_type is {model}.")


@strawberry.type
class BillingCycle:
    duration: int
    duration_unit: str


@strawberry.type(name="Price", description="A pricing model with its config, cadence and currency, for an item.")
class PriceType:
    id: strawberry.ID
    external_price_id: str | None
    name: str
    model_type: str
    cadence: str
    currency: str
    fixed_price_quantity: Decimal | None
    created_at: datetime
    plan_phase_order: int | None = strawberry.field(description="The plan phase it bills in (a phased plan's "
                                                                "price); null otherwise.")
    unit_config: JSON | None = _config_for("unit")
    tiered_config: JSON | None = _config_for("tiered")
    package_config: JSON | None = _config_for("package")
    matrix_config: JSON | None = _config_for("matrix")
    bulk_config: JSON | None = _config_for("bulk")
    tiered_package_config: JSON | None = _config_for("tiered_package")
    grouped_tiered_config: JSON | None = _config_for("grouped_tiered")
    threshold_total_amount_config: JSON | None = _config_for("threshold_total_amount")

    @strawberry.field(description="usage_price when a billable metric gives the quantity, else fixed_price.")
    @staticmethod
    def price_type(root: PriceRow) -> str:
        return prices.price_type(root)

    @strawberry.field(description="in_advance for fixed fees, in_arrear for usage.")
    @staticmethod
    def billing_mode(root: PriceRow) -> str:
        return prices.billing_mode(root)

    @strawberry.field(description="The length of one billing period of this price's cadence.")
    @staticmethod
    def billing_cycle_configuration(root: PriceRow) -> BillingCycle:
        return BillingCycle(duration=prices.CADENCE_MONTHS[root.cadence], duration_unit="month")

    @strawberry.field(description="The model's config (decimals as exact strings).")
    @staticmethod
    def config(root: PriceRow) -> JSON:
        return root.config

    @strawberry.field(description="Key/value strings attached by the caller.")
    @staticmethod
    def metadata(root: PriceRow) -> JSON:
        return root.price_metadata

    @strawberry.field
    @staticmethod
    def item(root: PriceRow, info: Resolve) -> ItemType:
        return info.context.loaders.item_by_id.load(root.item_id)  # type: ignore[return-value]

    @strawberry.field(description="The metric whose quantity a usage price prices.")
    @staticmethod
    def billable_metric(root: PriceRow, info: Resolve) -> BillableMetricType | None:
        if root.billable_metric_id is None:
            return None
        return info.context.loaders.metric_by_id.load(root.billable_metric_id)  # type: ignore[return-value]


@strawberry.type
class PriceConnection:
    nodes: list[PriceType]
    page_info: PageInfo


@strawberry.input(description="A new price: model_type and exactly its `<model_type>_config` object.")
class PriceInput:
    name: str
    item_id: str
    cadence: str
    model_type: str
    currency: str | None = strawberry.field(default=strawberry.UNSET, description="Required, except in a plan.")
    billable_metric_id: str | None = strawberry.UNSET
    external_price_id: str | None = strawberry.UNSET
    fixed_price_quantity: Decimal | None = strawberry.UNSET
    metadata: JSON | None = strawberry.UNSET
    unit_config: JSON | None = strawberry.UNSET
    tiered_config: JSON | None = strawberry.UNSET
    package_config: JSON | None = strawberry.UNSET
    matrix_config: JSON | None = strawberry.UNSET
    bulk_config: JSON | None = strawberry.UNSET
    tiered_package_config: JSON | None = strawberry.UNSET
    grouped_tiered_config: JSON | None = strawberry.UNSET
    threshold_total_amount_config: JSON | None = strawberry.UNSET


assert {f"{m}_config" for m in MODEL_TYPES} <= set(PriceInput.__annotations__), "a model lacks its config input"


@strawberry.type
class PriceQueries:
    @strawberry.field(description="A price by id.")
    async def price(self, info: Resolve, id: strawberry.ID) -> PriceType:
        ctx = info.context
        return await prices.get_price(ctx.uow, principal=ctx.principal, price_id=id)  # type: ignore[return-value]

    @strawberry.field(description="A price by the caller's own id for it.")
    async def price_by_external_id(self, info: Resolve, external_price_id: str) -> PriceType:
        ctx = info.context
        return await prices.get_price_by_external_id(  # type: ignore[return-value]
            ctx.uow, principal=ctx.principal, external_price_id=external_price_id)

    @strawberry.field(description="Prices, newest first, a page at a time.")
    async def prices(self, info: Resolve, first: int | None = None, after: str | None = None) -> PriceConnection:
        ctx = info.context
        limit, after_id = page_arguments(first, after)
        page = await prices.list_prices(ctx.uow, principal=ctx.principal, limit=limit, after_id=after_id)
        return PriceConnection(nodes=page.items, page_info=PageInfo.of(page))  # type: ignore[arg-type]


@strawberry.type
class PriceMutations:
    @strawberry.mutation(description="Create a price in any of the pricing models.")
    async def create_price(self, info: Resolve, input: PriceInput) -> PriceType:
        ctx = info.context
        return await prices.create_price(ctx.uow, principal=ctx.principal, fields=to_fields(input))  # type: ignore[return-value]


@strawberry.input
class PriceToEvaluate:
    price_id: str | None = strawberry.UNSET
    external_price_id: str | None = strawberry.UNSET
    filter: str | None = strawberry.field(default=strawberry.UNSET,
                                          description="Extra condition on events, e.g. region = 'eu'.")


@strawberry.input
class PriceEvaluationsInput:
    timeframe_start: datetime
    price_evaluations: list[PriceToEvaluate]
    timeframe_end: datetime | None = strawberry.field(default=strawberry.UNSET, description="Default: now.")
    customer_id: str | None = strawberry.UNSET
    external_customer_id: str | None = strawberry.UNSET


@strawberry.type
class PriceEvaluation:
    price_id: str
    external_price_id: str | None
    currency: str
    quantity: Decimal
    amount: Decimal


@strawberry.type
class PriceEvaluationQueries:
    @strawberry.field(description="What prices would charge a customer over a timeframe (nothing is written).")
    async def price_evaluations(self, info: Resolve, input: PriceEvaluationsInput) -> list[PriceEvaluation]:
        ctx = info.context
        fields = to_fields(input)
        results = await price_evaluation.evaluate_prices(
            ctx.uow, principal=ctx.principal, timeframe_start=input.timeframe_start,
            timeframe_end=fields.get("timeframe_end") or ctx.uow.clock.now(),
            customer_id=fields.get("customer_id"), external_customer_id=fields.get("external_customer_id"),
            evaluations=fields["price_evaluations"],
        )
        return [PriceEvaluation(price_id=r.price_id, external_price_id=r.external_price_id, currency=r.currency,
                                quantity=r.quantity, amount=r.amount) for r in results]
