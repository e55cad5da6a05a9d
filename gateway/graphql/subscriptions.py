"""Subscriptions in the graph: a customer on a plan, its status and current billing period from the clock."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from domains.billing import cycles, phases, schedule, subscriptions
from domains.billing.periods import Period
from gateway.context import Context
from gateway.graphql.inputs import to_fields
from gateway.graphql.pagination import PageInfo, page_arguments
from gateway.graphql.usage import (
    GRANULARITY,
    GROUP_BY,
    VIEW_MODE,
    WINDOW,
    CostTimeframeType,
    MetricUsageType,
    resolve_subscription_costs,
    resolve_usage,
)
from persistence.tables import Subscription as SubscriptionRow

Resolve = Info[Context, None]
CustomerRef = Annotated["CustomerType", strawberry.lazy("gateway.graphql.customers")]  # noqa: F821
PlanRef = Annotated["PlanType", strawberry.lazy("gateway.graphql.plans")]  # noqa: F821
PriceRef = Annotated["PriceType", strawberry.lazy("gateway.graphql.prices")]  # noqa: F821


@strawberry.type
class TrialInfo:
    end_date: datetime | None


@strawberry.type
class BillingCycleAnchorConfiguration:
    day: int
    month: int | None
    year: int | None


async def _phase_definitions(root: SubscriptionRow, changes: list, info: Resolve) -> schedule.PhaseDefinitions:
    """The phased plans' phases among the plans the subscription is scheduled on (the plan loader's rows)."""
    plan_rows = await info.context.loaders.plan_by_id.load_many(schedule.plan_ids_of(root, changes))
    return schedule.phase_definitions_of(plan_rows)


async def _phases(root: SubscriptionRow, info: Resolve) -> list[schedule.PlanPhase]:
    changes = await info.context.loaders.plan_changes_by_subscription_id.load(root.id)
    return schedule.phases_of(root, changes, await _phase_definitions(root, changes, info))


async def _current_plan_id(root: SubscriptionRow, info: Resolve) -> str:
    """The plan of the phase holding now (Orb shows the current plan; subscriptions.plan_id is the first)."""
    return schedule.current_plan_id(await _phases(root, info), info.context.uow.clock.now())


async def _current_period(root: SubscriptionRow, info: Resolve) -> Period | None:
    plan_prices = await info.context.loaders.prices_by_plan_id.load(await _current_plan_id(root, info))
    changes = await info.context.loaders.plan_changes_by_subscription_id.load(root.id)
    aligned = schedule.aligned_phase_starts(root, changes, await _phase_definitions(root, changes, info))
    return subscriptions.current_billing_period(root, (p.cadence for p in plan_prices), info.context.uow.clock.now(),
                                                changes, aligned)


async def _current_anchor(root: SubscriptionRow, info: Resolve) -> datetime:
    """The anchor of the billing cycle holding now (its day is the billing cycle day)."""
    changes = await info.context.loaders.plan_changes_by_subscription_id.load(root.id)
    billing_cycles = schedule.billing_cycles(root, changes, await _phase_definitions(root, changes, info))
    return cycles.cycle_at(billing_cycles, info.context.uow.clock.now()).anchor


@strawberry.type(name="Subscription", description="A customer's subscription to a plan.")
class SubscriptionType:
    id: strawberry.ID
    currency: str
    start_date: datetime
    end_date: datetime | None = strawberry.field(description="When it ends (or ended); null while open-ended.")
    net_terms: int
    auto_collection: bool | None = strawberry.field(description="Null: the customer's own setting applies.")
    created_at: datetime

    @strawberry.field(description="upcoming, active or ended, at the request's clock.")
    @staticmethod
    def status(root: SubscriptionRow, info: Resolve) -> str:
        return subscriptions.subscription_status(root, info.context.uow.clock.now())

    @strawberry.field(description="Key/value strings attached by the caller.")
    @staticmethod
    def metadata(root: SubscriptionRow) -> JSON:
        return root.subscription_metadata

    @strawberry.field
    @staticmethod
    async def customer(root: SubscriptionRow, info: Resolve) -> CustomerRef:
        return await info.context.loaders.customer_by_id.load(root.customer_id)  # type: ignore[return-value]

    @strawberry.field(description="The plan it is on now (by its plan schedule; the first plan before the start).")
    @staticmethod
    async def plan(root: SubscriptionRow, info: Resolve) -> PlanRef:
        plan_id = await _current_plan_id(root, info)
        return await info.context.loaders.plan_by_id.load(plan_id)  # type: ignore[return-value]

    @strawberry.field(description="The plans it is on over time, oldest first, tiling its life; a pending "
                                  "plan change is the last, future phase.")
    @staticmethod
    async def schedule(root: SubscriptionRow, info: Resolve) -> list[PlanPhaseType]:
        return [PlanPhaseType(plan_id=p.plan_id, start_date=p.start, end_date=p.end, plan_phase_order=p.phase_order)
                for p in await _phases(root, info)]

    @strawberry.field(description="Start of the billing period holding now (null unless active).")
    @staticmethod
    async def current_billing_period_start_date(root: SubscriptionRow, info: Resolve) -> datetime | None:
        period = await _current_period(root, info)
        return period.start if period else None

    @strawberry.field(description="End of the billing period holding now, or the end date if sooner (null unless active).")
    @staticmethod
    async def current_billing_period_end_date(root: SubscriptionRow, info: Resolve) -> datetime | None:
        period = await _current_period(root, info)
        return period.end if period else None

    @strawberry.field(description="Each fixed fee's quantity over time, while its plan is in effect.")
    @staticmethod
    async def fixed_fee_quantity_schedule(root: SubscriptionRow, info: Resolve) -> list[FixedFeeQuantityType]:
        loaders = info.context.loaders
        phases = await _phases(root, info)
        plan_ids = sorted({p.plan_id for p in phases})
        plan_prices = dict(zip(plan_ids, await loaders.prices_by_plan_id.load_many(plan_ids), strict=True))
        changes = await loaders.quantity_changes_by_subscription_id.load(root.id)
        return [FixedFeeQuantityType(price_id=e.price_id, start_date=e.start, end_date=e.end, quantity=e.quantity)
                for e in schedule.fixed_fee_schedule_of(root, phases, plan_prices, changes)]

    @strawberry.field(description="The name of the plan it is on now: a subscription has no name of its own.")
    @staticmethod
    async def name(root: SubscriptionRow, info: Resolve) -> str:
        plan = await info.context.loaders.plan_by_id.load(await _current_plan_id(root, info))
        return plan.name if plan is not None else ""

    @strawberry.field(description="Each price of each plan phase, over the phase, in time order.")
    @staticmethod
    async def price_intervals(root: SubscriptionRow, info: Resolve) -> list[PriceIntervalType]:
        loaders = info.context.loaders
        changes = await loaders.plan_changes_by_subscription_id.load(root.id)
        defined = await _phase_definitions(root, changes, info)
        plan_ids = sorted({p.plan_id for p in schedule.phases_of(root, changes, defined)})
        plan_prices = dict(zip(plan_ids, await loaders.prices_by_plan_id.load_many(plan_ids), strict=True))
        quantity_changes = await loaders.quantity_changes_by_subscription_id.load(root.id)
        intervals = schedule.price_intervals_of(root, changes, plan_prices, quantity_changes,
                                                info.context.uow.clock.now(), defined)
        billing_cycles = schedule.billing_cycles(root, changes, defined)
        return [PriceIntervalType.of(interval, cycles.cycle_at(billing_cycles, interval.start).anchor.day)
                for interval in intervals]

    @strawberry.field(description="Day of the month billing periods start on now: the start date's, unless a "
                                  "billing_cycle_anchor_configuration, a plan change's alignment or a phase "
                                  "aligning billing with its start moved it.")
    @staticmethod
    async def billing_cycle_day(root: SubscriptionRow, info: Resolve) -> int:
        return (await _current_anchor(root, info)).day

    @strawberry.field(description="The day of month billing periods are anchored on now (see billingCycleDay), "
                                  "and the month the configuration gave while its anchor holds (else null).")
    @staticmethod
    async def billing_cycle_anchor_configuration(root: SubscriptionRow,
                                                 info: Resolve) -> BillingCycleAnchorConfiguration:
        anchor = await _current_anchor(root, info)
        # A plan change's alignment or an aligned phase re-anchors on a date: it gives a day, no month
        # (the months then follow that date, as with a configuration of a day only), so the configured
        # month reads back only while billing still follows the configured anchor.
        month = root.billing_anchor_month if anchor == root.billing_anchor else None
        return BillingCycleAnchorConfiguration(day=anchor.day, month=month, year=None)

    @strawberry.field(description="The end of its free trial (no fixed fees before it); null: no trial.")
    @staticmethod
    def trial_info(root: SubscriptionRow) -> TrialInfo:
        return TrialInfo(end_date=root.trial_end_date)

    @strawberry.field(description="True: its invoices are issued when their billing period closes (the "
                                  "customer's auto_issuance does not hold them back yet).")
    @staticmethod
    def auto_issuance(root: SubscriptionRow) -> bool:
        return True

    @strawberry.field(description="The memo its issued invoices carry; null: none.")
    @staticmethod
    def default_invoice_memo(root: SubscriptionRow) -> str | None:
        return root.default_invoice_memo

    @strawberry.field(description="Threshold billing is not offered yet: null.")
    @staticmethod
    def invoicing_threshold(root: SubscriptionRow) -> Decimal | None:
        return None

    @strawberry.field(description="Subscription changes (Orb's preview-then-apply) are not offered yet: null.")
    @staticmethod
    def pending_subscription_change(root: SubscriptionRow) -> JSON | None:
        return None

    @strawberry.field(description="The phase of its phased plan in effect now (the first before the start); "
                                  "null when the plan has no phases.")
    @staticmethod
    async def active_plan_phase_order(root: SubscriptionRow, info: Resolve) -> int | None:
        return schedule.phase_at(await _phases(root, info), info.context.uow.clock.now()).phase_order

    @strawberry.field(description="Coupons are not offered yet: null.")
    @staticmethod
    def redeemed_coupon(root: SubscriptionRow) -> JSON | None:
        return None

    @strawberry.field(description="Discount, adjustment, minimum and maximum intervals: none are supported yet.")
    @staticmethod
    def discount_intervals(root: SubscriptionRow) -> JSON:
        return []

    @strawberry.field(description="None are supported yet.")
    @staticmethod
    def adjustment_intervals(root: SubscriptionRow) -> JSON:
        return []

    @strawberry.field(description="None are supported yet.")
    @staticmethod
    def minimum_intervals(root: SubscriptionRow) -> JSON:
        return []

    @strawberry.field(description="None are supported yet.")
    @staticmethod
    def maximum_intervals(root: SubscriptionRow) -> JSON:
        return []

    @strawberry.field(description="Its usage per billable metric of its plan. " + WINDOW)
    @staticmethod
    async def usage(
        root: SubscriptionRow, info: Resolve, timeframe_start: datetime | None = None,
        timeframe_end: datetime | None = None,
        granularity: Annotated[str | None, strawberry.argument(description=GRANULARITY)] = None,
        billable_metric_id: str | None = None,
        view_mode: Annotated[str | None, strawberry.argument(description=VIEW_MODE)] = None,
        group_by: Annotated[str | None, strawberry.argument(description=GROUP_BY)] = None,
    ) -> list[MetricUsageType]:
        return await resolve_usage(info, root.id, timeframe_start, timeframe_end, granularity, billable_metric_id,
                                   group_by, view_mode)

    @strawberry.field(description="Its charges per billing period overlapping the window. " + WINDOW)
    @staticmethod
    async def costs(
        root: SubscriptionRow, info: Resolve, timeframe_start: datetime | None = None,
        timeframe_end: datetime | None = None,
        view_mode: Annotated[str | None, strawberry.argument(description=VIEW_MODE)] = None,
    ) -> list[CostTimeframeType]:
        return await resolve_subscription_costs(info, root.id, timeframe_start, timeframe_end, view_mode)


@strawberry.type(name="FixedFeeQuantity", description="A fixed fee's quantity over a span of time.")
class FixedFeeQuantityType:
    price_id: str
    start_date: datetime
    end_date: datetime | None = strawberry.field(description="Null: open-ended.")
    quantity: Decimal


@strawberry.type(name="FixedFeeQuantityTransition", description="A fixed fee's quantity from a date on.")
class FixedFeeQuantityTransitionType:
    price_id: str
    effective_date: datetime
    quantity: Decimal


@strawberry.type(name="PriceInterval", description="A price of one of the subscription's plan phases, billed "
                                                   "over that phase.")
class PriceIntervalType:
    id: strawberry.ID = strawberry.field(description="Derived from the phase and the price: stable, not stored.")
    start_date: datetime
    end_date: datetime | None = strawberry.field(description="Null: open-ended.")
    billing_cycle_day: int
    can_defer_billing: bool = strawberry.field(description="Usage of an interval ending mid-period is billed on "
                                                           "that period's invoice; fixed fees never defer.")
    current_billing_period_start_date: datetime | None = strawberry.field(
        description="Of the price's own cadence; null unless the subscription is active and now is in the interval.")
    current_billing_period_end_date: datetime | None = strawberry.field(
        description="Exclusive; cut at the interval's end; null unless active and now is in the interval.")
    fixed_fee_quantity_transitions: list[FixedFeeQuantityTransitionType] | None = strawberry.field(
        description="The quantity from each date within the interval; null for a usage price.")
    filter: str | None = strawberry.field(description="Usage filters on intervals are not offered: null.")
    usage_customer_ids: list[str] | None = strawberry.field(
        description="Usage is the subscription's customer's own: null (no other customers' usage is billed).")
    price_row: strawberry.Private[object]

    @strawberry.field
    def price(self) -> PriceRef:
        return self.price_row  # type: ignore[return-value]

    @classmethod
    def of(cls, interval: schedule.PriceInterval, billing_cycle_day: int) -> PriceIntervalType:
        period = interval.current_period
        transitions = None if interval.quantities is None else [
            FixedFeeQuantityTransitionType(price_id=q.price_id, effective_date=q.start, quantity=q.quantity)
            for q in interval.quantities]
        return cls(id=strawberry.ID(interval.id), start_date=interval.start, end_date=interval.end,
                   billing_cycle_day=billing_cycle_day, can_defer_billing=interval.deferred,
                   current_billing_period_start_date=period.start if period else None,
                   current_billing_period_end_date=period.end if period else None,
                   fixed_fee_quantity_transitions=transitions, filter=None, usage_customer_ids=None,
                   price_row=interval.price)


@strawberry.type(name="PlanPhase", description="A span of a subscription's life on one plan (on a phased plan, "
                                               "in one of its phases).")
class PlanPhaseType:
    plan_id: strawberry.Private[str]
    start_date: datetime
    end_date: datetime | None = strawberry.field(description="Null: open-ended.")
    plan_phase_order: int | None = strawberry.field(default=None, description="The phased plan's phase in "
                                                                              "effect; null: the plan has none.")

    @strawberry.field
    async def plan(self, info: Resolve) -> PlanRef:
        return await info.context.loaders.plan_by_id.load(self.plan_id)  # type: ignore[return-value]


@strawberry.type(name="SubscriptionScheduleEntry", description="A phase of a subscription's plan schedule, "
                                                                "with when the change that began it was made.")
class ScheduleEntryType:
    start_date: datetime
    end_date: datetime | None = strawberry.field(description="Null: open-ended.")
    created_at: datetime
    plan_id: strawberry.Private[str]

    @strawberry.field
    async def plan(self, info: Resolve) -> PlanRef:
        return await info.context.loaders.plan_by_id.load(self.plan_id)  # type: ignore[return-value]


@strawberry.type
class SubscriptionScheduleConnection:
    nodes: list[ScheduleEntryType]
    page_info: PageInfo


@strawberry.type
class SubscriptionConnection:
    nodes: list[SubscriptionType]
    page_info: PageInfo


@strawberry.input
class BillingCycleAnchorConfigurationInput:
    day: int = strawberry.field(description="1 to 31; a shorter month's last day in its place.")
    month: int | None = strawberry.field(default=strawberry.UNSET,
                                         description="Which months longer cadences start in (1 to 12).")
    year: int | None = strawberry.field(default=strawberry.UNSET,
                                        description="Refused: no cadence is longer than a year.")


@strawberry.input
class SubscriptionInput:
    customer_id: str | None = strawberry.UNSET
    external_customer_id: str | None = strawberry.UNSET
    plan_id: str | None = strawberry.UNSET
    external_plan_id: str | None = strawberry.UNSET
    start_date: datetime | None = strawberry.UNSET
    end_date: datetime | None = strawberry.field(default=strawberry.UNSET,
                                                 description="When it ends (after the start); null: open-ended.")
    net_terms: int | None = strawberry.UNSET
    auto_collection: bool | None = strawberry.UNSET
    metadata: JSON | None = strawberry.UNSET
    currency: str | None = strawberry.field(default=strawberry.UNSET,
                                            description="Must be the plan's (a subscription bills in it).")
    billing_cycle_anchor_configuration: BillingCycleAnchorConfigurationInput | None = strawberry.field(
        default=strawberry.UNSET, description="Anchor billing periods on a day of the month (the first period, up "
                                              "to that day, is prorated); default: the start date.")
    align_billing_with_subscription_start_date: bool | None = strawberry.field(
        default=strawberry.UNSET, description="True: anchored on the start date (the default here).")
    default_invoice_memo: str | None = strawberry.field(default=strawberry.UNSET,
                                                        description="The memo its issued invoices carry.")
    trial_duration_days: int | None = strawberry.field(
        default=strawberry.UNSET, description="Free trial days (no fixed fees); default: the plan's; 0: none.")
    plan_version_number: int | None = strawberry.field(
        default=strawberry.UNSET, description="1: plans keep no other version.")
    initial_phase_order: int | None = strawberry.field(default=strawberry.UNSET,
                                                       description="A phased plan's phase to start in (default 1).")


@strawberry.input
class SubscriptionUpdateInput:
    metadata: JSON | None = strawberry.UNSET
    net_terms: int | None = strawberry.field(default=strawberry.UNSET,
                                             description="For invoices issued from now on.")
    auto_collection: bool | None = strawberry.field(default=strawberry.UNSET,
                                                    description="Null: the customer's setting applies.")
    default_invoice_memo: str | None = strawberry.field(default=strawberry.UNSET, description="Null removes it.")


@strawberry.input
class SubscriptionCancelInput:
    cancel_option: str = strawberry.field(description="end_of_subscription_term, immediate or requested_date.")
    cancellation_date: datetime | None = strawberry.field(default=None,
                                                          description="Required with requested_date, else refused.")


@strawberry.input
class PlanChangeInput:
    change_option: str = strawberry.field(description="requested_date, end_of_subscription_term or immediate.")
    plan_id: str | None = strawberry.UNSET
    external_plan_id: str | None = strawberry.UNSET
    change_date: datetime | None = strawberry.field(default=strawberry.UNSET,
                                                    description="Required with requested_date, else refused.")
    billing_cycle_alignment: str | None = strawberry.field(
        default=strawberry.UNSET, description="unchanged (default), plan_change_date (billing periods restart at "
                                              "the change) or start_of_month (on the 1st after it).")
    align_billing_with_plan_change_date: bool | None = strawberry.field(
        default=strawberry.UNSET, description="True: as billing_cycle_alignment plan_change_date.")
    net_terms: int | None = strawberry.field(default=strawberry.UNSET,
                                             description="Set on the subscription when the change is made.")
    auto_collection: bool | None = strawberry.field(default=strawberry.UNSET,
                                                    description="Set on the subscription when the change is made.")
    default_invoice_memo: str | None = strawberry.field(default=strawberry.UNSET,
                                                        description="Set on the subscription when the change is made.")
    trial_duration_days: int | None = strawberry.field(
        default=strawberry.UNSET, description="Free trial days on the new plan from the change; default: the "
                                              "plan's; 0: none.")
    plan_version_number: int | None = strawberry.field(
        default=strawberry.UNSET, description="1: plans keep no other version.")


@strawberry.input
class FixedFeeQuantityInput:
    price_id: str | None = strawberry.UNSET
    quantity: JSON | None = strawberry.field(default=strawberry.UNSET, description="A number (0 or more).")
    effective_date: str | None = strawberry.field(default=strawberry.UNSET,
                                                  description="A date (midnight UTC) or a date-time.")
    change_option: str | None = strawberry.field(default=strawberry.UNSET,
                                                 description="immediate, effective_date or upcoming_invoice.")


@strawberry.input
class TrialUpdateInput:
    trial_end_date: str = strawberry.field(description="A date-time, or \"immediate\" to end the trial now.")
    shift: bool | None = strawberry.field(default=None, description="Default true.")


@strawberry.input
class TriggerPhaseInput:
    effective_date: str | None = strawberry.field(default=strawberry.UNSET,
                                                  description="A date (midnight UTC) or a date-time; default now.")
    allow_invoice_credit_or_void: bool | None = strawberry.field(
        default=strawberry.UNSET, description="Taken for Orb's clients: issued invoices are never changed here.")


@strawberry.type
class SubscriptionQueries:
    @strawberry.field(description="A subscription by id.")
    async def subscription(self, info: Resolve, id: strawberry.ID) -> SubscriptionType:
        ctx = info.context
        return await subscriptions.get_subscription(  # type: ignore[return-value]
            ctx.uow, principal=ctx.principal, subscription_id=id)

    @strawberry.field(description="Subscriptions, newest first, a page at a time; filters combine.")
    async def subscriptions(
        self, info: Resolve, first: int | None = None, after: str | None = None, customer_id: str | None = None,
        external_customer_id: str | None = None, status: str | None = None,
    ) -> SubscriptionConnection:
        ctx = info.context
        limit, after_id = page_arguments(first, after)
        page = await subscriptions.list_subscriptions(
            ctx.uow, principal=ctx.principal, limit=limit, after_id=after_id, customer_id=customer_id,
            external_customer_id=external_customer_id, status=status)
        return SubscriptionConnection(nodes=page.items, page_info=PageInfo.of(page))  # type: ignore[arg-type]

    @strawberry.field(description="A subscription's plan schedule, oldest phase first, a page at a time.")
    async def subscription_schedule(self, info: Resolve, id: strawberry.ID, first: int | None = None,
                                    after: str | None = None) -> SubscriptionScheduleConnection:
        ctx = info.context
        limit, after_id = page_arguments(first, after)
        page = await schedule.list_schedule(ctx.uow, principal=ctx.principal, subscription_id=id, limit=limit,
                                            after_id=after_id)
        nodes = [ScheduleEntryType(start_date=e.start_date, end_date=e.end_date, created_at=e.created_at,
                                   plan_id=e.plan_id) for e in page.items]
        return SubscriptionScheduleConnection(nodes=nodes, page_info=PageInfo.of(page))


@strawberry.type
class SubscriptionMutations:
    @strawberry.mutation(description="Subscribe a customer to a plan.")
    async def create_subscription(self, info: Resolve, input: SubscriptionInput) -> SubscriptionType:
        ctx = info.context
        return await subscriptions.create_subscription(  # type: ignore[return-value]
            ctx.uow, principal=ctx.principal, fields=to_fields(input))

    @strawberry.mutation(description="Change a subscription's metadata, net terms, auto collection or invoice memo.")
    async def update_subscription(self, info: Resolve, id: strawberry.ID,
                                  input: SubscriptionUpdateInput) -> SubscriptionType:
        ctx = info.context
        return await subscriptions.update_subscription(  # type: ignore[return-value]
            ctx.uow, principal=ctx.principal, subscription_id=id, fields=to_fields(input))

    @strawberry.mutation(description="Schedule (or make) a subscription's end.")
    async def cancel_subscription(self, info: Resolve, id: strawberry.ID,
                                  input: SubscriptionCancelInput) -> SubscriptionType:
        ctx = info.context
        return await subscriptions.cancel_subscription(  # type: ignore[return-value]
            ctx.uow, principal=ctx.principal, subscription_id=id, cancel_option=input.cancel_option,
            cancellation_date=input.cancellation_date)

    @strawberry.mutation(description="Drop a scheduled cancellation that has not taken effect.")
    async def unschedule_subscription_cancellation(self, info: Resolve, id: strawberry.ID) -> SubscriptionType:
        ctx = info.context
        return await subscriptions.unschedule_cancellation(  # type: ignore[return-value]
            ctx.uow, principal=ctx.principal, subscription_id=id)

    @strawberry.mutation(description="Move a subscription to another plan now, at the end of its term or on a "
                                     "date; replaces a pending plan change.")
    async def schedule_plan_change(self, info: Resolve, id: strawberry.ID, input: PlanChangeInput) -> SubscriptionType:
        ctx = info.context
        return await schedule.schedule_plan_change(  # type: ignore[return-value]
            ctx.uow, principal=ctx.principal, subscription_id=id, fields=to_fields(input))

    @strawberry.mutation(description="Drop the plan change that has not taken effect yet.")
    async def unschedule_pending_plan_changes(self, info: Resolve, id: strawberry.ID) -> SubscriptionType:
        ctx = info.context
        return await schedule.unschedule_pending_plan_changes(  # type: ignore[return-value]
            ctx.uow, principal=ctx.principal, subscription_id=id)

    @strawberry.mutation(description="Bill a fixed fee for another quantity from now, a date or the next invoice.")
    async def change_fixed_fee_quantity(self, info: Resolve, id: strawberry.ID,
                                        input: FixedFeeQuantityInput) -> SubscriptionType:
        ctx = info.context
        return await schedule.change_fixed_fee_quantity(  # type: ignore[return-value]
            ctx.uow, principal=ctx.principal, subscription_id=id, fields=to_fields(input))

    @strawberry.mutation(description="Move the end of its free trial to a date-time or \"immediate\"; shift (the "
                                     "default) moves pending plan and quantity changes by as much.")
    async def update_trial(self, info: Resolve, id: strawberry.ID, input: TrialUpdateInput) -> SubscriptionType:
        ctx = info.context
        return await subscriptions.update_trial(  # type: ignore[return-value]
            ctx.uow, principal=ctx.principal, subscription_id=id, trial_end_date=input.trial_end_date,
            shift=True if input.shift is None else input.shift)

    @strawberry.mutation(description="Drop a fixed fee's quantity change that has not taken effect yet.")
    async def unschedule_fixed_fee_quantity_updates(self, info: Resolve, id: strawberry.ID,
                                                    price_id: str | None = None) -> SubscriptionType:
        ctx = info.context
        return await schedule.unschedule_fixed_fee_quantity_updates(  # type: ignore[return-value]
            ctx.uow, principal=ctx.principal, subscription_id=id, price_id=price_id)

    @strawberry.mutation(description="Move a subscription on a phased plan to its next phase on a date (default "
                                     "now); the later phases follow from it by their durations.")
    async def trigger_phase(self, info: Resolve, id: strawberry.ID,
                            input: TriggerPhaseInput | None = None) -> SubscriptionType:
        ctx = info.context
        return await phases.trigger_phase(  # type: ignore[return-value]
            ctx.uow, principal=ctx.principal, subscription_id=id, fields=to_fields(input) if input else {})
