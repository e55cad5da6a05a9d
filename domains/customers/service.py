"""Customer services: one function per verb, each scoped to the caller's organisation (and reseller)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    bindparam,
    delete,
    func,
    literal_column,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from domains.currencies import currency
from domains.customers import rules
from domains.customers.custom_fields import check_definition, coerce_value, strict_value
from domains.errors import ConstraintViolation, DuplicateResource, NotFound, ValidationFailed
from domains.metadata import merge_metadata
from domains.metering.events import attach_events_to_customer
from domains.pagination import Page, page_size
from domains.tenancy.service import Principal
from domains.text import one_of, refuse_unknown
from domains.unit_of_work import UnitOfWork
from persistence.ids import new_id
from persistence.sql import keys_array
from persistence.tables import Customer, CustomFieldDefinition, Subscription

# The fields a caller may set, with the rule that cleans each (Orb's names are the domain's names).
_SIMPLE_RULES: dict[str, Any] = {
    "name": rules.name,
    "email": rules.email,
    "external_customer_id": rules.external_customer_id,
    "currency": lambda f, v: None if v is None else currency(f, v),
    "timezone": lambda f, v: "UTC" if v is None else rules.timezone_name(f, v),
    "payment_provider": lambda f, v: None if v is None else one_of(f, v, rules.PAYMENT_PROVIDERS),
    "payment_provider_id": rules.optional_text,
    "auto_collection": lambda f, v: True if v is None else v,
    "auto_issuance": lambda f, v: v,
    "email_delivery": lambda f, v: True if v is None else v,
    "exempt_from_automated_tax": lambda f, v: False if v is None else v,
    "additional_emails": rules.additional_emails,
    "billing_address": rules.address,
    "shipping_address": rules.address,
    "tax_id": rules.tax_id,
    "accounting_sync_configuration": rules.accounting_sync_configuration,
    "reporting_configuration": rules.reporting_configuration,
    "payment_configuration": lambda f, v: v,
    "tax_configuration": lambda f, v: v,
    "status": lambda f, v: one_of(f, v, rules.STATUSES),
    "account_number": lambda f, v: rules.optional_text(f, v, 100),
    "payment_terms": lambda f, v: rules.optional_text(f, v, 100),
    "credit_limit": rules.money_amount,
    "contact_first_name": lambda f, v: rules.optional_text(f, v, 200),
    "contact_last_name": lambda f, v: rules.optional_text(f, v, 200),
    "contact_email": lambda f, v: None if v is None else rules.email(f, v),
    "contact_phone": lambda f, v: rules.optional_text(f, v, 64),
    "notes": lambda f, v: rules.optional_text(f, v, 10_000),
}
SETTABLE_FIELDS = frozenset(_SIMPLE_RULES) | {"metadata", "hierarchy", "custom_fields"}


@dataclass
class ProfilePatchResult:
    customer: Customer
    changed: list[str]
    rejected: dict[str, str] = field(default_factory=dict)


# Reads return rows of these columns (attribute names as on the Customer model): hydrating ORM
# instances costs ~50 µs a row, several times the query itself. Writes load ORM instances.
_READ_COLUMNS = [
    column.label("customer_metadata") if column.name == "metadata" else column
    for column in Customer.__table__.columns  # type: ignore[attr-defined]
]


@cache
def _read_statement(
    *, key: str | None = None, many: bool = False, reseller: bool = False, statuses: bool = False,
    after: bool = False, page: bool = False, count: bool = False,
) -> Select[Any]:
    """Read statements are built once per shape, with bound parameters: building a 45-column select
    and its cache key on every call cost more than running it."""
    statement = select(func.count()).select_from(Customer) if count else select(*_READ_COLUMNS)
    statement = statement.where(Customer.org_id == bindparam("org_id"))
    if reseller:
        statement = statement.where(Customer.reseller_id == bindparam("reseller_id"))
    if key is not None:
        column = Customer.__table__.c[key]  # type: ignore[attr-defined]
        statement = statement.where(column.in_(bindparam("keys", expanding=True)) if many else column == bindparam("key"))
    if statuses:
        statement = statement.where(Customer.status.in_(bindparam("statuses", expanding=True)))  # type: ignore[attr-defined]
    if after:
        statement = statement.where(Customer.id < bindparam("after_id"))
    if page:
        statement = statement.order_by(Customer.id.desc()).limit(bindparam("limit"))  # type: ignore[attr-defined]
    elif key == "parent_id":
        statement = statement.order_by(Customer.id)
    return statement


def _scope(principal: Principal, **params: Any) -> dict[str, Any]:
    params["org_id"] = principal.org_id
    if principal.reseller_id is not None:
        params["reseller_id"] = principal.reseller_id
    return params


def _scoped(statement: Select[Any], principal: Principal) -> Select[Any]:
    statement = statement.where(Customer.org_id == principal.org_id)
    if principal.reseller_id is not None:
        statement = statement.where(Customer.reseller_id == principal.reseller_id)
    return statement


async def _one(uow: UnitOfWork, principal: Principal, key: str, value: str) -> Customer | None:
    statement = _read_statement(key=key, reseller=principal.reseller_id is not None)
    rows = await uow.rows(statement, _scope(principal, key=value))
    return rows[0] if rows else None  # type: ignore[return-value]


async def get_customer(uow: UnitOfWork, *, principal: Principal, customer_id: str) -> Customer:
    """The customer with this id in the caller's organisation, or NotFound (a read-only row)."""
    customer = await _one(uow, principal, "id", customer_id)
    if customer is None:
        raise NotFound(f"customer {customer_id!r} was not found", field="customer_id")
    return customer


@cache
def _families_statement(*, reseller: bool, postgres: bool) -> Any:
    """Customers by id with their children and their parent, in one statement: each row tagged
    `family_of`, the id it was read for, so the reads of many requests can share it.

    SQLite probes its indexes once per value of an IN list. PostgreSQL, on a small table, scans it
    for `id IN (...)` rather than probing (0.35 ms against 0.14 ms for six ids on 250 customers), so
    there each wanted id drives a lateral read of its family, every part an index probe whatever the
    table's size (the ids written out as an array: `keys_array`)."""
    child = aliased(Customer)
    if postgres:
        wanted = func.unnest(keys_array("keys")).table_valued("id").render_derived(name="wanted")
        key: Any = wanted.c.id
    else:
        key = bindparam("keys", expanding=True)

    def scoped(statement: Select[Any], table: Any) -> Select[Any]:
        statement = statement.where(table.org_id == bindparam("org_id"))
        if reseller:
            statement = statement.where(table.reseller_id == bindparam("reseller_id"))
        return statement

    def matches(column: Any) -> Any:
        return column == key if postgres else column.in_(key)

    own = scoped(select(*_READ_COLUMNS, Customer.id.label("family_of")), Customer).where(matches(Customer.id))
    children = scoped(select(*_READ_COLUMNS, Customer.parent_id.label("family_of")), Customer).where(
        matches(Customer.parent_id))
    parent = scoped(scoped(
        select(*_READ_COLUMNS, child.id.label("family_of"))
        .join(child, (child.org_id == Customer.org_id) & (child.parent_id == Customer.id)), Customer), child
    ).where(matches(child.id))
    if not postgres:
        return union_all(own, children, parent)
    family = union_all(own, children, parent).lateral("family")
    return select(*family.c).select_from(wanted).join(family, true())


@dataclass(frozen=True)
class Family:
    customer: Customer
    parent: Customer | None
    children: list[Customer]  # oldest first


async def get_customer_family(uow: UnitOfWork, *, principal: Principal, customer_id: str) -> Family:
    """The customer (or NotFound), its parent and its children: what every face shows of one customer,
    for the price of one read, shared with the same reads of concurrent requests."""
    statement = _families_statement(reseller=principal.reseller_id is not None, postgres=uow.is_postgres)
    rows = await uow.rows_by_key(statement, _scope(principal), keys_param="keys", key=customer_id,
                                 key_column="family_of")
    customer = next((row for row in rows if row.id == customer_id), None)
    if customer is None:
        raise NotFound(f"customer {customer_id!r} was not found", field="customer_id")
    # A hierarchy is one level deep: the parent is never a child, the customer never its own parent.
    parent = next((row for row in rows if row.id == customer.parent_id), None) if customer.parent_id else None
    children = sorted((row for row in rows if row.parent_id == customer_id), key=lambda row: row.id)
    return Family(customer, parent, children)  # type: ignore[arg-type]


async def _customer_for_update(uow: UnitOfWork, principal: Principal, **where: str) -> Customer:
    """The ORM instance to change, locked on PostgreSQL until the transaction ends."""
    statement = _scoped(select(Customer).filter_by(**where), principal)
    if uow.is_postgres:
        statement = statement.with_for_update()
    customer = (await uow.session.execute(statement)).scalar_one_or_none()
    if customer is None:
        field = next(iter(where))
        label = "customer" if field == "id" else f"customer with {field}"
        raise NotFound(f"{label} {where[field]!r} was not found", field="customer_id" if field == "id" else field)
    return customer


async def get_customer_by_external_id(uow: UnitOfWork, *, principal: Principal, external_customer_id: str) -> Customer:
    customer = await _one(uow, principal, "external_customer_id", external_customer_id)
    if customer is None:
        raise NotFound(f"customer with external_customer_id {external_customer_id!r} was not found",
                       field="external_customer_id")
    return customer


async def list_customers(
    uow: UnitOfWork,
    *,
    principal: Principal,
    limit: int | None = None,
    after_id: str | None = None,
    statuses: Sequence[str] | None = None,
    maximum: int = 100,
) -> Page[Customer]:
    """Newest first, by keyset on the time-ordered id."""
    limit, params = _page_params(principal, limit, after_id, statuses, maximum)
    statement = _read_statement(reseller=principal.reseller_id is not None, statuses=bool(statuses),
                                after=after_id is not None, page=True)
    return Page.from_rows(await uow.rows(statement, params), limit)


async def list_customers_with_children(
    uow: UnitOfWork,
    *,
    principal: Principal,
    limit: int | None = None,
    after_id: str | None = None,
    statuses: Sequence[str] | None = None,
    maximum: int = 100,
) -> tuple[Page[Customer], dict[str, list[Customer]]]:
    """A page as `list_customers` reads it and the children of its customers (oldest child first, by
    parent id), for the price of one read: what a face showing each customer's hierarchy needs."""
    limit, params = _page_params(principal, limit, after_id, statuses, maximum)
    statement = _page_family_statement(reseller=principal.reseller_id is not None, statuses=bool(statuses),
                                       after=after_id is not None)
    page: list[Any] = []
    grouped: dict[str, list[Customer]] = defaultdict(list)
    for row in await uow.rows(statement, params):
        if row.family_part == _PAGE_PART:
            page.append(row)
        else:
            grouped[row.parent_id].append(row)
    page.sort(key=lambda row: row.id, reverse=True)  # a CTE's order is not the outer query's
    for children in grouped.values():
        children.sort(key=lambda row: row.id)
    return Page.from_rows(page, limit), grouped


def _page_params(principal: Principal, limit: int | None, after_id: str | None, statuses: Sequence[str] | None,
                 maximum: int) -> tuple[int, dict[str, Any]]:
    limit = page_size(limit, maximum=maximum)
    for status in statuses or ():
        one_of("status", status, rules.STATUSES)
    params = _scope(principal, limit=limit + 1)
    if statuses:
        params["statuses"] = list(statuses)
    if after_id is not None:
        params["after_id"] = after_id
    return limit, params


_PAGE_PART, _CHILD_PART = 1, 2


def _part(number: int) -> Any:
    return literal_column(str(number), Integer).label("family_part")


@cache
def _page_family_statement(*, reseller: bool, statuses: bool, after: bool) -> Any:
    """A page (a CTE) and the children of its rows, each row tagged with the part it answers."""
    page = _read_statement(reseller=reseller, statuses=statuses, after=after, page=True).cte("page")
    children = select(_part(_CHILD_PART), *_READ_COLUMNS).where(
        Customer.org_id == bindparam("org_id"), Customer.parent_id.in_(select(page.c.id)))  # type: ignore[union-attr]
    if reseller:
        children = children.where(Customer.reseller_id == bindparam("reseller_id"))
    return union_all(select(_part(_PAGE_PART), *page.c), children)


async def count_customers(uow: UnitOfWork, *, principal: Principal, statuses: Sequence[str] | None = None) -> int:
    statement = _read_statement(reseller=principal.reseller_id is not None, statuses=bool(statuses), count=True)
    params = _scope(principal)
    if statuses:
        params["statuses"] = list(statuses)
    return int((await uow.rows(statement, params))[0][0])


async def customers_by_ids(uow: UnitOfWork, *, principal: Principal, ids: Sequence[str]) -> dict[str, Customer]:
    """One statement for many ids (the dataloaders' batch)."""
    if not ids:
        return {}
    statement = _read_statement(key="id", many=True, reseller=principal.reseller_id is not None)
    return {c.id: c for c in await uow.rows(statement, _scope(principal, keys=list(set(ids))))}  # type: ignore[misc]


async def children_by_parent_ids(
    uow: UnitOfWork, *, principal: Principal, parent_ids: Sequence[str]
) -> dict[str, list[Customer]]:
    """Children of many parents in one statement, oldest child first."""
    grouped: dict[str, list[Customer]] = defaultdict(list)
    if not parent_ids:
        return grouped
    statement = _read_statement(key="parent_id", many=True, reseller=principal.reseller_id is not None)
    for child in await uow.rows(statement, _scope(principal, keys=list(set(parent_ids)))):
        grouped[child.parent_id or ""].append(child)  # type: ignore[arg-type]
    return grouped


async def create_customer(uow: UnitOfWork, *, principal: Principal, fields: Mapping[str, Any]) -> Customer:
    """Create a customer. `name` and `email` are required; every other field is optional."""
    _refuse_unknown(fields)
    for required in ("name", "email"):
        if fields.get(required) is None:
            raise ValidationFailed(required, "is required")
    now = uow.clock.now()
    customer = Customer(id=new_id(), org_id=principal.org_id, reseller_id=principal.reseller_id,
                        name="", email="", created_at=now, updated_at=now)
    async with uow.transaction():
        await _apply(uow, principal, customer, fields, creating=True)
        uow.session.add(customer)
        await _flush(uow, customer)
        await _apply_children(uow, principal, customer, fields)
        await _claim_events(uow, customer)
    return customer


async def update_customer(
    uow: UnitOfWork, *, principal: Principal, customer_id: str, fields: Mapping[str, Any]
) -> Customer:
    """Change the fields given; a field given as null is cleared (or reset to its default)."""
    _refuse_unknown(fields)
    async with uow.transaction():
        customer = await _customer_for_update(uow, principal, id=customer_id)
        await _update(uow, principal, customer, fields)
    return customer


async def update_customer_by_external_id(
    uow: UnitOfWork, *, principal: Principal, external_customer_id: str, fields: Mapping[str, Any]
) -> Customer:
    _refuse_unknown(fields)
    async with uow.transaction():
        customer = await _customer_for_update(uow, principal, external_customer_id=external_customer_id)
        await _update(uow, principal, customer, fields)
    return customer


async def delete_customer(uow: UnitOfWork, *, principal: Principal, customer_id: str) -> Customer:
    """Delete a customer for good, with its subscriptions (as Orb does); its children leave the hierarchy and stay."""
    async with uow.transaction():
        customer = await _customer_for_update(uow, principal, id=customer_id)
        await uow.session.execute(
            delete(Subscription).where(Subscription.org_id == principal.org_id, Subscription.customer_id == customer.id)
        )
        await uow.session.execute(
            update(Customer)
            .where(Customer.org_id == principal.org_id, Customer.parent_id == customer.id)
            .values(parent_id=None, updated_at=uow.clock.now())
        )
        await uow.session.delete(customer)
    return customer


async def patch_customer_profile(
    uow: UnitOfWork,
    *,
    principal: Principal,
    customer_id: str,
    fields: Mapping[str, Any],
    custom_fields: Mapping[str, Any] | None = None,
) -> ProfilePatchResult:
    """OneBusiness PATCH: top-level fields all-or-nothing; each custom field applies or is rejected alone."""
    _refuse_unknown(fields)
    async with uow.transaction():
        customer = await _customer_for_update(uow, principal, id=customer_id)
        before = {key: getattr(customer, _attribute(key)) for key in fields}
        await _update(uow, principal, customer, fields, touch=False)
        changed = [key for key in fields if getattr(customer, _attribute(key)) != before[key]]
        rejected: dict[str, str] = {}
        if custom_fields:
            definitions = await _definitions(uow, principal)
            values = dict(customer.custom_fields or {})
            for key, value in custom_fields.items():
                definition = definitions.get(key)
                if definition is None:
                    rejected[key] = "no custom field is defined with this key"
                    continue
                try:
                    stored = coerce_value(field_type=definition.field_type, required=definition.required,
                                          allowed_values=definition.allowed_values, value=value)
                except ValueError as exc:
                    rejected[key] = str(exc)
                    continue
                if values.get(key) != stored:
                    changed.append(f"custom_fields.{key}")
                if stored is None:
                    values.pop(key, None)
                else:
                    values[key] = stored
            customer.custom_fields = values
        if changed:
            customer.updated_at = uow.clock.now()
        await _flush(uow, customer)
    return ProfilePatchResult(customer=customer, changed=changed, rejected=rejected)


async def define_custom_field(
    uow: UnitOfWork,
    *,
    principal: Principal,
    key: str,
    field_type: str,
    required: bool = False,
    allowed_values: list[str] | None = None,
    label: str | None = None,
) -> CustomFieldDefinition:
    """Define a custom field customer profiles of this organisation may carry."""
    check_definition(key=key, field_type=field_type, allowed_values=allowed_values, label=label)
    definition = CustomFieldDefinition(id=new_id(), org_id=principal.org_id, key=key, field_type=field_type,
                                       required=required, allowed_values=allowed_values, label=label,
                                       created_at=uow.clock.now())
    async with uow.transaction():
        existing = await uow.session.execute(
            select(CustomFieldDefinition.id).where(CustomFieldDefinition.org_id == principal.org_id,
                                                   CustomFieldDefinition.key == key)
        )
        if existing.first() is not None:
            raise DuplicateResource(f"a custom field with key {key!r} already exists", field="key")
        uow.session.add(definition)
        try:
            await uow.session.flush()
        except IntegrityError:  # a concurrent definition of the same key won the race
            raise DuplicateResource(f"a custom field with key {key!r} already exists", field="key") from None
    return definition


async def list_custom_fields(uow: UnitOfWork, *, principal: Principal) -> list[CustomFieldDefinition]:
    return list((await _definitions(uow, principal)).values())


async def _definitions(uow: UnitOfWork, principal: Principal) -> dict[str, CustomFieldDefinition]:
    rows = await uow.rows(
        select(*CustomFieldDefinition.__table__.columns)  # type: ignore[attr-defined]
        .where(CustomFieldDefinition.org_id == principal.org_id).order_by(CustomFieldDefinition.key)
    )
    return {d.key: d for d in rows}  # type: ignore[misc]


def _attribute(key: str) -> str:
    return "customer_metadata" if key == "metadata" else key


def _refuse_unknown(fields: Mapping[str, Any]) -> None:
    refuse_unknown(fields, SETTABLE_FIELDS, "a customer field")


async def _update(
    uow: UnitOfWork, principal: Principal, customer: Customer, fields: Mapping[str, Any], *, touch: bool = True
) -> None:
    await _apply(uow, principal, customer, fields, creating=False)
    await _apply_children(uow, principal, customer, fields)
    if touch:
        customer.updated_at = uow.clock.now()
    await _flush(uow, customer)
    if "external_customer_id" in fields:
        await _claim_events(uow, customer)


async def _apply(
    uow: UnitOfWork, principal: Principal, customer: Customer, fields: Mapping[str, Any], *, creating: bool
) -> None:
    """Validate every field first, then set them, so a bad field changes nothing."""
    cleaned: dict[str, Any] = {}
    for key, value in fields.items():
        if key in ("name", "email") and value is None:
            raise ValidationFailed(key, "cannot be null")
        if key in _SIMPLE_RULES:
            cleaned[key] = _SIMPLE_RULES[key](key, value)
    if "metadata" in fields:
        # Orb: keys given are merged; `metadata: null` clears the whole mapping.
        given = fields["metadata"]
        current = None if creating or given is None else customer.customer_metadata
        cleaned["customer_metadata"] = merge_metadata("metadata", given, current)
    if fields.get("custom_fields") is not None:
        cleaned["custom_fields"] = await _strict_custom_fields(uow, principal, customer, fields["custom_fields"])
    if not creating and "currency" in cleaned and customer.currency and cleaned["currency"] != customer.currency:
        raise ConstraintViolation("a customer's currency cannot change once it is set", field="currency")
    external_id = cleaned.get("external_customer_id")
    if external_id is not None and external_id != customer.external_customer_id:
        await _ensure_external_id_free(uow, principal, external_id)
    hierarchy = fields.get("hierarchy")
    if hierarchy is not None:
        if not isinstance(hierarchy, Mapping):
            raise ValidationFailed("hierarchy", "must be an object")
        if "parent_customer_id" in hierarchy:
            cleaned["parent_id"] = await _valid_parent(uow, principal, customer, hierarchy["parent_customer_id"])
    for key, value in cleaned.items():
        setattr(customer, key, value)


async def _strict_custom_fields(
    uow: UnitOfWork, principal: Principal, customer: Customer, values: Any
) -> dict[str, Any]:
    if not isinstance(values, Mapping):
        raise ValidationFailed("custom_fields", "must be an object")
    definitions = await _definitions(uow, principal)
    merged = dict(customer.custom_fields or {})
    for key, value in values.items():
        definition = definitions.get(key)
        if definition is None:
            raise ValidationFailed(f"custom_fields.{key}", "no custom field is defined with this key")
        stored = strict_value(f"custom_fields.{key}", field_type=definition.field_type, required=definition.required,
                              allowed_values=definition.allowed_values, value=value)
        if stored is None:
            merged.pop(key, None)
        else:
            merged[key] = stored
    return merged


async def _ensure_external_id_free(uow: UnitOfWork, principal: Principal, external_id: str) -> None:
    taken = await uow.session.execute(
        select(Customer.id).where(Customer.org_id == principal.org_id, Customer.external_customer_id == external_id)
    )
    if taken.first() is not None:
        raise DuplicateResource(f"a customer with external_customer_id {external_id!r} already exists",
                                field="external_customer_id")


async def _valid_parent(uow: UnitOfWork, principal: Principal, customer: Customer, parent_id: Any) -> str | None:
    """Orb's hierarchy is one level deep: a parent is not a child, a child has no children."""
    if parent_id is None:
        return None
    if not isinstance(parent_id, str):
        raise ValidationFailed("hierarchy.parent_customer_id", "must be a customer id")
    if parent_id == customer.id:
        raise ConstraintViolation("a customer cannot be its own parent", field="hierarchy.parent_customer_id")
    try:
        parent = await get_customer(uow, principal=principal, customer_id=parent_id)
    except NotFound:
        raise ValidationFailed("hierarchy.parent_customer_id", f"customer {parent_id!r} was not found") from None
    if parent.parent_id is not None:
        raise ConstraintViolation("the parent is itself a child of another customer", field="hierarchy.parent_customer_id")
    if await _has_children(uow, principal, customer.id):
        raise ConstraintViolation("a customer with children cannot become a child", field="hierarchy.parent_customer_id")
    return parent.id


async def _has_children(uow: UnitOfWork, principal: Principal, customer_id: str) -> bool:
    result = await uow.session.execute(
        select(Customer.id).where(Customer.org_id == principal.org_id, Customer.parent_id == customer_id).limit(1)
    )
    return result.first() is not None


async def _apply_children(uow: UnitOfWork, principal: Principal, customer: Customer, fields: Mapping[str, Any]) -> None:
    hierarchy = fields.get("hierarchy")
    if not isinstance(hierarchy, Mapping) or not hierarchy.get("child_customer_ids"):
        return
    child_ids = hierarchy["child_customer_ids"]
    if not isinstance(child_ids, list) or not all(isinstance(i, str) for i in child_ids):
        raise ValidationFailed("hierarchy.child_customer_ids", "must be a list of customer ids")
    if customer.parent_id is not None:
        raise ConstraintViolation("a child customer cannot have children", field="hierarchy.child_customer_ids")
    statement = _scoped(select(Customer).where(Customer.id.in_(child_ids)), principal)  # type: ignore[attr-defined]
    if uow.is_postgres:
        statement = statement.with_for_update()
    found = {c.id: c for c in (await uow.session.execute(statement)).scalars()}
    for index, child_id in enumerate(child_ids):
        child = found.get(child_id)
        if child is None:
            raise ValidationFailed(f"hierarchy.child_customer_ids[{index}]", f"customer {child_id!r} was not found")
        if child.id == customer.id:
            raise ConstraintViolation("a customer cannot be its own child", field="hierarchy.child_customer_ids")
        if child.parent_id not in (None, customer.id):
            raise ConstraintViolation(f"customer {child_id!r} already belongs to another hierarchy",
                                      field="hierarchy.child_customer_ids")
        if await _has_children(uow, principal, child.id):
            raise ConstraintViolation(f"customer {child_id!r} has children of its own",
                                      field="hierarchy.child_customer_ids")
        child.parent_id = customer.id
        child.updated_at = uow.clock.now()
    await uow.session.flush()


async def _claim_events(uow: UnitOfWork, customer: Customer) -> None:
    """Events sent under this customer's external id before it existed become its own (as Orb does)."""
    if customer.external_customer_id:
        await attach_events_to_customer(uow, org_id=customer.org_id, customer_id=customer.id,
                                        external_customer_id=customer.external_customer_id)


async def _flush(uow: UnitOfWork, customer: Customer) -> None:
    """Flush, turning a lost race on the external-id index into the same error as the pre-check."""
    try:
        await uow.session.flush()
    except IntegrityError:
        raise DuplicateResource(
            f"a customer with external_customer_id {customer.external_customer_id!r} already exists",
            field="external_customer_id",
        ) from None
