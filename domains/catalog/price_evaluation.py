"""What prices would charge a customer over a timeframe: the metric's quantity in that window (with
an optional extra filter) priced by the price's model. Nothing is written."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from domains.catalog import prices as price_service
from domains.catalog.pricing import amount_for
from domains.customers import service as customers
from domains.errors import ConstraintViolation, NotFound, ValidationFailed
from domains.metering.evaluation import quantity, stored_definition
from domains.metering.metric_sql import And, parse_metric_sql
from domains.metering.metrics import get_metric
from domains.tenancy.service import Principal
from domains.unit_of_work import UnitOfWork

MAX_EVALUATIONS = 100
# Models whose amount needs usage split by property values (a GROUP BY this does not run yet).
_SPLIT_MODELS = ("grouped_tiered", "matrix")


@dataclass(frozen=True)
class PriceEvaluation:
    price_id: str
    external_price_id: str | None
    currency: str
    quantity: Decimal
    amount: Decimal


def _filter(text: Any, field: str) -> Any:
    if text is None:
        return None
    if not isinstance(text, str) or not text.strip():
        raise ValidationFailed(field, "must be a filter expression, e.g. region = 'eu'")
    try:
        return parse_metric_sql(f"SELECT COUNT(*) FROM events WHERE {text}").filter
    except ValidationFailed as exc:
        raise ValidationFailed(field, exc.message.replace("is not valid SQL", "is not a valid filter")) from None


async def evaluate_prices(
    uow: UnitOfWork,
    *,
    principal: Principal,
    timeframe_start: datetime,
    timeframe_end: datetime,
    customer_id: str | None = None,
    external_customer_id: str | None = None,
    evaluations: Sequence[Mapping[str, Any]],
) -> list[PriceEvaluation]:
    """Amounts of each price for the customer's usage in [timeframe_start, timeframe_end)."""
    if (customer_id is None) == (external_customer_id is None):
        raise ValidationFailed("customer_id", "exactly one of customer_id and external_customer_id is required")
    if timeframe_end <= timeframe_start:
        raise ValidationFailed("timeframe_end", "must be after timeframe_start")
    if not evaluations or len(evaluations) > MAX_EVALUATIONS:
        raise ValidationFailed("price_evaluations", f"give 1 to {MAX_EVALUATIONS} prices to evaluate")
    if customer_id is not None:
        customer = await customers.get_customer(uow, principal=principal, customer_id=customer_id)
    else:
        customer = await customers.get_customer_by_external_id(
            uow, principal=principal, external_customer_id=external_customer_id)  # type: ignore[arg-type]
    results = []
    for index, evaluation in enumerate(evaluations):
        field = f"price_evaluations[{index}]"
        price = await _price(uow, principal, evaluation, field)
        if price.model_type in _SPLIT_MODELS:
            raise ValidationFailed(f"{field}.price_id", f"evaluating {price.model_type} prices is not supported yet")
        extra = _filter(evaluation.get("filter"), f"{field}.filter")
        if price.billable_metric_id is None:
            used = price.fixed_price_quantity if price.fixed_price_quantity is not None else Decimal(1)
        else:
            metric = await get_metric(uow, principal=principal, metric_id=price.billable_metric_id)
            definition = stored_definition(metric.sql)
            if extra is not None:
                definition = replace(definition, filter=extra if definition.filter is None else And(definition.filter, extra))
            used = await quantity(uow, principal=principal, definition=definition, customer_id=customer.id,
                                  start=timeframe_start, end=timeframe_end)
        try:
            amount = amount_for(price_service.price_config(price), used)
        except (ValueError, ArithmeticError) as exc:  # e.g. negative usage, which no model prices
            raise ConstraintViolation(f"price {price.id} cannot price a quantity of {used}: {exc}",
                                      field=f"{field}.price_id") from None
        results.append(PriceEvaluation(price_id=price.id, external_price_id=price.external_price_id,
                                       currency=price.currency, quantity=used, amount=amount))
    return results


async def _price(uow: UnitOfWork, principal: Principal, evaluation: Mapping[str, Any], field: str) -> Any:
    price_id, external_id = evaluation.get("price_id"), evaluation.get("external_price_id")
    if (price_id is None) == (external_id is None):
        raise ValidationFailed(f"{field}.price_id", "exactly one of price_id and external_price_id is required")
    try:
        if price_id is not None:
            return await price_service.get_price(uow, principal=principal, price_id=price_id)
        return await price_service.get_price_by_external_id(uow, principal=principal, external_price_id=external_id)
    except NotFound as exc:
        raise ValidationFailed(f"{field}.{'price_id' if price_id else 'external_price_id'}", exc.message) from None
