"""OneBusiness' `/api/v1`: customer profiles with custom fields and sparse fieldsets, as rows over the graph."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from domains import errors
from gateway.faces.engine import Body, BodyField, Const, Inputs, Path, Query, Row
from gateway.faces.http import (
    RequestTooLarge,
    UnknownRoute,
    compile_rows,
    handler_for,
    json_response,
    log_unexpected,
)
from gateway.graphql.schema import schema

PREFIX = "/api/v1"
API_VERSION = 1
MAX_ROWS = 500

PROFILE = """
  id party_id: id name status account_number: accountNumber payment_terms: paymentTerms
  default_currency: currency credit_limit: creditLimit billing_email: email
  contact_first_name: contactFirstName contact_last_name: contactLastName contact_email: contactEmail
  contact_phone: contactPhone notes custom_fields: customFields created_at: createdAt updated_at: updatedAt
"""
# OneBusiness names two customer fields its own way.
_RENAMED = {"default_currency": "currency", "billing_email": "email"}
_FACE_NAME = {graph: face for face, graph in _RENAMED.items()}
PATCHABLE = ("status", "account_number", "payment_terms", "default_currency", "credit_limit", "billing_email",
             "contact_first_name", "contact_last_name", "contact_email", "contact_phone", "notes")


def sparse(profile: dict[str, Any], fields: str | None) -> dict[str, Any]:
    """`?fields=id,name,custom_fields.tier`: only what was asked for; unknown keys are dropped silently."""
    if not fields:
        return profile
    wanted = [f.strip() for f in fields.split(",") if f.strip()]
    chosen = {key: profile[key] for key in wanted if key in profile}
    custom_keys = [f.removeprefix("custom_fields.") for f in wanted if f.startswith("custom_fields.")]
    if custom_keys and "custom_fields" not in chosen:
        values = profile.get("custom_fields") or {}
        chosen["custom_fields"] = {key: values[key] for key in custom_keys if key in values}
    return chosen


STATUS_FILTERS = ("active", "inactive", "archived", "all")


def _status_filter(value: str) -> list[str] | None:
    if value not in STATUS_FILTERS:
        raise errors.ValidationFailed("status", f"must be one of {', '.join(STATUS_FILTERS)}")
    return None if value == "all" else [value]


def _list_envelope(connection: dict[str, Any], inputs: Inputs) -> dict[str, Any]:
    fields = inputs.query.get("fields")
    return {"meta": {"version": API_VERSION, "total": connection["total"]},
            "data": [sparse(row, fields) for row in connection["data"]]}


def _one_envelope(profile: dict[str, Any], inputs: Inputs) -> dict[str, Any]:
    return {"meta": {"version": API_VERSION}, "data": sparse(profile, inputs.query.get("fields"))}


def _patch_envelope(result: dict[str, Any], inputs: Inputs) -> dict[str, Any]:
    changed = [_FACE_NAME.get(name, name) for name in result["changed"]]
    return {"meta": {"version": API_VERSION}, "data": result["data"], "changed": changed, "rejected": result["rejected"]}


ROWS: list[Row] = [
    Row("GET", "/customers", "customers", f"total: totalCount data: nodes {{ {PROFILE} }}",
        args={"first": Const(MAX_ROWS), "status": Query("status", default=["active"], convert=_status_filter)},
        envelope=_list_envelope),
    Row("GET", "/customers/{id}", "customer", PROFILE, args={"id": Path("id")}, envelope=_one_envelope),
    Row("PATCH", "/customers/{id}", "patchCustomerProfile", f"data: customer {{ {PROFILE} }} changed rejected",
        args={"id": Path("id"), "input": Body(rename=_RENAMED, exclude=("custom_fields",), allow=PATCHABLE),
              "customFields": BodyField("custom_fields")},
        envelope=_patch_envelope),
]

# (domain error, HTTP status, OneBusiness code); first match wins.
_ERRORS: list[tuple[type[BaseException], int, str]] = [
    (errors.Unauthenticated, 401, "UNAUTHORIZED"),
    (errors.PermissionDenied, 403, "FORBIDDEN"),
    (errors.NotFound, 404, "NOT_FOUND"),
    (errors.ValidationFailed, 400, "VALIDATION_ERROR"),
    (errors.DuplicateResource, 409, "DUPLICATE"),
    (errors.ConstraintViolation, 400, "CONSTRAINT_VIOLATION"),
    (errors.Conflict, 409, "CONFLICT"),
    (RequestTooLarge, 413, "PAYLOAD_TOO_LARGE"),
    (UnknownRoute, 404, "ROUTE_NOT_FOUND"),
]


class OneBusinessDialect:
    def error_response(self, error: BaseException, request_id: str) -> web.Response:
        log_unexpected(error, request_id)
        for kind, status, code in _ERRORS:
            if isinstance(error, kind):
                body: dict[str, Any] = {"code": code, "message": str(error)}
                field = getattr(error, "field", None)
                if field:
                    body["field"] = _FACE_NAME.get(field, field)
                return json_response({"error": body}, status)
        return json_response({"error": {"code": "INTERNAL_ERROR",
                                        "message": f"an unexpected error occurred (request id {request_id})"}}, 500)


DIALECT = OneBusinessDialect()


def add_routes(app: web.Application) -> None:
    for compiled in compile_rows(ROWS, schema):
        row = compiled.row
        app.router.add_route(row.method, PREFIX + row.path, handler_for(compiled, DIALECT, max_page_size=MAX_ROWS))
