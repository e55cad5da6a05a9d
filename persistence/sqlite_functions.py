"""Exact aggregates for SQLite, whose own SUM/AVG work in floating point.

Registered on every SQLite connection we open (persistence.db), named accrual_decimal_<op>. Values
arrive as text or integers (metric_query casts JSON numbers to text) and are summed as Decimals; the
result goes back as canonical text, which the caller reads as a Decimal.
"""

from __future__ import annotations

import sqlite3
from decimal import Context, Decimal, InvalidOperation, localcontext
from typing import Any

from persistence.types import canonical_decimal

# Totals are added in the 100 digits canonical_decimal keeps: the default context's 28 rounded a sum
# of 30-digit integers.
_WIDE = Context(prec=100)


def _decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


class _Sum:
    def __init__(self) -> None:
        self.total: Decimal | None = None

    def step(self, value: Any) -> None:
        number = _decimal(value)
        if number is not None:
            self.total = number if self.total is None else _WIDE.add(self.total, number)

    def finalize(self) -> str | None:
        return None if self.total is None else canonical_decimal(self.total)


class _Avg:
    def __init__(self) -> None:
        self.total, self.count = Decimal(0), 0

    def step(self, value: Any) -> None:
        number = _decimal(value)
        if number is not None:
            self.total = _WIDE.add(self.total, number)
            self.count += 1

    def finalize(self) -> str | None:
        # 12 places, as metric_query rounds PostgreSQL's AVG.
        if not self.count:
            return None
        with localcontext() as context:
            context.prec = 100
            return canonical_decimal((self.total / self.count).quantize(Decimal("1e-12")))


class _Extreme:
    larger = True

    def __init__(self) -> None:
        self.best: Decimal | None = None

    def step(self, value: Any) -> None:
        number = _decimal(value)
        if number is not None and (self.best is None or (number > self.best) == self.larger):
            self.best = number

    def finalize(self) -> str | None:
        return None if self.best is None else canonical_decimal(self.best)


class _Max(_Extreme):
    larger = True


class _Min(_Extreme):
    larger = False


def _add(left: Any, right: Any) -> str | None:
    """Two partial totals (an INTEGER from SQLite's SUM, decimal text from ours; either may be NULL)."""
    if left is None and right is None:
        return None
    with localcontext() as context:
        context.prec = 100
        return canonical_decimal(sum((number for number in (_decimal(left), _decimal(right)) if number is not None),
                                     Decimal(0)))


AGGREGATES: dict[str, type] = {
    "accrual_decimal_sum": _Sum, "accrual_decimal_avg": _Avg, "accrual_decimal_max": _Max, "accrual_decimal_min": _Min,
}


def register(connection: sqlite3.Connection) -> None:
    for name, aggregate in AGGREGATES.items():
        connection.create_aggregate(name, 1, aggregate)  # type: ignore[arg-type]
    connection.create_function("accrual_decimal_add", 2, _add, deterministic=True)
