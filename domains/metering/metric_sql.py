"""Billable-metric SQL: parsed with sqlglot into a small, closed language, refused otherwise.

A metric is Orb's `sql` field, e.g. `SELECT SUM(tokens) FROM events WHERE event_name = 'api_call'
AND region = 'eu'`. It is never executed as written: it is parsed into `MetricDefinition` (one
aggregate over one event property, a boolean filter over event_name and properties), and only that
definition is later compiled, by us, with the organisation, customer and timeframe injected. So
nothing a caller writes (other tables, joins, subqueries, functions, DDL/DML, comments, several
statements) can reach the database; anything outside the language is refused here, naming it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from domains.errors import ValidationFailed

FIELD = "sql"
AGGREGATES = ("count", "count_distinct", "sum", "max", "min", "avg")
EVENT_NAME = "event_name"
MAX_SQL_LENGTH = 10_000
MAX_PREDICATES = 100
_PROPERTY = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,127}$")

Literal = str | Decimal | bool | None


@dataclass(frozen=True)
class Compare:
    """`property <op> literal`; `property` may be `event_name` (the event's own name)."""

    property: str
    op: str  # one of = != < <= > >=
    value: Literal


@dataclass(frozen=True)
class In:
    property: str
    values: tuple[Literal, ...]
    negated: bool = False


@dataclass(frozen=True)
class IsNull:
    property: str
    negated: bool = False


@dataclass(frozen=True)
class And:
    left: Filter
    right: Filter


@dataclass(frozen=True)
class Or:
    left: Filter
    right: Filter


@dataclass(frozen=True)
class Not:
    operand: Filter


Filter = Compare | In | IsNull | And | Or | Not


@dataclass(frozen=True)
class MetricDefinition:
    aggregate: str  # one of AGGREGATES
    property: str | None  # None only for COUNT(*)
    filter: Filter | None

    def properties(self) -> set[str]:
        """Every event property the metric reads (not counting event_name)."""
        found = {self.property} if self.property else set()
        stack = [self.filter] if self.filter else []
        while stack:
            node = stack.pop()
            if isinstance(node, (Compare, In, IsNull)):
                found.add(node.property)
            elif isinstance(node, (And, Or)):
                stack += [node.left, node.right]
            elif isinstance(node, Not):
                stack.append(node.operand)
        found.discard(EVENT_NAME)
        return found


def _refuse(message: str) -> ValidationFailed:
    return ValidationFailed(FIELD, message)


def parse_metric_sql(sql: str) -> MetricDefinition:
    """The metric a SQL text defines, or ValidationFailed("sql", <what is not allowed>)."""
    if not isinstance(sql, str) or not sql.strip():
        raise _refuse("is required: e.g. SELECT SUM(tokens) FROM events WHERE event_name = 'api_call'")
    if len(sql) > MAX_SQL_LENGTH:
        raise _refuse(f"must be at most {MAX_SQL_LENGTH} characters")
    try:
        statements = [s for s in sqlglot.parse(sql, read="postgres") if s is not None]
    except (ParseError, TokenError) as exc:
        raise _refuse(f"is not valid SQL: {_first_line(exc)}") from None
    except RecursionError:
        raise _refuse(f"nests too deeply (at most {MAX_PREDICATES} conditions)") from None
    if len(statements) != 1:
        raise _refuse("must be exactly one SELECT statement")
    statement = statements[0]
    if not isinstance(statement, exp.Select):
        raise _refuse(f"must be a SELECT statement, not {statement.key.upper()}")
    _refuse_clauses(statement)
    _check_source(statement)
    aggregate, prop = _projection(statement)
    where = statement.args.get("where")
    # A bounded filter keeps compiling and running it bounded (both engines limit expression depth).
    if where is not None and sum(1 for _ in where.find_all(exp.Predicate, exp.Literal)) > MAX_PREDICATES * 2:
        raise _refuse(f"has too many conditions (at most {MAX_PREDICATES})")
    try:
        return MetricDefinition(aggregate=aggregate, property=prop, filter=_filter(where.this) if where else None)
    except RecursionError:
        raise _refuse(f"nests too deeply (at most {MAX_PREDICATES} conditions)") from None


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:200]


# A SELECT may carry only these parts; everything else sqlglot can attach is refused (an allow-list,
# so a clause a newer sqlglot learns to parse is refused too).
_ALLOWED_PARTS = {"expressions", "from", "from_", "where"}
_CLAUSE_NAMES = {
    "with": "WITH", "joins": "JOIN", "group": "GROUP BY", "having": "HAVING", "order": "ORDER BY",
    "limit": "LIMIT", "offset": "OFFSET", "distinct": "SELECT DISTINCT", "qualify": "QUALIFY",
    "windows": "WINDOW", "laterals": "LATERAL", "into": "INTO", "locks": "FOR UPDATE", "sample": "TABLESAMPLE",
}


def _refuse_clauses(statement: exp.Select) -> None:
    for key, value in statement.args.items():
        if value and key not in _ALLOWED_PARTS:
            label = _CLAUSE_NAMES.get(key.rstrip("_"), key.rstrip("_").upper())
            raise _refuse(f"{label} is not allowed in a metric")


def _check_source(statement: exp.Select) -> None:
    source = statement.args.get("from_") or statement.args.get("from")
    if source is None:
        raise _refuse("must select FROM events")
    table = source.this
    if not isinstance(table, exp.Table) or table.args.get("db") or table.args.get("catalog"):
        raise _refuse("may only read the events table (no subqueries, schemas or functions in FROM)")
    if table.name.lower() != "events":
        raise _refuse(f"may only read the events table, not {table.name!r}")
    if table.args.get("joins") or table.args.get("laterals"):
        raise _refuse("JOIN is not allowed in a metric")
    if len(source.expressions or []) > 0:
        raise _refuse("may only read the events table")


def _projection(statement: exp.Select) -> tuple[str, str | None]:
    if len(statement.expressions) != 1:
        raise _refuse("must select exactly one aggregate, e.g. SUM(tokens)")
    projection = statement.expressions[0]
    if isinstance(projection, exp.Alias):
        projection = projection.this
    if isinstance(projection, exp.Count):
        inner = projection.this
        if isinstance(inner, exp.Star):
            return "count", None
        if isinstance(inner, exp.Distinct):
            if len(inner.expressions) != 1:
                raise _refuse("COUNT(DISTINCT ...) takes exactly one property")
            return "count_distinct", _property(inner.expressions[0])
        return "count", _property(inner)
    for kind, name in ((exp.Sum, "sum"), (exp.Max, "max"), (exp.Min, "min"), (exp.Avg, "avg")):
        if isinstance(projection, kind):
            if projection.expressions:
                raise _refuse(f"{name.upper()} takes exactly one property")
            if isinstance(projection.this, exp.Distinct):
                raise _refuse(f"{name.upper()}(DISTINCT ...) is not supported; use COUNT(DISTINCT ...)")
            return name, _property(projection.this)
    raise _refuse(f"must select one of COUNT, COUNT(DISTINCT), SUM, MAX, MIN, AVG, not {_describe(projection)}")


def _describe(node: exp.Expression) -> str:
    if isinstance(node, exp.Func):
        return f"function {node.sql_name() if not isinstance(node, exp.Anonymous) else node.name}()"
    return node.sql(dialect="postgres")[:80]


def _property(node: exp.Expression | None) -> str:
    if isinstance(node, exp.Column) and not node.args.get("table") and not node.args.get("db"):
        name = node.name
        if not _PROPERTY.fullmatch(name):
            raise _refuse(f"{name!r} is not a valid property name (letters, digits, _ and -)")
        return name
    if isinstance(node, exp.Func):
        raise _refuse(f"{_describe(node)} is not allowed: only COUNT, SUM, MAX, MIN, AVG over event properties")
    if node is None:
        raise _refuse("an aggregate needs a property")
    raise _refuse(f"{node.sql(dialect='postgres')[:80]!r} is not an event property")


_COMPARISONS = {exp.EQ: "=", exp.NEQ: "!=", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">="}
_FLIPPED = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _filter(node: exp.Expression) -> Filter:
    if isinstance(node, exp.Paren):
        return _filter(node.this)
    if isinstance(node, exp.And):
        return And(_filter(node.this), _filter(node.expression))
    if isinstance(node, exp.Or):
        return Or(_filter(node.this), _filter(node.expression))
    if isinstance(node, exp.Not):
        inner = node.this
        if isinstance(inner, exp.Is) and _is_null(inner):
            return IsNull(_property(inner.this), negated=not inner.args.get("negate"))
        if isinstance(inner, exp.In):
            return In(_property(inner.this), _in_values(inner), negated=True)
        return Not(_filter(inner))
    for kind, op in _COMPARISONS.items():
        if isinstance(node, kind):
            left, right = node.this, node.expression
            for side in (left, right):
                if isinstance(side, exp.Func):
                    raise _refuse(f"{_describe(side)} is not allowed in a filter")
            if isinstance(left, exp.Column):
                return Compare(_property(left), op, _literal(right))
            if isinstance(right, exp.Column):
                return Compare(_property(right), _FLIPPED[op], _literal(left))
            raise _refuse("a comparison needs an event property on one side")
    if isinstance(node, exp.In):
        return In(_property(node.this), _in_values(node))
    if isinstance(node, exp.Is):
        if not _is_null(node):
            raise _refuse("IS only takes NULL (IS NULL / IS NOT NULL)")
        # sqlglot writes `x IS NOT NULL` as Is(negate=True)
        return IsNull(_property(node.this), negated=bool(node.args.get("negate")))
    if isinstance(node, (exp.Subquery, exp.Select, exp.Exists)):
        raise _refuse("subqueries are not allowed in a metric")
    if isinstance(node, exp.Func):
        raise _refuse(f"{_describe(node)} is not allowed in a filter")
    raise _refuse(f"{node.sql(dialect='postgres')[:80]!r} is not an allowed filter "
                  "(comparisons, IN, IS NULL, AND, OR, NOT over event_name and properties)")


def _is_null(node: exp.Is) -> bool:
    return isinstance(node.expression, exp.Null)


def _in_values(node: exp.In) -> tuple[Literal, ...]:
    if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
        raise _refuse("IN takes a list of literal values, not a subquery")
    values = tuple(_literal(value) for value in node.expressions)
    if not values:
        raise _refuse("IN needs at least one value")
    if len(values) > MAX_PREDICATES:
        raise _refuse(f"IN takes at most {MAX_PREDICATES} values")
    return values


def _literal(node: exp.Expression) -> Literal:
    if isinstance(node, exp.Paren):
        return _literal(node.this)
    if isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) and not node.this.is_string:
        return -_number(node.this.this)
    if isinstance(node, exp.Literal):
        return node.this if node.is_string else _number(node.this)
    if isinstance(node, exp.Column):
        raise _refuse(f"compare a property with a literal value, not with {node.name!r}")
    if isinstance(node, exp.Func):
        raise _refuse(f"{_describe(node)} is not allowed in a filter")
    raise _refuse(f"{node.sql(dialect='postgres')[:80]!r} is not a literal value")


def _number(text: str) -> Decimal:
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise _refuse(f"{text!r} is not a number") from None
    if not number.is_finite():
        raise _refuse(f"{text!r} is not a finite number")
    return number


def is_property_name(name: object) -> bool:
    """Whether ``name`` is an event property a metric could name (e.g. a usage `group_by` key)."""
    return isinstance(name, str) and _PROPERTY.fullmatch(name) is not None
