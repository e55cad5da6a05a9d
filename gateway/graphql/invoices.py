"""Invoices in the graph: stored invoices (a subscription's closed periods, one-off ones), the live
draft of a subscription's running period (`upcomingInvoice`), and the issue / void / paid lifecycle.

The upcoming invoice is not stored (domains.billing.invoices): it gets a synthetic id,
``upcoming_<subscription id>_<period start YYYYMMDD>``, stable for the whole billing period and
never accepted by `invoice(id)`; its line ids are ``<that id>_<position>``; its createdAt is the
period's start (when the draft began to accrue) and its invoiceDate the period's end (when it is issued).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from domains.billing import invoices
from domains.billing.invoices import DraftInvoice
from domains.errors import ValidationFailed
from gateway.context import Context
from gateway.graphql.catalog import ItemType
from gateway.graphql.inputs import to_fields
from gateway.graphql.pagination import PageInfo, page_arguments
from gateway.graphql.prices import PriceType
from persistence.tables import Price as PriceRow

Resolve = Info[Context, None]
CustomerRef = Annotated["CustomerType", strawberry.lazy("gateway.graphql.customers")]  # noqa: F821
SubscriptionRef = Annotated["SubscriptionType", strawberry.lazy("gateway.graphql.subscriptions")]  # noqa: F821


@dataclass
class InvoiceLine:
    """A line as the graph reads it: a stored line item, or one of the live draft's charges."""

    id: str
    name: str
    price_id: str | None
    item_id: str | None
    quantity: Decimal
    amount: Decimal
    start_date: datetime
    end_date: datetime
    currency: str
    created_at: datetime


@dataclass
class UpcomingInvoice:
    """The live draft with the attributes of a stored invoice row, its lines already computed."""

    id: str
    customer_id: str
    subscription_id: str
    currency: str
    invoice_date: datetime
    period_start: datetime
    period_end: datetime
    net_terms: int
    subtotal: Decimal
    total: Decimal
    amount_due: Decimal
    created_at: datetime
    lines: list[InvoiceLine] = field(default_factory=list)
    status: str = "draft"
    invoice_number: int | None = None
    due_date: datetime | None = None
    issued_at: datetime | None = None
    paid_at: datetime | None = None
    voided_at: datetime | None = None
    payment_received_date: date | None = None
    external_id: str | None = None
    notes: str | None = None
    memo: str | None = None
    invoice_metadata: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, draft: DraftInvoice) -> UpcomingInvoice:
        start = draft.period.start
        invoice_id = f"upcoming_{draft.subscription_id}_{start:%Y%m%d}"
        lines = [InvoiceLine(id=f"{invoice_id}_{i}", name=c.name, price_id=c.price_id, item_id=c.item_id,
                             quantity=c.quantity, amount=c.amount, start_date=c.start_date, end_date=c.end_date,
                             currency=draft.currency, created_at=start)
                 for i, c in enumerate(draft.line_items)]
        return cls(id=invoice_id, customer_id=draft.customer_id, subscription_id=draft.subscription_id,
                   currency=draft.currency, invoice_date=draft.invoice_date, period_start=start,
                   period_end=draft.period.end, net_terms=draft.net_terms, subtotal=draft.subtotal,
                   total=draft.total, amount_due=draft.amount_due, created_at=start, lines=lines, memo=draft.memo)


def _one_off_price(line: InvoiceLine) -> PriceRow:
    """A one-off line has no catalogue price; Orb shows one anyway (a unit price of the line's own),
    so the line is shown as that price, never stored. Its unit amount is amount ÷ quantity: exact
    unless the line's amount was rounded to the minor unit."""
    unit = (line.amount / line.quantity).normalize() if line.quantity else Decimal(0)
    return PriceRow(id=line.id, org_id="", item_id=line.item_id or "", name=line.name, model_type="unit",
                    config={"unit_amount": format(unit, "f")}, cadence="one_time", currency=line.currency,
                    price_metadata={}, created_at=line.created_at)


def _orb_constant(value: Any, description: str) -> Any:
    def resolve() -> JSON | None:
        return value

    return strawberry.field(resolver=resolve, description=description)


@strawberry.type(name="InvoiceLineItem", description="One line of an invoice: a price over [startDate, endDate).")
class InvoiceLineItemType:
    id: strawberry.ID
    name: str
    quantity: Decimal
    amount: Decimal = strawberry.field(description="Rounded to the currency's minor unit.")
    start_date: datetime
    end_date: datetime

    @strawberry.field(description="Credits are not supported yet: 0.")
    @staticmethod
    def credits_applied(root: InvoiceLine) -> Decimal:
        return Decimal(0)

    @strawberry.field(description="No partial invoicing: 0.")
    @staticmethod
    def partially_invoiced_amount(root: InvoiceLine) -> Decimal:
        return Decimal(0)

    adjustments: JSON = _orb_constant([], "Adjustments are not supported yet: [].")
    sub_line_items: JSON = _orb_constant([], "Not broken down yet: [].")
    tax_amounts: JSON = _orb_constant([], "No tax integration: [].")
    grouping: JSON | None = _orb_constant(None, "No grouping keys: null.")
    filter: JSON | None = _orb_constant(None, "Prices carry no filters yet: null.")
    usage_customer_ids: JSON | None = _orb_constant(None, "Usage is the invoice's customer's own: null.")

    @strawberry.field(description="The catalogue price charged; for a one-off line, a unit price of its own "
                                  "(id = the line's id, cadence one_time). Null: a one-off line with no item.")
    @staticmethod
    async def price(root: InvoiceLine, info: Resolve) -> PriceType | None:
        if root.price_id is not None:
            return await info.context.loaders.price_by_id.load(root.price_id)  # type: ignore[return-value]
        return _one_off_price(root) if root.item_id is not None else None  # type: ignore[return-value]

    @strawberry.field(description="The item billed (a one-off line may have none).")
    @staticmethod
    async def item(root: InvoiceLine, info: Resolve) -> ItemType | None:
        if root.item_id is None:
            return None
        return await info.context.loaders.item_by_id.load(root.item_id)  # type: ignore[return-value]


@strawberry.type
class InvoiceAutoCollection:
    enabled: bool | None
    next_attempt_at: datetime | None
    num_attempts: int | None
    previously_attempted_at: datetime | None


@strawberry.type(name="Invoice", description="An invoice: a subscription's for one billing period, or a one-off one.")
class InvoiceType:
    id: strawberry.ID
    status: str = strawberry.field(description="draft, issued, paid or void.")
    currency: str
    invoice_date: datetime
    due_date: datetime | None = strawberry.field(description="issuedAt + net terms; null while draft.")
    issued_at: datetime | None
    paid_at: datetime | None
    voided_at: datetime | None
    payment_received_date: date | None = strawberry.field(description="Given when marked paid.")
    external_id: str | None = strawberry.field(description="The payment's reference, given when marked paid.")
    notes: str | None
    memo: str | None
    period_start: datetime | None = strawberry.field(description="The billing period invoiced (null: one-off).")
    period_end: datetime | None
    net_terms: int
    subtotal: Decimal
    total: Decimal
    amount_due: Decimal
    created_at: datetime

    @strawberry.field(description="Sequential per organisation from 1, as a string; empty while draft "
                                  "(numbers are given when issued).")
    @staticmethod
    def invoice_number(root: Any) -> str:
        return "" if root.invoice_number is None else str(root.invoice_number)

    @strawberry.field(description="subscription or one_off.")
    @staticmethod
    def invoice_source(root: Any) -> str:
        return "one_off" if root.subscription_id is None else "subscription"

    @strawberry.field(description="Key/value strings attached by the caller.")
    @staticmethod
    def metadata(root: Any) -> JSON:
        return root.invoice_metadata

    @strawberry.field(description="The payment received date as an instant (its UTC midnight).")
    @staticmethod
    def payment_received_at(root: Any) -> datetime | None:
        received = root.payment_received_date
        return None if received is None else datetime(received.year, received.month, received.day, tzinfo=UTC)

    @strawberry.field
    @staticmethod
    async def customer(root: Any, info: Resolve) -> CustomerRef:
        return await info.context.loaders.customer_by_id.load(root.customer_id)  # type: ignore[return-value]

    @strawberry.field(description="Null for a one-off invoice.")
    @staticmethod
    async def subscription(root: Any, info: Resolve) -> SubscriptionRef | None:
        if root.subscription_id is None:
            return None
        return await info.context.loaders.subscription_by_id.load(root.subscription_id)  # type: ignore[return-value]

    @strawberry.field(description="In order.")
    @staticmethod
    async def line_items(root: Any, info: Resolve) -> list[InvoiceLineItemType]:
        if isinstance(root, UpcomingInvoice):
            return root.lines  # type: ignore[return-value]
        rows = await info.context.loaders.line_items_by_invoice_id.load(root.id)
        return [InvoiceLine(id=r.id, name=r.name, price_id=r.price_id, item_id=r.item_id, quantity=r.quantity,
                            amount=r.amount, start_date=r.start_date, end_date=r.end_date, currency=root.currency,
                            created_at=root.created_at) for r in rows]  # type: ignore[misc]

    @strawberry.field(description="No payment provider collects automatically: never enabled, no attempts.")
    @staticmethod
    def auto_collection(root: Any) -> InvoiceAutoCollection:
        return InvoiceAutoCollection(enabled=False, next_attempt_at=None, num_attempts=0,
                                     previously_attempted_at=None)

    @strawberry.field(description="Drafts are issued by Accrual when due, never auto-issued by a flag: false.")
    @staticmethod
    def will_auto_issue(root: Any) -> bool:
        return False

    @strawberry.field(description="Zero-quantity lines are listed, not hidden: 0.")
    @staticmethod
    def hidden_line_item_count(root: Any) -> int:
        return 0

    # What Orb's invoice carries and Accrual does not do yet (credit notes, balances, discounts,
    # minimums/maximums, tax, payment providers, PDFs): empty or null, never invented.
    credit_notes: JSON = _orb_constant([], "Credit notes are not supported yet: [].")
    customer_balance_transactions: JSON = _orb_constant([], "Customer balances are not supported yet: [].")
    discounts: JSON = _orb_constant([], "Discounts are not supported yet: [].")
    payment_attempts: JSON = _orb_constant([], "No payment provider: [].")
    discount: JSON | None = _orb_constant(None, "Discounts are not supported yet: null.")
    minimum: JSON | None = _orb_constant(None, "Minimums are not supported yet: null.")
    maximum: JSON | None = _orb_constant(None, "Maximums are not supported yet: null.")
    minimum_amount: JSON | None = _orb_constant(None, "Minimums are not supported yet: null.")
    maximum_amount: JSON | None = _orb_constant(None, "Maximums are not supported yet: null.")
    billing_address: JSON | None = _orb_constant(None, "Not copied onto invoices yet: null.")
    shipping_address: JSON | None = _orb_constant(None, "Not copied onto invoices yet: null.")
    customer_tax_id: JSON | None = _orb_constant(None, "Not copied onto invoices yet: null.")
    hosted_invoice_url: JSON | None = _orb_constant(None, "No hosted invoice pages yet: null.")
    invoice_pdf: JSON | None = _orb_constant(None, "No PDFs yet: null.")
    eligible_to_issue_at: JSON | None = _orb_constant(None, "Drafts are issued when their period closes: null.")
    scheduled_issue_at: JSON | None = _orb_constant(None, "No scheduled issuing: null.")
    issue_failed_at: JSON | None = _orb_constant(None, "Issuing does not fail asynchronously: null.")
    payment_started_at: JSON | None = _orb_constant(None, "No payment provider: null.")
    payment_failed_at: JSON | None = _orb_constant(None, "No payment provider: null.")
    sync_failed_at: JSON | None = _orb_constant(None, "No accounting sync: null.")


@strawberry.type
class InvoiceConnection:
    nodes: list[InvoiceType]
    page_info: PageInfo


@strawberry.input(description="A one-off invoice line: quantity × unit_config.unit_amount.")
class InvoiceLineInput:
    name: str
    quantity: JSON = strawberry.field(description="A number or a decimal string (Orb's SDKs send numbers).")
    unit_config: JSON
    start_date: str | None = strawberry.UNSET
    end_date: str | None = strawberry.UNSET
    item_id: str | None = strawberry.UNSET
    model_type: str | None = strawberry.field(default=strawberry.UNSET, description="Only unit (Orb's only one).")


@strawberry.input(description="A one-off invoice (Orb's POST /v1/invoices body).")
class InvoiceInput:
    currency: str
    invoice_date: str
    line_items: list[InvoiceLineInput]
    customer_id: str | None = strawberry.UNSET
    external_customer_id: str | None = strawberry.UNSET
    net_terms: int | None = strawberry.UNSET
    memo: str | None = strawberry.UNSET
    metadata: JSON | None = strawberry.UNSET
    will_auto_issue: bool | None = strawberry.UNSET


@strawberry.input
class MarkInvoicePaidInput:
    payment_received_date: date
    external_id: str | None = None
    notes: str | None = None


def _create_fields(input: InvoiceInput) -> dict[str, Any]:
    fields = to_fields(input)
    for index, line in enumerate(fields.get("line_items") or []):
        model_type = line.pop("model_type", None)
        if model_type not in (None, "unit"):
            raise ValidationFailed(f"line_items[{index}].model_type", "only unit is supported")
    return fields


@strawberry.type
class InvoiceQueries:
    @strawberry.field(description="A stored invoice by id (the upcoming one is read by upcomingInvoice).")
    async def invoice(self, info: Resolve, id: strawberry.ID) -> InvoiceType:
        ctx = info.context
        return await invoices.get_invoice(ctx.uow, principal=ctx.principal, invoice_id=id)  # type: ignore[return-value]

    @strawberry.field(description="Stored invoices, newest first, a page at a time; filters combine.")
    async def invoices(
        self, info: Resolve, first: int | None = None, after: str | None = None, customer_id: str | None = None,
        subscription_id: str | None = None, status: str | None = None, external_customer_id: str | None = None,
    ) -> InvoiceConnection:
        ctx = info.context
        limit, after_id = page_arguments(first, after)
        page = await invoices.list_invoices(ctx.uow, principal=ctx.principal, limit=limit, after_id=after_id,
                                            customer_id=customer_id, subscription_id=subscription_id, status=status,
                                            external_customer_id=external_customer_id)
        return InvoiceConnection(nodes=page.items, page_info=PageInfo.of(page))  # type: ignore[arg-type]

    @strawberry.field(description="The live draft of the subscription's running billing period (not stored; "
                                  "computed from the events so far). Null unless the subscription is active.")
    async def upcoming_invoice(self, info: Resolve, subscription_id: strawberry.ID) -> InvoiceType | None:
        ctx = info.context
        draft = await invoices.draft_invoice(ctx.uow, principal=ctx.principal, subscription_id=subscription_id)
        return None if draft is None else UpcomingInvoice.of(draft)  # type: ignore[return-value]


@strawberry.type
class InvoiceMutations:
    @strawberry.mutation(description="A one-off invoice: a draft, or issued at once with willAutoIssue.")
    async def create_invoice(self, info: Resolve, input: InvoiceInput) -> InvoiceType:
        ctx = info.context
        return await invoices.create_invoice(  # type: ignore[return-value]
            ctx.uow, principal=ctx.principal, fields=_create_fields(input))

    @strawberry.mutation(description="Draft → issued: numbered, issued now, due after the net terms.")
    async def issue_invoice(self, info: Resolve, id: strawberry.ID, synchronous: bool | None = None) -> InvoiceType:
        ctx = info.context
        return await invoices.issue_invoice(  # type: ignore[return-value]
            ctx.uow, principal=ctx.principal, invoice_id=id, synchronous=synchronous)

    @strawberry.mutation(description="Issued → void.")
    async def void_invoice(self, info: Resolve, id: strawberry.ID) -> InvoiceType:
        ctx = info.context
        return await invoices.void_invoice(ctx.uow, principal=ctx.principal, invoice_id=id)  # type: ignore[return-value]

    @strawberry.mutation(description="Issued → paid, recording when and how the payment came.")
    async def mark_invoice_paid(self, info: Resolve, id: strawberry.ID, input: MarkInvoicePaidInput) -> InvoiceType:
        ctx = info.context
        return await invoices.mark_invoice_paid(  # type: ignore[return-value]
            ctx.uow, principal=ctx.principal, invoice_id=id, payment_received_date=input.payment_received_date,
            external_id=input.external_id, notes=input.notes)
