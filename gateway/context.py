"""The per-request Context every face builds and every resolver receives."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from domains.tenancy.service import Principal
from domains.unit_of_work import UnitOfWork
from gateway.graphql.loaders import Loaders


@dataclass
class Context:
    principal: Principal
    uow: UnitOfWork
    request_id: str = ""
    # A face may allow longer lists than the graph's default page (OneBusiness lists up to 500 rows).
    max_page_size: int = 100

    @cached_property
    def loaders(self) -> Loaders:
        # Built on first use, with the organisation bound, so no cache crosses tenants or requests.
        return Loaders(self.uow, self.principal)

