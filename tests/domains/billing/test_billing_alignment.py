"""Billing alignment, worked by hand to the cent on both databases: plan changes that re-anchor the
billing periods (billing_cycle_alignment), a subscription anchored on a day of the month, end dates,
trials given on creation and on a plan change, and the settings a plan change or an update carries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest

from domains.billing import charges, invoices, jobs, schedule
from domains.billing import subscriptions as subs
from domains.billing.periods import Period
from domains.catalog import items, plans
from domains.clock import FixedClock
from domains.errors import ConstraintViolation, ValidationFailed
from domains.unit_of_work import UnitOfWork
from persistence.db import session_factory
from tests.domains.billing.billing_world import at, make_plan, make_subscription, send_tokens
from tests.domains.billing.test_trials import _trial_plan

D = Decimal
START = at(2024, 1, 1)


@pytest.fixture
async def unit(database) -> AsyncIterator[UnitOfWork]:
    uow = UnitOfWork(session_factory(database.engine), clock=FixedClock(START))
    yield uow
    await uow.close()


def _move(uow, moment):
    uow.clock.advance(moment - uow.clock.now())


async def _fresh(uow, p, sub_id):
    return await subs.get_subscription(uow, principal=p, subscription_id=sub_id)


async def _period(uow, p, sub_id, moment):
    return await charges.billing_period_at(uow, principal=p, subscription=await _fresh(uow, p, sub_id), at=moment)


async def _fees(uow, p, sub_id, period):
    lines = await charges.period_charges(uow, principal=p, subscription=await _fresh(uow, p, sub_id), period=period)
    return [(c.name, c.amount, c.start_date, c.end_date) for c in lines if c.name == "Platform fee"]


async def _fixed_fee_id(uow, p, plan_id):
    """The id of the plan's one fixed fee (its price without a metric)."""
    prices = (await charges.Catalog().prices_by_plan_ids(uow, p, [plan_id]))[plan_id]
    return next(price.id for price in prices if price.billable_metric_id is None)


async def _issued(uow, p):
    issued = [i for i in await jobs.close_periods(uow, org_id=p.org_id) if i.org_id == p.org_id]
    return sorted(issued, key=lambda i: i.period_start)


async def test_an_immediate_change_aligned_to_its_date_closes_the_old_period_and_bills_the_new_plan_in_full(
        unit, tenant):
    p = tenant.principal
    basic = await make_plan(unit, p, fee="31.00", name="Basic")
    pro = await make_plan(unit, p, fee="62.00", name="Pro",
                          usage={"model_type": "unit", "unit_config": {"unit_amount": "0.02"}})
    sub = await make_subscription(unit, p, basic, START)
    sub_id = sub.id
    await send_tokens(unit, p, sub, at(2024, 1, 5), 1200, "before")
    _move(unit, at(2024, 1, 11))
    await schedule.schedule_plan_change(unit, principal=p, subscription_id=sub_id, fields={
        "plan_id": pro.id, "change_option": "immediate", "billing_cycle_alignment": "plan_change_date"})
    await send_tokens(unit, p, sub, at(2024, 1, 20), 50, "after")
    # Basic's period ends at the change: 10 of January's 31 days of 31.00 = 10.00, on an invoice of its own.
    assert await _period(unit, p, sub_id, at(2024, 1, 5)) == Period(at(2024, 1, 1), at(2024, 1, 11))
    # Pro's periods start on the change day, each a full month: 62.00, not the 42.00 of 21/31 days.
    assert await _period(unit, p, sub_id, at(2024, 1, 20)) == Period(at(2024, 1, 11), at(2024, 2, 11))
    assert await _fees(unit, p, sub_id, Period(at(2024, 1, 11), at(2024, 2, 11))) == [
        ("Platform fee", D("62.00"), at(2024, 1, 11), at(2024, 2, 11))]
    # The job issues the closed stub at once; the next month when Pro's first period ends.
    first = await _issued(unit, p)
    assert [(i.period_start, i.period_end, i.total) for i in first] == [
        (at(2024, 1, 1), at(2024, 1, 11), D("21.00"))]  # 10.00 + 1,200 tokens on Basic's tiers (11.00)
    _move(unit, at(2024, 2, 11))
    second = await _issued(unit, p)
    # 62.00 + 50 tokens at 0.02 = 63.00
    assert [(i.period_start, i.period_end, i.total) for i in second] == [(at(2024, 1, 11), at(2024, 2, 11), D("63.00"))]
    fetched = await _fresh(unit, p, sub_id)
    changes = (await schedule.plan_changes_by_subscription_ids(unit, principal=p, subscription_ids=[sub_id]))[sub_id]
    assert subs.current_billing_period(fetched, ["monthly"], at(2024, 2, 20), changes) == Period(
        at(2024, 2, 11), at(2024, 3, 11))


async def test_the_same_change_left_unchanged_prorates_both_plans_on_one_invoice(unit, tenant):
    p = tenant.principal
    basic = await make_plan(unit, p, fee="31.00", name="Basic")
    pro = await make_plan(unit, p, fee="62.00", name="Pro")
    sub = await make_subscription(unit, p, basic, START)
    _move(unit, at(2024, 1, 11))
    await schedule.schedule_plan_change(unit, principal=p, subscription_id=sub.id, fields={
        "plan_id": pro.id, "change_option": "immediate", "align_billing_with_plan_change_date": False})
    january = Period(at(2024, 1, 1), at(2024, 2, 1))
    assert await _period(unit, p, sub.id, at(2024, 1, 20)) == january
    # 31.00 x 10/31 = 10.00 and 62.00 x 21/31 = 42.00
    assert await _fees(unit, p, sub.id, january) == [
        ("Platform fee", D("10.00"), at(2024, 1, 1), at(2024, 1, 11)),
        ("Platform fee", D("42.00"), at(2024, 1, 11), at(2024, 2, 1))]


async def test_a_change_aligned_to_the_start_of_month_bills_a_stub_to_the_first(unit, tenant):
    p = tenant.principal
    basic = await make_plan(unit, p, fee="31.00", name="Basic")
    pro = await make_plan(unit, p, fee="62.00", name="Pro")
    sub = await make_subscription(unit, p, basic, at(2024, 1, 15))
    _move(unit, at(2024, 3, 1))
    await schedule.schedule_plan_change(unit, principal=p, subscription_id=sub.id, fields={
        "plan_id": pro.id, "change_option": "requested_date", "change_date": at(2024, 3, 10),
        "billing_cycle_alignment": "start_of_month"})
    # Basic: Feb 15 - Mar 10 is 24 of the 29 days of Feb 15 - Mar 15 (2024 is a leap year):
    # 31.00 x 24/29 = 25.655... -> 25.66.
    stub = Period(at(2024, 2, 15), at(2024, 3, 10))
    assert await _period(unit, p, sub.id, at(2024, 3, 1)) == stub
    assert await _fees(unit, p, sub.id, stub) == [("Platform fee", D("25.66"), at(2024, 2, 15), at(2024, 3, 10))]
    # Pro: Mar 10 - Apr 1 is 22 of March's 31 days: 62.00 x 22/31 = 44.00; then whole months from the 1st.
    to_first = Period(at(2024, 3, 10), at(2024, 4, 1))
    assert await _period(unit, p, sub.id, at(2024, 3, 20)) == to_first
    assert await _fees(unit, p, sub.id, to_first) == [("Platform fee", D("44.00"), at(2024, 3, 10), at(2024, 4, 1))]
    april = Period(at(2024, 4, 1), at(2024, 5, 1))
    assert await _period(unit, p, sub.id, at(2024, 4, 15)) == april
    assert await _fees(unit, p, sub.id, april) == [("Platform fee", D("62.00"), at(2024, 4, 1), at(2024, 5, 1))]
    # The term after the change ends with the re-anchored period, and so does a cancellation at term end.
    _move(unit, at(2024, 3, 20))
    ended = await subs.cancel_subscription(unit, principal=p, subscription_id=sub.id,
                                           cancel_option="end_of_subscription_term")
    assert ended.end_date == at(2024, 4, 1)


async def test_a_fixed_fee_quantity_change_at_the_upcoming_invoice_follows_the_new_cycle(unit, tenant):
    p = tenant.principal
    basic = await make_plan(unit, p, fee="31.00", name="Basic")
    pro = await make_plan(unit, p, fee="62.00", name="Pro")
    sub = await make_subscription(unit, p, basic, START)
    _move(unit, at(2024, 1, 11))
    await schedule.schedule_plan_change(unit, principal=p, subscription_id=sub.id, fields={
        "plan_id": pro.id, "change_option": "immediate", "align_billing_with_plan_change_date": True})
    _move(unit, at(2024, 1, 20))
    fee_id = await _fixed_fee_id(unit, p, pro.id)
    await schedule.change_fixed_fee_quantity(unit, principal=p, subscription_id=sub.id, fields={
        "price_id": fee_id, "quantity": 2, "change_option": "upcoming_invoice"})
    rows = await schedule.quantity_changes_by_subscription_ids(unit, principal=p, subscription_ids=[sub.id])
    assert [(r.effective_date, r.quantity) for r in rows[sub.id]] == [(at(2024, 2, 11), D(2))]
    assert await _fees(unit, p, sub.id, Period(at(2024, 2, 11), at(2024, 3, 11))) == [
        ("Platform fee", D("124.00"), at(2024, 2, 11), at(2024, 3, 11))]


async def test_a_day_anchor_on_creation_prorates_the_first_stub(unit, tenant):
    p = tenant.principal
    plan = await make_plan(unit, p, fee="31.00")
    sub = await make_subscription(unit, p, plan, at(2024, 1, 15), billing_cycle_anchor_configuration={"day": 1})
    # Jan 15 - Feb 1: 17 of January's 31 days of 31.00 = 17.00; then whole months from the 1st.
    assert await _period(unit, p, sub.id, at(2024, 1, 20)) == Period(at(2024, 1, 15), at(2024, 2, 1))
    assert await _fees(unit, p, sub.id, Period(at(2024, 1, 15), at(2024, 2, 1))) == [
        ("Platform fee", D("17.00"), at(2024, 1, 15), at(2024, 2, 1))]
    assert await _period(unit, p, sub.id, at(2024, 2, 10)) == Period(at(2024, 2, 1), at(2024, 3, 1))
    # Day 31 from April 10: April's period starts on its last day (the 30th); the stub Apr 10 - Apr 30 is
    # 20 of the 30 days of Mar 31 - Apr 30: 31.00 x 20/30 = 20.666... -> 20.67. Then May 31, June 30 ...
    late = await make_subscription(unit, p, plan, at(2024, 4, 10), billing_cycle_anchor_configuration={"day": 31})
    assert await _period(unit, p, late.id, at(2024, 4, 12)) == Period(at(2024, 4, 10), at(2024, 4, 30))
    assert await _fees(unit, p, late.id, Period(at(2024, 4, 10), at(2024, 4, 30))) == [
        ("Platform fee", D("20.67"), at(2024, 4, 10), at(2024, 4, 30))]
    assert await _period(unit, p, late.id, at(2024, 5, 5)) == Period(at(2024, 4, 30), at(2024, 5, 31))
    assert await _period(unit, p, late.id, at(2024, 6, 5)) == Period(at(2024, 5, 31), at(2024, 6, 30))
    # A month for longer cadences: a quarterly fee anchored on Feb 1 bills Feb, May, Aug, Nov.
    quarterly = await make_plan(unit, p, fee="90.00", name="Quarterly", fee_cadence="quarterly")
    q = await make_subscription(unit, p, quarterly, at(2024, 1, 1),
                                billing_cycle_anchor_configuration={"day": 1, "month": 2})
    # Jan 1 - Feb 1 is 31 of the 92 days of Nov 1 - Feb 1: 90.00 x 31/92 = 30.326... -> 30.33
    assert await _fees(unit, p, q.id, Period(at(2024, 1, 1), at(2024, 2, 1))) == [
        ("Platform fee", D("30.33"), at(2024, 1, 1), at(2024, 2, 1))]
    assert await _fees(unit, p, q.id, Period(at(2024, 2, 1), at(2024, 3, 1))) == [
        ("Platform fee", D("90.00"), at(2024, 2, 1), at(2024, 5, 1))]


async def test_an_end_date_a_trial_and_a_memo_given_on_creation(unit, tenant):
    p = tenant.principal
    plan = await make_plan(unit, p, fee="31.00")
    sub = await make_subscription(unit, p, plan, START, end_date=at(2024, 1, 21), trial_duration_days=5,
                                  default_invoice_memo="Thank you for your business", net_terms=15)
    assert (sub.end_date, sub.trial_end_date) == (at(2024, 1, 21), at(2024, 1, 6))
    # Billed Jan 6 - Jan 21 only: 15 of 31 days of 31.00 = 15.00.
    period = await _period(unit, p, sub.id, at(2024, 1, 10))
    assert period == Period(at(2024, 1, 1), at(2024, 1, 21))
    assert await _fees(unit, p, sub.id, period) == [("Platform fee", D("15.00"), at(2024, 1, 6), at(2024, 1, 21))]
    _move(unit, at(2024, 1, 25))
    assert subs.subscription_status(await _fresh(unit, p, sub.id), unit.clock.now()) == "ended"
    [invoice] = await _issued(unit, p)
    assert (invoice.total, invoice.memo, invoice.due_date) == (D("15.00"), "Thank you for your business",
                                                               at(2024, 1, 25) + timedelta(days=15))
    # trial_duration_days 0 skips a plan's trial.
    trial_plan = await _trial_plan(unit, p, days=14)
    skipped = await make_subscription(unit, p, trial_plan, START, trial_duration_days=0)
    kept = await make_subscription(unit, p, trial_plan, START)
    assert (skipped.trial_end_date, kept.trial_end_date) == (None, at(2024, 1, 15))


async def test_a_plan_change_carries_a_trial_and_the_subscription_settings(unit, tenant):
    p = tenant.principal
    basic = await make_plan(unit, p, fee="31.00", name="Basic")
    pro = await make_plan(unit, p, fee="62.00", name="Pro")
    sub = await make_subscription(unit, p, basic, START)
    _move(unit, at(2024, 1, 11))
    changed = await schedule.schedule_plan_change(unit, principal=p, subscription_id=sub.id, fields={
        "plan_id": pro.id, "change_option": "immediate", "trial_duration_days": 5, "net_terms": 45,
        "auto_collection": False, "default_invoice_memo": "Pro from January"})
    assert (changed.net_terms, changed.auto_collection, changed.default_invoice_memo) == (45, False, "Pro from January")
    # Basic 10 days (10.00); Pro free until Jan 16, then 16 of 31 days of 62.00 = 32.00.
    assert await _fees(unit, p, sub.id, Period(at(2024, 1, 1), at(2024, 2, 1))) == [
        ("Platform fee", D("10.00"), at(2024, 1, 1), at(2024, 1, 11)),
        ("Platform fee", D("32.00"), at(2024, 1, 16), at(2024, 2, 1))]
    _move(unit, at(2024, 2, 1))
    [invoice] = await _issued(unit, p)
    assert (invoice.memo, invoice.net_terms, invoice.due_date) == ("Pro from January", 45, at(2024, 3, 17))
    # The trial moves with the change when the subscription's trial shifts it, being counted from it.
    draft = await invoices.draft_invoice(unit, principal=p, subscription_id=sub.id)
    assert draft is not None and draft.memo == "Pro from January"


async def test_bad_alignment_inputs_are_named_and_invoiced_periods_are_never_re_anchored(unit, tenant):
    p = tenant.principal
    basic = await make_plan(unit, p, fee="31.00", name="Basic")
    pro = await make_plan(unit, p, fee="62.00", name="Pro")
    sub = await make_subscription(unit, p, basic, START)
    sub_id, pro_id = sub.id, pro.id  # a refused change rolls back, which expires the instances
    _move(unit, at(2024, 2, 10))
    await _issued(unit, p)  # January is invoiced
    cases = [
        ({"billing_cycle_alignment": "weekly"}, "billing_cycle_alignment"),
        ({"billing_cycle_alignment": "start_of_month", "align_billing_with_plan_change_date": True},
         "align_billing_with_plan_change_date"),
        ({"align_billing_with_plan_change_date": "yes"}, "align_billing_with_plan_change_date"),
        ({"trial_duration_days": -3}, "trial_duration_days"),
        ({"net_terms": 400}, "net_terms"),
        ({"auto_collection": "on"}, "auto_collection"),
        ({"default_invoice_memo": 7}, "default_invoice_memo"),
        ({"price_overrides": []}, "price_overrides"),
        ({"plan_version_number": 2}, "plan_version_number"),
    ]
    for extra, field in cases:
        with pytest.raises(ValidationFailed) as refused:
            await schedule.schedule_plan_change(unit, principal=p, subscription_id=sub_id, fields={
                "plan_id": pro_id, "change_option": "immediate", **extra})
        assert refused.value.field == field, extra
    with pytest.raises(ConstraintViolation) as refused:
        await schedule.schedule_plan_change(unit, principal=p, subscription_id=sub_id, fields={
            "plan_id": pro_id, "change_option": "requested_date", "change_date": at(2024, 1, 20),
            "billing_cycle_alignment": "plan_change_date"})
    assert refused.value.field == "change_date"
    # Nothing changed; a change re-anchoring from after the invoiced period is taken.
    assert await schedule.plan_changes_by_subscription_ids(unit, principal=p, subscription_ids=[sub_id]) == {}
    await schedule.schedule_plan_change(unit, principal=p, subscription_id=sub_id, fields={
        "plan_id": pro_id, "change_option": "requested_date", "change_date": at(2024, 2, 5),
        "billing_cycle_alignment": "plan_change_date"})
    assert await _period(unit, p, sub_id, at(2024, 2, 3)) == Period(at(2024, 2, 1), at(2024, 2, 5))


async def test_update_sets_net_terms_auto_collection_and_the_memo(unit, tenant):
    p = tenant.principal
    sub = await make_subscription(unit, p, await make_plan(unit, p), START)
    updated = await subs.update_subscription(unit, principal=p, subscription_id=sub.id, fields={
        "net_terms": 10, "auto_collection": True, "default_invoice_memo": "PO 1234"})
    assert (updated.net_terms, updated.auto_collection, updated.default_invoice_memo) == (10, True, "PO 1234")
    cleared = await subs.update_subscription(unit, principal=p, subscription_id=sub.id, fields={
        "auto_collection": None, "default_invoice_memo": None})
    assert (cleared.net_terms, cleared.auto_collection, cleared.default_invoice_memo) == (10, None, None)
    for fields, field in [({"net_terms": -1}, "net_terms"), ({"auto_issuance": True}, "auto_issuance"),
                          ({"invoicing_threshold": "5"}, "invoicing_threshold")]:
        with pytest.raises(ValidationFailed) as refused:
            await subs.update_subscription(unit, principal=p, subscription_id=sub.id, fields=fields)
        assert refused.value.field == field


async def test_a_trial_shift_may_not_move_a_re_anchoring_change_into_invoiced_billing(unit, tenant):
    # Shortening the trial with shift moves the pending change (Feb 15, re-anchoring) back by 21 days, to
    # Jan 25: inside January, already invoiced, whose period would then be billed again from Jan 25.
    p = tenant.principal
    basic = await make_plan(unit, p, fee="31.00", name="Basic")
    pro = await make_plan(unit, p, fee="62.00", name="Pro")
    sub_id = (await make_subscription(unit, p, basic, START, trial_duration_days=40)).id  # trial until Feb 10
    await schedule.schedule_plan_change(unit, principal=p, subscription_id=sub_id, fields={
        "plan_id": pro.id, "change_option": "requested_date", "change_date": "2024-02-15T00:00:00Z",
        "billing_cycle_alignment": "plan_change_date"})
    _move(unit, at(2024, 2, 3))
    assert [(i.period_start, i.period_end) for i in await _issued(unit, p)] == [(START, at(2024, 2, 1))]
    with pytest.raises(ConstraintViolation) as refused:
        await subs.update_trial(unit, principal=p, subscription_id=sub_id, trial_end_date="2024-01-20T00:00:00Z")
    assert refused.value.field == "shift" and "invoiced up to 2024-02-01" in str(refused.value)
    assert [c.effective_date for c in await schedule.plan_changes_of(unit, p, sub_id)] == [at(2024, 2, 15)]
    assert (await _fresh(unit, p, sub_id)).trial_end_date == at(2024, 2, 10)  # nothing written
    # Without the shift the change keeps its date; a shift that stays after the invoiced end is taken.
    await subs.update_trial(unit, principal=p, subscription_id=sub_id, trial_end_date="2024-02-05T00:00:00Z")
    assert [c.effective_date for c in await schedule.plan_changes_of(unit, p, sub_id)] == [at(2024, 2, 10)]
    # Without the shift, the trial end itself may not move into January either: its fees from Jan 20 would
    # never be billed (January is invoiced as trial).
    with pytest.raises(ConstraintViolation) as refused:
        await subs.update_trial(unit, principal=p, subscription_id=sub_id, trial_end_date="2024-01-20T00:00:00Z",
                                shift=False)
    assert refused.value.field == "trial_end_date" and str(refused.value) == (
        "billing is invoiced up to 2024-02-01T00:00:00+00:00; a trial end before that would change issued invoices")
    await subs.update_trial(unit, principal=p, subscription_id=sub_id, trial_end_date="2024-02-01T00:00:00Z",
                            shift=False)
    _move(unit, at(2024, 3, 20))
    assert [(i.period_start, i.period_end) for i in await _issued(unit, p)] == [
        (at(2024, 2, 1), at(2024, 2, 10)), (at(2024, 2, 10), at(2024, 3, 10))]


async def test_a_cancellation_or_a_fixed_fee_quantity_change_may_not_reach_into_invoiced_billing(unit, tenant):
    # Issued invoices are never credited or voided here: a backdated end or quantity inside January, once
    # January is invoiced, would leave them wrong, so it is refused; from the invoiced end on it is taken.
    p = tenant.principal
    basic = await make_plan(unit, p, fee="31.00", name="Basic")
    sub = await make_subscription(unit, p, basic, START)
    sub_id = sub.id
    fee_id = await _fixed_fee_id(unit, p, basic.id)
    _move(unit, at(2024, 2, 10))
    assert [(i.period_start, i.period_end) for i in await _issued(unit, p)] == [(START, at(2024, 2, 1))]
    with pytest.raises(ConstraintViolation) as refused:
        await subs.cancel_subscription(unit, principal=p, subscription_id=sub_id, cancel_option="requested_date",
                                       cancellation_date="2024-01-20T00:00:00Z")
    assert refused.value.field == "cancellation_date" and "invoiced up to 2024-02-01" in str(refused.value)
    with pytest.raises(ConstraintViolation) as refused:
        await schedule.change_fixed_fee_quantity(unit, principal=p, subscription_id=sub_id, fields={
            "price_id": fee_id, "quantity": 3, "change_option": "effective_date",
            "effective_date": "2024-01-31T00:00:00Z"})
    assert refused.value.field == "effective_date" and "invoiced up to 2024-02-01" in str(refused.value)
    fresh = await _fresh(unit, p, sub_id)
    assert fresh.end_date is None  # nothing written
    assert await schedule.quantity_changes_by_subscription_ids(unit, principal=p, subscription_ids=[sub_id]) == {}

    await schedule.change_fixed_fee_quantity(unit, principal=p, subscription_id=sub_id, fields={
        "price_id": fee_id, "quantity": 3, "change_option": "effective_date", "effective_date": "2024-02-01T00:00:00Z"})
    ended = await subs.cancel_subscription(unit, principal=p, subscription_id=sub_id, cancel_option="requested_date",
                                           cancellation_date="2024-02-05T00:00:00Z")
    assert ended.end_date == at(2024, 2, 5)



async def test_a_voided_invoice_does_not_hold_back_a_change_inside_its_period(unit, tenant):
    # A voided invoice stays void and the period close goes on from its end (its period is not billed
    # again): a backdated quantity change or cancellation inside it alters no invoice standing, so only the
    # invoices still standing hold changes back.
    p = tenant.principal
    basic = await make_plan(unit, p, fee="31.00", name="Basic")
    fee_id = await _fixed_fee_id(unit, p, basic.id)
    sub_id, ended_id, other_id = [(await make_subscription(unit, p, basic, START)).id for _ in range(3)]
    _move(unit, at(2024, 3, 10))
    issued = {(i.subscription_id, i.period_start): i.id for i in await _issued(unit, p)}
    assert sorted(issued) == sorted((s, moment) for s in (sub_id, ended_id, other_id)
                                    for moment in (START, at(2024, 2, 1)))
    for invoice in ((sub_id, at(2024, 2, 1)), (ended_id, at(2024, 2, 1)), (other_id, START)):
        await invoices.void_invoice(unit, principal=p, invoice_id=issued[invoice])

    # Voiding January with February standing frees nothing: February would change.
    with pytest.raises(ConstraintViolation) as refused:
        await subs.cancel_subscription(unit, principal=p, subscription_id=other_id, cancel_option="requested_date",
                                       cancellation_date="2024-01-20T00:00:00Z")
    assert refused.value.field == "cancellation_date" and "invoiced up to 2024-03-01" in str(refused.value)
    # January still stands: a change inside it is refused as before.
    with pytest.raises(ConstraintViolation) as refused:
        await schedule.change_fixed_fee_quantity(unit, principal=p, subscription_id=sub_id, fields={
            "price_id": fee_id, "quantity": 3, "change_option": "effective_date", "effective_date": "2024-01-20"})
    assert refused.value.field == "effective_date" and "invoiced up to 2024-02-01" in str(refused.value)
    # Inside the voided February: taken.
    await schedule.change_fixed_fee_quantity(unit, principal=p, subscription_id=sub_id, fields={
        "price_id": fee_id, "quantity": 3, "change_option": "effective_date", "effective_date": "2024-02-15"})
    ended = await subs.cancel_subscription(unit, principal=p, subscription_id=ended_id,
                                           cancel_option="requested_date", cancellation_date="2024-02-20T00:00:00Z")
    assert ended.end_date == at(2024, 2, 20)
    # February is not billed again, for either; March bills the new quantity, the ended one nothing.
    assert await _issued(unit, p) == []
    _move(unit, at(2024, 4, 2))
    assert sorted((i.subscription_id, i.period_start, i.period_end, i.total) for i in await _issued(unit, p)) == \
        sorted([(sub_id, at(2024, 3, 1), at(2024, 4, 1), D("93.00")),
                (other_id, at(2024, 3, 1), at(2024, 4, 1), D("31.00"))])


async def test_a_backdated_plan_change_without_re_anchoring_may_not_reach_into_invoiced_billing(unit, tenant):
    # No period moves, but the close goes on from the invoiced end (Feb 1): Pro from Jan 20 would never bill
    # Jan 20 - Feb 1, which stays billed on Basic. Refused as a cancellation there is; from Feb 1 on, taken.
    p = tenant.principal
    basic = await make_plan(unit, p, fee="31.00", name="Basic")
    pro = await make_plan(unit, p, fee="62.00", name="Pro")
    sub_id, pro_id = (await make_subscription(unit, p, basic, START)).id, pro.id
    _move(unit, at(2024, 2, 10))
    assert [(i.period_start, i.period_end, i.total) for i in await _issued(unit, p)] == [
        (START, at(2024, 2, 1), D("31.00"))]
    for alignment in ({"billing_cycle_alignment": "unchanged"}, {"align_billing_with_plan_change_date": False}, {}):
        with pytest.raises(ConstraintViolation) as refused:
            await schedule.schedule_plan_change(unit, principal=p, subscription_id=sub_id, fields={
                "plan_id": pro_id, "change_option": "requested_date", "change_date": "2024-01-20T00:00:00Z",
                **alignment})
        assert refused.value.field == "change_date" and str(refused.value) == (
            "billing is invoiced up to 2024-02-01T00:00:00+00:00; a plan change before that would change issued "
            "invoices")
    assert await schedule.plan_changes_of(unit, p, sub_id) == []  # nothing written
    await schedule.schedule_plan_change(unit, principal=p, subscription_id=sub_id, fields={
        "plan_id": pro_id, "change_option": "requested_date", "change_date": "2024-02-01T00:00:00Z"})
    _move(unit, at(2024, 3, 2))
    assert [(i.period_start, i.period_end, i.total) for i in await _issued(unit, p)] == [
        (at(2024, 2, 1), at(2024, 3, 1), D("62.00"))]


async def _annual_and_monthly_plan(uow, p):
    """An annual Platform fee 120.00 and monthly Seats 10.00 (the plan bills monthly), no usage."""
    fees = [await items.create_item(uow, principal=p, fields={"name": name}) for name in ("Platform", "Seats")]
    return await plans.create_plan(uow, principal=p, fields={"name": "Annual", "currency": "USD", "prices": [
        {"name": "Platform fee", "item_id": fees[0].id, "cadence": "annual", "model_type": "unit",
         "unit_config": {"unit_amount": "120.00"}, "fixed_price_quantity": "1"},
        {"name": "Seats", "item_id": fees[1].id, "cadence": "monthly", "model_type": "unit",
         "unit_config": {"unit_amount": "10.00"}, "fixed_price_quantity": "1"}]})


async def test_a_fee_billed_in_advance_holds_back_changes_until_the_end_of_its_service(unit, tenant):
    # January's invoice bills the annual fee for all of 2024 (its line's service period): ending the subscription,
    # changing its plan or that fee's quantity before 2025 would want the unused time credited (as Orb does), and
    # issued invoices are never credited here. Refused, whatever the option; Seats is invoiced up to Mar 1 only.
    p = tenant.principal
    annual = await _annual_and_monthly_plan(unit, p)
    basic = await make_plan(unit, p, fee="31.00", name="Basic")
    sub_id, basic_id = (await make_subscription(unit, p, annual, START)).id, basic.id
    platform_id, seats_id = [price.id for price in (await charges.Catalog().prices_by_plan_ids(
        unit, p, [annual.id]))[annual.id]]
    _move(unit, at(2024, 3, 10))
    issued = await _issued(unit, p)
    assert [(i.period_start, i.period_end, i.total) for i in issued] == [
        (START, at(2024, 2, 1), D("130.00")), (at(2024, 2, 1), at(2024, 3, 1), D("10.00"))]
    january_id = issued[0].id  # read now: a refused change rolls back and expires the session's rows
    january = (await invoices.line_items_by_invoice_ids(unit, principal=p, ids=[january_id]))[january_id]
    assert [(line.name, line.amount, line.start_date, line.end_date) for line in january] == [
        ("Platform fee", D("120.00"), START, at(2025, 1, 1)), ("Seats", D("10.00"), START, at(2024, 2, 1))]

    def refusal(change):
        return (f"billing is invoiced up to 2025-01-01T00:00:00+00:00 (a fee billed in advance through then); "
                f"{change} before that would change issued invoices")

    for option, field in (({"cancel_option": "requested_date", "cancellation_date": "2024-03-15T00:00:00Z"},
                           "cancellation_date"), ({"cancel_option": "immediate"}, "cancel_option")):
        with pytest.raises(ConstraintViolation) as refused:
            await subs.cancel_subscription(unit, principal=p, subscription_id=sub_id, **option)
        assert (refused.value.field, str(refused.value)) == (field, refusal("a cancellation"))
    for option, field in (({"change_option": "effective_date", "effective_date": "2024-04-01"}, "effective_date"),
                          ({"change_option": "immediate"}, "change_option"),
                          ({"change_option": "upcoming_invoice"}, "change_option")):
        with pytest.raises(ConstraintViolation) as refused:
            await schedule.change_fixed_fee_quantity(unit, principal=p, subscription_id=sub_id, fields={
                "price_id": platform_id, "quantity": 2, **option})
        assert (refused.value.field, str(refused.value)) == (field, refusal("a fixed fee quantity change"))
    for option, field in (({"change_option": "requested_date", "change_date": "2024-06-01T00:00:00Z"}, "change_date"),
                          ({"change_option": "immediate", "billing_cycle_alignment": "plan_change_date"},
                           "change_option")):
        with pytest.raises(ConstraintViolation) as refused:
            await schedule.schedule_plan_change(unit, principal=p, subscription_id=sub_id, fields={
                "plan_id": basic_id, **option})
        assert (refused.value.field, str(refused.value)) == (field, refusal("a plan change"))
    fresh = await _fresh(unit, p, sub_id)
    assert fresh.end_date is None and await schedule.plan_changes_of(unit, p, sub_id) == []  # nothing written
    assert await schedule.quantity_changes_by_subscription_ids(unit, principal=p, subscription_ids=[sub_id]) == {}

    # Seats' own service is invoiced up to Mar 1: a quantity change from Mar 5 is taken. Ending at the term's end
    # (the annual fee's) is taken too; March bills Seats alone, 4 days of 1 and 27 of 2.
    await schedule.change_fixed_fee_quantity(unit, principal=p, subscription_id=sub_id, fields={
        "price_id": seats_id, "quantity": 2, "change_option": "effective_date", "effective_date": "2024-03-05"})
    ended = await subs.cancel_subscription(unit, principal=p, subscription_id=sub_id,
                                           cancel_option="end_of_subscription_term")
    assert ended.end_date == at(2025, 1, 1)
    _move(unit, at(2024, 4, 2))
    assert [(i.period_start, i.total) for i in await _issued(unit, p)] == [
        (at(2024, 3, 1), D("1.29") + D("17.42"))]  # R(10 x 4/31); R(20 x 31/31) - R(20 x 4/31)
    # A void January no longer holds it back: the standing invoices bill up to Apr 1.
    with pytest.raises(ConstraintViolation) as refused:
        await subs.cancel_subscription(unit, principal=p, subscription_id=sub_id, cancel_option="requested_date",
                                       cancellation_date="2024-04-15T00:00:00Z")
    assert refused.value.field == "cancellation_date" and "invoiced up to 2025-01-01" in str(refused.value)
    await invoices.void_invoice(unit, principal=p, invoice_id=january_id)
    ended = await subs.cancel_subscription(unit, principal=p, subscription_id=sub_id, cancel_option="requested_date",
                                           cancellation_date="2024-04-15T00:00:00Z")
    assert ended.end_date == at(2024, 4, 15)
