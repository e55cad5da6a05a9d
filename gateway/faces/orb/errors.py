"""Orb's error shape, mapped once: `{status, type, title, detail}` with the `type` URIs Orb's SDKs
dispatch on, and `validation_errors` on 400s."""

from __future__ import annotations

from aiohttp import web

from domains import errors
from gateway.faces.http import RequestTooLarge, UnknownRoute, json_response, log_unexpected

_BASE = "https://docs.withorb.com/reference/error-responses#"

# (domain error, status, type fragment, title); first match wins.
_TABLE: list[tuple[type[BaseException], int, str, str]] = [
    (errors.Unauthenticated, 401, "401-authentication-error", "Authentication error"),
    (errors.PermissionDenied, 401, "401-authentication-error", "Authentication error"),
    (errors.NotFound, 404, "404-resource-not-found", "Resource not found"),
    (errors.ValidationFailed, 400, "400-request-validation-errors", "Request validation error"),
    (errors.DuplicateResource, 400, "400-duplicate-resource-creation", "Duplicate resource creation"),
    (errors.ConstraintViolation, 400, "400-constraint-violation", "Constraint violation"),
    (errors.Conflict, 409, "409-resource-conflict", "Resource conflict"),
    (RequestTooLarge, 413, "413-request-too-large", "Request too large"),
    (UnknownRoute, 404, "404-url-not-found", "URL not found"),
]


class OrbDialect:
    def error_response(self, error: BaseException, request_id: str) -> web.Response:
        log_unexpected(error, request_id)
        for kind, status, fragment, title in _TABLE:
            if isinstance(error, kind):
                detail = str(error) if isinstance(error, errors.ValidationFailed) else getattr(error, "message", str(error))
                body: dict[str, object] = {"status": status, "type": _BASE + fragment, "title": title, "detail": detail}
                if status == 400:
                    field = getattr(error, "field", None)
                    body["validation_errors"] = [{"field": field, "message": getattr(error, "message", detail)}]
                return json_response(body, status)
        return json_response(
            {"status": 500, "type": _BASE + "500-internal-server-error", "title": "Internal server error",
             "detail": f"an unexpected error occurred (request id {request_id})"},
            500,
        )


def too_many_requests(detail: str) -> web.Response:
    return json_response({"status": 429, "type": _BASE + "429-too-many-requests", "title": "Too many requests",
                          "detail": detail}, 429)
