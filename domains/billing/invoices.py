"""Invoices: a subscription's draft for its running period (computed live), issued invoices frozen
when a period closes, one-off invoices, and the draft → issued → paid / void lifecycle.

The draft of a subscription's running billing period is *not stored*: it is computed at read time
from the subscription's charges (domains.billing.charges), so fetching it always shows what the events
ingested so far produce and nothing can go stale. It is stored only when the period closes
(``issue_subscription_invoice``, called by the jobs), line items and all, and never changes again.
One-off invoices are stored drafts from creation (their lines are given, not computed).

Numbers: sequential per organisation from 1, given when an invoice is issued (null while draft),
from a per-organisation counter row bumped in the issuing transaction. The bump is one upsert,
``INSERT ... ON CONFLICT (org_id) DO UPDATE ... RETURNING``: on PostgreSQL its update takes the row's
lock (what ``SELECT ... FOR UPDATE`` would), so a concurrent issuer waits for the commit and reads the
new value; on SQLite the single writer serialises it. A rolled-back issue rolls its number back too:
no gaps, no duplicates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from domains.amounts import bounded
from domains.billing import charges
from domains.billing import subscriptions as subscription_service
from domains.billing.charges import Charge, round_to_minor_unit
from domains.billing.periods import Period
from domains.catalog import items
from domains.currencies import currency as checked_currency
from domains.customers import service as customers
from domains.errors import ConstraintViolation, NotFound, ValidationFailed
from domains.metadata import merge_metadata
from domains.pagination import Page, page_size
from domains.tenancy.service import Principal
from domains.text import one_of, refuse_unknown, text
from domains.unit_of_work import UnitOfWork
from persistence.ids import new_id
from persistence.tables import Customer, Invoice, InvoiceLineItem, InvoiceNumberCounter, Subscription

STATUSES = ("draft", "issued", "paid", "void")
MAX_LINE_ITEMS = 100
_CREATE_FIELDS = frozenset({"customer_id", "external_customer_id", "currency", "invoice_date", "line_items",
                            "net_terms", "memo", "metadata", "will_auto_issue"})
_LINE_FIELDS = frozenset({"name", "quantity", "unit_config", "start_date", "end_date", "item_id"})
_READ_COLUMNS = [
    column.label("invoice_metadata") if column.name == "metadata" else column
    for column in Invoice.__table__.columns  # type: ignore[attr-defined]
]
_ZERO = Decimal(0)


@dataclass(frozen=True)
class DraftInvoice:
    """A subscription's invoice for its running period, as the events so far make it (not stored)."""

    subscription_id: str
    customer_id: str
    currency: str
    period: Period
    net_terms: int
    line_items: list[Charge]
    memo: str | None = None  # the subscription's default_invoice_memo

    @property
    def status(self) -> str:
        return "draft"

    @property
    def invoice_date(self) -> datetime:
        return self.period.end  # issued when the period closes

    @property
    def subtotal(self) -> Decimal:
        return sum((line.amount for line in self.line_items), _ZERO)

    total = subtotal
    amount_due = subtotal


# ---------------------------------------------------------------- reads


async def draft_invoice(uow: UnitOfWork, *, principal: Principal, subscription_id: str) -> DraftInvoice | None:
    """The draft of the subscription's billing period holding now, or None when it is not active."""
    subscription = await subscription_service.get_subscription(uow, principal=principal,
                                                               subscription_id=subscription_id)
    catalog = charges.Catalog()  # the plan's prices are read once for the period and the lines
    period = await charges.billing_period_at(uow, principal=principal, subscription=subscription,
                                             at=uow.clock.now(), catalog=catalog)
    if period is None:
        return None
    return await period_draft(uow, principal=principal, subscription=subscription, period=period, catalog=catalog)


async def period_draft(
    uow: UnitOfWork, *, principal: Principal, subscription: Subscription, period: Period,
    catalog: charges.Catalog | None = None,
) -> DraftInvoice:
    lines = await charges.period_charges(uow, principal=principal, subscription=subscription, period=period,
                                         catalog=catalog)
    return DraftInvoice(subscription_id=subscription.id, customer_id=subscription.customer_id,
                        currency=subscription.currency, period=period, net_terms=subscription.net_terms,
                        line_items=lines, memo=subscription.default_invoice_memo)


async def get_invoice(uow: UnitOfWork, *, principal: Principal, invoice_id: str) -> Invoice:
    """The stored invoice with this id in the caller's organisation, or NotFound."""
    found = await invoices_by_ids(uow, principal=principal, ids=[invoice_id])
    if invoice_id not in found:
        raise NotFound(f"invoice {invoice_id!r} was not found", field="invoice_id")
    return found[invoice_id]


def _scoped(principal: Principal) -> Any:
    statement = select(*_READ_COLUMNS).where(Invoice.org_id == principal.org_id)
    if principal.reseller_id is not None:
        # A reseller's key sees only its customers' invoices.
        statement = statement.join(Customer, Customer.id == Invoice.customer_id).where(
            Customer.org_id == principal.org_id, Customer.reseller_id == principal.reseller_id)
    return statement


async def invoices_by_ids(uow: UnitOfWork, *, principal: Principal, ids: Sequence[str]) -> dict[str, Invoice]:
    if not ids:
        return {}
    rows = await uow.rows(_scoped(principal).where(Invoice.id.in_(list(set(ids)))))  # type: ignore[attr-defined]
    return {row.id: row for row in rows}  # type: ignore[misc]


async def line_items_by_invoice_ids(
    uow: UnitOfWork, *, principal: Principal, ids: Sequence[str]
) -> dict[str, list[InvoiceLineItem]]:
    """Many invoices' line items in one statement, each invoice's in order."""
    grouped: dict[str, list[InvoiceLineItem]] = {invoice_id: [] for invoice_id in ids}
    if ids:
        statement = (select(InvoiceLineItem.__table__)  # type: ignore[call-overload]
                     .where(InvoiceLineItem.org_id == principal.org_id,
                            InvoiceLineItem.invoice_id.in_(list(set(ids))))  # type: ignore[attr-defined]
                     .order_by(InvoiceLineItem.invoice_id, InvoiceLineItem.position))
        for row in await uow.rows(statement):
            grouped[row.invoice_id].append(row)  # type: ignore[arg-type]
    return grouped


async def list_invoices(
    uow: UnitOfWork,
    *,
    principal: Principal,
    customer_id: str | None = None,
    subscription_id: str | None = None,
    status: str | None = None,
    limit: int | None = None,
    after_id: str | None = None,
    external_customer_id: str | None = None,
) -> Page[Invoice]:
    """Stored invoices, newest first, by keyset on the time-ordered id; the filters combine."""
    limit = page_size(limit)
    if status is not None:
        one_of("status", status, STATUSES)
    statement = _scoped(principal)
    if customer_id is not None:
        statement = statement.where(Invoice.customer_id == customer_id)
    if subscription_id is not None:
        statement = statement.where(Invoice.subscription_id == subscription_id)
    if external_customer_id is not None:
        statement = statement.where(Invoice.customer_id.in_(  # type: ignore[attr-defined]
            select(Customer.id).where(Customer.org_id == principal.org_id,
                                      Customer.external_customer_id == external_customer_id)))
    if status is not None:
        statement = statement.where(Invoice.status == status)
    if after_id is not None:
        statement = statement.where(Invoice.id < after_id)
    statement = statement.order_by(Invoice.id.desc()).limit(limit + 1)  # type: ignore[attr-defined]
    return Page.from_rows(await uow.rows(statement), limit)


# ---------------------------------------------------------------- one-off invoices


def _instant(field: str, value: Any) -> datetime:
    """An ISO 8601 date-time with a timezone, or a plain date (its UTC midnight)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day, tzinfo=UTC)
    elif isinstance(value, str):
        try:
            moment = (datetime.fromisoformat(value) if "T" in value or " " in value
                      else datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC))
        except ValueError:
            raise ValidationFailed(field, f"{value!r} is not an ISO 8601 date or date-time") from None
    else:
        raise ValidationFailed(field, "must be an ISO 8601 date or date-time")
    if moment.tzinfo is None:
        raise ValidationFailed(field, "needs a timezone (Z or an offset)")
    return moment.astimezone(UTC)


def _decimal(field: str, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise ValidationFailed(field, "must be a number")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValidationFailed(field, f"{value!r} is not a number") from None
    return bounded(field, number)


def _net_terms(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 365:
        raise ValidationFailed("net_terms", "must be a whole number of days from 0 to 365")
    return value


async def _customer(uow: UnitOfWork, principal: Principal, fields: Mapping[str, Any]) -> Customer:
    given = [key for key in ("customer_id", "external_customer_id") if fields.get(key) is not None]
    if len(given) != 1:
        raise ValidationFailed("customer_id", "exactly one of customer_id and external_customer_id is required")
    key, value = given[0], fields[given[0]]
    if not isinstance(value, str):
        raise ValidationFailed(key, "must be a string")
    try:
        if key == "customer_id":
            return await customers.get_customer(uow, principal=principal, customer_id=value)
        return await customers.get_customer_by_external_id(uow, principal=principal, external_customer_id=value)
    except NotFound:
        raise ValidationFailed(key, f"no customer with {key} {value!r} exists") from None


async def _line(uow: UnitOfWork, principal: Principal, entry: Any, index: int, currency: str,
                invoice_date: datetime) -> dict[str, Any]:
    field = f"line_items[{index}]"
    if not isinstance(entry, Mapping):
        raise ValidationFailed(field, "must be an object")
    refuse_unknown(entry, _LINE_FIELDS, "a line item field", prefix=field)
    name = text(f"{field}.name", entry.get("name"), required=True)
    if entry.get("quantity") is None:
        raise ValidationFailed(f"{field}.quantity", "is required")
    quantity = _decimal(f"{field}.quantity", entry["quantity"])
    if quantity < 0:
        raise ValidationFailed(f"{field}.quantity", "must not be negative")
    unit_config = entry.get("unit_config")
    if not isinstance(unit_config, Mapping) or unit_config.get("unit_amount") is None:
        raise ValidationFailed(f"{field}.unit_config.unit_amount", "is required")
    unit_amount = _decimal(f"{field}.unit_config.unit_amount", unit_config["unit_amount"])
    start = _instant(f"{field}.start_date", entry["start_date"]) if entry.get("start_date") else invoice_date
    end = _instant(f"{field}.end_date", entry["end_date"]) if entry.get("end_date") else start
    if end < start:
        raise ValidationFailed(f"{field}.end_date", "must not be before start_date")
    item_id = entry.get("item_id")
    if item_id is not None:
        try:
            await items.get_item(uow, principal=principal, item_id=item_id)
        except NotFound:
            raise ValidationFailed(f"{field}.item_id", f"no item with item_id {item_id!r} exists") from None
    return {"name": name, "item_id": item_id, "price_id": None, "quantity": quantity, "start_date": start,
            "end_date": end, "amount": round_to_minor_unit(quantity * unit_amount, currency)}


async def create_invoice(uow: UnitOfWork, *, principal: Principal, fields: Mapping[str, Any]) -> Invoice:
    """A one-off invoice (Orb's ``POST /v1/invoices``), a draft unless ``will_auto_issue`` is true.

    Each line's amount is ``quantity × unit_config.unit_amount`` rounded to the currency's minor unit.
    """
    refuse_unknown(fields, _CREATE_FIELDS, "an invoice field")
    customer = await _customer(uow, principal, fields)
    code = checked_currency("currency", fields.get("currency"))
    if customer.currency is not None and customer.currency != code:
        raise ValidationFailed("currency", f"the customer is billed in {customer.currency}")
    if fields.get("invoice_date") is None:
        raise ValidationFailed("invoice_date", "is required")
    invoice_date = _instant("invoice_date", fields["invoice_date"])
    net_terms = _net_terms(fields.get("net_terms"))
    memo = text("memo", fields.get("memo"), max_length=10_000)
    metadata = merge_metadata("metadata", fields.get("metadata"))
    auto_issue = fields.get("will_auto_issue", False)
    if not isinstance(auto_issue, bool):
        raise ValidationFailed("will_auto_issue", "must be true or false")
    entries = fields.get("line_items")
    if not isinstance(entries, list) or not entries:
        raise ValidationFailed("line_items", "give at least one line item")
    if len(entries) > MAX_LINE_ITEMS:
        raise ValidationFailed("line_items", f"an invoice holds at most {MAX_LINE_ITEMS} line items")
    lines = [await _line(uow, principal, entry, i, code, invoice_date) for i, entry in enumerate(entries)]
    now = uow.clock.now()
    subtotal = sum((line["amount"] for line in lines), _ZERO)
    invoice = Invoice(
        id=new_id(), org_id=principal.org_id, customer_id=customer.id, subscription_id=None, status="draft",
        currency=code, invoice_date=invoice_date, net_terms=net_terms, subtotal=subtotal, total=subtotal,
        amount_due=subtotal, memo=memo, invoice_metadata=metadata, created_at=now, updated_at=now,
    )
    async with uow.transaction():
        uow.session.add(invoice)
        await uow.session.flush()
        _add_lines(uow, invoice, lines)
        if auto_issue:
            await _issue(uow, invoice, now)
        await uow.session.flush()
    return invoice


def _add_lines(uow: UnitOfWork, invoice: Invoice, lines: Sequence[Mapping[str, Any]]) -> None:
    for position, line in enumerate(lines):
        uow.session.add(InvoiceLineItem(id=new_id(), org_id=invoice.org_id, invoice_id=invoice.id,
                                        position=position, **line))


# ---------------------------------------------------------------- lifecycle


async def _for_update(uow: UnitOfWork, principal: Principal, invoice_id: str) -> Invoice:
    """The ORM instance to change, locked on PostgreSQL until the transaction ends."""
    await get_invoice(uow, principal=principal, invoice_id=invoice_id)  # scope (reseller) check
    statement = select(Invoice).where(Invoice.org_id == principal.org_id, Invoice.id == invoice_id)
    if uow.is_postgres:
        statement = statement.with_for_update()
    invoice = (await uow.session.execute(statement)).scalar_one_or_none()
    if invoice is None:
        raise NotFound(f"invoice {invoice_id!r} was not found", field="invoice_id")
    return invoice


async def next_invoice_number(uow: UnitOfWork, org_id: str) -> int:
    """The organisation's next invoice number; call inside the issuing transaction (see the module doc)."""
    insert = postgres_insert if uow.is_postgres else sqlite_insert
    # One round trip: the organisation's first number inserts the row, every later one bumps it.
    bumped = await uow.session.execute(
        insert(InvoiceNumberCounter).values(org_id=org_id, last_number=1)
        .on_conflict_do_update(index_elements=["org_id"],
                               set_={"last_number": InvoiceNumberCounter.last_number + 1})
        .returning(InvoiceNumberCounter.last_number))
    return int(bumped.scalar_one())


async def _issue(uow: UnitOfWork, invoice: Invoice, now: datetime) -> None:
    invoice.invoice_number = await next_invoice_number(uow, invoice.org_id)
    invoice.status = "issued"
    invoice.issued_at = now
    invoice.due_date = now + timedelta(days=invoice.net_terms)
    invoice.updated_at = now


def _refuse(invoice: Invoice, verb: str, allowed: str) -> None:
    if invoice.status != allowed:
        raise ConstraintViolation(f"invoice {invoice.id!r} is {invoice.status}; only {'an' if allowed[0] in 'ai' else 'a'} "
                                  f"{allowed} invoice can be {verb}", field="status")


async def issue_invoice(
    uow: UnitOfWork, *, principal: Principal, invoice_id: str, synchronous: Any = None
) -> Invoice:
    """Draft → issued: numbered, issued now, due ``net_terms`` days later.

    Orb's ``synchronous`` flag is honoured by always issuing synchronously (there is no payment
    provider to wait on); it must be a boolean when given.
    """
    if synchronous is not None and not isinstance(synchronous, bool):
        raise ValidationFailed("synchronous", "must be true or false")
    async with uow.transaction():
        invoice = await _for_update(uow, principal, invoice_id)
        _refuse(invoice, "issued", "draft")
        await _issue(uow, invoice, uow.clock.now())
        await uow.session.flush()
    return invoice


async def void_invoice(uow: UnitOfWork, *, principal: Principal, invoice_id: str) -> Invoice:
    """Issued → void. A draft, a paid or an already void invoice is refused, naming ``status``."""
    async with uow.transaction():
        invoice = await _for_update(uow, principal, invoice_id)
        _refuse(invoice, "voided", "issued")
        now = uow.clock.now()
        invoice.status, invoice.voided_at, invoice.updated_at = "void", now, now
        await uow.session.flush()
    return invoice


def _payment_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValidationFailed("payment_received_date", "must be a date (YYYY-MM-DD)")


async def mark_invoice_paid(
    uow: UnitOfWork,
    *,
    principal: Principal,
    invoice_id: str,
    payment_received_date: Any,
    external_id: Any = None,
    notes: Any = None,
) -> Invoice:
    """Issued → paid, recording when and how the payment came (Orb's ``mark_paid``)."""
    if payment_received_date is None:
        raise ValidationFailed("payment_received_date", "is required")
    received = _payment_date(payment_received_date)
    reference = text("external_id", external_id, max_length=255)
    note = text("notes", notes, max_length=10_000)
    async with uow.transaction():
        invoice = await _for_update(uow, principal, invoice_id)
        _refuse(invoice, "marked paid", "issued")
        now = uow.clock.now()
        invoice.status, invoice.paid_at, invoice.updated_at = "paid", now, now
        invoice.payment_received_date, invoice.external_id, invoice.notes = received, reference, note
        await uow.session.flush()
    return invoice


# ---------------------------------------------------------------- closing a period


async def issue_subscription_invoice(
    uow: UnitOfWork, *, principal: Principal, subscription: Subscription, period: Period,
    catalog: charges.Catalog | None = None,
) -> Invoice | None:
    """Freeze the subscription's draft for ``period`` into an issued, numbered invoice.

    The caller (``jobs.close_periods``) reads which periods are invoiced under the subscription's lock,
    in this transaction, so it never asks for an invoiced period; should it, the unique (subscription,
    period start) index refuses the insert, the transaction rolls back (its number with it) and this
    comes back None. ``catalog`` keeps prices and metrics across a run's subscriptions.
    """
    draft = await period_draft(uow, principal=principal, subscription=subscription, period=period, catalog=catalog)
    now = uow.clock.now()
    invoice = Invoice(
        id=new_id(), org_id=principal.org_id, customer_id=subscription.customer_id,
        subscription_id=subscription.id, status="issued", currency=subscription.currency,
        period_start=period.start, period_end=period.end, invoice_date=period.end,
        net_terms=subscription.net_terms, subtotal=draft.subtotal, total=draft.total,
        amount_due=draft.amount_due, memo=draft.memo, invoice_metadata={}, created_at=now, updated_at=now,
    )
    try:
        async with uow.transaction():
            # Numbered before the insert, so the invoice is written issued in one statement.
            invoice.invoice_number = await next_invoice_number(uow, invoice.org_id)
            invoice.issued_at = now
            invoice.due_date = now + timedelta(days=invoice.net_terms)
            uow.session.add(invoice)
            _add_lines(uow, invoice, [
                {"name": c.name, "price_id": c.price_id, "item_id": c.item_id, "quantity": c.quantity,
                 "amount": c.amount, "start_date": c.start_date, "end_date": c.end_date}
                for c in draft.line_items])
            await uow.session.flush()  # the invoice, then its lines (their foreign key orders them)
    except IntegrityError:
        return None
    return invoice
