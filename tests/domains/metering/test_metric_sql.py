"""Billable-metric SQL: what the language accepts, and a suite of attempts it must refuse."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domains.errors import ValidationFailed
from domains.metering.metric_sql import And, Compare, In, IsNull, MetricDefinition, Not, Or, parse_metric_sql


def test_the_documented_example() -> None:
    metric = parse_metric_sql("SELECT SUM(tokens) FROM events WHERE event_name = 'api_call' AND region = 'eu'")
    assert metric == MetricDefinition(
        aggregate="sum", property="tokens",
        filter=And(Compare("event_name", "=", "api_call"), Compare("region", "=", "eu")),
    )
    assert metric.properties() == {"tokens", "region"}


@pytest.mark.parametrize(
    ("sql", "aggregate", "prop"),
    [
        ("SELECT COUNT(*) FROM events", "count", None),
        ("select count(request_id) from events", "count", "request_id"),
        ("SELECT COUNT(DISTINCT user_id) AS users FROM events", "count_distinct", "user_id"),
        ("SELECT MAX(latency_ms) FROM events", "max", "latency_ms"),
        ("SELECT MIN(latency_ms) FROM events", "min", "latency_ms"),
        ("SELECT AVG(latency_ms) FROM Events", "avg", "latency_ms"),
        ('SELECT SUM("gpu-seconds") FROM events', "sum", "gpu-seconds"),
    ],
)
def test_every_allowed_aggregate(sql: str, aggregate: str, prop: str | None) -> None:
    metric = parse_metric_sql(sql)
    assert (metric.aggregate, metric.property, metric.filter) == (aggregate, prop, None)


def test_filters_of_every_allowed_kind() -> None:
    metric = parse_metric_sql(
        "SELECT SUM(cost) FROM events WHERE (event_name IN ('a', 'b') OR NOT region = 'us') "
        "AND plan IS NOT NULL AND coupon IS NULL AND tier NOT IN (1, 2) AND -5 < cost AND cost <= 10.25 "
        "AND flagged = true AND region != 'cn'"
    )
    assert metric.filter == And(And(And(And(And(And(And(
        Or(In("event_name", ("a", "b")), Not(Compare("region", "=", "us"))),
        IsNull("plan", negated=True)),
        IsNull("coupon")),
        In("tier", (Decimal(1), Decimal(2)), negated=True)),
        Compare("cost", ">", Decimal(-5))),
        Compare("cost", "<=", Decimal("10.25"))),
        Compare("flagged", "=", True)),
        Compare("region", "!=", "cn"))


def test_comments_hide_nothing_because_the_text_is_never_run() -> None:
    metric = parse_metric_sql("SELECT SUM(x) FROM events /* ; DROP TABLE events */ -- WHERE 1=1")
    assert metric == MetricDefinition("sum", "x", None)


ATTEMPTS = [
    ("", "required"),
    ("SELECT SUM(x) FROM events; DROP TABLE events", "exactly one"),
    ("SELECT SUM(x) FROM events; SELECT SUM(y) FROM events", "exactly one"),
    ("SELECT COUNT(*) FROM events -- note\n; DELETE FROM events", "exactly one"),
    ("DROP TABLE events", "SELECT"),
    ("DELETE FROM events WHERE 1 = 1", "SELECT"),
    ("UPDATE events SET properties = '{}'", "SELECT"),
    ("INSERT INTO events VALUES (1)", "SELECT"),
    ("CREATE TABLE x (a int)", "SELECT"),
    ("SELECT SUM(amount) FROM customers", "events table"),
    ("SELECT SUM(x) FROM api_keys", "events table"),
    ("SELECT SUM(x) FROM public.events", "events table"),
    ("SELECT SUM(x) FROM other_db.public.events", "events table"),
    ("SELECT SUM(x) FROM (SELECT * FROM events) AS e", "events table"),
    ("SELECT SUM(x) FROM events JOIN customers ON true", "JOIN"),
    ("SELECT SUM(x) FROM events, customers", "JOIN"),
    ("SELECT SUM(x) FROM events WHERE y IN (SELECT id FROM customers)", "subquery"),
    ("SELECT SUM(x) FROM events WHERE EXISTS (SELECT 1 FROM customers)", "subquer"),
    ("SELECT SUM(x) FROM events WHERE org_id = (SELECT org_id FROM organisations LIMIT 1)", "literal"),
    ("WITH t AS (SELECT * FROM customers) SELECT SUM(x) FROM events", "WITH"),
    ("SELECT SUM(x) FROM events UNION SELECT SUM(balance) FROM customers", "SELECT"),
    ("SELECT pg_sleep(10) FROM events", "pg_sleep"),
    ("SELECT SUM(x) FROM events WHERE pg_sleep(10) IS NULL", "pg_sleep"),
    ("SELECT load_extension('evil') FROM events", "load_extension"),
    ("SELECT SUM(x) FROM events WHERE lower(region) = 'eu'", "lower"),
    ("SELECT SUM(length(x)) FROM events", "length"),
    ("SELECT SUM(x), COUNT(*) FROM events", "exactly one"),
    ("SELECT x FROM events", "COUNT, COUNT(DISTINCT), SUM"),
    ("SELECT * FROM events", "COUNT, COUNT(DISTINCT), SUM"),
    ("SELECT SUM(x) FROM events GROUP BY region", "GROUP BY"),
    ("SELECT SUM(x) FROM events HAVING SUM(x) > 1", "HAVING"),
    ("SELECT SUM(x) FROM events ORDER BY 1", "ORDER BY"),
    ("SELECT SUM(x) FROM events LIMIT 1", "LIMIT"),
    ("SELECT SUM(x) FROM events FOR UPDATE", "FOR UPDATE"),
    ("SELECT SUM(customers.balance) FROM events", "not an event property"),
    ("SELECT SUM(x) FROM events WHERE region = other_property", "literal"),
    ("SELECT SUM(x) FROM events WHERE 1 = 1", "property"),
    ("SELECT SUM(x + y) FROM events", "not an event property"),
    ("SELECT SUM(DISTINCT x) FROM events", "COUNT(DISTINCT"),
    ("SELECT SUM(x) FROM events WHERE region LIKE 'e%'", "not an allowed filter"),
    ("SELECT SUM(x) FROM events WHERE y BETWEEN 1 AND 2", "not an allowed filter"),
    ("SELECT SUM(x) FROM", "not valid SQL"),
    ("SELECT SUM(x) FROM events WHERE region = 'eu", "not valid SQL"),
]


@pytest.mark.parametrize(("sql", "mentions"), ATTEMPTS)
def test_refused_naming_the_problem(sql: str, mentions: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        parse_metric_sql(sql)
    assert refused.value.field == "sql"
    assert mentions.lower() in refused.value.message.lower(), refused.value.message


@given(st.text(max_size=200))
def test_arbitrary_text_is_parsed_or_refused_never_crashes(text: str) -> None:
    try:
        metric = parse_metric_sql(text)
    except ValidationFailed as refused:
        assert refused.field == "sql"
    else:
        assert metric.aggregate in ("count", "count_distinct", "sum", "max", "min", "avg")


@given(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True),
       st.sampled_from(["SUM", "MAX", "MIN", "AVG", "COUNT"]))
def test_any_property_name_round_trips(name: str, function: str) -> None:
    quoted = '"' + name + '"'
    metric = parse_metric_sql(f"SELECT {function}({quoted}) FROM events")
    assert metric.property == name
