"""The caller's organisation and its settings."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from domains.tenancy import service as tenancy
from gateway.context import Context

Resolve = Info[Context, None]


@strawberry.type(name="Organisation", description="The organisation of the calling credentials.")
class OrganisationType:
    name: str
    created_at: datetime
    event_grace_period_seconds: int = strawberry.field(description=(
        "How late an event may arrive and still be ingested without a backfill (Orb's default: 43200, 12 hours)."))

    @strawberry.field
    @staticmethod
    def id(root: strawberry.Parent[object]) -> strawberry.ID:
        return strawberry.ID(root.org_id)  # type: ignore[attr-defined]


@strawberry.type
class OrganisationQueries:
    @strawberry.field(description="The caller's organisation and its settings.")
    async def organisation(self, info: Resolve) -> OrganisationType:
        ctx = info.context
        return await tenancy.get_organisation(ctx.uow, principal=ctx.principal)  # type: ignore[return-value]


@strawberry.type
class OrganisationMutations:
    @strawberry.mutation(description="Set how late events may arrive before they need a backfill.")
    async def set_event_grace_period(self, info: Resolve, seconds: int) -> OrganisationType:
        ctx = info.context
        return await tenancy.set_event_grace_period(  # type: ignore[return-value]
            ctx.uow, principal=ctx.principal, seconds=seconds)
