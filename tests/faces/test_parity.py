"""The same cases over GraphQL, Orb /v1, JSON-RPC (and OneBusiness where it has the verb): same data,
same kind of error, on both databases."""

from __future__ import annotations

import uuid

import pytest

from tests.faces.drivers import GraphQLDriver, OneBusinessDriver, OrbDriver, RpcDriver

FACES = [GraphQLDriver, OrbDriver, RpcDriver]


def _fields(**extra: object) -> dict[str, object]:
    suffix = uuid.uuid4().hex[:8]
    return {"name": f"Acme {suffix}", "email": f"billing+{suffix}@acme.example.com", **extra}


@pytest.fixture(params=FACES, ids=lambda d: d.name)
def face(request, client, tenant):
    return request.param(client, tenant.key)


async def test_create_then_fetch_gives_same_data(face, client, tenant):
    created = await face.create(_fields(external_customer_id=f"ext-{uuid.uuid4().hex[:6]}", currency="eur",
                                        timezone="Europe/Paris"))
    assert created.ok, created.raw
    assert created.data["currency"] == "EUR"
    assert created.data["timezone"] == "Europe/Paris"
    assert created.data["balance"] == "0.00"
    fetched_everywhere = [await d(client, tenant.key).get(created.data["id"]) for d in FACES]
    assert all(o.data == created.data for o in fetched_everywhere), [o.data for o in fetched_everywhere]
    profile = await OneBusinessDriver(client, tenant.key).get(created.data["id"])
    assert profile.data == {"id": created.data["id"], "name": created.data["name"], "email": created.data["email"],
                            "currency": "EUR"}


async def test_unknown_id_is_not_found(face):
    outcome = await face.get("01m0000000000000000000000")
    assert outcome.error == "not_found"


async def test_other_organisations_customer_is_not_found(face, client, other_tenant):
    theirs = await OrbDriver(client, other_tenant.key).create(_fields())
    assert theirs.ok
    assert (await face.get(theirs.data["id"])).error == "not_found"
    assert (await face.update(theirs.data["id"], {"name": "mine now"})).error == "not_found"
    assert (await face.delete(theirs.data["id"])).error == "not_found"
    assert (await OrbDriver(client, other_tenant.key).get(theirs.data["id"])).data["name"] == theirs.data["name"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"email": "a@b.example.com"}, "name"),
        ({"name": "No Email"}, "email"),
        ({"name": "Bad", "email": "not-an-email"}, "email"),
        ({"name": "Bad", "email": "x@y.example.com", "currency": "ZZZ"}, "currency"),
        ({"name": "Bad", "email": "x@y.example.com", "timezone": "Mars/Olympus"}, "timezone"),
        ({"name": "Bad", "email": "x@y.example.com", "billing_address": {"country": "France"}}, "billing_address.country"),
        ({"name": "Bad", "email": "x@y.example.com", "metadata": {"k": 1}}, "metadata.k"),
    ],
)
async def test_bad_create_is_a_validation_error_naming_the_field(face, fields, field):
    outcome = await face.create(fields)
    assert outcome.error == "validation", outcome.raw
    assert outcome.field == field
    assert (await face.list()).data["items"] == []  # nothing was written


async def test_duplicate_external_id_is_refused_everywhere(face):
    fields = _fields(external_customer_id="dup-1")
    assert (await face.create(fields)).ok
    outcome = await face.create(_fields(external_customer_id="dup-1"))
    assert outcome.error == "duplicate"
    assert outcome.field == "external_customer_id"
    assert len((await face.list()).data["items"]) == 1


async def test_update_changes_only_given_fields(face):
    created = await face.create(_fields(currency="USD"))
    updated = await face.update(created.data["id"], {"name": "Renamed"})
    assert updated.ok, updated.raw
    assert updated.data == {**created.data, "name": "Renamed"}


async def test_delete_then_fetch_is_not_found(face):
    created = await face.create(_fields())
    assert (await face.delete(created.data["id"])).ok
    assert (await face.get(created.data["id"])).error == "not_found"


async def test_pages_newest_first_with_cursor(face):
    ids = [(await face.create(_fields())).data["id"] for _ in range(5)]
    first = await face.list(limit=2)
    assert [c["id"] for c in first.data["items"]] == ids[::-1][:2]
    assert first.data["has_more"] is True
    second = await face.list(limit=2, cursor=first.data["next_cursor"])
    assert [c["id"] for c in second.data["items"]] == ids[::-1][2:4]
    last = await face.list(limit=2, cursor=second.data["next_cursor"])
    assert [c["id"] for c in last.data["items"]] == ids[::-1][4:]
    assert last.data["has_more"] is False and last.data["next_cursor"] is None


@pytest.mark.parametrize("limit", [0, 101, -5])
async def test_limit_out_of_range(face, limit):
    outcome = await face.list(limit=limit)
    assert outcome.error == "validation"
    assert outcome.field in ("limit", "first")


async def test_forged_cursor(face):
    outcome = await face.list(cursor="bm90LWEtY3Vyc29y")
    assert outcome.error == "validation"
    assert outcome.field in ("cursor", "after")
