"""Idempotency keys: the first response to a key is kept and replayed; a different request under the
same key is a conflict. The claim is a row under a unique (org_id, key) index written in the same
transaction as the operation, so concurrent duplicates wait on the index and then replay."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from domains.errors import Conflict, ValidationFailed
from domains.unit_of_work import UnitOfWork
from persistence.tables import IdempotencyRecord

RETENTION = timedelta(hours=24)
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: str


async def claim(uow: UnitOfWork, *, org_id: str, key: str, request_hash: str) -> StoredResponse | None:
    """Inside the operation's transaction: None if this request now owns the key (run it, then
    `remember`), or the stored response to replay. Conflict when the key was used for another request."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValidationFailed("Idempotency-Key", f"must be 1 to {MAX_KEY_LENGTH} characters")
    now = uow.clock.now()
    # A record past retention no longer binds its key.
    await uow.session.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.org_id == org_id, IdempotencyRecord.key == key,
            IdempotencyRecord.created_at < now - RETENTION,
        )
    )
    insert = pg_insert if uow.is_postgres else sqlite_insert
    statement = (
        insert(IdempotencyRecord)
        .values(org_id=org_id, key=key, request_hash=request_hash, status_code=0, response_body="", created_at=now)
        .on_conflict_do_nothing(index_elements=["org_id", "key"])
        .returning(IdempotencyRecord.key)
    )
    if (await uow.session.execute(statement)).first() is not None:
        return None
    stored = (
        await uow.session.execute(
            select(IdempotencyRecord.request_hash, IdempotencyRecord.status_code, IdempotencyRecord.response_body)
            .where(IdempotencyRecord.org_id == org_id, IdempotencyRecord.key == key)
        )
    ).one()
    if stored.request_hash != request_hash:
        raise Conflict("this Idempotency-Key was already used for a different request", field="Idempotency-Key")
    return StoredResponse(status=stored.status_code, body=stored.response_body)


async def remember(uow: UnitOfWork, *, org_id: str, key: str, status: int, body: str) -> None:
    record = await uow.session.get(IdempotencyRecord, (org_id, key))
    assert record is not None, "remember() follows a successful claim() in the same transaction"
    record.status_code, record.response_body = status, body
    await uow.session.flush()


async def purge_expired(uow: UnitOfWork) -> int:
    """Drop records past retention (a periodic job; claims also ignore expired records)."""
    async with uow.transaction():
        result = await uow.session.execute(
            delete(IdempotencyRecord).where(IdempotencyRecord.created_at < uow.clock.now() - RETENTION)
        )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
