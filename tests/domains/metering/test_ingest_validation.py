"""The batch validation's inline test for the common case takes exactly the events `_clean` takes,
with the same values, and leaves every other event to it: checked against the plain per-event loop
over a few thousand events, valid and faulty in every field."""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from types import MappingProxyType, SimpleNamespace
from typing import Any

import pytest

from domains.metering.events import MAX_KEY_LENGTH, IngestResult, _clean, _validate

NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
GRACE = timedelta(hours=12)


def _reference(events: list[Any], backfill: Any) -> tuple[IngestResult, list[tuple[str, dict[str, Any]]]]:
    """The per-event loop the inline test stands in for: `_clean` on every event."""
    result = IngestResult()
    rows: dict[str, dict[str, Any]] = {}
    for event in events:
        key = event.get("idempotency_key") if isinstance(event, (dict, Mapping)) else None
        row, errors = _clean(event, NOW, GRACE, backfill)
        if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
            errors.insert(0, f"idempotency_key is required (a string of 1 to {MAX_KEY_LENGTH} characters)")
            key = key if isinstance(key, str) else ""
        if errors:
            result.validation_failed.append((key, errors))
        elif key in rows:
            result.duplicate.append(key)
        else:
            rows[key] = row
    return result, list(rows.items())


def _stamp(offset: timedelta, style: str) -> str:
    moment = NOW + offset
    if style == "z":
        return moment.isoformat().replace("+00:00", "Z")
    if style == "naive":
        return moment.replace(tzinfo=None).isoformat()
    if style == "offset":
        return moment.astimezone(timezone(timedelta(hours=-5))).isoformat()
    return moment.isoformat()


_OFFSETS = [timedelta(0), timedelta(minutes=-1), -GRACE, -GRACE - timedelta(microseconds=1), timedelta(minutes=5),
            timedelta(minutes=5, microseconds=1), timedelta(hours=-100), timedelta(days=-400)]
_VARIANTS: dict[str, list[Any]] = {
    "idempotency_key": ["k", "", "x" * MAX_KEY_LENGTH, "x" * (MAX_KEY_LENGTH + 1), None, 7, ["k"]],
    "event_name": ["api_call", "", "   ", "\u2003", "n" * 255, "n" * 256, None, 3, " padded "],
    "timestamp": [*(_stamp(offset, style) for offset in _OFFSETS for style in ("z", "plus", "naive", "offset")),
                  "yesterday", "", None, 1738324800, "2026-13-01T00:00:00Z", "0001-01-01T00:00:00+01:00",
                  "9999-12-31T23:59:59-01:00"],
    "properties": [{}, {"tokens": 12, "region": "eu", "cached": False, "ratio": 0.5, "none": None},
                   {"n": {"a": 1}}, {"n": [1]}, "tokens=1", None, [], {f"p{i}": i for i in range(200)},
                   {f"p{i}": i for i in range(201)}, {"d": Decimal("1.5")}, MappingProxyType({"a": 1}),
                   {"o": object()}],
    "customer_id": [None, "cus_1", "", "c" * 255, "c" * 256, 5],
    "external_customer_id": [None, "acme", "", "e" * 255, "e" * 256, ["acme"]],
}


def _events(seed: int, count: int) -> list[Any]:
    rng = random.Random(seed)
    events: list[Any] = []
    for index in range(count):
        event: dict[str, Any] = {"idempotency_key": f"k{rng.randrange(count // 2)}", "event_name": "api_call",
                                 "timestamp": _stamp(timedelta(minutes=-rng.randrange(600)), "z"),
                                 "properties": {"tokens": index}, "external_customer_id": "acme"}
        for name, values in _VARIANTS.items():  # each field faulty (or unusual) now and then
            if rng.random() < 0.12:
                value = rng.choice(values)
                if value is None and rng.random() < 0.5:
                    event.pop(name, None)
                else:
                    event[name] = value
        if rng.random() < 0.03:
            event["unknown_field"] = 1
        shape = rng.random()
        if shape < 0.02:
            events.append(rng.choice(["text", 5, None, ["a"]]))
        elif shape < 0.04:
            events.append(MappingProxyType(event))  # a mapping that is not a dict: _clean takes it too
        else:
            events.append(event)
    return events


_BACKFILLS = [None, SimpleNamespace(timeframe_start=NOW - timedelta(days=2), timeframe_end=NOW - timedelta(hours=1)),
              SimpleNamespace(timeframe_start=NOW - timedelta(hours=200), timeframe_end=NOW + timedelta(hours=1))]


@pytest.mark.parametrize(("seed", "backfill"), list(itertools.product(range(6), _BACKFILLS)))
def test_the_inline_test_agrees_with_clean_on_every_event(seed: int, backfill: Any) -> None:
    events = _events(seed, 600)
    expected, rows = _reference(events, backfill)
    result = IngestResult()
    valid = _validate(events, NOW, GRACE, backfill, result)
    assert result.validation_failed == expected.validation_failed
    assert result.duplicate == expected.duplicate
    assert valid.keys == [key for key, _ in rows]
    for column, name in ((valid.names, "event_name"), (valid.timestamps, "timestamp"), (valid.properties, "properties"),
                         (valid.customer_ids, "customer_id"), (valid.external_ids, "external_customer_id")):
        assert column == [row[name] for _, row in rows], name
    assert all(moment.tzinfo is UTC for moment in valid.timestamps)
    assert len(valid.keys) > 50 and len(result.validation_failed) > 50  # both kinds well represented


def test_the_edges_of_the_accepted_window_are_accepted_on_either_path() -> None:
    # Exactly the grace period old and exactly the future tolerance ahead are both taken.
    events = [{"idempotency_key": f"k{i}", "event_name": "e", "timestamp": _stamp(offset, style),
               "properties": {}, "external_customer_id": "acme"}
              for i, (offset, style) in enumerate(itertools.product((-GRACE, timedelta(minutes=5)), ("z", "naive")))]
    valid = _validate(events, NOW, GRACE, None, IngestResult())
    assert valid.keys == ["k0", "k1", "k2", "k3"]
