"""A metric's quantity for one customer over [start, end): its compiled query, run in scope."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy.sql.selectable import Select

from domains.errors import ValidationFailed
from domains.metering.metric_query import (
    distinct_first_seen_grouped_statement,
    distinct_first_seen_statement,
    integer_total,
    metric_daily_statement,
    metric_grouped_statement,
    metric_statement,
    sqlite_integer_sum,
)
from domains.metering.metric_sql import MetricDefinition, parse_metric_sql
from domains.metering.metrics import get_metric
from domains.tenancy.service import Principal
from domains.unit_of_work import UnitOfWork
from persistence.db import CUSTOM_PLAN, is_integer_overflow


@lru_cache(maxsize=1024)
def stored_definition(sql: str) -> MetricDefinition:
    """The definition of a stored metric's SQL. Parsing (sqlglot) costs ~0.5 ms, as much as a whole
    customer-month aggregate on an index; a stored metric's SQL was checked when it was created and
    its definition is immutable, so it is parsed once per process."""
    return parse_metric_sql(sql)


@lru_cache(maxsize=1024)
def _statement(definition: MetricDefinition, dialect: str, integers: bool = False) -> Select[Any]:
    # Built once per metric and dialect; the reader compiles it once, PostgreSQL plans it per call.
    return metric_statement(definition, dialect, integers=integers).execution_options(**{CUSTOM_PLAN: True})


# (metric, customer) pairs whose last SUM on SQLite needed the exact statement: their next one goes
# straight to it rather than reading the window twice (a metric's values keep their kind: a cost in
# cents stays a decimal). Least recently used out first.
_NOT_INTEGERS: OrderedDict[tuple[MetricDefinition, str], None] = OrderedDict()
_NOT_INTEGERS_MAX = 4096


async def _metric_rows(uow: UnitOfWork, definition: MetricDefinition, build: Callable[[bool], Select[Any]],
                       params: Mapping[str, Any]) -> Sequence[Any]:
    """The rows of a metric statement, `build(integers)`. A SUM on SQLite first runs its integer-only
    form (metric_query.sqlite_integer_sum), one JSON extraction per event; when a value in the window
    is not an integer, or the total leaves 64 bits, that form cannot vouch for its answer and the exact
    statement runs after it, and first the next time for that metric and customer."""
    if sqlite_integer_sum(definition, uow.dialect):
        key = (definition, params["customer_id"])
        if key in _NOT_INTEGERS:
            _NOT_INTEGERS.move_to_end(key)
        else:
            try:
                rows = await uow.rows(build(True), params)
            except Exception as error:
                if not is_integer_overflow(error):
                    raise
            else:
                if all(integer_total(row[0]) for row in rows):
                    return rows
            _NOT_INTEGERS[key] = None
            if len(_NOT_INTEGERS) > _NOT_INTEGERS_MAX:
                _NOT_INTEGERS.popitem(last=False)
    return await uow.rows(build(False), params)


async def quantity(
    uow: UnitOfWork, *, principal: Principal, definition: MetricDefinition, customer_id: str,
    start: datetime, end: datetime,
) -> Decimal:
    """The metric over the customer's events with start <= timestamp < end; no events is 0."""
    _check_window(start, end)
    rows = await _metric_rows(uow, definition, lambda integers: _statement(definition, uow.dialect, integers),
                              {"org_id": principal.org_id, "customer_id": customer_id, "start": start, "end": end})
    value = rows[0][0] if rows else None
    return Decimal(0) if value is None else Decimal(str(value))


@lru_cache(maxsize=1024)
def _daily_statement(definition: MetricDefinition, dialect: str, first_seen: bool,
                     integers: bool = False) -> Select[Any]:
    if first_seen:
        return distinct_first_seen_statement(definition, dialect).execution_options(**{CUSTOM_PLAN: True})
    return metric_daily_statement(definition, dialect, integers=integers).execution_options(**{CUSTOM_PLAN: True})


def _check_window(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValidationFailed("timeframe", "start and end must be timezone-aware")
    if end <= start:
        raise ValidationFailed("timeframe_end", "must be after timeframe_start")


async def daily_quantities(
    uow: UnitOfWork, *, principal: Principal, definition: MetricDefinition, customer_id: str,
    start: datetime, end: datetime,
) -> dict[date, Decimal]:
    """The metric per UTC day of the customer's events in [start, end), one statement; days without
    events are left out."""
    _check_window(start, end)
    rows = await _metric_rows(uow, definition,
                              lambda integers: _daily_statement(definition, uow.dialect, False, integers),
                              {"org_id": principal.org_id, "customer_id": customer_id, "start": start, "end": end})
    return {date.fromisoformat(day): Decimal(0) if value is None else Decimal(str(value)) for value, day in rows}


async def distinct_first_seen(
    uow: UnitOfWork, *, principal: Principal, definition: MetricDefinition, customer_id: str,
    start: datetime, end: datetime,
) -> dict[date, Decimal]:
    """For a count_distinct metric: how many of its values are first seen on each UTC day of [start, end)."""
    _check_window(start, end)
    rows = await uow.rows(_daily_statement(definition, uow.dialect, True),
                          {"org_id": principal.org_id, "customer_id": customer_id, "start": start, "end": end})
    return {date.fromisoformat(day): Decimal(count) for day, count in rows}


# (organisation, metric id) -> its definition; least recently used out first.
_DEFINITIONS: OrderedDict[tuple[str, str], MetricDefinition] = OrderedDict()
_DEFINITIONS_MAX = 4096


async def metric_definition(uow: UnitOfWork, *, principal: Principal, metric_id: str) -> MetricDefinition:
    """The definition of one of the organisation's metrics. A metric's SQL never changes once created
    (no service updates or deletes it), so after the first read it comes from memory, keyed by the
    caller's organisation too: another organisation's id stays not found. Only committed rows are
    remembered (read outside a transaction): a metric created in a transaction that then rolled back
    must not outlive it here."""
    key = (principal.org_id, metric_id)
    definition = _DEFINITIONS.get(key)
    if definition is not None:
        _DEFINITIONS.move_to_end(key)
        return definition
    metric = await get_metric(uow, principal=principal, metric_id=metric_id)
    definition = stored_definition(metric.sql)
    if not uow.in_transaction:
        _DEFINITIONS[key] = definition
        if len(_DEFINITIONS) > _DEFINITIONS_MAX:
            _DEFINITIONS.popitem(last=False)
    return definition


async def metric_quantity(
    uow: UnitOfWork, *, principal: Principal, metric_id: str, customer_id: str, start: datetime, end: datetime
) -> Decimal:
    definition = await metric_definition(uow, principal=principal, metric_id=metric_id)
    return await quantity(uow, principal=principal, definition=definition, customer_id=customer_id,
                          start=start, end=end)


# Grouped by an event property: {group value (None: events without it): {day (None: the whole window): quantity}}.
Grouped = dict[str | None, dict[date | None, Decimal]]
GROUP_KINDS = ("window", "daily", "first_seen")


@lru_cache(maxsize=1024)
def _grouped_statement(definition: MetricDefinition, dialect: str, key: str, kind: str,
                       integers: bool = False) -> Select[Any]:
    if kind == "first_seen":
        statement = distinct_first_seen_grouped_statement(definition, dialect, key)
    else:
        statement = metric_grouped_statement(definition, dialect, key, daily=kind == "daily", integers=integers)
    return statement.execution_options(**{CUSTOM_PLAN: True})


async def grouped_quantities(
    uow: UnitOfWork, *, principal: Principal, definition: MetricDefinition, customer_id: str,
    start: datetime, end: datetime, group_by: str, kind: str = "window",
) -> Grouped:
    """The metric per value of the event property ``group_by`` over the customer's events in [start, end),
    one statement: over the whole window (``window``), per UTC day (``daily``), or for a count_distinct
    metric the values first seen each day (``first_seen``). Groups and days without events are left out."""
    if kind not in GROUP_KINDS:
        raise ValueError(kind)
    _check_window(start, end)
    rows = await _metric_rows(
        uow, definition, lambda integers: _grouped_statement(definition, uow.dialect, group_by, kind, integers),
        {"org_id": principal.org_id, "customer_id": customer_id, "start": start, "end": end})
    found: Grouped = {}
    for row in rows:
        value, group = row[0], row[1]
        if value is None:
            # No value the aggregate takes (e.g. SUM over a group whose events carry no number): the
            # group has no usage there. SQLite's SUM never returns these rows (its join drops such
            # events), so leaving them out on PostgreSQL too keeps the two engines' groups the same.
            continue
        day = date.fromisoformat(row[2]) if kind != "window" else None
        found.setdefault(group, {})[day] = Decimal(str(value))
    return found
