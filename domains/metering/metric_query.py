"""A metric definition compiled for the running dialect, with the scope injected by us.

The caller's SQL never runs: `metric_sql` turned it into a MetricDefinition, and this module writes
the query from that definition alone: `SELECT <aggregate> FROM events WHERE org_id = :org_id AND
customer_id = :customer_id AND deprecated_by IS NULL AND timestamp >= :start AND timestamp < :end AND
<filter>`. Property
reads are typed: a numeric aggregate or comparison only sees JSON numbers (a property holding a
string or missing is treated as null, as SQL treats a missing value), a string comparison only
strings. Money and quantities stay exact: NUMERIC on PostgreSQL, decimal aggregates registered on
SQLite connections (persistence.db) instead of SQLite's floating-point SUM (a SUM first tries SQLite's
own over integers, exact in 64 bits, and keeps its total only if every value was one).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Numeric,
    String,
    and_,
    bindparam,
    case,
    cast,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Select
from sqlalchemy.sql.sqltypes import NullType

from domains.metering.metric_sql import (
    EVENT_NAME,
    And,
    Compare,
    Filter,
    In,
    IsNull,
    MetricDefinition,
    Not,
    Or,
)
from persistence.tables import Event

# An average is a quotient: both engines round it to this many decimal places (half-even on SQLite,
# half-away-from-zero on PostgreSQL; they differ only on an exact tie at the 13th place).
AVG_PLACES = 12
# On SQLite, JSON integers up to this magnitude are summed by SQLite's own SUM: exact for integers,
# and 2^32 rows of them could not overflow its 64-bit total. Everything else numeric goes through the
# decimal aggregate, whose Python callback per row doubled a customer-month's time (bench.metrics).
NATIVE_SUM_LIMIT = 2**31 - 1
# The aggregates with an unchecked form on PostgreSQL (unchecked_statement).
UNCHECKED_AGGREGATES = ("sum", "max", "min", "avg")
_OPS = {"=": "__eq__", "!=": "__ne__", "<": "__lt__", "<=": "__le__", ">": "__gt__", ">=": "__ge__"}


class _Properties:
    """Typed reads of one JSON property, per dialect."""

    def __init__(self, dialect: str) -> None:
        self.postgres = dialect == "postgresql"

    def _path(self, name: str) -> str:
        return '$."' + name.replace('"', '""') + '"'

    def json_type(self, name: str) -> ColumnElement[Any]:
        if self.postgres:
            return func.jsonb_typeof(Event.properties.op("->")(literal(name)))  # type: ignore[attr-defined]
        return func.json_type(Event.properties, literal(self._path(name)))

    def number(self, name: str) -> ColumnElement[Any]:
        """The property as an exact number, null unless it is a JSON number."""
        if self.postgres:
            return _pg_number(Event.properties.op("->")(literal(name)))  # type: ignore[attr-defined]
        is_number = self.json_type(name).in_(["integer", "real"])
        return case((is_number, self.as_written(name)), else_=None)

    def as_written(self, name: str) -> ColumnElement[Any]:
        """SQLite only: the property's JSON text as written. For a number that is exact where
        json_extract would go through a 15-digit REAL, and text keeps SQLite from handing the
        decimal aggregates a float."""
        return Event.properties.op("->", return_type=String())(literal(self._path(name)))  # type: ignore[attr-defined,no-any-return]

    def text(self, name: str) -> ColumnElement[Any]:
        """The property as text when it is a JSON string, else null."""
        if self.postgres:
            return case((self.json_type(name) == "string", _text_of(name)), else_=None)  # type: ignore[attr-defined]
        return case((self.json_type(name) == "text", func.json_extract(Event.properties, literal(self._path(name)))),
                    else_=None)

    def any_value(self, name: str) -> ColumnElement[Any]:
        """A text rendering of any non-null value (for COUNT and COUNT DISTINCT)."""
        if self.postgres:
            return _text_of(name)  # type: ignore[attr-defined]
        return case((self.json_type(name).in_(["null"]), None),
                    else_=cast(func.json_extract(Event.properties, literal(self._path(name))), String))

    def boolean(self, name: str, value: bool) -> ColumnElement[Any]:
        wanted = "boolean" if self.postgres else ("true" if value else "false")
        if self.postgres:
            return and_(self.json_type(name) == wanted,
                        _text_of(name) == ("true" if value else "false"))  # type: ignore[attr-defined]
        return self.json_type(name) == wanted


def _pg_number(value: ColumnElement[Any]) -> ColumnElement[Any]:
    """PostgreSQL: a jsonb value as NUMERIC when it is a JSON number, else null. The jsonb-to-numeric
    cast copies the stored number; `->>` then ::numeric printed it as text and parsed it back."""
    return case((func.jsonb_typeof(value) == "number", cast(value, Numeric)), else_=None)


def _text_of(name: str) -> ColumnElement[Any]:
    """PostgreSQL `properties ->> name`, typed as text so comparisons bind text."""
    return Event.properties.op("->>", return_type=String())(literal(name))  # type: ignore[attr-defined,no-any-return]


def _compare(props: _Properties, node: Compare) -> ColumnElement[Any]:
    op = _OPS[node.op]
    if node.property == EVENT_NAME:
        if not isinstance(node.value, str):
            return false() if node.op == "=" else true() if node.op == "!=" else false()
        return getattr(Event.event_name, op)(node.value)  # type: ignore[no-any-return]
    value = node.value
    if value is None:  # `= NULL` is never true in SQL; keep that meaning
        return false()
    if isinstance(value, bool):
        if node.op not in ("=", "!="):
            return false()
        matched = props.boolean(node.property, value)
        return matched if node.op == "=" else and_(props.json_type(node.property).isnot(None), not_(matched))
    if isinstance(value, Decimal):
        return getattr(_as_number(props, node.property), op)(literal(value, Numeric()))  # type: ignore[no-any-return]
    return getattr(props.text(node.property), op)(value)  # type: ignore[no-any-return]


def _as_number(props: _Properties, name: str) -> ColumnElement[Any]:
    number = props.number(name)
    return number if props.postgres else cast(number, Numeric)


def _filter(props: _Properties, node: Filter) -> ColumnElement[Any]:
    if isinstance(node, And):
        return and_(_filter(props, node.left), _filter(props, node.right))
    if isinstance(node, Or):
        return or_(_filter(props, node.left), _filter(props, node.right))
    if isinstance(node, Not):
        return not_(_filter(props, node.operand))
    if isinstance(node, IsNull):
        if node.property == EVENT_NAME:
            return false() if not node.negated else true()
        missing = props.any_value(node.property).is_(None)
        return not_(missing) if node.negated else missing
    if isinstance(node, In):
        matches = or_(*(_compare(props, Compare(node.property, "=", value)) for value in node.values))
        return not_(matches) if node.negated else matches
    return _compare(props, node)


def _sql_text(value: str) -> ColumnElement[Any]:
    """A string written into the statement as an SQL literal (quotes doubled), not a bound parameter."""
    return literal_column("'" + value.replace("'", "''") + "'", String())


def sqlite_integer_sum(definition: MetricDefinition, dialect: str) -> bool:
    """Whether the metric's statements have an integer-only form to try first (SUM on SQLite)."""
    return dialect == "sqlite" and definition.aggregate == "sum"


def integer_total(value: Any) -> bool:
    """Whether a value of an integer-only SUM is its exact answer: an integer, or null (no event
    carries the property). SQLite gives a float as soon as one value is not an integer."""
    return value is None or type(value) is int


def _sqlite_integer_sum(props: _Properties, definition: MetricDefinition, *, daily: bool,
                        group_key: str | None) -> Select[Any]:
    """SUM on SQLite for the common case, every value a JSON integer, in one extraction per event (the
    budget: each JSON function call parses the properties again). `->` gives the value's JSON text;
    SQLite's SUM turns text written as an integer into that integer and adds it exactly in 64 bits.
    Any other value gives a float total: a real, an integer beyond 64 bits, and a string, boolean,
    JSON null, array or object ('"..."', 'true', 'null', '[...]' are no numbers to SUM, which then
    adds 0.0). A total beyond 64 bits is an "integer overflow" error. In both cases the caller runs
    the exact statement (`_sqlite_sum`) instead; `integer_total` tells which. An event without the
    property gives NULL, which SUM skips, as the exact statement does. 1.05x the plain `->>` sum of
    300,000 events (bench.billing's draft data), where the exact statement takes 1.27x. (`->>` would
    be cheaper still, but gives true as 1 and a string of digits as text SUM would count.)"""
    path = _sql_text(props._path(definition.property))  # type: ignore[arg-type]
    written = Event.properties.op("->", return_type=String())(path)  # type: ignore[attr-defined]
    # NullType: the driver's int or float reaches integer_total as it came.
    value = func.sum(written, type_=NullType())
    statement = select(value).where(*_scope(props, definition))
    if group_key is not None:
        statement = statement.add_columns(group_value("sqlite", group_key).label("group_value"))
    if daily:
        statement = statement.add_columns(utc_day("sqlite").label("day"))
    if daily or group_key is not None:
        # A group whose events all lack the property: the exact statement's join gives it no row.
        # (SQLite computes the HAVING's SUM once, with the selected one.)
        statement = statement.having(value.isnot(None))
    return statement


def _sqlite_sum(props: _Properties, definition: MetricDefinition, *, daily: bool,
                group_key: str | None) -> Select[Any]:
    """SUM on SQLite, exact whatever the values (the integer-only form above is tried first). The
    events are joined with json_each of the property, which parses the JSON once per event and gives
    the value's JSON type and SQL value as columns (the JSON functions would parse it again for every
    mention). Small integers are summed by SQLite's SUM; the other
    numbers (reals, large integers, rare) by the decimal aggregate, which FILTER calls only for them,
    on the number's text as written; the two totals are added as decimals.

    Every mention of a json_each column is a call into the virtual table, and the two FILTERs mention
    them five times an event: they are read once in a subquery (LIMIT -1 OFFSET 0 keeps SQLite from
    flattening it into the aggregate). The FILTERs' constants are written into the statement: as bound
    parameters SQLite evaluated them for every event. Both together took the statement from 1.41x to
    1.29x the plain `->>` sum of 300,000 events (bench.billing's draft)."""
    name = definition.property
    path = _sql_text(props._path(name))  # type: ignore[arg-type]
    element = func.json_each(Event.properties, path).table_valued(
        "key", "type", "atom").alias("property_value")
    columns = [element.c.atom.label("atom"), element.c.type.label("type"), Event.properties.label("properties")]
    if group_key is not None:
        columns.append(group_value("sqlite", group_key).label("group_value"))
    if daily:
        columns.append(utc_day("sqlite").label("day"))
    # key IS NULL: the property itself; an array or object would give a row per member instead.
    source = Event.__table__.join(element, element.c.key.is_(None))  # type: ignore[attr-defined]
    counted = (select(*columns).select_from(source).where(*_scope(props, definition))
               .limit(literal_column("-1")).offset(literal_column("0")).subquery("counted"))
    limit, integer, real = literal_column(str(NATIVE_SUM_LIMIT)), _sql_text("integer"), _sql_text("real")
    small = and_(counted.c.atom.between(-limit, limit), counted.c.type == integer)
    others = and_(not_(small), or_(counted.c.type == integer, counted.c.type == real))
    written = counted.c.properties.op("->", return_type=String())(path)
    value = func.accrual_decimal_add(func.sum(counted.c.atom).filter(small),
                                     func.accrual_decimal_sum(written).filter(others))
    statement = select(value).select_from(counted)
    if group_key is not None:
        statement = statement.add_columns(counted.c.group_value)
    return statement.add_columns(counted.c.day) if daily else statement


def metric_statement(definition: MetricDefinition, dialect: str, *, integers: bool = False) -> Select[Any]:
    """SELECT <aggregate> over one organisation's, one customer's events in [start, end). With
    `integers` (where `sqlite_integer_sum`), the integer-only form, whose value `integer_total` checks."""
    return _metric_select(definition, dialect, daily=False, integers=integers)
def pins_usage_index(definition: MetricDefinition) -> bool:
    """Whether every event the metric counts has one event name (`event_name = '...'` at the top level
    of its filter): then the organisation, customer, name and time bounds all sit in
    ix_events_org_customer_name_time, and every plan PostgreSQL could make without knowing the
    arguments scans that index. Without a name, a plan blind to the window may pick the organisation's
    time index (ix_events_org_time) and read every customer's events of the window."""
    stack = [definition.filter]
    while stack:
        node = stack.pop()
        if isinstance(node, And):
            stack += [node.left, node.right]
        elif (isinstance(node, Compare) and node.property == EVENT_NAME and node.op == "="
              and isinstance(node.value, str)):
            return True
    return False




def _metric_select(definition: MetricDefinition, dialect: str, *, daily: bool,
                   group_key: str | None = None, integers: bool = False) -> Select[Any]:
    """The aggregate; with `group_key` then the event's value of that property as column `group_value`,
    and with `daily` then the UTC day of each event as column `day` (both grouped by the caller)."""
    props = _Properties(dialect)
    aggregate = definition.aggregate
    if props.postgres and aggregate in ("sum", "max", "min", "avg"):
        return _pg_numeric_aggregate(props, definition, daily=daily, group_key=group_key)
    if aggregate == "sum":
        build = _sqlite_integer_sum if integers else _sqlite_sum
        return build(props, definition, daily=daily, group_key=group_key)
    source: Any = Event.__table__  # type: ignore[attr-defined]
    if aggregate == "count":
        value = func.count() if definition.property is None else func.count(props.any_value(definition.property))
    elif aggregate == "count_distinct":
        value = func.count(props.any_value(definition.property).distinct())  # type: ignore[arg-type]
    else:
        value = getattr(func, f"accrual_decimal_{aggregate}")(props.number(definition.property))  # type: ignore[arg-type]
    statement = select(value).select_from(source).where(*_scope(props, definition))
    if group_key is not None:
        statement = statement.add_columns(group_value(dialect, group_key).label("group_value"))
    return statement.add_columns(utc_day(dialect).label("day")) if daily else statement


def unchecked_statement(definition: MetricDefinition) -> Select[Any] | None:
    """PostgreSQL, SUM, MAX, MIN or AVG (else None): the aggregate over the property's jsonb value cast
    to NUMERIC without its type check. PostgreSQL refuses to cast a jsonb string, boolean, null, array
    or object (SQLSTATE 22023, the statement fails) and a missing property is SQL NULL, so when this
    statement succeeds its result is exactly the checked one's (`metric_statement`), and when it fails
    the caller runs that one. The check (`jsonb_typeof` per event, and the fence that reads the value
    once for it and the cast) was ~7% of a customer-month's aggregate (bench.metrics), and without
    the fence a customer holding most of the table gets PostgreSQL's parallel aggregate back
    (bench.billing's draft: 0.56 s to 0.30-0.33 s). The metric's filter keeps its typed reads, so a
    comparison with a string still only sees numbers."""
    aggregate = definition.aggregate
    if aggregate not in UNCHECKED_AGGREGATES:
        return None
    number = cast(Event.properties.op("->")(literal(definition.property)), Numeric)  # type: ignore[attr-defined]
    value = {"sum": func.sum, "max": func.max, "min": func.min, "avg": func.avg}[aggregate](number)
    if aggregate == "avg":
        value = func.round(value, AVG_PLACES)
    return select(value).where(*_scope(_Properties("postgresql"), definition))


def _pg_numeric_aggregate(props: _Properties, definition: MetricDefinition, *, daily: bool,
                          group_key: str | None) -> Select[Any]:
    """SUM, MAX, MIN or AVG on PostgreSQL over the property read once per event. The type check and
    the cast each need the property's jsonb value, and written inline each `->` copies the event's
    properties and looks the key up again (PostgreSQL does not share the two): over a
    customer-month that doubled the extraction, a sixth of the aggregate's time (bench.metrics). The
    events' rows are selected in a subquery that hands the value up once; OFFSET 0 keeps the planner
    from folding it back into the outer query. The scan is planned as before; what the fence costs is
    PostgreSQL's partial aggregation in parallel workers for a customer holding much of the table
    (600,000 events: 0.29 s serial against 0.36 s for the unfenced query's parallel plan, on 2 cores)."""
    columns = [Event.properties.op("->")(literal(definition.property)).label("value")]  # type: ignore[attr-defined]
    if group_key is not None:
        columns.append(group_value("postgresql", group_key).label("group_value"))
    if daily:
        columns.append(utc_day("postgresql").label("day"))
    counted = (select(*columns).where(*_scope(props, definition))
               .offset(literal_column("0")).subquery("counted"))
    number = _pg_number(counted.c.value)
    value = {"sum": func.sum, "max": func.max, "min": func.min, "avg": func.avg}[definition.aggregate](number)
    if definition.aggregate == "avg":  # the same 12 places the SQLite aggregate keeps
        value = func.round(value, AVG_PLACES)
    statement = select(value).select_from(counted)
    if group_key is not None:
        statement = statement.add_columns(counted.c.group_value)
    return statement.add_columns(counted.c.day) if daily else statement


def _scope(props: _Properties, definition: MetricDefinition) -> list[ColumnElement[Any]]:
    """The conditions every metric query runs under: one organisation's, one customer's counting
    events in [start, end), and the metric's own filter."""
    conditions = [
        Event.org_id == bindparam("org_id"),
        Event.customer_id == bindparam("customer_id"),
        # Only events that count (the usage index holds only those); see domains/metering/backfills.py.
        Event.deprecated_by.is_(None),  # type: ignore[union-attr]
        Event.timestamp >= bindparam("start", type_=Event.__table__.c.timestamp.type),  # type: ignore[attr-defined]
        Event.timestamp < bindparam("end", type_=Event.__table__.c.timestamp.type),  # type: ignore[attr-defined]
    ]
    if definition.filter is not None:
        conditions.append(_filter(props, definition.filter))
    return conditions


def utc_day(dialect: str) -> ColumnElement[Any]:
    """The UTC calendar day of an event's timestamp as 'YYYY-MM-DD' text, on both engines (SQLite
    stores 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC; PostgreSQL formats its timestamptz in UTC)."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", Event.timestamp), "YYYY-MM-DD")
    return func.substr(Event.timestamp, 1, 10)


def metric_daily_statement(definition: MetricDefinition, dialect: str, *, integers: bool = False) -> Select[Any]:
    """SELECT day, <aggregate> ... GROUP BY day: the metric per UTC day of [start, end), one statement;
    days without events have no row."""
    statement = _metric_select(definition, dialect, daily=True, integers=integers)
    day = statement.selected_columns.day
    return statement.group_by(day).order_by(day)


def distinct_first_seen_statement(definition: MetricDefinition, dialect: str) -> Select[Any]:
    """For a count_distinct metric: SELECT day, how many values are first seen that day. Their running
    sum is the cumulative distinct count (a value seen on two days counts once), in one statement."""
    props = _Properties(dialect)
    value = props.any_value(definition.property)  # type: ignore[arg-type]
    first_seen = (select(func.min(utc_day(dialect)).label("day"))
                  .where(*_scope(props, definition), value.isnot(None))
                  .group_by(value).subquery("first_seen"))
    return (select(first_seen.c.day, func.count().label("quantity"))
            .group_by(first_seen.c.day).order_by(first_seen.c.day))


# ---------------------------------------------------------------- grouped by an event property
# Orb's grouped usage (GET /subscriptions/{id}/usage?group_by=...): the metric per value of one event
# property, in the same single statement with the same injected scope, the group one more column.


def group_value(dialect: str, key: str) -> ColumnElement[Any]:
    """An event's value of the property ``key`` as text, the same on both engines: a string as is, a
    number as its JSON text, a boolean as 'true'/'false'; missing or JSON null is NULL (its own group).
    ``event_name`` is the event's own name, as in a metric's filter. The key is a bound parameter."""
    if key == EVENT_NAME:
        return Event.event_name  # type: ignore[return-value]
    props = _Properties(dialect)
    if props.postgres:
        return _text_of(key)  # ->> gives scalars as text and JSON null as NULL (events hold scalars only)
    kind = props.json_type(key)
    return case((kind == "text", func.json_extract(Event.properties, literal(props._path(key)))),
                (kind.in_(["integer", "real", "true", "false"]), props.as_written(key)), else_=None)


def metric_grouped_statement(definition: MetricDefinition, dialect: str, key: str, daily: bool, *,
                             integers: bool = False) -> Select[Any]:
    """SELECT <aggregate>, group_value[, day] ... GROUP BY group_value[, day]: the metric per value of the
    property over [start, end) (or per UTC day), one statement; groups and days without events have no row."""
    statement = _metric_select(definition, dialect, daily=daily, group_key=key, integers=integers)
    columns = statement.selected_columns
    statement = statement.group_by(columns.group_value)
    return statement.group_by(columns.day) if daily else statement


def distinct_first_seen_grouped_statement(definition: MetricDefinition, dialect: str, key: str) -> Select[Any]:
    """For a count_distinct metric grouped by a property: SELECT group_value, day, how many of the
    group's values are first seen that day (a value counts once per group)."""
    props = _Properties(dialect)
    value = props.any_value(definition.property)  # type: ignore[arg-type]
    group = group_value(dialect, key).label("group_value")
    first_seen = (select(group, func.min(utc_day(dialect)).label("day"))
                  .where(*_scope(props, definition), value.isnot(None))
                  .group_by(group, value).subquery("first_seen"))
    return (select(func.count().label("quantity"), first_seen.c.group_value, first_seen.c.day)
            .group_by(first_seen.c.group_value, first_seen.c.day))
