"""Free trials on both databases: a plan's trial_config starts a subscription with a trial, fixed fees
are not billed before its end (the period it cuts is prorated), usage is; update_trial moves the end
(and, with shift, the pending changes). Amounts by hand: a 31.00 monthly fee is 1.00 a day in January."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from domains.billing import charges, schedule
from domains.billing import subscriptions as subs
from domains.billing.periods import Period
from domains.catalog import plans
from domains.clock import FixedClock
from domains.errors import ValidationFailed
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


async def _trial_plan(uow, principal, days=10):
    plan = await make_plan(uow, principal, fee="31.00")  # a tiered Tokens price too
    # make_plan takes no trial: the same plan's prices on a plan with a trial_config.
    found = await plans.get_plan(uow, principal=principal, plan_id=plan.id)
    prices = await charges.price_service.prices_by_plan_ids(uow, principal=principal, plan_ids=[found.id])
    entries = [{"name": p.name, "item_id": p.item_id, "cadence": p.cadence, "model_type": "unit",
                "unit_config": {"unit_amount": "31.00" if p.billable_metric_id is None else "0.01"},
                **({"billable_metric_id": p.billable_metric_id} if p.billable_metric_id else
                   {"fixed_price_quantity": "1"})} for p in prices[found.id]]
    return await plans.create_plan(uow, principal=principal, fields={
        "name": "Trial", "currency": "USD", "prices": entries,
        "trial_config": {"trial_period": days, "trial_period_unit": "days"}})


async def _charges(uow, principal, sub_id, period):
    sub = await subs.get_subscription(uow, principal=principal, subscription_id=sub_id)
    return [(c.name, c.amount, c.start_date, c.end_date)
            for c in await charges.period_charges(uow, principal=principal, subscription=sub, period=period)]


async def test_a_plans_trial_skips_the_fixed_fee_until_it_ends_and_bills_usage(unit, tenant):
    p = tenant.principal
    plan = await _trial_plan(unit, p)
    assert plan.trial_period_days == 10
    sub = await make_subscription(unit, p, plan, at(2031, 1, 1))
    assert sub.trial_end_date == at(2031, 1, 11)
    await send_tokens(unit, p, sub, at(2031, 1, 3), 500, "in-trial")
    # The fee for Jan 11 - Feb 1, 21 of 31 days: 21.00; the trial's usage is billed: 500 x 0.01.
    assert await _charges(unit, p, sub.id, JANUARY) == [
        ("Platform fee", Decimal("21.00"), at(2031, 1, 11), at(2031, 2, 1)),
        ("Tokens", Decimal("5.00"), at(2031, 1, 1), at(2031, 2, 1))]
    assert (await _charges(unit, p, sub.id, FEBRUARY))[0][:2] == ("Platform fee", Decimal("31.00"))

    # Ended at once on Jan 5: 27 days billed.
    unit.clock.advance(at(2031, 1, 5) - unit.clock.now())
    ended = await subs.update_trial(unit, principal=p, subscription_id=sub.id, trial_end_date="immediate")
    assert ended.trial_end_date == at(2031, 1, 5)
    assert (await _charges(unit, p, sub.id, JANUARY))[0][:3] == ("Platform fee", Decimal("27.00"), at(2031, 1, 5))
    # Extended to Feb 10: no January fee; February's from the 10th, R(31 x 19/28 days) = 21.04 (31.00 - 9.96).
    await subs.update_trial(unit, principal=p, subscription_id=sub.id, trial_end_date="2031-02-10T00:00:00Z")
    assert [line[0] for line in await _charges(unit, p, sub.id, JANUARY)] == ["Tokens"]
    assert (await _charges(unit, p, sub.id, FEBRUARY))[0][:3] == ("Platform fee", Decimal("21.04"), at(2031, 2, 10))


async def test_shift_moves_pending_changes_and_bad_inputs_are_named(unit, tenant):
    p = tenant.principal
    plan = await _trial_plan(unit, p)
    other = await make_plan(unit, p, name="Other")
    other_id = other.id
    sub = await make_subscription(unit, p, plan, at(2031, 1, 1))  # trial to Jan 11
    sub_id = sub.id  # a refused change rolls back, which expires the instance
    await schedule.schedule_plan_change(unit, principal=p, subscription_id=sub_id, fields={
        "plan_id": other_id, "change_option": "requested_date", "change_date": at(2031, 1, 20)})
    await subs.update_trial(unit, principal=p, subscription_id=sub_id, trial_end_date="2031-01-15T00:00:00Z")
    phases = await schedule.plan_phases(unit, principal=p, subscription=await subs.get_subscription(
        unit, principal=p, subscription_id=sub_id))
    assert [ph.start for ph in phases] == [at(2031, 1, 1), at(2031, 1, 24)]  # moved 4 days with the trial
    await subs.update_trial(unit, principal=p, subscription_id=sub_id, trial_end_date="2031-01-16T00:00:00Z",
                            shift=False)
    phases = await schedule.plan_phases(unit, principal=p, subscription=await subs.get_subscription(
        unit, principal=p, subscription_id=sub_id))
    assert [ph.start for ph in phases] == [at(2031, 1, 1), at(2031, 1, 24)]
    for trial_end, shift, field in [("2030-12-31T00:00:00Z", True, "trial_end_date"),
                                    ("soon", True, "trial_end_date"), (None, True, "trial_end_date"),
                                    ("immediate", "yes", "shift")]:
        with pytest.raises(ValidationFailed) as refused:
            await subs.update_trial(unit, principal=p, subscription_id=sub_id, trial_end_date=trial_end, shift=shift)
        assert refused.value.field == field, (trial_end, shift)
    assert (await subs.get_subscription(unit, principal=p, subscription_id=sub_id)).trial_end_date == at(2031, 1, 16)
    # Ending on Jan 30: shifting the Jan 24 change by 9 days would pass the end, so it is refused, naming shift.
    await subs.cancel_subscription(unit, principal=p, subscription_id=sub_id, cancel_option="requested_date",
                                   cancellation_date=at(2031, 1, 30))
    with pytest.raises(ValidationFailed) as refused:
        await subs.update_trial(unit, principal=p, subscription_id=sub_id, trial_end_date="2031-01-25T00:00:00Z")
    assert refused.value.field == "shift"
    with pytest.raises(ValidationFailed) as refused:
        await subs.update_trial(unit, principal=p, subscription_id=sub_id, trial_end_date="2031-02-25T00:00:00Z",
                                shift=False)
    assert refused.value.field == "trial_end_date"
    with pytest.raises(ValidationFailed) as refused:
        await _trial_plan(unit, p, days=-1)
    assert refused.value.field == "trial_config.trial_period"
    # No trial_config: no trial.
    plain = await make_subscription(unit, p, await plans.get_plan(unit, principal=p, plan_id=other_id),
                                  at(2031, 1, 1))
    assert plain.trial_end_date is None
