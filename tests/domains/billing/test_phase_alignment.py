"""Plan phases and billing alignment together, worked by hand to the cent on both databases: a phase with
align_billing_with_phase_start_date re-anchoring the billing periods at its start (reached by its
predecessor's duration, by trigger_phase, or by a plan change into the plan), trigger_phase on billing
re-anchored by a plan change, a re-anchoring plan change into a phased plan, and update_trial / cancel on
such subscriptions.

Prices (tests.domains.billing.test_plan_phases._phased_plan): phase 1 an Intro fee 10.00 and Intro tokens
at 0.02; phase 2 a Platform fee 31.00 and Tokens at 0.01. The plain plan bills a Platform fee 31.00.
January 2031 has 31 days, February 28. A fee prorated over days [a, b) of a period of n days is
R(fee x b/n) - R(fee x a/n) (periods.prorate rounds per cut point, so the pieces add up)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from domains.billing import charges, cycles, invoices, jobs, phases, schedule
from domains.billing import subscriptions as subs
from domains.billing.periods import Period
from domains.catalog import plans
from domains.catalog.plan_phases import PhaseDefinition
from domains.clock import FixedClock
from domains.errors import ConstraintViolation
from domains.unit_of_work import UnitOfWork
from persistence.db import session_factory
from tests.conftest import make_tenant
from tests.domains.billing.billing_world import at, make_plan, make_subscription, send_tokens
from tests.domains.billing.test_plan_phases import TEN_DAYS_THEN_EVERGREEN, TWO_PHASES, _phased_plan

D = Decimal
ALIGN = {"align_billing_with_phase_start_date": True}
TEN_DAYS_THEN_ALIGNED = [{"order": 1, "duration": 10, "duration_unit": "daily"}, {"order": 2, **ALIGN}]
MONTH_THEN_ALIGNED = [{"order": 1, "duration": 1, "duration_unit": "monthly"}, {"order": 2, "duration": None, **ALIGN}]
TWO_MONTHS_THEN_ALIGNED = [{"order": 1, "duration": 2, "duration_unit": "monthly"}, {"order": 2, **ALIGN}]
ALIGNED_TEN_DAYS_THEN_EVERGREEN = [{"order": 1, "duration": 10, "duration_unit": "daily", **ALIGN}, {"order": 2}]


@pytest.fixture
async def unit(database) -> AsyncIterator[UnitOfWork]:
    uow = UnitOfWork(session_factory(database.engine), clock=FixedClock(at(2031, 1, 1)))
    yield uow
    await uow.close()


def _move(uow, moment):
    uow.clock.advance(moment - uow.clock.now())


async def _sub(uow, p, sub_id):
    return await subs.get_subscription(uow, principal=p, subscription_id=sub_id)


async def _period(uow, p, sub_id, moment):
    return await charges.billing_period_at(uow, principal=p, subscription=await _sub(uow, p, sub_id), at=moment)


async def _periods(uow, p, sub_id, until):
    """The billing periods from the start up to ``until``, in order."""
    found, moment = [], (await _sub(uow, p, sub_id)).start_date
    while moment < until:
        period = await _period(uow, p, sub_id, moment)
        if period is None:
            break
        found.append((period.start, period.end))
        moment = period.end
    return found


async def _fees(uow, p, sub_id, start, end):
    lines = await charges.period_charges(uow, principal=p, subscription=await _sub(uow, p, sub_id),
                                         period=Period(start, end))
    return [(c.name, c.amount, c.start_date, c.end_date) for c in lines if c.name.endswith("fee")]


async def _lines(uow, p, sub_id, start, end):
    lines = await charges.period_charges(uow, principal=p, subscription=await _sub(uow, p, sub_id),
                                         period=Period(start, end))
    return [(c.name, c.quantity, c.amount) for c in lines]


async def _issued(uow, p):
    issued = [i for i in await jobs.close_periods(uow, org_id=p.org_id) if i.org_id == p.org_id]
    return sorted((i.period_start, i.period_end, i.total) for i in issued)


async def test_the_flag_is_stored_on_the_phase_and_read_back_as_its_definition(unit, tenant):
    p = tenant.principal
    plan = await _phased_plan(unit, p, [{"order": 1, "duration": 10, "duration_unit": "daily",
                                         "align_billing_with_phase_start_date": False},
                                        {"order": 2, "align_billing_with_phase_start_date": True}])
    found = await plans.get_plan(unit, principal=p, plan_id=plan.id)
    assert found.plan_phases == [{"order": 1, "duration": 10, "duration_unit": "daily"},
                                 {"order": 2, "duration": None, "duration_unit": None,
                                  "align_billing_with_phase_start_date": True}]
    assert schedule.phase_definitions_of([found])[plan.id] == [
        PhaseDefinition(1, 10, "daily", False), PhaseDefinition(2, None, None, True)]


async def test_an_aligned_phase_reached_by_its_duration_re_anchors_billing_on_day_11(unit, tenant):
    p = tenant.principal
    aligned = await _phased_plan(unit, p, TEN_DAYS_THEN_ALIGNED)
    plain = await _phased_plan(unit, p, TEN_DAYS_THEN_EVERGREEN)
    sub = await make_subscription(unit, p, aligned, at(2031, 1, 1))
    other = await make_subscription(unit, p, plain, at(2031, 1, 1))
    sub_id, other_id = sub.id, other.id
    await send_tokens(unit, p, sub, at(2031, 1, 5), 100, "intro")
    await send_tokens(unit, p, sub, at(2031, 1, 20), 300, "platform")
    # The ten-day phase is a short period of its own; monthly periods run from Jan 11 on.
    assert await _periods(unit, p, sub_id, at(2031, 4, 1)) == [
        (at(2031, 1, 1), at(2031, 1, 11)), (at(2031, 1, 11), at(2031, 2, 11)), (at(2031, 2, 11), at(2031, 3, 11)),
        (at(2031, 3, 11), at(2031, 4, 11))]
    # Without the flag the periods stay on the 1st.
    assert await _periods(unit, p, other_id, at(2031, 3, 1)) == [
        (at(2031, 1, 1), at(2031, 2, 1)), (at(2031, 2, 1), at(2031, 3, 1))]
    # Jan 1-11: the intro fee for 10 of January's 31 days R(10.00 x 10/31) = 3.23, the intro tokens 100 x 0.02.
    assert await _lines(unit, p, sub_id, at(2031, 1, 1), at(2031, 1, 11)) == [
        ("Intro fee", D(1), D("3.23")), ("Intro tokens", D(100), D("2.00"))]
    # Jan 11 - Feb 11: the platform fee in full (not 21/31 of it), the tokens 300 x 0.01.
    assert await _lines(unit, p, sub_id, at(2031, 1, 11), at(2031, 2, 11)) == [
        ("Platform fee", D(1), D("31.00")), ("Tokens", D(300), D("3.00"))]
    # The unaligned one bills both fees on January's invoice: 3.23 + R(31 x 31/31) - R(31 x 10/31) = 21.00.
    assert await _fees(unit, p, other_id, at(2031, 1, 1), at(2031, 2, 1)) == [
        ("Intro fee", D("3.23"), at(2031, 1, 1), at(2031, 1, 11)),
        ("Platform fee", D("21.00"), at(2031, 1, 11), at(2031, 2, 1))]
    # The period close follows the aligned periods: Jan 1-11 (5.23) at Jan 20, Jan 11 - Feb 11 (34.00) later.
    _move(unit, at(2031, 1, 20))
    assert await _issued(unit, p) == [(at(2031, 1, 1), at(2031, 1, 11), D("5.23"))]
    draft = await invoices.draft_invoice(unit, principal=p, subscription_id=sub_id)
    assert draft is not None and draft.period == Period(at(2031, 1, 11), at(2031, 2, 11)) and draft.total == D("34.00")
    # The subscription's current period, billing cycle day and price intervals follow the new anchor.
    fresh = await _sub(unit, p, sub_id)
    changes = (await schedule.plan_changes_by_subscription_ids(unit, principal=p, subscription_ids=[sub_id])).get(sub_id, [])
    defined = await schedule.phase_definitions(unit, p, [aligned.id])
    assert subs.current_billing_period(fresh, ["monthly"], at(2031, 1, 20), changes,
                                       schedule.aligned_phase_starts(fresh, changes, defined)) == Period(
        at(2031, 1, 11), at(2031, 2, 11))
    assert cycles.cycle_at(schedule.billing_cycles(fresh, changes, defined), at(2031, 1, 20)).anchor == at(2031, 1, 11)
    intervals = schedule.price_intervals_of(fresh, changes, {aligned.id: await _prices(unit, p, aligned.id)}, [],
                                            at(2031, 1, 20), defined)
    assert [(i.price.name, i.current_period) for i in intervals if i.current_period is not None] == [
        ("Platform fee", Period(at(2031, 1, 11), at(2031, 2, 11))),
        ("Tokens", Period(at(2031, 1, 11), at(2031, 2, 11)))]
    _move(unit, at(2031, 2, 11))
    issued = await _issued(unit, p)
    assert (at(2031, 1, 11), at(2031, 2, 11), D("34.00")) in issued
    assert (at(2031, 1, 1), at(2031, 2, 1), D("24.23")) in issued  # the unaligned one: 3.23 + 21.00


async def _prices(uow, p, plan_id):
    return (await charges.price_service.prices_by_plan_ids(uow, principal=p, plan_ids=[plan_id]))[plan_id]


async def test_trigger_phase_on_billing_re_anchored_by_a_plan_change(unit, tenant):
    p = tenant.principal
    plain = await make_plan(unit, p, fee="31.00", name="Plain")
    phased = await _phased_plan(unit, p, TWO_PHASES)
    aligned = await _phased_plan(unit, p, MONTH_THEN_ALIGNED)
    sub = await make_subscription(unit, p, plain, at(2031, 1, 1))
    twin = await make_subscription(unit, p, plain, at(2031, 1, 1))
    sub_id, twin_id = sub.id, twin.id
    # Both move to a phased plan on Jan 11, billing from the change day: their phase 1 runs to Feb 11.
    _move(unit, at(2031, 1, 11))
    for sid, plan in ((sub_id, phased), (twin_id, aligned)):
        await schedule.schedule_plan_change(unit, principal=p, subscription_id=sid, fields={
            "plan_id": plan.id, "change_option": "immediate", "billing_cycle_alignment": "plan_change_date"})
    # Phase 2 triggered on Jan 21 (now).
    _move(unit, at(2031, 1, 21))
    for sid in (sub_id, twin_id):
        await phases.trigger_phase(unit, principal=p, subscription_id=sid, fields={})
    # Phase 2 without the flag keeps the change's anchor: Jan 11 - Feb 11 holds 10 days of the intro fee
    # R(10 x 10/31) = 3.23 and 21 of the platform fee R(31 x 31/31) - R(31 x 10/31) = 31.00 - 10.00 = 21.00.
    assert await _periods(unit, p, sub_id, at(2031, 3, 1)) == [
        (at(2031, 1, 1), at(2031, 1, 11)), (at(2031, 1, 11), at(2031, 2, 11)), (at(2031, 2, 11), at(2031, 3, 11))]
    assert await _fees(unit, p, sub_id, at(2031, 1, 1), at(2031, 1, 11)) == [
        ("Platform fee", D("10.00"), at(2031, 1, 1), at(2031, 1, 11))]  # the plain plan, R(31 x 10/31)
    assert await _fees(unit, p, sub_id, at(2031, 1, 11), at(2031, 2, 11)) == [
        ("Intro fee", D("3.23"), at(2031, 1, 11), at(2031, 1, 21)),
        ("Platform fee", D("21.00"), at(2031, 1, 21), at(2031, 2, 11))]
    # With the flag, the triggered phase re-anchors again: Jan 11-21 is a short period (3.23), then full
    # months from Jan 21.
    assert await _periods(unit, p, twin_id, at(2031, 3, 1)) == [
        (at(2031, 1, 1), at(2031, 1, 11)), (at(2031, 1, 11), at(2031, 1, 21)), (at(2031, 1, 21), at(2031, 2, 21)),
        (at(2031, 2, 21), at(2031, 3, 21))]
    assert await _fees(unit, p, twin_id, at(2031, 1, 11), at(2031, 1, 21)) == [
        ("Intro fee", D("3.23"), at(2031, 1, 11), at(2031, 1, 21))]
    assert await _fees(unit, p, twin_id, at(2031, 1, 21), at(2031, 2, 21)) == [
        ("Platform fee", D("31.00"), at(2031, 1, 21), at(2031, 2, 21))]
    _move(unit, at(2031, 2, 21))
    assert await _issued(unit, p) == [
        (at(2031, 1, 1), at(2031, 1, 11), D("10.00")), (at(2031, 1, 1), at(2031, 1, 11), D("10.00")),
        (at(2031, 1, 11), at(2031, 1, 21), D("3.23")), (at(2031, 1, 11), at(2031, 2, 11), D("24.23")),
        (at(2031, 1, 21), at(2031, 2, 21), D("31.00"))]


async def test_a_trigger_into_an_aligned_phase_is_refused_inside_invoiced_billing(unit, tenant):
    p = tenant.principal
    plan = await _phased_plan(unit, p, TWO_MONTHS_THEN_ALIGNED)
    sub = await make_subscription(unit, p, plan, at(2031, 1, 1))
    sub_id = sub.id
    _move(unit, at(2031, 2, 2))
    assert await _issued(unit, p) == [(at(2031, 1, 1), at(2031, 2, 1), D("10.00"))]
    with pytest.raises(ConstraintViolation) as invoiced:  # would re-anchor inside issued January
        await phases.trigger_phase(unit, principal=p, subscription_id=sub_id, fields={"effective_date": "2031-01-20"})
    assert invoiced.value.field == "effective_date" and "invoiced up to 2031-02-01" in str(invoiced.value)
    # Backdated into the open period: Feb 1-10 is a short period, R(10 x 9/28) = 3.21; months from Feb 10.
    await phases.trigger_phase(unit, principal=p, subscription_id=sub_id, fields={"effective_date": "2031-02-10"})
    assert await _periods(unit, p, sub_id, at(2031, 4, 1)) == [
        (at(2031, 1, 1), at(2031, 2, 1)), (at(2031, 2, 1), at(2031, 2, 10)), (at(2031, 2, 10), at(2031, 3, 10)),
        (at(2031, 3, 10), at(2031, 4, 10))]
    assert await _fees(unit, p, sub_id, at(2031, 2, 1), at(2031, 2, 10)) == [
        ("Intro fee", D("3.21"), at(2031, 2, 1), at(2031, 2, 10))]
    assert await _fees(unit, p, sub_id, at(2031, 2, 10), at(2031, 3, 10)) == [
        ("Platform fee", D("31.00"), at(2031, 2, 10), at(2031, 3, 10))]
    _move(unit, at(2031, 3, 10))
    assert await _issued(unit, p) == [(at(2031, 2, 1), at(2031, 2, 10), D("3.21")),
                                      (at(2031, 2, 10), at(2031, 3, 10), D("31.00"))]


async def test_a_plan_change_into_a_phased_plan_counts_its_phases_from_the_change(unit, tenant):
    p = tenant.principal
    plain = await make_plan(unit, p, fee="31.00", name="Plain")
    phased = await _phased_plan(unit, p, TEN_DAYS_THEN_EVERGREEN)
    aligned = await _phased_plan(unit, p, TEN_DAYS_THEN_ALIGNED)
    first_aligned = await _phased_plan(unit, p, ALIGNED_TEN_DAYS_THEN_EVERGREEN)
    cases = [(phased, "plan_change_date"), (aligned, "plan_change_date"), (aligned, None),
             (first_aligned, None), (first_aligned, "start_of_month")]
    ids = []
    for plan, alignment in cases:
        sub = await make_subscription(unit, p, plain, at(2031, 1, 1))
        ids.append(sub.id)
        await schedule.schedule_plan_change(unit, principal=p, subscription_id=sub.id, fields={
            "plan_id": plan.id, "change_option": "requested_date", "change_date": "2031-01-11T00:00:00Z",
            **({"billing_cycle_alignment": alignment} if alignment else {})})
    for sid in ids:  # the phases run from the change: ten days, then the evergreen phase from Jan 21
        assert [(o, s, e) for o, s, e in
                [(ph.phase_order, ph.start, ph.end) for ph in await schedule.plan_phases(
                    unit, principal=p, subscription=await _sub(unit, p, sid))]] == [
            (None, at(2031, 1, 1), at(2031, 1, 11)), (1, at(2031, 1, 11), at(2031, 1, 21)), (2, at(2031, 1, 21), None)]
    by_change, both, by_phase, by_first_phase, month_start = ids
    # Re-anchored at the change: Jan 11 - Feb 11 holds 10 days of the intro fee R(10 x 10/31) = 3.23 and
    # 21 of the platform fee 31.00 - R(31 x 10/31) = 21.00.
    assert await _periods(unit, p, by_change, at(2031, 3, 1)) == [
        (at(2031, 1, 1), at(2031, 1, 11)), (at(2031, 1, 11), at(2031, 2, 11)), (at(2031, 2, 11), at(2031, 3, 11))]
    assert await _fees(unit, p, by_change, at(2031, 1, 11), at(2031, 2, 11)) == [
        ("Intro fee", D("3.23"), at(2031, 1, 11), at(2031, 1, 21)),
        ("Platform fee", D("21.00"), at(2031, 1, 21), at(2031, 2, 11))]
    # At the change and again at the aligned phase 2: a ten-day period, then months from Jan 21.
    assert await _periods(unit, p, both, at(2031, 3, 1)) == [
        (at(2031, 1, 1), at(2031, 1, 11)), (at(2031, 1, 11), at(2031, 1, 21)), (at(2031, 1, 21), at(2031, 2, 21)),
        (at(2031, 2, 21), at(2031, 3, 21))]
    assert await _fees(unit, p, both, at(2031, 1, 21), at(2031, 2, 21)) == [
        ("Platform fee", D("31.00"), at(2031, 1, 21), at(2031, 2, 21))]
    # Only at the aligned phase 2: Jan 1-21 on January's grid holds the plain fee R(31 x 10/31) = 10.00 and
    # the intro fee R(10 x 20/31) - R(10 x 10/31) = 6.45 - 3.23 = 3.22.
    assert await _periods(unit, p, by_phase, at(2031, 3, 1)) == [
        (at(2031, 1, 1), at(2031, 1, 21)), (at(2031, 1, 21), at(2031, 2, 21)), (at(2031, 2, 21), at(2031, 3, 21))]
    assert await _fees(unit, p, by_phase, at(2031, 1, 1), at(2031, 1, 21)) == [
        ("Platform fee", D("10.00"), at(2031, 1, 1), at(2031, 1, 11)),
        ("Intro fee", D("3.22"), at(2031, 1, 11), at(2031, 1, 21))]
    # A first phase aligning with its start: entered by the change, it re-anchors there as plan_change_date does.
    assert await _periods(unit, p, by_first_phase, at(2031, 3, 1)) == await _periods(unit, p, by_change, at(2031, 3, 1))
    assert await _fees(unit, p, by_first_phase, at(2031, 1, 11), at(2031, 2, 11)) == await _fees(
        unit, p, by_change, at(2031, 1, 11), at(2031, 2, 11))
    # A change giving its own alignment keeps it: start_of_month, so Jan 11 - Feb 1 is one short period.
    assert await _periods(unit, p, month_start, at(2031, 3, 1)) == [
        (at(2031, 1, 1), at(2031, 1, 11)), (at(2031, 1, 11), at(2031, 2, 1)), (at(2031, 2, 1), at(2031, 3, 1))]


async def test_a_change_into_a_plan_whose_first_phase_aligns_is_refused_inside_invoiced_billing(unit, tenant):
    p = tenant.principal
    plain = await make_plan(unit, p, fee="31.00", name="Plain")
    first_aligned = await _phased_plan(unit, p, ALIGNED_TEN_DAYS_THEN_EVERGREEN)
    sub = await make_subscription(unit, p, plain, at(2031, 1, 1))
    sub_id = sub.id
    _move(unit, at(2031, 2, 2))
    assert await _issued(unit, p) == [(at(2031, 1, 1), at(2031, 2, 1), D("31.00"))]
    with pytest.raises(ConstraintViolation) as invoiced:
        await schedule.schedule_plan_change(unit, principal=p, subscription_id=sub_id, fields={
            "plan_id": first_aligned.id, "change_option": "requested_date", "change_date": "2031-01-20T00:00:00Z"})
    assert invoiced.value.field == "change_date"


async def test_update_trial_and_cancel_on_an_aligned_subscription(unit, tenant):
    p = tenant.principal
    plan = await _phased_plan(unit, p, TWO_MONTHS_THEN_ALIGNED)
    trial = await make_subscription(unit, p, plan, at(2031, 1, 1), trial_duration_days=10)
    early = await make_subscription(unit, p, plan, at(2031, 1, 1))
    term = await make_subscription(unit, p, plan, at(2031, 1, 1))
    trial_id, early_id, term_id = trial.id, early.id, term.id
    # Phase 2 scheduled for Jan 20 (after the trial); the trial then moves from Jan 11 to Jan 15, shifting it.
    _move(unit, at(2031, 1, 5))
    await phases.trigger_phase(unit, principal=p, subscription_id=trial_id, fields={"effective_date": "2031-01-20"})
    await phases.trigger_phase(unit, principal=p, subscription_id=early_id, fields={"effective_date": "2031-01-24"})
    await subs.update_trial(unit, principal=p, subscription_id=trial_id, trial_end_date="2031-01-15T00:00:00Z")
    assert [(ph.phase_order, ph.start) for ph in await schedule.plan_phases(
        unit, principal=p, subscription=await _sub(unit, p, trial_id))] == [(1, at(2031, 1, 1)), (2, at(2031, 1, 24))]
    # The re-anchoring moved with the phase: Jan 1-24, then months from Jan 24. No intro fee in the trial:
    # Jan 15-24 of January's grid R(10 x 23/31) - R(10 x 14/31) = 7.42 - 4.52 = 2.90.
    assert await _periods(unit, p, trial_id, at(2031, 3, 1)) == [
        (at(2031, 1, 1), at(2031, 1, 24)), (at(2031, 1, 24), at(2031, 2, 24)), (at(2031, 2, 24), at(2031, 3, 24))]
    assert await _fees(unit, p, trial_id, at(2031, 1, 1), at(2031, 1, 24)) == [
        ("Intro fee", D("2.90"), at(2031, 1, 15), at(2031, 1, 24))]
    assert await _fees(unit, p, trial_id, at(2031, 1, 24), at(2031, 2, 24)) == [
        ("Platform fee", D("31.00"), at(2031, 1, 24), at(2031, 2, 24))]

    _move(unit, at(2031, 3, 5))
    # At term end: the billing period holding now on the phase's anchor, Feb 24 - Mar 24 (on the 1st
    # without a trigger: phase 2 then aligns on Mar 1, its duration's end, and the term is March).
    ended = await subs.cancel_subscription(unit, principal=p, subscription_id=trial_id,
                                           cancel_option="end_of_subscription_term")
    assert ended.end_date == at(2031, 3, 24)
    assert (await subs.cancel_subscription(unit, principal=p, subscription_id=term_id,
                                           cancel_option="end_of_subscription_term")).end_date == at(2031, 4, 1)
    assert (await _periods(unit, p, trial_id, at(2031, 5, 1)))[-1:] == [(at(2031, 2, 24), at(2031, 3, 24))]
    # Immediately: Mar 5 closes the period Feb 24 - Mar 5, the platform fee for 9 of 28 days R(31 x 9/28) = 9.96.
    ended_now = await subs.cancel_subscription(unit, principal=p, subscription_id=early_id, cancel_option="immediate")
    assert ended_now.end_date == at(2031, 3, 5)
    assert (await _periods(unit, p, early_id, at(2031, 5, 1)))[-2:] == [
        (at(2031, 1, 24), at(2031, 2, 24)), (at(2031, 2, 24), at(2031, 3, 5))]
    assert await _fees(unit, p, early_id, at(2031, 2, 24), at(2031, 3, 5)) == [
        ("Platform fee", D("9.96"), at(2031, 2, 24), at(2031, 3, 5))]


async def test_a_term_end_cancel_before_an_aligned_phase_ends_where_it_re_anchors(unit, tenant):
    p = tenant.principal
    plan = await _phased_plan(unit, p, TEN_DAYS_THEN_ALIGNED)
    sub = await make_subscription(unit, p, plan, at(2031, 1, 1))
    sub_id = sub.id
    _move(unit, at(2031, 1, 5))
    # The billing period holding now ends at the aligned phase's start (Jan 11), as a pending re-anchoring
    # plan change's would: the term ends there and phase 2 never begins.
    ended = await subs.cancel_subscription(unit, principal=p, subscription_id=sub_id,
                                           cancel_option="end_of_subscription_term")
    assert ended.end_date == at(2031, 1, 11)
    assert await _periods(unit, p, sub_id, at(2031, 3, 1)) == [(at(2031, 1, 1), at(2031, 1, 11))]
    assert await _fees(unit, p, sub_id, at(2031, 1, 1), at(2031, 1, 11)) == [
        ("Intro fee", D("3.23"), at(2031, 1, 1), at(2031, 1, 11))]


async def test_the_period_close_reads_phases_per_run_not_per_subscription(unit, database, count_queries):
    runs = []
    for count in (2, 4, 6):  # an organisation each, closed on its own
        p = (await make_tenant(database)).principal
        plan = await _phased_plan(unit, p, TEN_DAYS_THEN_ALIGNED)
        for _ in range(count):
            await make_subscription(unit, p, plan, at(2031, 1, 1))
        with count_queries() as counter:
            issued = await jobs.close_periods(unit, at(2031, 2, 11), org_id=p.org_id)
        # Each: Jan 1-11 (the intro fee 3.23) and Jan 11 - Feb 11 (the platform fee 31.00).
        assert sorted((i.period_start, i.period_end, i.total) for i in issued) == sorted(
            [(at(2031, 1, 1), at(2031, 1, 11), D("3.23")), (at(2031, 1, 11), at(2031, 2, 11), D("31.00"))] * count)
        on_plans = [s for s in counter.statements if " plans" in s.lower()]
        runs.append((counter.count, len(on_plans)))
    # A constant number of statements per subscription, and the plans' phases read once a run.
    assert runs[2][0] - runs[1][0] == runs[1][0] - runs[0][0]
    assert [on_plans for _, on_plans in runs] == [1, 1, 1]


async def test_an_anchor_day_stands_at_the_start_and_an_aligned_phase_moves_it_later(unit, tenant):
    p = tenant.principal
    later = await _phased_plan(unit, p, TEN_DAYS_THEN_ALIGNED)
    first = await _phased_plan(unit, p, ALIGNED_TEN_DAYS_THEN_EVERGREEN)
    anchored = {"billing_cycle_anchor_configuration": {"day": 1}}
    moved = (await make_subscription(unit, p, later, at(2031, 1, 15), **anchored)).id
    kept = (await make_subscription(unit, p, first, at(2031, 1, 15), **anchored)).id
    # Billing on the 1st from Jan 15 until phase 2 aligns it on Jan 25: Jan 15-25 is one short period, the
    # intro fee on January's grid R(10 x 24/31) - R(10 x 14/31) = 7.74 - 4.52 = 3.22; months from Jan 25.
    assert await _periods(unit, p, moved, at(2031, 3, 1)) == [
        (at(2031, 1, 15), at(2031, 1, 25)), (at(2031, 1, 25), at(2031, 2, 25)), (at(2031, 2, 25), at(2031, 3, 25))]
    assert await _fees(unit, p, moved, at(2031, 1, 15), at(2031, 1, 25)) == [
        ("Intro fee", D("3.22"), at(2031, 1, 15), at(2031, 1, 25))]
    # A first phase aligning with the subscription's start leaves the configured anchor: the stub to Feb 1
    # holds 10 days of the intro fee (3.22) and 7 of the platform fee R(31 x 31/31) - R(31 x 24/31) = 7.00.
    assert await _periods(unit, p, kept, at(2031, 3, 1)) == [
        (at(2031, 1, 15), at(2031, 2, 1)), (at(2031, 2, 1), at(2031, 3, 1))]
    assert await _fees(unit, p, kept, at(2031, 1, 15), at(2031, 2, 1)) == [
        ("Intro fee", D("3.22"), at(2031, 1, 15), at(2031, 1, 25)),
        ("Platform fee", D("7.00"), at(2031, 1, 25), at(2031, 2, 1))]


async def test_a_backdated_change_may_not_undo_an_invoiced_re_anchoring(unit, tenant):
    p = tenant.principal
    plain = await make_plan(unit, p, fee="31.00", name="Plain")
    aligned = await _phased_plan(unit, p, TEN_DAYS_THEN_ALIGNED)
    sub = await make_subscription(unit, p, aligned, at(2031, 1, 1))
    sub_id, plain_id = sub.id, plain.id  # a refused change rolls back and expires the session's rows
    _move(unit, at(2031, 2, 12))
    assert await _issued(unit, p) == [(at(2031, 1, 1), at(2031, 1, 11), D("3.23")),
                                      (at(2031, 1, 11), at(2031, 2, 11), D("31.00"))]
    # Leaving the plan on Jan 5 would drop phase 2 and its Jan 11 anchor: the periods would run Jan 1 - Feb 1,
    # across both issued invoices (and the close would go on from Feb 11 into a Feb 1 - Mar 1 period).
    with pytest.raises(ConstraintViolation) as undone:
        await schedule.schedule_plan_change(unit, principal=p, subscription_id=sub_id, fields={
            "plan_id": plain_id, "change_option": "requested_date", "change_date": "2031-01-05T00:00:00Z"})
    assert undone.value.field == "change_date" and "invoiced up to 2031-02-11" in str(undone.value)
    assert "would move the billing periods" in str(undone.value)
    # After the anchor moved, a backdated change keeps the invoiced periods; but Jan 20 - Feb 11 stands invoiced on
    # the aligned plan, which the plain plan would then never bill: refused until that invoice is void.
    with pytest.raises(ConstraintViolation) as billed:
        await schedule.schedule_plan_change(unit, principal=p, subscription_id=sub_id, fields={
            "plan_id": plain_id, "change_option": "requested_date", "change_date": "2031-01-20T00:00:00Z"})
    assert billed.value.field == "change_date"
    assert "invoiced up to 2031-02-11T00:00:00+00:00; a plan change before that" in str(billed.value)
    second = next(i for i in (await invoices.list_invoices(unit, principal=p, subscription_id=sub_id)).items
                  if i.period_start == at(2031, 1, 11))
    await invoices.void_invoice(unit, principal=p, invoice_id=second.id)
    # From Jan 20 the plain plan bills on the Jan 11 grid; Feb 11 - Mar 11 is its full fee.
    await schedule.schedule_plan_change(unit, principal=p, subscription_id=sub_id, fields={
        "plan_id": plain_id, "change_option": "requested_date", "change_date": "2031-01-20T00:00:00Z"})
    assert await _periods(unit, p, sub_id, at(2031, 3, 1)) == [
        (at(2031, 1, 1), at(2031, 1, 11)), (at(2031, 1, 11), at(2031, 2, 11)), (at(2031, 2, 11), at(2031, 3, 11))]
    assert await _fees(unit, p, sub_id, at(2031, 2, 11), at(2031, 3, 11)) == [
        ("Platform fee", D("31.00"), at(2031, 2, 11), at(2031, 3, 11))]
