"""Plans in the graph: their prices as a batched edge."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from domains.catalog import plans
from gateway.context import Context
from gateway.graphql.inputs import to_fields
from gateway.graphql.pagination import PageInfo, page_arguments
from gateway.graphql.prices import PriceInput, PriceType
from persistence.tables import Plan as PlanRow

Resolve = Info[Context, None]


@strawberry.type
class TrialConfig:
    trial_period: int | None
    trial_period_unit: str


@strawberry.type(name="PlanPhaseDefinition", description="A phase of a phased plan: its prices bill while it is "
                                                          "in effect, for its duration after the previous one.")
class PlanPhaseDefinitionType:
    id: strawberry.ID = strawberry.field(description="Derived from the plan and the order: stable, not stored.")
    order: int = strawberry.field(description="1 = the first phase.")
    name: str
    description: str | None
    duration: int | None = strawberry.field(description="How many duration_units it lasts; null: evergreen.")
    duration_unit: str | None = strawberry.field(description="daily, monthly, quarterly, semi_annual or annual.")
    discount: JSON | None = strawberry.field(description="Phase discounts are not offered: null.")
    minimum: JSON | None = strawberry.field(description="Phase minimums are not offered: null.")
    maximum: JSON | None = strawberry.field(description="Phase maximums are not offered: null.")
    minimum_amount: str | None = strawberry.field(description="Null (no phase minimum).")
    maximum_amount: str | None = strawberry.field(description="Null (no phase maximum).")
    align_billing_with_phase_start_date: bool = strawberry.field(description=(
        "Billing periods re-anchor at the phase's start (given on plan create; Orb's plan read does not show it)."))


@strawberry.type
class PlanProduct:
    id: strawberry.ID
    name: str
    created_at: datetime


@strawberry.type(name="Plan", description="The prices a subscription bills, in one currency.")
class PlanType:
    id: strawberry.ID
    external_plan_id: str | None
    name: str
    status: str
    currency: str
    net_terms: int | None
    created_at: datetime

    @strawberry.field(description="Empty when none was given (as Orb returns it).")
    @staticmethod
    def description(root: PlanRow) -> str:
        return root.description or ""

    @strawberry.field(description="Key/value strings attached by the caller.")
    @staticmethod
    def metadata(root: PlanRow) -> JSON:
        return root.plan_metadata

    @strawberry.field(description="The currency invoices of this plan are issued in (the plan's own).")
    @staticmethod
    def invoicing_currency(root: PlanRow) -> str:
        return root.currency

    @strawberry.field(description="Plan versions are not kept yet: every plan is version 1.")
    @staticmethod
    def version(root: PlanRow) -> int:
        return 1

    @strawberry.field(description="The free trial a new subscription to it starts with (null period: none).")
    @staticmethod
    def trial_config(root: PlanRow) -> TrialConfig:
        return TrialConfig(trial_period=root.trial_period_days, trial_period_unit="days")

    @strawberry.field(description="Its phases in order (Orb's plan_phases); null: the plan has none.")
    @staticmethod
    def plan_phases(root: PlanRow) -> list[PlanPhaseDefinitionType] | None:
        if not root.plan_phases:
            return None
        return [PlanPhaseDefinitionType(
            id=strawberry.ID(f"{root.id}_phase_{phase['order']}"), order=phase["order"], name=f"Phase {phase['order']}",
            description=None, duration=phase.get("duration"), duration_unit=phase.get("duration_unit"), discount=None,
            minimum=None, maximum=None, minimum_amount=None, maximum_amount=None,
            align_billing_with_phase_start_date=bool(phase.get("align_billing_with_phase_start_date")))
            for phase in root.plan_phases]

    @strawberry.field(description="Orb's product of the plan: the plan itself until products exist.")
    @staticmethod
    def product(root: PlanRow) -> PlanProduct:
        return PlanProduct(id=strawberry.ID(root.id), name=root.name, created_at=root.created_at)

    @strawberry.field(description="Plan-level discounts, minimums and maximums: none are supported yet.")
    @staticmethod
    def adjustments(root: PlanRow) -> JSON:
        return []

    @strawberry.field(description="The plan's prices, in the order they were added.")
    @staticmethod
    def prices(root: PlanRow, info: Resolve) -> list[PriceType]:
        return info.context.loaders.prices_by_plan_id.load(root.id)  # type: ignore[return-value]


@strawberry.type
class PlanConnection:
    nodes: list[PlanType]
    page_info: PageInfo


@strawberry.input(description="One price of a new plan (Orb's SDK shape: the price under `price`).")
class PlanPriceInput:
    price: PriceInput
    plan_phase_order: int | None = strawberry.UNSET


@strawberry.input
class PlanInput:
    name: str
    currency: str
    prices: list[PlanPriceInput] | None = strawberry.UNSET
    external_plan_id: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    net_terms: int | None = strawberry.UNSET
    status: str | None = strawberry.UNSET
    metadata: JSON | None = strawberry.UNSET
    trial_config: JSON | None = strawberry.field(default=strawberry.UNSET, description=(
        '{"trial_period": days, "trial_period_unit": "days"}: a free trial (no fixed fees) for new subscriptions.'))
    plan_phases: JSON | None = strawberry.field(default=strawberry.UNSET, description=(
        '[{"order": 1, "duration": 1, "duration_unit": "monthly"}, {"order": 2, "duration": null}]: phases in '
        "order, each price naming its plan_phase_order; only the last may be evergreen (null duration). A phase's "
        '"align_billing_with_phase_start_date": true re-anchors billing periods at its start.'))


@strawberry.input
class PlanUpdateInput:
    name: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    external_plan_id: str | None = strawberry.UNSET
    metadata: JSON | None = strawberry.UNSET


@strawberry.type
class PlanQueries:
    @strawberry.field(description="A plan by id.")
    async def plan(self, info: Resolve, id: strawberry.ID) -> PlanType:
        ctx = info.context
        return await plans.get_plan(ctx.uow, principal=ctx.principal, plan_id=id)  # type: ignore[return-value]

    @strawberry.field(description="A plan by the caller's own id for it.")
    async def plan_by_external_id(self, info: Resolve, external_plan_id: str) -> PlanType:
        ctx = info.context
        return await plans.get_plan_by_external_id(  # type: ignore[return-value]
            ctx.uow, principal=ctx.principal, external_plan_id=external_plan_id)

    @strawberry.field(description="Plans, newest first, a page at a time.")
    async def plans(self, info: Resolve, first: int | None = None, after: str | None = None) -> PlanConnection:
        ctx = info.context
        limit, after_id = page_arguments(first, after)
        page = await plans.list_plans(ctx.uow, principal=ctx.principal, limit=limit, after_id=after_id)
        return PlanConnection(nodes=page.items, page_info=PageInfo.of(page))  # type: ignore[arg-type]


@strawberry.type
class PlanMutations:
    @strawberry.mutation(description="Create a plan with its prices.")
    async def create_plan(self, info: Resolve, input: PlanInput) -> PlanType:
        ctx = info.context
        return await plans.create_plan(ctx.uow, principal=ctx.principal, fields=to_fields(input))  # type: ignore[return-value]

    @strawberry.mutation(description="Change a plan's name, description, metadata or external id.")
    async def update_plan(self, info: Resolve, id: strawberry.ID, input: PlanUpdateInput) -> PlanType:
        ctx = info.context
        return await plans.update_plan(  # type: ignore[return-value]
            ctx.uow, principal=ctx.principal, plan_id=id, fields=to_fields(input))
