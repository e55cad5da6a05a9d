"""Plan phases on both databases: a phased plan's catalog rules, a subscription moving through the
phases by their durations (each billing only its phase's prices, boundaries prorated like a plan change),
initial_phase_order, and trigger_phase. Amounts by hand: January has 31 days, so 31.00 a month is 1.00 a day."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest

from domains.billing import charges, phases, schedule
from domains.billing import subscriptions as subs
from domains.billing.periods import Period
from domains.catalog import items, plans
from domains.catalog.plan_phases import PhaseDefinition, PhaseSpan, spans
from domains.clock import FixedClock
from domains.errors import ConstraintViolation, ValidationFailed
from domains.metering import metrics
from domains.unit_of_work import UnitOfWork
from persistence.db import session_factory
from tests.domains.billing.billing_world import at, make_plan, make_subscription, send_tokens

JANUARY = Period(at(2031, 1, 1), at(2031, 2, 1))
FEBRUARY = Period(at(2031, 2, 1), at(2031, 3, 1))


@pytest.fixture
async def unit(database) -> AsyncIterator[UnitOfWork]:
    uow = UnitOfWork(session_factory(database.engine), clock=FixedClock(at(2031, 1, 1)))
    yield uow
    await uow.close()


async def _phased_plan(uow, principal, phase_list, *, intro_duration=None):
    """Intro fee 10.00 + tokens at 0.02 in phase 1; Platform fee 31.00 + tokens at 0.01 in phase 2 (and a
    Growth fee 62.00 in phase 3 when there is one)."""
    item = await items.create_item(uow, principal=principal, fields={"name": "Platform"})
    tokens = await items.create_item(uow, principal=principal, fields={"name": "Tokens"})
    metric = await metrics.create_metric(uow, principal=principal, fields={
        "name": "Tokens", "item_id": tokens.id, "sql": "SELECT SUM(tokens) FROM events WHERE event_name = 'llm'"})

    def fee(name, amount, order):
        return {"plan_phase_order": order, "price": {
            "name": name, "item_id": item.id, "cadence": "monthly", "model_type": "unit",
            "unit_config": {"unit_amount": amount}, "fixed_price_quantity": "1"}}

    def usage(name, amount, order):
        return {"plan_phase_order": order, "price": {
            "name": name, "item_id": tokens.id, "billable_metric_id": metric.id, "cadence": "monthly",
            "model_type": "unit", "unit_config": {"unit_amount": amount}}}

    entries = [fee("Intro fee", "10.00", 1), usage("Intro tokens", "0.02", 1),
               fee("Platform fee", "31.00", 2), usage("Tokens", "0.01", 2)]
    if len(phase_list) > 2:
        entries.append(fee("Growth fee", "62.00", 3))
    return await plans.create_plan(uow, principal=principal, fields={
        "name": "Phased", "currency": "USD", "prices": entries, "plan_phases": phase_list})


TWO_PHASES = [{"order": 1, "duration": 1, "duration_unit": "monthly"}, {"order": 2, "duration": None}]
TEN_DAYS_THEN_EVERGREEN = [{"order": 1, "duration": 10, "duration_unit": "daily"}, {"order": 2}]
THREE_PHASES = [{"order": 1, "duration": 1, "duration_unit": "monthly"},
                {"order": 2, "duration": 1, "duration_unit": "monthly"}, {"order": 3, "duration": None}]


async def _charges(uow, principal, sub_id, period):
    sub = await subs.get_subscription(uow, principal=principal, subscription_id=sub_id)
    return [(c.name, c.amount, c.start_date, c.end_date)
            for c in await charges.period_charges(uow, principal=principal, subscription=sub, period=period)]


async def _phases(uow, principal, sub_id):
    sub = await subs.get_subscription(uow, principal=principal, subscription_id=sub_id)
    return [(p.phase_order, p.start, p.end) for p in await schedule.plan_phases(uow, principal=principal,
                                                                               subscription=sub)]


def test_spans_follow_durations_and_the_last_phase_runs_on():
    defined = [PhaseDefinition(1, 1, "monthly"), PhaseDefinition(2, 2, "quarterly"), PhaseDefinition(3, 5, "daily")]
    # Jan 31 + 1 month is Feb 28; + 2 quarters from there is Aug 28; the last phase ignores its duration.
    assert spans(defined, at(2031, 1, 31), None) == [
        PhaseSpan(1, at(2031, 1, 31), at(2031, 2, 28)), PhaseSpan(2, at(2031, 2, 28), at(2031, 8, 28)),
        PhaseSpan(3, at(2031, 8, 28), None)]
    assert spans(defined, at(2031, 1, 1), at(2031, 3, 1), first_order=2) == [
        PhaseSpan(2, at(2031, 1, 1), at(2031, 3, 1))]


async def test_a_phased_plan_reads_back_and_bad_phases_are_named(unit, tenant):
    p = tenant.principal
    plan = await _phased_plan(unit, p, TWO_PHASES)
    plan_id = plan.id
    assert plan.plan_phases == [{"order": 1, "duration": 1, "duration_unit": "monthly"},
                                {"order": 2, "duration": None, "duration_unit": None}]
    found = await charges.price_service.prices_by_plan_ids(unit, principal=p, plan_ids=[plan.id])
    assert [(x.name, x.plan_phase_order) for x in found[plan.id]] == [
        ("Intro fee", 1), ("Intro tokens", 1), ("Platform fee", 2), ("Tokens", 2)]
    item = await items.create_item(unit, principal=p, fields={"name": "Seat"})
    price = {"name": "Seat", "item_id": item.id, "cadence": "monthly", "model_type": "unit",
             "unit_config": {"unit_amount": "1.00"}}
    cases = [
        ([{"order": 1, "duration": 1, "duration_unit": "monthly"}, {"order": 3}], 1, "plan_phases[1].order"),
        ([{"order": 1, "duration": 1, "duration_unit": "monthly"}, {"order": 1}], 1, "plan_phases[1].order"),
        ([{"order": 1, "duration": 0, "duration_unit": "monthly"}, {"order": 2}], 1, "plan_phases[0].duration"),
        ([{"order": 1}, {"order": 2, "duration": 1, "duration_unit": "monthly"}], 1, "plan_phases[0].duration"),
        ([{"order": 1, "duration": 1, "duration_unit": "weekly"}], 1, "plan_phases[0].duration_unit"),
        ([{"order": "1"}], 1, "plan_phases[0].order"),
        ([{"order": 1, "name": "x"}], 1, "plan_phases[0].name"),
        ([{"order": 1, "align_billing_with_phase_start_date": "yes"}], 1,
         "plan_phases[0].align_billing_with_phase_start_date"),
        ("one", 1, "plan_phases"),
        (TWO_PHASES, 3, "prices[0].plan_phase_order"),   # a phase the plan does not have
        (TWO_PHASES, None, "prices[0].plan_phase_order"),  # required on a phased plan
        (None, 1, "prices[0].plan_phase_order"),  # the plan has no phases
    ]
    for phase_list, order, field in cases:
        with pytest.raises(ValidationFailed) as refused:
            await plans.create_plan(unit, principal=p, fields={
                "name": "Bad", "currency": "USD", "plan_phases": phase_list,
                "prices": [{"price": price, "plan_phase_order": order}]})
        assert refused.value.field == field, (phase_list, order, refused.value)
    # Nothing of a refused plan was written.
    assert [x.id for x in (await plans.list_plans(unit, principal=p)).items] == [plan_id]


async def test_phases_follow_their_durations_and_bill_only_their_prices(unit, tenant):
    p = tenant.principal
    plan = await _phased_plan(unit, p, TEN_DAYS_THEN_EVERGREEN)
    sub = await make_subscription(unit, p, plan, at(2031, 1, 1))
    assert await _phases(unit, p, sub.id) == [(1, at(2031, 1, 1), at(2031, 1, 11)), (2, at(2031, 1, 11), None)]
    await send_tokens(unit, p, sub, at(2031, 1, 5), 100, "intro")      # 100 x 0.02 = 2.00
    await send_tokens(unit, p, sub, at(2031, 1, 20), 300, "later")     # 300 x 0.01 = 3.00
    # The intro fee for 10 of 31 days: R(10.00 x 10/31) = 3.23; the platform fee for 21 days: 21.00.
    assert await _charges(unit, p, sub.id, JANUARY) == [
        ("Intro fee", Decimal("3.23"), at(2031, 1, 1), at(2031, 1, 11)),
        ("Intro tokens", Decimal("2.00"), at(2031, 1, 1), at(2031, 1, 11)),
        ("Platform fee", Decimal("21.00"), at(2031, 1, 11), at(2031, 2, 1)),
        ("Tokens", Decimal("3.00"), at(2031, 1, 11), at(2031, 2, 1))]
    assert await _charges(unit, p, sub.id, FEBRUARY) == [
        ("Platform fee", Decimal("31.00"), at(2031, 2, 1), at(2031, 3, 1)),
        ("Tokens", Decimal("0.00"), at(2031, 2, 1), at(2031, 3, 1))]


async def test_a_one_month_phase_then_evergreen_and_an_early_trigger_prorates(unit, tenant):
    p = tenant.principal
    plan = await _phased_plan(unit, p, TWO_PHASES)
    natural = await make_subscription(unit, p, plan, at(2031, 1, 1))
    early = await make_subscription(unit, p, plan, at(2031, 1, 1))
    # By durations: the intro month, then the platform fee from February.
    assert [c[:2] for c in await _charges(unit, p, natural.id, JANUARY)] == [
        ("Intro fee", Decimal("10.00")), ("Intro tokens", Decimal("0.00"))]
    assert [c[:2] for c in await _charges(unit, p, natural.id, FEBRUARY)] == [
        ("Platform fee", Decimal("31.00")), ("Tokens", Decimal("0.00"))]

    # Triggered on Jan 20 (now, by the clock): the intro fee for 19 days R(10.00 x 19/31) = 6.13, the platform
    # fee for 12 days: 12.00; the later phase's prices from then on.
    unit.clock.advance(at(2031, 1, 20) - unit.clock.now())
    triggered = await phases.trigger_phase(unit, principal=p, subscription_id=early.id, fields={})
    assert triggered.id == early.id
    assert await _phases(unit, p, early.id) == [(1, at(2031, 1, 1), at(2031, 1, 20)), (2, at(2031, 1, 20), None)]
    assert await _charges(unit, p, early.id, JANUARY) == [
        ("Intro fee", Decimal("6.13"), at(2031, 1, 1), at(2031, 1, 20)),
        ("Intro tokens", Decimal("0.00"), at(2031, 1, 1), at(2031, 1, 20)),
        ("Platform fee", Decimal("12.00"), at(2031, 1, 20), at(2031, 2, 1)),
        ("Tokens", Decimal("0.00"), at(2031, 1, 20), at(2031, 2, 1))]
    assert [c[:2] for c in await _charges(unit, p, early.id, FEBRUARY)] == [
        ("Platform fee", Decimal("31.00")), ("Tokens", Decimal("0.00"))]
    # Already in the last phase.
    with pytest.raises(ConstraintViolation) as last:
        await phases.trigger_phase(unit, principal=p, subscription_id=early.id, fields={})
    assert last.value.field == "subscription_id"


async def test_trigger_shifts_later_phases_and_refuses_the_past_and_plain_plans(unit, tenant):
    p = tenant.principal
    plan = await _phased_plan(unit, p, THREE_PHASES)
    sub = await make_subscription(unit, p, plan, at(2031, 1, 1))
    sub_id, plan_id = sub.id, plan.id  # a refused change rolls back and expires the session's rows: keep the ids
    # Phase 2 early on Jan 20: it lasts a month from there (to Feb 20), phase 3 follows.
    unit.clock.advance(at(2031, 1, 20) - unit.clock.now())
    await phases.trigger_phase(unit, principal=p, subscription_id=sub_id, fields={"effective_date": "2031-01-20"})
    assert await _phases(unit, p, sub_id) == [
        (1, at(2031, 1, 1), at(2031, 1, 20)), (2, at(2031, 1, 20), at(2031, 2, 20)), (3, at(2031, 2, 20), None)]
    # February: the platform fee for 19 of 28 days R(31.00 x 19/28) = 21.04; the growth fee for 9 days
    # R(62.00 x 28/28) - R(62.00 x 19/28) = 62.00 - 42.07 = 19.93.
    assert [c[:2] for c in await _charges(unit, p, sub_id, FEBRUARY) if c[0].endswith("fee")] == [
        ("Platform fee", Decimal("21.04")), ("Growth fee", Decimal("19.93"))]

    unit.clock.advance(at(2031, 2, 10) - unit.clock.now())
    with pytest.raises(ValidationFailed) as past:  # before phase 2, the phase in effect now, began
        await phases.trigger_phase(unit, principal=p, subscription_id=sub_id, fields={"effective_date": "2031-01-15"})
    assert past.value.field == "effective_date"
    # Backdated within the current phase: phase 3 from Feb 5.
    moved = await phases.trigger_phase(unit, principal=p, subscription_id=sub_id,
                                       fields={"effective_date": "2031-02-05T00:00:00Z",
                                               "allow_invoice_credit_or_void": False})
    assert moved.updated_at == at(2031, 2, 10)
    assert await _phases(unit, p, sub_id) == [
        (1, at(2031, 1, 1), at(2031, 1, 20)), (2, at(2031, 1, 20), at(2031, 2, 5)), (3, at(2031, 2, 5), None)]
    # Orb's schedule lists plans: the phase transitions do not split the plan's entry.
    listed = (await schedule.list_schedule(unit, principal=p, subscription_id=sub_id)).items
    assert [(e.plan_id, e.start_date, e.end_date) for e in listed] == [(plan_id, at(2031, 1, 1), None)]
    for fields, field in [({"effective_date": "soon"}, "effective_date"), ({"phase": 2}, "phase"),
                          ({"allow_invoice_credit_or_void": "yes"}, "allow_invoice_credit_or_void"),
                          ({"effective_date": "2030-12-01"}, "effective_date")]:
        with pytest.raises(ValidationFailed) as bad:
            await phases.trigger_phase(unit, principal=p, subscription_id=sub_id, fields=fields)
        assert bad.value.field == field

    plain = (await make_subscription(unit, p, await make_plan(unit, p), at(2031, 1, 1))).id
    with pytest.raises(ConstraintViolation) as no_phases:
        await phases.trigger_phase(unit, principal=p, subscription_id=plain, fields={})
    assert no_phases.value.field == "subscription_id" and "no plan_phases" in str(no_phases.value)
    await subs.cancel_subscription(unit, principal=p, subscription_id=sub_id, cancel_option="immediate")
    unit.clock.advance(timedelta(days=1))
    with pytest.raises(ConstraintViolation) as ended:
        await phases.trigger_phase(unit, principal=p, subscription_id=sub_id, fields={})
    assert ended.value.field == "subscription_id"


async def test_initial_phase_order_starts_in_a_later_phase(unit, tenant):
    p = tenant.principal
    plan = await _phased_plan(unit, p, THREE_PHASES)
    sub = await make_subscription(unit, p, plan, at(2031, 1, 1), initial_phase_order=2)
    plain = await make_plan(unit, p)
    assert await _phases(unit, p, sub.id) == [(2, at(2031, 1, 1), at(2031, 2, 1)), (3, at(2031, 2, 1), None)]
    assert [c[:2] for c in await _charges(unit, p, sub.id, JANUARY) if c[0].endswith("fee")] == [
        ("Platform fee", Decimal("31.00"))]
    for order, field in [(4, "initial_phase_order"), (0, "initial_phase_order"), ("2", "initial_phase_order")]:
        with pytest.raises(ValidationFailed) as bad:
            await make_subscription(unit, p, plan, at(2031, 1, 1), initial_phase_order=order)
        assert bad.value.field == field
    with pytest.raises(ValidationFailed) as unphased:
        await make_subscription(unit, p, plain, at(2031, 1, 1), initial_phase_order=1)
    assert unphased.value.field == "initial_phase_order"


async def test_a_plan_change_into_a_phased_plan_starts_its_first_phase(unit, tenant):
    p = tenant.principal
    plain = await make_plan(unit, p, fee="31.00")
    phased = await _phased_plan(unit, p, TEN_DAYS_THEN_EVERGREEN)
    sub = await make_subscription(unit, p, plain, at(2031, 1, 1))
    await schedule.schedule_plan_change(unit, principal=p, subscription_id=sub.id, fields={
        "plan_id": phased.id, "change_option": "requested_date", "change_date": "2031-01-11T00:00:00Z"})
    assert await _phases(unit, p, sub.id) == [
        (None, at(2031, 1, 1), at(2031, 1, 11)), (1, at(2031, 1, 11), at(2031, 1, 21)), (2, at(2031, 1, 21), None)]
    # 10 days of each fee: R(31 x 10/31) = 10.00, R(10 x 20/31) - R(10 x 10/31) = 6.45 - 3.23 = 3.22, 11.00 after.
    assert [c[:2] for c in await _charges(unit, p, sub.id, JANUARY) if c[0].endswith("fee")] == [
        ("Platform fee", Decimal("10.00")), ("Intro fee", Decimal("3.22")), ("Platform fee", Decimal("11.00"))]


async def test_a_trigger_on_a_plan_change_date_wins_whatever_order_the_rows_come_in(unit, tenant):
    # A trigger at the very date of a scheduled plan change leaves two rows on that date; the later one
    # (the trigger) says which phase runs, however a reader happens to return them (the period close's
    # read has no ORDER BY).
    p = tenant.principal
    plain = await make_plan(unit, p, fee="31.00")
    phased = await _phased_plan(unit, p, TEN_DAYS_THEN_EVERGREEN)
    sub = await make_subscription(unit, p, plain, at(2031, 1, 1))
    await schedule.schedule_plan_change(unit, principal=p, subscription_id=sub.id, fields={
        "plan_id": phased.id, "change_option": "requested_date", "change_date": "2031-01-11T00:00:00Z"})
    unit.clock = FixedClock(at(2031, 1, 2))
    await phases.trigger_phase(unit, principal=p, subscription_id=sub.id,
                               fields={"effective_date": "2031-01-11T00:00:00Z"})
    sub = await subs.get_subscription(unit, principal=p, subscription_id=sub.id)
    rows = await schedule.plan_changes_of(unit, p, sub.id)
    assert [(r.effective_date, r.plan_phase_order) for r in rows] == [(at(2031, 1, 11), None), (at(2031, 1, 11), 2)]
    expected = [(None, at(2031, 1, 1), at(2031, 1, 11)), (2, at(2031, 1, 11), None)]
    for order in (rows, rows[::-1]):
        assert [(ph.phase_order, ph.start, ph.end) for ph in schedule.phases_of(sub, order, {
            phased.id: [PhaseDefinition(1, 10, "daily"), PhaseDefinition(2, None, None)]})] == expected
    assert await _phases(unit, p, sub.id) == expected


async def test_unscheduling_a_plan_change_keeps_the_phase_schedule(unit, tenant):
    p = tenant.principal
    phased = await _phased_plan(unit, p, THREE_PHASES)
    plain = await make_plan(unit, p, fee="31.00")
    # A plan change scheduled (Mar 15), phase 2 triggered ahead (Jan 20), the change replaced by another
    # (Mar 20): the trigger is the plan's own schedule and stays, and unscheduling drops the change only.
    sub = (await make_subscription(unit, p, phased, at(2031, 1, 1))).id
    unit.clock = FixedClock(at(2031, 1, 5))
    for change_date in ("2031-03-15T00:00:00Z", "2031-03-20T00:00:00Z"):
        await schedule.schedule_plan_change(unit, principal=p, subscription_id=sub, fields={
            "plan_id": plain.id, "change_option": "requested_date", "change_date": change_date})
        if change_date.startswith("2031-03-15"):
            await phases.trigger_phase(unit, principal=p, subscription_id=sub, fields={"effective_date": "2031-01-20"})
    assert await _phases(unit, p, sub) == [
        (1, at(2031, 1, 1), at(2031, 1, 20)), (2, at(2031, 1, 20), at(2031, 2, 20)),
        (3, at(2031, 2, 20), at(2031, 3, 20)), (None, at(2031, 3, 20), None)]
    await schedule.unschedule_pending_plan_changes(unit, principal=p, subscription_id=sub)
    assert await _phases(unit, p, sub) == [
        (1, at(2031, 1, 1), at(2031, 1, 20)), (2, at(2031, 1, 20), at(2031, 2, 20)), (3, at(2031, 2, 20), None)]

    # A trigger made on the plan a pending change leads to goes with the change (left alone, it would move
    # the subscription onto that plan at the trigger's date).
    other = (await make_subscription(unit, p, plain, at(2031, 1, 1))).id
    await schedule.schedule_plan_change(unit, principal=p, subscription_id=other, fields={
        "plan_id": phased.id, "change_option": "requested_date", "change_date": "2031-01-11T00:00:00Z"})
    await phases.trigger_phase(unit, principal=p, subscription_id=other, fields={"effective_date": "2031-01-15"})
    await schedule.unschedule_pending_plan_changes(unit, principal=p, subscription_id=other)
    assert await _phases(unit, p, other) == [(None, at(2031, 1, 1), None)]
    assert await schedule.plan_changes_of(unit, p, other) == []

    # An upcoming subscription entering its plan in phase 2: that transition is a row dated at the (future)
    # start, part of its own schedule, not a plan change anyone scheduled.
    upcoming = (await make_subscription(unit, p, phased, at(2031, 2, 1), initial_phase_order=2)).id
    for sub_id in (sub, upcoming):  # (a refusal rolls back and expires the session's rows: ids only from here)
        with pytest.raises(ConstraintViolation) as none:
            await schedule.unschedule_pending_plan_changes(unit, principal=p, subscription_id=sub_id)
        assert none.value.field == "subscription_id" and "no pending plan change" in str(none.value)
    assert await _phases(unit, p, upcoming) == [(2, at(2031, 2, 1), at(2031, 3, 1)), (3, at(2031, 3, 1), None)]
    assert len(await _phases(unit, p, sub)) == 3


async def test_a_trigger_may_not_reach_into_invoiced_billing(unit, tenant):
    # The intro phase runs to Apr 1; January is invoiced on Feb 10. Phase 2 from Jan 20 would never bill
    # Jan 20 - Feb 1 (the close goes on from Feb 1; January stays billed on the intro fee): refused, as a
    # plan change or a cancellation there is. From Feb 1 on, taken.
    from domains.billing import jobs

    p = tenant.principal
    plan = await _phased_plan(unit, p, [{"order": 1, "duration": 3, "duration_unit": "monthly"},
                                        {"order": 2, "duration": None}])
    sub_id = (await make_subscription(unit, p, plan, at(2031, 1, 1))).id
    unit.clock.advance(at(2031, 2, 10) - unit.clock.now())
    issued = [i for i in await jobs.close_periods(unit, org_id=p.org_id) if i.org_id == p.org_id]
    assert [(i.period_start, i.period_end) for i in issued] == [(at(2031, 1, 1), at(2031, 2, 1))]
    with pytest.raises(ConstraintViolation) as refused:
        await phases.trigger_phase(unit, principal=p, subscription_id=sub_id, fields={"effective_date": "2031-01-20"})
    assert refused.value.field == "effective_date" and str(refused.value) == (
        "billing is invoiced up to 2031-02-01T00:00:00+00:00; a phase trigger before that would change issued invoices")
    assert await _phases(unit, p, sub_id) == [(1, at(2031, 1, 1), at(2031, 4, 1)), (2, at(2031, 4, 1), None)]
    await phases.trigger_phase(unit, principal=p, subscription_id=sub_id, fields={"effective_date": "2031-02-01"})
    assert await _phases(unit, p, sub_id) == [(1, at(2031, 1, 1), at(2031, 2, 1)), (2, at(2031, 2, 1), None)]
    # February bills phase 2's platform fee in full, the intro fee not at all.
    assert [c[:2] for c in await _charges(unit, p, sub_id, FEBRUARY) if c[0].endswith("fee")] == [
        ("Platform fee", Decimal("31.00"))]
