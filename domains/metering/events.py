"""Event ingestion: each event validated on its own, the valid ones of a batch stored by one
set-based insert that skips idempotency keys the organisation has already used."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

import orjson
from sqlalchemy import String, and_, any_, bindparam, func, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from domains.errors import ValidationFailed
from domains.metering import backfills
from domains.tenancy.service import DEFAULT_EVENT_GRACE_PERIOD, Principal, event_grace_period
from domains.unit_of_work import UnitOfWork
from persistence.ids import new_ids
from persistence.tables import Customer, Event, EventBackfill, Organisation

MAX_BATCH = 500
# Clocks drift: an event slightly in the future is accepted.
FUTURE_TOLERANCE = timedelta(minutes=5)
MAX_KEY_LENGTH = 255
MAX_PROPERTIES = 200
_FIELDS = frozenset({"event_name", "timestamp", "idempotency_key", "customer_id", "external_customer_id", "properties"})


class EventRefused(Exception):
    """One reason an event of a batch is refused (the batch goes on)."""


@dataclass
class IngestResult:
    ingested: list[str] = field(default_factory=list)
    duplicate: list[str] = field(default_factory=list)
    # idempotency_key -> the reasons that event was refused (the others of the batch are stored)
    validation_failed: list[tuple[str, list[str]]] = field(default_factory=list)


def _timestamp(value: Any, now: datetime, grace: timedelta, backfill: EventBackfill | None = None) -> datetime:
    if not isinstance(value, str):
        raise EventRefused("timestamp must be an ISO 8601 string")
    try:
        moment = datetime.fromisoformat(value)
        # Orb documents timestamps as UTC; one written without an offset is read as UTC.
        if moment.tzinfo is not UTC:  # (a `Z` or `+00:00` already parses to UTC itself)
            moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):  # an out-of-range instant overflows on conversion
        raise EventRefused(f"timestamp {value!r} is not ISO 8601 (e.g. 2026-01-31T12:00:00Z)") from None
    if moment > now + FUTURE_TOLERANCE:
        raise EventRefused("timestamp is in the future")
    if backfill is not None:
        # A backfill takes events of its timeframe however old, and only those.
        if not backfill.timeframe_start <= moment < backfill.timeframe_end:
            raise EventRefused(f"timestamp is outside the backfill's timeframe [{backfill.timeframe_start.isoformat()}, "
                               f"{backfill.timeframe_end.isoformat()})")
    elif moment < now - grace:
        raise EventRefused(f"timestamp is older than the grace period ({grace}); send it through a backfill")
    return moment


# Property values an event may carry (JSON scalars); checked by exact class, the common case.
_SCALARS = frozenset({str, int, float, bool, Decimal, type(None)})


_INT64_LOW, _INT64_END = -(2**63), 2**64  # what a stored whole number may span (signed and unsigned)


def _plain_scalars(values: dict[str, Any]) -> bool:
    """Whether every property value is a JSON scalar the store takes as it is: the inline test's check,
    as cheap as a type lookup per value (a whole number beyond 64 bits goes to checked_properties)."""
    for item in values.values():
        kind = item.__class__
        if kind is int:
            if not _INT64_LOW <= item < _INT64_END:
                return False
        elif kind not in _SCALARS:
            return False
    return True


def checked_properties(value: Any) -> dict[str, Any]:
    if not isinstance(value, (dict, Mapping)):  # (dict first: an ABC check is slow)
        raise EventRefused("properties must be an object")
    if len(value) > MAX_PROPERTIES:
        raise EventRefused(f"properties has more than {MAX_PROPERTIES} keys")
    for key, item in value.items():
        if item.__class__ not in _SCALARS and (isinstance(item, (dict, list))
                                               or not isinstance(item, (str, bool, int, float, Decimal))):
            raise EventRefused(f"property {key!r} must be a number, boolean or string (not an object or list)")
        if item.__class__ is int and not _INT64_LOW <= item < _INT64_END:
            # JSON bodies never carry one (orjson reads it as a float), a GraphQL literal does: not storable.
            raise EventRefused(f"property {key!r} is a whole number beyond 64 bits")
    return dict(value)


def _clean(
    event: Any, now: datetime, grace: timedelta, backfill: EventBackfill | None
) -> tuple[dict[str, Any], list[str]]:
    """The event's row values, or the list of everything wrong with it."""
    if not isinstance(event, (dict, Mapping)):  # (dict first: an ABC check is slow)
        return {}, ["an event must be an object"]
    errors: list[str] = []
    unknown = event.keys() - _FIELDS
    if unknown:
        errors.append(f"{min(unknown)} is not an event field")
    row: dict[str, Any] = {}
    name = event.get("event_name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        errors.append("event_name is required (a string of 1 to 255 characters)")
    row["event_name"] = name
    try:
        row["timestamp"] = _timestamp(event.get("timestamp"), now, grace, backfill)
    except EventRefused as exc:
        errors.append(str(exc))
    try:
        row["properties"] = checked_properties(event.get("properties"))
    except EventRefused as exc:
        errors.append(str(exc))
    customer_id, external_id = event.get("customer_id"), event.get("external_customer_id")
    if (customer_id is None) == (external_id is None):
        errors.append("exactly one of customer_id and external_customer_id is required")
    for key, value in (("customer_id", customer_id), ("external_customer_id", external_id)):
        if value is not None and (not isinstance(value, str) or not value or len(value) > 255):
            errors.append(f"{key} must be a non-empty string")
    row["customer_id"], row["external_customer_id"] = customer_id, external_id
    return row, errors


@dataclass
class _Valid:
    """The valid events of a batch, column by column as the insert takes them (no row per event)."""

    keys: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    timestamps: list[datetime] = field(default_factory=list)
    properties: list[Mapping[str, Any]] = field(default_factory=list)
    customer_ids: list[str | None] = field(default_factory=list)
    external_ids: list[str | None] = field(default_factory=list)

    def add(self, key: str, row: Mapping[str, Any]) -> None:
        self.keys.append(key)
        self.names.append(row["event_name"])
        self.timestamps.append(row["timestamp"])
        self.properties.append(row["properties"])
        self.customer_ids.append(row["customer_id"])
        self.external_ids.append(row["external_customer_id"])

    def drop(self, indexes: set[int]) -> None:
        for column in (self.keys, self.names, self.timestamps, self.properties, self.customer_ids, self.external_ids):
            column[:] = [value for index, value in enumerate(column) if index not in indexes]


_KEY_REQUIRED = f"idempotency_key is required (a string of 1 to {MAX_KEY_LENGTH} characters)"
_ONE_MICROSECOND = timedelta(microseconds=1)


def _validate(
    events: Sequence[Any], now: datetime, grace: timedelta, backfill: EventBackfill | None, result: IngestResult
) -> _Valid:
    """Each event checked on its own: the valid ones (the first of each key) come back column by
    column, the others are reported in `result` (validation_failed, or duplicate within the batch).

    An event that is a plain JSON object passing every check is taken by one inline test; anything
    else goes through _clean, which finds and words every fault (the test only ever takes events
    _clean would take, with the same values)."""
    valid = _Valid()
    keys, names, timestamps, properties = valid.keys, valid.names, valid.timestamps, valid.properties
    customer_ids, external_ids = valid.customer_ids, valid.external_ids
    seen: set[str] = set()
    # The instants an event may carry, both ends included (datetimes count whole microseconds).
    latest = now + FUTURE_TOLERANCE
    if backfill is None:
        earliest = now - grace
    else:
        earliest, latest = backfill.timeframe_start, min(latest, backfill.timeframe_end - _ONE_MICROSECOND)
    parse, fields, max_key = datetime.fromisoformat, _FIELDS, MAX_KEY_LENGTH
    for event in events:
        if event.__class__ is dict:
            key, name, stamp = event.get("idempotency_key"), event.get("event_name"), event.get("timestamp")
            values, customer_id, external_id = (event.get("properties"), event.get("customer_id"),
                                                event.get("external_customer_id"))
            moment = None
            if stamp.__class__ is str:
                try:
                    moment = parse(stamp)
                except (ValueError, OverflowError):
                    pass  # _clean words it
            if (moment is not None and moment.tzinfo is UTC and earliest <= moment <= latest
                    and key.__class__ is str and 0 < len(key) <= max_key
                    and name.__class__ is str and 0 < len(name) <= 255 and not name.isspace()
                    and values.__class__ is dict and len(values) <= MAX_PROPERTIES
                    and _plain_scalars(values)
                    and ((customer_id is None and external_id.__class__ is str and 0 < len(external_id) <= 255)
                         or (external_id is None and customer_id.__class__ is str and 0 < len(customer_id) <= 255))
                    and fields.issuperset(event)):
                if key in seen:
                    result.duplicate.append(key)  # the same key twice in one batch: the first one counts
                    continue
                seen.add(key)
                keys.append(key)
                names.append(name)
                timestamps.append(moment)
                properties.append(values)
                customer_ids.append(customer_id)
                external_ids.append(external_id)
                continue
        key = event.get("idempotency_key") if isinstance(event, (dict, Mapping)) else None
        row, errors = _clean(event, now, grace, backfill)
        if not isinstance(key, str) or not key or len(key) > max_key:
            errors.insert(0, _KEY_REQUIRED)
            key = key if isinstance(key, str) else ""
        if errors:
            result.validation_failed.append((key, errors))
        elif key in seen:
            result.duplicate.append(key)
        else:
            seen.add(key)
            valid.add(key, row)
    return valid


def _named_customers(events: Sequence[Any]) -> tuple[set[str], set[str]]:
    """The customer ids and external customer ids the batch's events name (valid or not)."""
    ids: set[str] = set()
    external_ids: set[str] = set()
    for event in events:
        if event.__class__ is dict or isinstance(event, Mapping):
            customer_id, external_id = event.get("customer_id"), event.get("external_customer_id")
            if isinstance(customer_id, str) and customer_id:
                ids.add(customer_id)
            if isinstance(external_id, str) and external_id:
                external_ids.add(external_id)
    return ids, external_ids


async def ingest_events(
    uow: UnitOfWork, *, principal: Principal, events: Sequence[Any], backfill_id: str | None = None
) -> IngestResult:
    """Store the valid events of a batch once each; report the invalid ones and the duplicates.

    Events older than the organisation's grace period are refused unless the batch goes into a
    pending backfill, whose timeframe (and customer) they must then fall in; they are stored hidden
    until the backfill is closed."""
    if not isinstance(events, Sequence) or isinstance(events, (str, bytes)):
        raise ValidationFailed("events", "must be a list of events")
    if len(events) > MAX_BATCH:
        raise ValidationFailed("events", f"a batch holds at most {MAX_BATCH} events (got {len(events)})")
    backfill = None
    if backfill_id is not None:
        backfill = await backfills.backfill_accepting_events(uow, principal=principal, backfill_id=backfill_id)
    ids, external_ids = _named_customers(events)
    grace_period, known, by_external = await _organisation_context(uow, principal, ids, external_ids)
    now = uow.clock.now()
    result = IngestResult()
    valid = _validate(events, now, grace_period, backfill, result)
    if not valid.keys:
        return result
    _resolve_customers(valid, known, by_external, result)
    async with uow.transaction():
        if backfill is not None and backfill.customer_id is not None:
            mismatched = {index for index, customer_id in enumerate(valid.customer_ids)
                          if customer_id != backfill.customer_id}
            reason = f"the event's customer is not the backfill's customer ({backfill.customer_id})"
            result.validation_failed += [(valid.keys[index], [reason]) for index in sorted(mismatched)]
            valid.drop(mismatched)
        if valid.keys:
            stored = await _insert(uow, principal, valid, now, backfill_id)
            result.ingested = stored
            if len(stored) < len(valid.keys):
                taken = set(stored)
                result.duplicate += [key for key in valid.keys if key not in taken]
            if backfill is not None:
                await backfills.count_ingested(uow, backfill=backfill, stored=len(stored))
    return result


@cache
def _context_statement(*, by_id: bool, by_external: bool, reseller: bool, postgres: bool) -> Any:
    """The organisation's grace period (tenancy.event_grace_period's column) and which of a batch's
    customers are the organisation's, in one read: a row per customer found (a row of nulls if
    none is), no row for an unknown organisation. Built once per shape.

    PostgreSQL takes the keys as one array (`= ANY($n)`): one prepared statement whatever their
    number, where an expanded IN list is a statement (and a bound cast per key) per length."""

    def among(column: Any, name: str) -> Any:
        if postgres:
            return column == any_(bindparam(name, type_=ARRAY(String)))
        return column.in_(bindparam(name, expanding=True))

    matches = []
    if by_id:
        matches.append(among(Customer.id, "ids"))
    if by_external:
        matches.append(among(Customer.external_customer_id, "external_ids"))
    on = [Customer.org_id == Organisation.org_id, or_(*matches)]
    if reseller:  # a reseller-limited key sees (and meters) only its reseller's customers
        on.append(Customer.reseller_id == bindparam("reseller_id"))
    return (
        select(Organisation.event_grace_period_seconds, Customer.id, Customer.external_customer_id)
        .select_from(Organisation)
        .outerjoin(Customer, and_(*on))
        .where(Organisation.org_id == bindparam("org_id"))
    )


async def _organisation_context(
    uow: UnitOfWork, principal: Principal, ids: set[str], external_ids: set[str]
) -> tuple[timedelta, set[str], dict[str, str]]:
    """The grace period, the named customer ids that are ours, and external id -> customer id.

    Read before the insert's transaction, on the fast reader: a customer created between the two is
    attached to its events by that customer's own creation (attach_events_to_customer), as it would
    be between two statements of one READ COMMITTED transaction."""
    if not ids and not external_ids:
        return await event_grace_period(uow, org_id=principal.org_id), set(), {}
    reseller = principal.reseller_id is not None
    params: dict[str, Any] = {"org_id": principal.org_id}
    if ids:
        params["ids"] = list(ids)
    if external_ids:
        params["external_ids"] = list(external_ids)
    if reseller:
        params["reseller_id"] = principal.reseller_id
    statement = _context_statement(by_id=bool(ids), by_external=bool(external_ids), reseller=reseller,
                                   postgres=uow.is_postgres)
    rows = await uow.rows(statement, params)
    if not rows:
        return DEFAULT_EVENT_GRACE_PERIOD, set(), {}
    known = {customer_id for _, customer_id, _ in rows if customer_id is not None}
    by_external = {external_id: customer_id for _, customer_id, external_id in rows if external_id is not None}
    return timedelta(seconds=rows[0][0]), known, by_external


def _resolve_customers(valid: _Valid, known: set[str], by_external: dict[str, str], result: IngestResult) -> None:
    """Known customer ids must be ours; external ids take their customer's id when it exists."""
    customer_ids = valid.customer_ids
    unknown: set[int] = set()
    for index, (customer_id, external_id) in enumerate(zip(customer_ids, valid.external_ids, strict=True)):
        if customer_id:
            if customer_id not in known:
                result.validation_failed.append((valid.keys[index], [f"customer_id {customer_id!r} does not exist"]))
                unknown.add(index)
        elif external_id:
            customer_ids[index] = by_external.get(external_id)
    if unknown:
        valid.drop(unknown)


@cache
def _insert_statement(dialect: str) -> Any:
    """Built once: executed with the batch's rows, SQLAlchemy sends them as multi-row VALUES
    ("insertmanyvalues") without compiling a 500-row statement per batch."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    table = Event.__table__  # type: ignore[attr-defined]
    return (
        insert(table)
        .on_conflict_do_nothing(index_elements=["org_id", "idempotency_key", "amendment"])
        .returning(table.c.idempotency_key)
    )


# PostgreSQL: one array per column, unnested into rows server-side (the fastest insert asyncpg has
# with a uniqueness check: ~25,000 rows/s here against ~19,000 for executemany). Properties go as text
# and become jsonb in the statement: asyncpg's text codec is C, the jsonb one SQLAlchemy installs is a
# Python call per value (PostgreSQL parses the JSON either way).
_PG_UNNEST_INSERT = """
INSERT INTO events (id, org_id, customer_id, external_customer_id, event_name, "timestamp", properties,
                    idempotency_key, ingested_at, backfill_id, deprecated_by)
SELECT u.id, $1, u.customer_id, u.external_customer_id, u.event_name, u.ts, u.properties::jsonb, u.idempotency_key,
       $2, $10::varchar, $10::varchar
FROM unnest($3::varchar[], $4::varchar[], $5::varchar[], $6::varchar[], $7::timestamptz[], $8::text[],
            $9::varchar[]) AS u(id, customer_id, external_customer_id, event_name, ts, properties, idempotency_key)
ON CONFLICT (org_id, idempotency_key, amendment) DO NOTHING
"""
# Which of the rows just offered were stored: they carry the ids made for them.
_PG_STORED_KEYS = "SELECT idempotency_key FROM events WHERE org_id = $1 AND id = ANY($2::varchar[])"


async def _insert(
    uow: UnitOfWork, principal: Principal, valid: _Valid, now: datetime, backfill_id: str | None
) -> list[str]:
    """One set-based insert for the whole batch; keys already used by the organisation are skipped by
    the unique index itself (so concurrent replays store nothing twice). Returns the keys stored, in
    the batch's order. A backfill's events are stored hidden under its id (`deprecated_by`) until it
    is closed."""
    connection = await uow.session.connection()
    ids = new_ids(len(valid.keys))
    if uow.is_postgres:
        # The session's own connection, so the insert is part of the operation's transaction.
        driver = (await connection.get_raw_connection()).driver_connection
        dumps = orjson.dumps
        status = await driver.execute(  # type: ignore[union-attr]
            _PG_UNNEST_INSERT, principal.org_id, now, ids, valid.customer_ids, valid.external_ids, valid.names,
            valid.timestamps, [dumps(values).decode() for values in valid.properties], valid.keys, backfill_id,
        )
        # The status tag counts the rows stored ("INSERT 0 <rows>"): all or none need no list of keys
        # back (a fresh batch, a replay); only a batch partly stored before asks which.
        count = int(status.rsplit(" ", 1)[1])
        if count == len(ids):
            return list(valid.keys)
        if count == 0:
            return []
        rows = await driver.fetch(_PG_STORED_KEYS, principal.org_id, ids)  # type: ignore[union-attr]
        stored = {key for (key,) in rows}
        return [key for key in valid.keys if key in stored]
    org_id = principal.org_id
    values = [{"id": id_, "org_id": org_id, "customer_id": customer_id, "external_customer_id": external_id,
               "event_name": name, "timestamp": moment, "properties": properties, "idempotency_key": key,
               "ingested_at": now, "amendment": 0, "backfill_id": backfill_id, "deprecated_by": backfill_id}
              for id_, customer_id, external_id, name, moment, properties, key in zip(
                  ids, valid.customer_ids, valid.external_ids, valid.names, valid.timestamps, valid.properties,
                  valid.keys, strict=True)]
    result = await connection.execute(_insert_statement(uow.dialect), values)
    stored = {key for (key,) in result}
    return [key for key in valid.keys if key in stored]


async def attach_events_to_customer(uow: UnitOfWork, *, org_id: str, customer_id: str, external_customer_id: str) -> None:
    """A customer now holds an external id: its earlier events, sent under that id, become its own."""
    await uow.session.execute(
        update(Event)
        .where(Event.org_id == org_id, Event.external_customer_id == external_customer_id,
               Event.customer_id.is_(None))  # type: ignore[union-attr]
        .values(customer_id=customer_id)
    )


MAX_SEARCH_RESULTS = 500
MAX_VOLUME_WINDOW = timedelta(days=31)


async def search_events(
    uow: UnitOfWork, *, principal: Principal, event_ids: Sequence[str] | None = None,
    timeframe_start: datetime | None = None, timeframe_end: datetime | None = None,
) -> list[Event]:
    """Events by id (Orb's event id is the client's idempotency key) and/or timeframe, newest first
    (at most 500). With neither, the last 10 days."""
    if event_ids is not None and len(event_ids) > MAX_SEARCH_RESULTS:
        raise ValidationFailed("event_ids", f"at most {MAX_SEARCH_RESULTS} ids")
    end = timeframe_end or uow.clock.now()
    start = timeframe_start or (None if event_ids else end - timedelta(days=10))
    if start is not None and end <= start:
        raise ValidationFailed("timeframe_end", "must be after timeframe_start")
    statement = select(*Event.__table__.columns).where(  # type: ignore[attr-defined]
        Event.org_id == principal.org_id, Event.deprecated_by.is_(None))  # type: ignore[union-attr]
    if event_ids:
        statement = statement.where(Event.idempotency_key.in_(list(event_ids)))  # type: ignore[attr-defined]
    if start is not None:
        statement = statement.where(Event.timestamp >= start)
    statement = statement.where(Event.timestamp < end).order_by(Event.timestamp.desc()).limit(MAX_SEARCH_RESULTS)  # type: ignore[attr-defined]
    if principal.reseller_id is not None:
        scoped = select(Customer.id).where(Customer.org_id == principal.org_id,
                                           Customer.reseller_id == principal.reseller_id)
        statement = statement.where(Event.customer_id.in_(scoped))  # type: ignore[union-attr]
    return list(await uow.rows(statement))  # type: ignore[arg-type]


@dataclass(frozen=True)
class VolumeBucket:
    timeframe_start: datetime
    timeframe_end: datetime
    count: int


async def event_volume(
    uow: UnitOfWork, *, principal: Principal, timeframe_start: datetime, timeframe_end: datetime | None = None
) -> list[VolumeBucket]:
    """Events ingested per hour of their timestamp in [start, end), the hours that have any, oldest first."""
    end = timeframe_end or uow.clock.now()
    if end <= timeframe_start:
        raise ValidationFailed("timeframe_end", "must be after timeframe_start")
    if end - timeframe_start > MAX_VOLUME_WINDOW:
        raise ValidationFailed("timeframe_start", f"a volume window is at most {MAX_VOLUME_WINDOW.days} days")
    # Hours as text on both engines: SQLite stores "YYYY-MM-DD HH:MM:SS.ffffff" UTC, PostgreSQL formats.
    hour = (func.to_char(func.timezone("UTC", Event.timestamp), "YYYY-MM-DD HH24") if uow.is_postgres
            else func.substr(Event.timestamp, 1, 13))
    statement = (
        select(hour.label("hour"), func.count().label("count"))
        .where(Event.org_id == principal.org_id, Event.deprecated_by.is_(None),  # type: ignore[union-attr]
               Event.timestamp >= timeframe_start, Event.timestamp < end)
        .group_by(hour).order_by(hour)
    )
    buckets = []
    for label, count in await uow.rows(statement):
        start = datetime.strptime(label, "%Y-%m-%d %H").replace(tzinfo=UTC)
        buckets.append(VolumeBucket(timeframe_start=start, timeframe_end=start + timedelta(hours=1), count=int(count)))
    return buckets
