"""The official Orb Python SDK, unchanged, against `accrual serve`'s `/v1` on SQLite and PostgreSQL.

Every client validates responses strictly against the SDK's own models, and every error is asserted as
the exact exception class the SDK picks from the error body's `type` URI.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orb
import pytest
from orb.types import Customer

from tests.e2e.server import AccrualServer

pytestmark = pytest.mark.e2e

NewTenant = Callable[[], orb.Orb]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def make_customer(sdk: orb.Orb, **fields: Any) -> Customer:
    tag = unique("cust")
    return sdk.customers.create(name=fields.pop("name", f"Customer {tag}"),
                                email=fields.pop("email", f"{tag}@example.com"), **fields)


def test_create_returns_every_field_in_the_sdk_model(orb_client: orb.Orb) -> None:
    external_id = unique("acme")
    before = datetime.now(UTC)

    created = orb_client.customers.create(
        name="Acme SAS",
        email="billing@example.com",
        external_customer_id=external_id,
        currency="EUR",
        timezone="Europe/Paris",
        metadata={"plan": "pro", "region": "eu"},
        billing_address={"line1": "1 rue de Rivoli", "city": "Paris", "postal_code": "75001",
                         "country": "FR"},
        tax_id={"country": "FR", "type": "eu_vat", "value": "FR12345678901"},
        additional_emails=["finance@example.com", "cfo@example.com"],
    )

    assert isinstance(created, Customer)
    assert created.id
    assert created.external_customer_id == external_id
    assert created.name == "Acme SAS"
    assert created.email == "billing@example.com"
    assert created.currency == "EUR"
    assert created.timezone == "Europe/Paris"
    assert created.metadata == {"plan": "pro", "region": "eu"}
    assert created.additional_emails == ["finance@example.com", "cfo@example.com"]
    assert created.billing_address is not None
    assert created.billing_address.model_dump() == {
        "line1": "1 rue de Rivoli", "line2": None, "city": "Paris", "state": None, "postal_code": "75001",
        "country": "FR",
    }
    assert created.shipping_address is None
    assert created.tax_id is not None
    assert created.tax_id.model_dump() == {"country": "FR", "type": "eu_vat", "value": "FR12345678901"}
    assert created.balance == "0.00"
    assert created.auto_collection is True
    assert created.email_delivery is True
    assert created.hierarchy.parent is None
    assert created.hierarchy.children == []
    assert isinstance(created.created_at, datetime)
    assert created.created_at.utcoffset() == timedelta(0)
    assert before - timedelta(minutes=1) <= created.created_at <= datetime.now(UTC) + timedelta(minutes=1)


def test_fetch_and_fetch_by_external_id_return_the_created_customer(orb_client: orb.Orb) -> None:
    created = make_customer(orb_client, external_customer_id=unique("ext"), currency="USD",
                            metadata={"source": "e2e"})

    fetched = orb_client.customers.fetch(created.id)
    by_external_id = orb_client.customers.fetch_by_external_id(created.external_customer_id or "")

    assert fetched == created
    assert by_external_id == created
    assert fetched.metadata == {"source": "e2e"}
    assert fetched.currency == "USD"
    assert fetched.timezone == "UTC"


def test_update_changes_name_and_sets_and_removes_metadata_keys(orb_client: orb.Orb) -> None:
    created = make_customer(orb_client, metadata={"plan": "pro", "region": "eu"})

    updated = orb_client.customers.update(created.id, name="Renamed Ltd",
                                          metadata={"region": None, "tier": "gold"})

    assert updated.id == created.id
    assert updated.name == "Renamed Ltd"
    assert updated.metadata == {"plan": "pro", "tier": "gold"}
    assert updated.email == created.email  # fields left out stay as they were
    assert updated.created_at == created.created_at
    assert orb_client.customers.fetch(created.id) == updated


def test_update_by_external_id_sets_and_clears_fields(orb_client: orb.Orb) -> None:
    external_id = unique("ext")
    created = make_customer(orb_client, external_customer_id=external_id, billing_address={"city": "Lyon"})

    updated = orb_client.customers.update_by_external_id(
        external_id, email="new-address@example.com", auto_collection=False,
        additional_emails=["ops@example.com"], billing_address=None,
        shipping_address={"line1": "5 Dock Road", "city": "London", "country": "GB"},
    )

    assert updated.id == created.id
    assert updated.external_customer_id == external_id
    assert updated.email == "new-address@example.com"
    assert updated.auto_collection is False
    assert updated.additional_emails == ["ops@example.com"]
    assert updated.shipping_address is not None
    assert updated.shipping_address.model_dump() == {
        "line1": "5 Dock Road", "line2": None, "city": "London", "state": None, "postal_code": None,
        "country": "GB",
    }
    assert created.billing_address is not None and updated.billing_address is None
    assert orb_client.customers.fetch_by_external_id(external_id) == updated


def test_list_pages_through_every_customer_newest_first(new_tenant: NewTenant) -> None:
    sdk = new_tenant()
    created_ids = [make_customer(sdk).id for _ in range(25)]
    newest_first = list(reversed(created_ids))

    first_page = sdk.customers.list(limit=10)
    pages = list(first_page.iter_pages())
    every_customer = list(sdk.customers.list(limit=10))  # the SDK follows next_cursor by itself

    assert [len(page.data) for page in pages] == [10, 10, 5]
    assert [page.pagination_metadata.has_more for page in pages] == [True, True, False]
    assert pages[0].pagination_metadata.next_cursor
    assert pages[-1].pagination_metadata.next_cursor is None
    assert [c.id for page in pages for c in page.data] == newest_first
    assert [c.id for c in every_customer] == newest_first
    assert all(isinstance(c, Customer) and c.balance == "0.00" for c in every_customer)
    created_ats = [c.created_at for c in every_customer]
    assert created_ats == sorted(created_ats, reverse=True)


def test_delete_then_fetch_raises_resource_not_found(orb_client: orb.Orb) -> None:
    external_id = unique("ext")
    created = make_customer(orb_client, external_customer_id=external_id)

    assert orb_client.customers.with_raw_response.delete(created.id).status_code == 204

    with pytest.raises(orb.ResourceNotFound) as fetched:
        orb_client.customers.fetch(created.id)
    assert fetched.value.status_code == 404
    assert fetched.value.type == "https://docs.withorb.com/reference/error-responses#404-resource-not-found"
    with pytest.raises(orb.ResourceNotFound):
        orb_client.customers.fetch_by_external_id(external_id)
    with pytest.raises(orb.ResourceNotFound):
        orb_client.customers.delete(created.id)


def test_duplicate_external_customer_id_raises_duplicate_resource_creation(orb_client: orb.Orb) -> None:
    external_id = unique("ext")
    make_customer(orb_client, external_customer_id=external_id)

    with pytest.raises(orb.DuplicateResourceCreation) as duplicate:
        make_customer(orb_client, external_customer_id=external_id)

    assert duplicate.value.status_code == 400
    assert duplicate.value.detail and external_id in duplicate.value.detail


def test_bad_email_raises_request_validation_error(orb_client: orb.Orb) -> None:
    with pytest.raises(orb.RequestValidationError) as invalid:
        orb_client.customers.create(name="No Mail", email="not-an-email")

    assert invalid.value.status_code == 400
    assert [error["field"] for error in invalid.value.validation_errors] == ["email"]  # type: ignore[index]


def test_wrong_api_key_raises_orb_authentication_error(accrual_server: AccrualServer) -> None:
    intruder = accrual_server.client(api_key="one_pk_" + "x" * 43)
    with intruder, pytest.raises(orb.OrbAuthenticationError) as refused:
        intruder.customers.list()

    assert refused.value.status_code == 401


def test_another_organisation_cannot_see_the_customer(orb_client: orb.Orb, new_tenant: NewTenant) -> None:
    created = make_customer(orb_client)
    stranger = new_tenant()

    with pytest.raises(orb.ResourceNotFound):
        stranger.customers.fetch(created.id)
    assert list(stranger.customers.list()) == []


def test_hierarchy_shows_the_child_on_the_parent(orb_client: orb.Orb) -> None:
    parent = make_customer(orb_client, external_customer_id=unique("parent"))

    child = make_customer(orb_client, hierarchy={"parent_customer_id": parent.id})
    parent_again = orb_client.customers.fetch(parent.id)

    assert child.hierarchy.parent is not None
    assert (child.hierarchy.parent.id, child.hierarchy.parent.external_customer_id) == (
        parent.id, parent.external_customer_id)
    assert child.hierarchy.children == []
    assert parent_again.hierarchy.parent is None
    assert [(c.id, c.external_customer_id) for c in parent_again.hierarchy.children] == [(child.id, None)]


def test_same_idempotency_key_creates_one_customer(new_tenant: NewTenant) -> None:
    sdk = new_tenant()
    key = unique("idem")

    first = sdk.customers.create(name="Once", email="once@example.com", idempotency_key=key)
    replay = sdk.customers.with_raw_response.create(name="Once", email="once@example.com",
                                                    idempotency_key=key)

    assert replay.http_request.headers["Idempotency-Key"] == key
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.parse() == first
    assert [c.id for c in sdk.customers.list()] == [first.id]


def test_reused_idempotency_key_with_another_body_raises_resource_conflict(new_tenant: NewTenant) -> None:
    sdk = new_tenant()
    key = unique("idem")
    first = sdk.customers.create(name="Once", email="once@example.com", idempotency_key=key)

    with pytest.raises(orb.ResourceConflict) as conflict:
        sdk.customers.create(name="Twice", email="twice@example.com", idempotency_key=key)

    assert conflict.value.status_code == 409
    assert [c.id for c in sdk.customers.list()] == [first.id]


def test_every_post_carries_a_generated_idempotency_key(orb_client: orb.Orb) -> None:
    response = orb_client.customers.with_raw_response.create(name="Keyed", email=f"{unique('k')}@example.com")

    assert response.http_request.headers["Idempotency-Key"].startswith("stainless-python-retry-")
    assert response.status_code == 201
    assert response.parse().name == "Keyed"


def test_unknown_path_raises_url_not_found(orb_client: orb.Orb) -> None:
    with pytest.raises(orb.URLNotFound) as unknown:
        orb_client.get("/no-such-resource", cast_to=object)

    assert unknown.value.status_code == 404
