"""The customer part of the graph: types, inputs and resolvers that only translate to domain services."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any

import strawberry
from graphql import FieldNode, FragmentDefinitionNode, FragmentSpreadNode
from strawberry.scalars import JSON
from strawberry.types import Info

from domains.customers import service as customers
from domains.errors import ValidationFailed
from domains.pagination import encode_cursor
from gateway.context import Context
from gateway.graphql.inputs import to_fields
from gateway.graphql.pagination import PageInfo, page_arguments
from gateway.graphql.usage import VIEW_MODE
from persistence.tables import Customer as CustomerRow
from persistence.tables import CustomFieldDefinition as CustomFieldRow

CostTimeframeRef = Annotated["CostTimeframeType", strawberry.lazy("gateway.graphql.usage")]  # noqa: F821

Resolve = Info[Context, None]


@strawberry.enum(description="A customer profile's lifecycle state (OneBusiness).")
class CustomerStatus(Enum):
    active = "active"
    inactive = "inactive"
    archived = "archived"


@strawberry.type
class Address:
    line1: str | None
    line2: str | None
    city: str | None
    state: str | None
    postal_code: str | None
    country: str | None


@strawberry.type
class TaxId:
    country: str
    type: str
    value: str


@strawberry.type
class AccountingProvider:
    provider_type: str
    external_provider_id: str | None


@strawberry.type
class AccountingSyncConfiguration:
    excluded: bool
    accounting_providers: list[AccountingProvider]


@strawberry.type
class ReportingConfiguration:
    exempt: bool


def _address(data: dict[str, Any] | None) -> Address | None:
    if not data:
        return None
    get = data.get  # spelled out: a list page builds one or two per customer, and **{...} cost twice as much
    return Address(line1=get("line1"), line2=get("line2"), city=get("city"), state=get("state"),
                   postal_code=get("postal_code"), country=get("country"))


@strawberry.type(name="Customer", description="A customer: Orb's customer object with OneBusiness' profile fields.")
class CustomerType:
    id: strawberry.ID
    external_customer_id: str | None
    name: str
    email: str
    currency: str | None
    timezone: str
    balance: Decimal = strawberry.field(description="Account balance in the customer's currency.")
    payment_provider: str | None
    payment_provider_id: str | None
    auto_collection: bool
    auto_issuance: bool | None
    exempt_from_automated_tax: bool
    email_delivery: bool
    additional_emails: list[str]
    status: CustomerStatus
    account_number: str | None
    payment_terms: str | None
    credit_limit: Decimal | None
    contact_first_name: str | None
    contact_last_name: str | None
    contact_email: str | None
    contact_phone: str | None
    notes: str | None
    created_at: datetime
    updated_at: datetime

    @strawberry.field(description="Key/value strings attached by the caller.")
    @staticmethod
    def metadata(root: CustomerRow) -> JSON:
        return root.customer_metadata

    @strawberry.field
    @staticmethod
    def billing_address(root: CustomerRow) -> Address | None:
        return _address(root.billing_address)

    @strawberry.field
    @staticmethod
    def shipping_address(root: CustomerRow) -> Address | None:
        return _address(root.shipping_address)

    @strawberry.field
    @staticmethod
    def tax_id(root: CustomerRow) -> TaxId | None:
        return TaxId(**root.tax_id) if root.tax_id else None

    @strawberry.field
    @staticmethod
    def accounting_sync_configuration(root: CustomerRow) -> AccountingSyncConfiguration | None:
        config = root.accounting_sync_configuration
        if not config:
            return None
        providers = [AccountingProvider(**p) for p in config.get("accounting_providers", [])]
        return AccountingSyncConfiguration(excluded=config.get("excluded", False), accounting_providers=providers)

    @strawberry.field
    @staticmethod
    def reporting_configuration(root: CustomerRow) -> ReportingConfiguration | None:
        config = root.reporting_configuration
        return ReportingConfiguration(exempt=config["exempt"]) if config else None

    @strawberry.field
    @staticmethod
    def payment_configuration(root: CustomerRow) -> JSON | None:
        return root.payment_configuration

    @strawberry.field(description="Its charges over all its subscriptions, per billing period. Defaults to each "
                                  "subscription's current billing period.")
    @staticmethod
    async def costs(
        root: CustomerRow, info: Info[Context, None], timeframe_start: datetime | None = None,
        timeframe_end: datetime | None = None,
        view_mode: Annotated[str | None, strawberry.argument(description=VIEW_MODE)] = None,
    ) -> list[CostTimeframeRef]:
        from gateway.graphql.usage import resolve_customer_costs  # the usage module's types import this one's

        return await resolve_customer_costs(info, customer_id=root.id, external_customer_id=None,  # type: ignore[return-value]
                                            timeframe_start=timeframe_start, timeframe_end=timeframe_end,
                                            view_mode=view_mode)

    @strawberry.field
    @staticmethod
    def tax_configuration(root: CustomerRow) -> JSON | None:
        return root.tax_configuration

    @strawberry.field(description="Hosted billing portal; none is served by this deployment yet.")
    @staticmethod
    def portal_url(root: CustomerRow) -> str | None:
        return None

    @strawberry.field(description="Custom-field values; `keys` narrows them to the given keys.")
    @staticmethod
    def custom_fields(root: CustomerRow, keys: list[str] | None = None) -> JSON:
        values = root.custom_fields or {}
        return values if keys is None else {key: values[key] for key in keys if key in values}

    @strawberry.field
    @staticmethod
    def parent(root: CustomerRow, info: Resolve) -> Annotated[CustomerType, strawberry.lazy(__name__)] | None:
        return _parent(root, info)  # type: ignore[return-value]

    @strawberry.field
    @staticmethod
    def children(root: CustomerRow, info: Resolve) -> list[Annotated[CustomerType, strawberry.lazy(__name__)]]:
        return _children(root, info)  # type: ignore[return-value]

    @strawberry.field(description="Orb's view of the parent/children edges.")
    @staticmethod
    def hierarchy(root: CustomerRow) -> CustomerHierarchy:
        # The row itself: CustomerHierarchy's resolvers read it as their root (no object per customer).
        return root  # type: ignore[return-value]


# Edges return what a read already brought, or else the dataloader's future itself (no coroutine, so
# no task per row); both executors await it together with its siblings, which batches the loads.
def _parent(root: CustomerRow, info: Resolve) -> Any:
    if root.parent_id is None:
        return None
    return info.context.loaders.customer(root.parent_id)


def _children(root: CustomerRow, info: Resolve) -> Any:
    return info.context.loaders.children(root.id)


@strawberry.type
class CustomerHierarchy:
    """Resolved on the customer's row (`CustomerType.hierarchy` returns it)."""

    @strawberry.field
    @staticmethod
    def parent(root: CustomerRow, info: Resolve) -> CustomerType | None:
        return _parent(root, info)  # type: ignore[no-any-return]

    @strawberry.field
    @staticmethod
    def children(root: CustomerRow, info: Resolve) -> list[CustomerType]:
        return _children(root, info)  # type: ignore[no-any-return]


@strawberry.type
class CustomerEdge:
    cursor: str
    node: CustomerType


@strawberry.type
class CustomerConnection:
    nodes: list[CustomerType]
    page_info: PageInfo
    statuses: strawberry.Private[list[str] | None]

    @strawberry.field
    def edges(self) -> list[CustomerEdge]:
        return [CustomerEdge(cursor=encode_cursor(n.id), node=n) for n in self.nodes]

    @strawberry.field(description="How many customers match the filter (all pages).")
    async def total_count(self, info: Resolve) -> int:
        ctx = info.context
        return await customers.count_customers(ctx.uow, principal=ctx.principal, statuses=self.statuses)


@strawberry.type(name="CustomFieldDefinition")
class CustomFieldDefinitionType:
    id: strawberry.ID
    key: str
    label: str | None
    required: bool
    allowed_values: list[str] | None
    created_at: datetime

    @strawberry.field(name="type")
    @staticmethod
    def field_type(root: CustomFieldRow) -> str:
        return root.field_type


@strawberry.input
class AddressInput:
    line1: str | None = strawberry.UNSET
    line2: str | None = strawberry.UNSET
    city: str | None = strawberry.UNSET
    state: str | None = strawberry.UNSET
    postal_code: str | None = strawberry.UNSET
    country: str | None = strawberry.UNSET


@strawberry.input
class TaxIdInput:
    country: str
    type: str
    value: str


@strawberry.input
class AccountingProviderInput:
    provider_type: str
    external_provider_id: str | None = strawberry.UNSET


@strawberry.input
class AccountingSyncConfigurationInput:
    excluded: bool | None = strawberry.UNSET
    accounting_providers: list[AccountingProviderInput] | None = strawberry.UNSET


@strawberry.input
class ReportingConfigurationInput:
    exempt: bool


@strawberry.input
class HierarchyInput:
    parent_customer_id: str | None = strawberry.UNSET
    child_customer_ids: list[str] | None = strawberry.UNSET


@strawberry.input(description="Fields of a customer; on update, a field left out stays as it is and null clears it.")
class CustomerInput:
    name: str | None = strawberry.UNSET
    email: str | None = strawberry.UNSET
    external_customer_id: str | None = strawberry.UNSET
    currency: str | None = strawberry.UNSET
    timezone: str | None = strawberry.UNSET
    payment_provider: str | None = strawberry.UNSET
    payment_provider_id: str | None = strawberry.UNSET
    auto_collection: bool | None = strawberry.UNSET
    auto_issuance: bool | None = strawberry.UNSET
    email_delivery: bool | None = strawberry.UNSET
    additional_emails: list[str] | None = strawberry.UNSET
    metadata: JSON | None = strawberry.UNSET
    billing_address: AddressInput | None = strawberry.UNSET
    shipping_address: AddressInput | None = strawberry.UNSET
    tax_id: TaxIdInput | None = strawberry.UNSET
    accounting_sync_configuration: AccountingSyncConfigurationInput | None = strawberry.UNSET
    reporting_configuration: ReportingConfigurationInput | None = strawberry.UNSET
    payment_configuration: JSON | None = strawberry.UNSET
    tax_configuration: JSON | None = strawberry.UNSET
    hierarchy: HierarchyInput | None = strawberry.UNSET
    status: CustomerStatus | None = strawberry.UNSET
    account_number: str | None = strawberry.UNSET
    payment_terms: str | None = strawberry.UNSET
    credit_limit: Decimal | None = strawberry.UNSET
    contact_first_name: str | None = strawberry.UNSET
    contact_last_name: str | None = strawberry.UNSET
    contact_email: str | None = strawberry.UNSET
    contact_phone: str | None = strawberry.UNSET
    notes: str | None = strawberry.UNSET
    custom_fields: JSON | None = strawberry.UNSET


@strawberry.input
class CustomFieldDefinitionInput:
    key: str
    type: str
    label: str | None = None
    required: bool = False
    allowed_values: list[str] | None = None


@strawberry.type
class CustomerProfilePatch:
    customer: CustomerType
    changed: list[str]
    rejected: JSON = strawberry.field(description="Custom-field keys that were not applied, with the reason.")


@strawberry.type
class DeletedCustomer:
    id: strawberry.ID
    deleted: bool


def _fields(nodes: Iterable[Any], fragments: dict[str, FragmentDefinitionNode]) -> Iterator[FieldNode]:
    """The fields selected under these nodes, with fragments' fields in line (read off the parsed
    document: Strawberry's `selected_fields` converts the whole selection, arguments and all)."""
    for node in nodes:
        selection_set = node.selection_set
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                yield selection
            elif isinstance(selection, FragmentSpreadNode):
                if selection.name.value in fragments:
                    yield from _fields([fragments[selection.name.value]], fragments)
            else:
                yield from _fields([selection], fragments)


def _page_selects_children(info: Resolve) -> bool:
    """Whether a customers page asks for each customer's children (`children`, or `hierarchy { children }`)."""
    raw, fragments = info._raw_info, info._raw_info.fragments

    def named(nodes: Iterable[Any], name: str) -> list[FieldNode]:
        return [node for node in _fields(nodes, fragments) if node.name.value == name]

    customer_nodes = named(raw.field_nodes, "nodes") + named(named(raw.field_nodes, "edges"), "node")
    return bool(named(customer_nodes, "children") or named(named(customer_nodes, "hierarchy"), "children"))


def _statuses(status: list[CustomerStatus] | None) -> list[str] | None:
    return [s.value for s in status] if status else None


def _tax_configuration_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Orb's tax_configuration carries the tax exemption the customer object reports."""
    config = fields.get("tax_configuration")
    if isinstance(config, dict) and isinstance(config.get("tax_exempt"), bool):
        fields["exempt_from_automated_tax"] = config["tax_exempt"]
    return fields


@strawberry.type
class CustomerQueries:
    @strawberry.field(description="A customer by id.")
    async def customer(self, info: Resolve, id: strawberry.ID) -> CustomerType:
        ctx = info.context
        # Parent and children come with the customer (Orb's customer object always shows its hierarchy):
        # no second trip.
        family = await customers.get_customer_family(ctx.uow, principal=ctx.principal, customer_id=id)
        ctx.loaders.prime_children([family.customer], {family.customer.id: family.children})
        if family.parent is not None:
            ctx.loaders.prime_customers([family.parent])
        return family.customer  # type: ignore[return-value]

    @strawberry.field(description="A customer by the caller's own id for it.")
    async def customer_by_external_id(self, info: Resolve, external_customer_id: str) -> CustomerType:
        ctx = info.context
        return await customers.get_customer_by_external_id(  # type: ignore[return-value]
            ctx.uow, principal=ctx.principal, external_customer_id=external_customer_id
        )

    @strawberry.field(description="Customers, newest first, a page at a time.")
    async def customers(
        self,
        info: Resolve,
        first: int | None = None,
        after: str | None = None,
        status: list[CustomerStatus] | None = None,
    ) -> CustomerConnection:
        ctx = info.context
        statuses = _statuses(status)
        limit, after_id = page_arguments(first, after, maximum=ctx.max_page_size)
        if _page_selects_children(info):
            # The page's children come with it: each row's edge then finds them loaded, instead of a
            # dataloader future per customer gathered after the page is rendered.
            page, grouped = await customers.list_customers_with_children(
                ctx.uow, principal=ctx.principal, limit=limit, after_id=after_id, statuses=statuses,
                maximum=ctx.max_page_size)
            ctx.loaders.prime_children(page.items, grouped)
        else:
            page = await customers.list_customers(ctx.uow, principal=ctx.principal, limit=limit, after_id=after_id,
                                                  statuses=statuses, maximum=ctx.max_page_size)
        ctx.loaders.prime_customers(page.items)
        return CustomerConnection(nodes=page.items, page_info=PageInfo.of(page), statuses=statuses)  # type: ignore[arg-type]

    @strawberry.field(description="The custom fields customer profiles of this organisation may carry.")
    async def custom_field_definitions(self, info: Resolve) -> list[CustomFieldDefinitionType]:
        ctx = info.context
        return await customers.list_custom_fields(ctx.uow, principal=ctx.principal)  # type: ignore[return-value]


@strawberry.type
class CustomerMutations:
    @strawberry.mutation(description="Create a customer (name and email are required).")
    async def create_customer(self, info: Resolve, input: CustomerInput) -> CustomerType:
        ctx = info.context
        fields = _tax_configuration_fields(to_fields(input))
        return await customers.create_customer(ctx.uow, principal=ctx.principal, fields=fields)  # type: ignore[return-value]

    @strawberry.mutation(description="Change a customer's fields.")
    async def update_customer(self, info: Resolve, id: strawberry.ID, input: CustomerInput) -> CustomerType:
        ctx = info.context
        fields = _tax_configuration_fields(to_fields(input))
        return await customers.update_customer(  # type: ignore[return-value]
            ctx.uow, principal=ctx.principal, customer_id=id, fields=fields
        )

    @strawberry.mutation(description="Change a customer's fields, finding it by external id.")
    async def update_customer_by_external_id(
        self, info: Resolve, external_customer_id: str, input: CustomerInput
    ) -> CustomerType:
        ctx = info.context
        fields = _tax_configuration_fields(to_fields(input))
        return await customers.update_customer_by_external_id(  # type: ignore[return-value]
            ctx.uow, principal=ctx.principal, external_customer_id=external_customer_id, fields=fields
        )

    @strawberry.mutation(description="Delete a customer for good.")
    async def delete_customer(self, info: Resolve, id: strawberry.ID) -> DeletedCustomer:
        ctx = info.context
        deleted = await customers.delete_customer(ctx.uow, principal=ctx.principal, customer_id=id)
        return DeletedCustomer(id=strawberry.ID(deleted.id), deleted=True)

    @strawberry.mutation(description="Patch a profile: custom fields that fail their definition are rejected alone.")
    async def patch_customer_profile(
        self, info: Resolve, id: strawberry.ID, input: CustomerInput, custom_fields: JSON | None = None
    ) -> CustomerProfilePatch:
        ctx = info.context
        fields = to_fields(input)
        fields.pop("custom_fields", None)
        if custom_fields is not None and not isinstance(custom_fields, dict):
            raise ValidationFailed("custom_fields", "must be an object")
        result = await customers.patch_customer_profile(
            ctx.uow, principal=ctx.principal, customer_id=id, fields=fields, custom_fields=custom_fields
        )
        return CustomerProfilePatch(customer=result.customer, changed=result.changed,  # type: ignore[arg-type]
                                    rejected=result.rejected)

    @strawberry.mutation(description="Define a custom field for this organisation's customer profiles.")
    async def define_custom_field(self, info: Resolve, input: CustomFieldDefinitionInput) -> CustomFieldDefinitionType:
        ctx = info.context
        return await customers.define_custom_field(  # type: ignore[return-value]
            ctx.uow, principal=ctx.principal, key=input.key, field_type=input.type, required=input.required,
            allowed_values=input.allowed_values, label=input.label,
        )
