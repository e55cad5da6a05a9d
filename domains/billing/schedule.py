"""The plans a subscription is on over time (replaced by plan changes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domains.tenancy.service import Principal
from domains.unit_of_work import UnitOfWork
from persistence.tables import Subscription


@dataclass(frozen=True)
class PlanPhase:
    """One plan over ``[start, end)`` of a subscription's life (``end`` None: open-ended)."""

    plan_id: str
    start: datetime
    end: datetime | None


async def plan_phases(uow: UnitOfWork, *, principal: Principal, subscription: Subscription) -> list[PlanPhase]:
    """The subscription's plan phases in order; replaced by plan changes (one phase until then)."""
    return [PlanPhase(subscription.plan_id, subscription.start_date, subscription.end_date)]
