"""One driver per face with the same verbs, so a parity test runs one case over every face.

Each verb returns an Outcome: the customer data normalised to a few comparable fields, or the kind of
error the face reported (mapped from that face's own error shape)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from aiohttp.test_utils import TestClient

ORB_KINDS = {
    "#404-resource-not-found": "not_found",
    "#400-request-validation-errors": "validation",
    "#400-duplicate-resource-creation": "duplicate",
    "#400-constraint-violation": "constraint",
    "#401-authentication-error": "unauthenticated",
    "#409-resource-conflict": "conflict",
    "#413-request-too-large": "too_large",
    "#404-url-not-found": "url_not_found",
}
GRAPHQL_KINDS = {"NOT_FOUND": "not_found", "VALIDATION_FAILED": "validation", "DUPLICATE_RESOURCE": "duplicate",
                 "CONSTRAINT_VIOLATION": "constraint", "UNAUTHENTICATED": "unauthenticated", "CONFLICT": "conflict"}
RPC_KINDS = {-32004: "not_found", -32602: "validation", -32009: "duplicate", -32010: "constraint",
             -32005: "unauthenticated"}
ONEBUSINESS_KINDS = {"NOT_FOUND": "not_found", "VALIDATION_ERROR": "validation", "DUPLICATE": "duplicate",
                     "CONSTRAINT_VIOLATION": "constraint", "UNAUTHORIZED": "unauthenticated", "CONFLICT": "conflict",
                     "PAYLOAD_TOO_LARGE": "too_large"}

COMPARED = ("id", "name", "email", "external_customer_id", "currency", "timezone", "balance")


@dataclass
class Outcome:
    data: Any = None
    error: str | None = None
    field: str | None = None
    status: int = 200
    raw: Any = dc_field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None


def normalise(customer: dict[str, Any]) -> dict[str, Any]:
    return {key: customer.get(key) for key in COMPARED}


GQL_CUSTOMER = "id name email externalCustomerId currency timezone balance"


def _from_graphql(node: dict[str, Any]) -> dict[str, Any]:
    return {"id": node["id"], "name": node["name"], "email": node["email"],
            "external_customer_id": node["externalCustomerId"], "currency": node["currency"],
            "timezone": node["timezone"], "balance": node["balance"]}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def graphql_input(fields: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if isinstance(value, dict) and key not in ("metadata", "custom_fields", "payment_configuration"):
            value = graphql_input(value)
        out[_camel(key)] = value
    return out


class GraphQLDriver:
    name = "graphql"

    def __init__(self, client: TestClient, key: str) -> None:
        self.client, self.headers = client, {"Authorization": f"Bearer {key}"}

    async def run(self, query: str, variables: dict[str, Any], path: str) -> Outcome:
        response = await self.client.post("/graphql", json={"query": query, "variables": variables}, headers=self.headers)
        body = await response.json()
        if body.get("errors"):
            ext = body["errors"][0].get("extensions", {})
            return Outcome(error=GRAPHQL_KINDS.get(ext.get("code"), ext.get("code")), field=ext.get("field"),
                           status=response.status, raw=body)
        return Outcome(data=body["data"][path], status=response.status, raw=body)

    async def create(self, fields: dict[str, Any]) -> Outcome:
        out = await self.run(f"mutation($i: CustomerInput!) {{ createCustomer(input: $i) {{ {GQL_CUSTOMER} }} }}",
                             {"i": graphql_input(fields)}, "createCustomer")
        return _map(out, _from_graphql)

    async def get(self, customer_id: str) -> Outcome:
        out = await self.run(f"query($id: ID!) {{ customer(id: $id) {{ {GQL_CUSTOMER} }} }}", {"id": customer_id}, "customer")
        return _map(out, _from_graphql)

    async def update(self, customer_id: str, fields: dict[str, Any]) -> Outcome:
        out = await self.run(
            f"mutation($id: ID!, $i: CustomerInput!) {{ updateCustomer(id: $id, input: $i) {{ {GQL_CUSTOMER} }} }}",
            {"id": customer_id, "i": graphql_input(fields)}, "updateCustomer")
        return _map(out, _from_graphql)

    async def delete(self, customer_id: str) -> Outcome:
        return await self.run("mutation($id: ID!) { deleteCustomer(id: $id) { id deleted } }", {"id": customer_id},
                              "deleteCustomer")

    async def list(self, limit: int | None = None, cursor: str | None = None) -> Outcome:
        out = await self.run(
            f"query($f: Int, $a: String) {{ customers(first: $f, after: $a) {{ nodes {{ {GQL_CUSTOMER} }} "
            "pageInfo { hasNextPage nextCursor } } }", {"f": limit, "a": cursor}, "customers")
        if out.ok:
            out.data = {"items": [_from_graphql(n) for n in out.data["nodes"]],
                        "has_more": out.data["pageInfo"]["hasNextPage"], "next_cursor": out.data["pageInfo"]["nextCursor"]}
        return out


def _map(out: Outcome, convert: Any) -> Outcome:
    if out.ok and out.data is not None:
        out.data = convert(out.data)
    return out


class OrbDriver:
    name = "orb"

    def __init__(self, client: TestClient, key: str) -> None:
        self.client, self.headers = client, {"Authorization": f"Bearer {key}"}

    async def call(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Outcome:
        response = await self.client.request(method, "/v1" + path, json=body, params=params, headers=self.headers)
        if response.status == 204:
            return Outcome(data=None, status=204)
        payload = await response.json()
        if response.status >= 400:
            kind = ORB_KINDS.get("#" + payload.get("type", "#").split("#")[-1], payload.get("type"))
            field_name = (payload.get("validation_errors") or [{}])[0].get("field")
            return Outcome(error=kind, field=field_name, status=response.status, raw=payload)
        return Outcome(data=payload, status=response.status, raw=payload)

    async def create(self, fields: dict[str, Any]) -> Outcome:
        return _map(await self.call("POST", "/customers", fields), normalise)

    async def get(self, customer_id: str) -> Outcome:
        return _map(await self.call("GET", f"/customers/{customer_id}"), normalise)

    async def update(self, customer_id: str, fields: dict[str, Any]) -> Outcome:
        return _map(await self.call("PUT", f"/customers/{customer_id}", fields), normalise)

    async def delete(self, customer_id: str) -> Outcome:
        return await self.call("DELETE", f"/customers/{customer_id}")

    async def list(self, limit: int | None = None, cursor: str | None = None) -> Outcome:
        params = {k: str(v) for k, v in {"limit": limit, "cursor": cursor}.items() if v is not None}
        out = await self.call("GET", "/customers", params=params)
        if out.ok:
            meta = out.data["pagination_metadata"]
            out.data = {"items": [normalise(c) for c in out.data["data"]], "has_more": meta["has_more"],
                        "next_cursor": meta["next_cursor"]}
        return out


class RpcDriver:
    name = "rpc"
    _ids = itertools.count(1)

    def __init__(self, client: TestClient, key: str) -> None:
        self.client, self.headers = client, {"X-Api-Key": key}

    async def call(self, method: str, params: dict[str, Any]) -> Outcome:
        call_id = next(self._ids)
        response = await self.client.post("/", json={"jsonrpc": "2.0", "id": call_id, "method": method, "params": params},
                                          headers=self.headers)
        payload = await response.json()
        assert payload["id"] == call_id or "error" in payload
        if "error" in payload:
            error = payload["error"]
            return Outcome(error=RPC_KINDS.get(error["code"], error["code"]), field=(error.get("data") or {}).get("field"),
                           status=response.status, raw=payload)
        return Outcome(data=payload["result"], status=response.status, raw=payload)

    async def create(self, fields: dict[str, Any]) -> Outcome:
        return _map(await self.call("customers.create", fields), normalise)

    async def get(self, customer_id: str) -> Outcome:
        return _map(await self.call("customers.get", {"id": customer_id}), normalise)

    async def update(self, customer_id: str, fields: dict[str, Any]) -> Outcome:
        return _map(await self.call("customers.update", {"id": customer_id, **fields}), normalise)

    async def delete(self, customer_id: str) -> Outcome:
        return await self.call("customers.delete", {"id": customer_id})

    async def list(self, limit: int | None = None, cursor: str | None = None) -> Outcome:
        params = {k: v for k, v in {"limit": limit, "cursor": cursor}.items() if v is not None}
        out = await self.call("customers.list", params)
        if out.ok:
            meta = out.data["pagination_metadata"]
            out.data = {"items": [normalise(c) for c in out.data["data"]], "has_more": meta["has_more"],
                        "next_cursor": meta["next_cursor"]}
        return out


class OneBusinessDriver:
    """OneBusiness serves profiles: get, list and patch (no create or delete in its API)."""

    name = "onebusiness"

    def __init__(self, client: TestClient, key: str) -> None:
        self.client, self.headers = client, {"Authorization": f"Bearer {key}"}

    async def call(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> Outcome:
        response = await self.client.request(method, "/api/v1" + path, json=body, params=params, headers=self.headers)
        payload = await response.json()
        if response.status >= 400:
            error = payload["error"]
            return Outcome(error=ONEBUSINESS_KINDS.get(error["code"], error["code"]), field=error.get("field"),
                           status=response.status, raw=payload)
        return Outcome(data=payload, status=response.status, raw=payload)

    @staticmethod
    def _profile(profile: dict[str, Any]) -> dict[str, Any]:
        return {"id": profile["id"], "name": profile["name"], "email": profile["billing_email"],
                "currency": profile["default_currency"]}

    async def get(self, customer_id: str) -> Outcome:
        out = await self.call("GET", f"/customers/{customer_id}")
        return _map(out, lambda body: self._profile(body["data"]))


def all_drivers(client: TestClient, key: str) -> list[Any]:
    return [GraphQLDriver(client, key), OrbDriver(client, key), RpcDriver(client, key)]
