"""A metric's quantity for one customer over [start, end): its compiled query, run in scope."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from time import perf_counter
from typing import Any

from sqlalchemy.sql.selectable import Select

from domains.errors import ValidationFailed
from domains.metering.metric_query import (
    UNCHECKED_AGGREGATES,
    distinct_first_seen_grouped_statement,
    distinct_first_seen_statement,
    integer_total,
    metric_daily_statement,
    metric_grouped_statement,
    metric_statement,
    pins_usage_index,
    sqlite_integer_sum,
    unchecked_statement,
)
from domains.metering.metric_sql import MetricDefinition, parse_metric_sql
from domains.metering.metrics import get_metric
from domains.tenancy.service import Principal
from domains.unit_of_work import UnitOfWork
from persistence.db import CUSTOM_PLAN, is_integer_overflow, refused_cast


@lru_cache(maxsize=1024)
def stored_definition(sql: str) -> MetricDefinition:
    """The definition of a stored metric's SQL. Parsing (sqlglot) costs ~0.5 ms, as much as a whole
    customer-month aggregate on an index; a stored metric's SQL was checked when it was created and
    its definition is immutable, so it is parsed once per process."""
    return parse_metric_sql(sql)


@lru_cache(maxsize=1024)
def _statement(definition: MetricDefinition, dialect: str, custom_plan: bool = True,
               unchecked: bool = False, integers: bool = False) -> Select[Any]:
    # Built once per metric, dialect and form; the reader compiles each once.
    statement = (unchecked_statement(definition) if unchecked
                 else metric_statement(definition, dialect, integers=integers))
    assert statement is not None
    return statement.execution_options(**{CUSTOM_PLAN: True}) if custom_plan else statement


# PostgreSQL, outside a transaction: a call of a metric that pins the usage index (one event name) for
# a customer and window whose last call took less than this runs as a prepared statement, which
# PostgreSQL gives its generic plan after five runs; any other call is planned for its own arguments
# (CUSTOM_PLAN). Parsing and planning each call cost 0.3 ms of a 3.5 ms customer-month of 2,000 events
# (bench.metrics), and for such a call every plan scans the same index. For a customer holding most of
# the table the custom plan's seq scan beats the generic plan's index scan (0.61 s against 0.83 s for
# 1,000,000 of 1,200,000 events, bench.billing's draft data), and there planning costs nothing.
PLAN_MATTERS_SECONDS = 0.010
# (organisation, customer, metric, window length) whose last call was faster than that; the least
# recently used out first. An unknown one is planned for its arguments: never worse than before.
_LIGHT: OrderedDict[tuple[str, str, MetricDefinition, timedelta], None] = OrderedDict()
_LIGHT_MAX = 65536
# (organisation, metric) whose property held something other than a number in some event: their
# numeric aggregates run checked from then on (metric_query.unchecked_statement); least recent out first.
_NOT_ONLY_NUMBERS: OrderedDict[tuple[str, MetricDefinition], None] = OrderedDict()
_NOT_ONLY_NUMBERS_MAX = 4096


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
            _remember(_NOT_INTEGERS, key, _NOT_INTEGERS_MAX)
    return await uow.rows(build(False), params)


async def quantity(
    uow: UnitOfWork, *, principal: Principal, definition: MetricDefinition, customer_id: str,
    start: datetime, end: datetime,
) -> Decimal:
    """The metric over the customer's events with start <= timestamp < end; no events is 0."""
    _check_window(start, end)
    params = {"org_id": principal.org_id, "customer_id": customer_id, "start": start, "end": end}
    if uow.dialect == "postgresql" and not uow.in_transaction:
        rows = await _postgres_rows(uow, principal.org_id, definition, customer_id, end - start, params)
    else:
        # In a transaction a failed statement would abort it: PostgreSQL runs the checked statement,
        # planned per call; SQLite's SUM tries its integer-only form first (_metric_rows).
        rows = await _metric_rows(uow, definition, lambda integers: _statement(definition, uow.dialect,
                                                                               integers=integers), params)
    value = rows[0][0] if rows else None
    return Decimal(0) if value is None else Decimal(str(value))


async def _postgres_rows(uow: UnitOfWork, org_id: str, definition: MetricDefinition, customer_id: str,
                         window: timedelta, params: dict[str, Any]) -> Sequence[Any]:
    """The aggregate outside a transaction: prepared when quick (PLAN_MATTERS_SECONDS), unchecked while
    the metric's property has only held numbers (metric_query.unchecked_statement)."""
    pinned = pins_usage_index(definition)
    key = (org_id, customer_id, definition, window)
    custom_plan = not pinned or key not in _LIGHT
    unchecked = definition.aggregate in UNCHECKED_AGGREGATES and (org_id, definition) not in _NOT_ONLY_NUMBERS
    began = perf_counter()
    try:
        rows = await uow.rows(_statement(definition, "postgresql", custom_plan, unchecked), params)
    except Exception as error:
        if not (unchecked and refused_cast(error)):
            raise
        _remember(_NOT_ONLY_NUMBERS, (org_id, definition), _NOT_ONLY_NUMBERS_MAX)
        rows = await uow.rows(_statement(definition, "postgresql", custom_plan), params)
    if not pinned:
        return rows
    if perf_counter() - began < PLAN_MATTERS_SECONDS:
        _remember(_LIGHT, key, _LIGHT_MAX)
    else:  # (a concurrent call may have removed it already)
        _LIGHT.pop(key, None)
    return rows


def _remember(memory: OrderedDict[Any, None], key: Any, bound: int) -> None:
    memory[key] = None
    memory.move_to_end(key)
    if len(memory) > bound:
        memory.popitem(last=False)


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
