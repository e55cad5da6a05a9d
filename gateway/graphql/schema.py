"""The one graph: every domain's queries and mutations merged into a Strawberry schema."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from gateway.graphql.backfills import BackfillMutations, BackfillQueries
from gateway.graphql.catalog import CatalogMutations, CatalogQueries
from gateway.graphql.customers import CustomerMutations, CustomerQueries
from gateway.graphql.errors import DomainErrorCodes, MutationTransaction
from gateway.graphql.invoices import InvoiceMutations, InvoiceQueries
from gateway.graphql.metering import EventMutations, EventQueries, MeteringMutations, MeteringQueries
from gateway.graphql.organisation import OrganisationMutations, OrganisationQueries
from gateway.graphql.plans import PlanMutations, PlanQueries
from gateway.graphql.prices import PriceEvaluationQueries, PriceMutations, PriceQueries
from gateway.graphql.scalars import Money, UTCDateTime
from gateway.graphql.subscriptions import SubscriptionMutations, SubscriptionQueries
from gateway.graphql.usage import UsageQueries

Query = merge_types(
    "Query",
    (CustomerQueries, CatalogQueries, PriceQueries, PriceEvaluationQueries, PlanQueries, MeteringQueries, EventQueries,
     SubscriptionQueries, BackfillQueries, OrganisationQueries, InvoiceQueries, UsageQueries),
)
Mutation = merge_types(
    "Mutation",
    (CustomerMutations, CatalogMutations, PriceMutations, PlanMutations, MeteringMutations, EventMutations,
     SubscriptionMutations, BackfillMutations, OrganisationMutations, InvoiceMutations),
)

MAX_DEPTH = 12
MAX_TOKENS = 5_000
DEPTH_RULES = QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules

schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    config=StrawberryConfig(scalar_map={datetime: UTCDateTime, Decimal: Money}),
    extensions=[
        DomainErrorCodes,
        MutationTransaction,
        # The depth rule is built once: the validation cache keys on the rule classes, so a rule
        # made per request would turn every request into a cache miss.
        lambda: AddValidationRules(DEPTH_RULES),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        # Their LRU caches live at module level, shared by every request's fresh instance.
        lambda: ParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=512),
    ],
)


def export_sdl() -> str:
    return schema.as_str() + "\n"
