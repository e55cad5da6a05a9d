"""Billable metrics: named SQL over events, checked against the metric language when created."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, select

from domains.catalog.items import items_by_ids
from domains.errors import NotFound, ValidationFailed
from domains.metadata import merge_metadata
from domains.metering.metric_sql import parse_metric_sql
from domains.pagination import Page, page_size
from domains.tenancy.service import Principal
from domains.text import refuse_unknown, text
from domains.unit_of_work import UnitOfWork
from persistence.ids import new_id
from persistence.tables import BillableMetric

_FIELDS = frozenset({"name", "description", "sql", "item_id", "metadata"})
_READ_COLUMNS = [
    column.label("metric_metadata") if column.name == "metadata" else column
    for column in BillableMetric.__table__.columns  # type: ignore[attr-defined]
]


@cache
def _read_statement(*, by_id: bool = False, many: bool = False, after: bool = False) -> Select[Any]:
    statement = select(*_READ_COLUMNS).where(BillableMetric.org_id == bindparam("org_id"))
    if by_id:
        return statement.where(BillableMetric.id.in_(bindparam("ids", expanding=True)) if many  # type: ignore[attr-defined]
                               else BillableMetric.id == bindparam("id"))
    if after:
        statement = statement.where(BillableMetric.id < bindparam("after_id"))
    return statement.order_by(BillableMetric.id.desc()).limit(bindparam("limit"))  # type: ignore[attr-defined]


async def create_metric(uow: UnitOfWork, *, principal: Principal, fields: Mapping[str, Any]) -> BillableMetric:
    """Create a metric. Its SQL must be in the metric language; its item must be one of ours."""
    refuse_unknown(fields, _FIELDS, "a billable metric field")
    name = text("name", fields.get("name"), required=True)
    description = text("description", fields.get("description"), max_length=10_000)
    sql = fields.get("sql")
    parse_metric_sql(sql)  # refuses, naming the problem, anything outside the language
    item_id = fields.get("item_id")
    if not isinstance(item_id, str) or not item_id:
        raise ValidationFailed("item_id", "is required")
    metric = BillableMetric(
        id=new_id(), org_id=principal.org_id, item_id=item_id, name=name, description=description,  # type: ignore[arg-type]
        sql=sql.strip(), metric_metadata=merge_metadata("metadata", fields.get("metadata")),  # type: ignore[union-attr]
        created_at=uow.clock.now(),
    )
    async with uow.transaction():
        # Checked inside the transaction: another organisation's item is as unknown as a made-up id.
        if item_id not in await items_by_ids(uow, principal=principal, ids=[item_id]):
            raise ValidationFailed("item_id", f"no item {item_id!r} exists")
        uow.session.add(metric)
    return metric


async def get_metric(uow: UnitOfWork, *, principal: Principal, metric_id: str) -> BillableMetric:
    rows = await uow.rows(_read_statement(by_id=True), {"org_id": principal.org_id, "id": metric_id})
    if not rows:
        raise NotFound(f"billable metric {metric_id!r} was not found", field="metric_id")
    return rows[0]  # type: ignore[return-value]


async def metrics_by_ids(uow: UnitOfWork, *, principal: Principal, ids: Sequence[str]) -> dict[str, BillableMetric]:
    if not ids:
        return {}
    rows = await uow.rows(_read_statement(by_id=True, many=True), {"org_id": principal.org_id, "ids": list(set(ids))})
    return {row.id: row for row in rows}  # type: ignore[misc]


async def list_metrics(
    uow: UnitOfWork, *, principal: Principal, limit: int | None = None, after_id: str | None = None
) -> Page[BillableMetric]:
    """Newest first, by keyset on the time-ordered id."""
    limit = page_size(limit)
    params: dict[str, Any] = {"org_id": principal.org_id, "limit": limit + 1}
    if after_id is not None:
        params["after_id"] = after_id
    return Page.from_rows(await uow.rows(_read_statement(after=after_id is not None), params), limit)
