"""Typed errors every domain raises; each face maps them once to its own error shape."""

from __future__ import annotations


class DomainError(Exception):
    code = "DOMAIN_ERROR"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(DomainError):
    """An unknown id, or one of another organisation (indistinguishable on purpose)."""

    code = "NOT_FOUND"


class ValidationFailed(DomainError):
    """Input that breaks a rule; `field` names the offending input (dotted path)."""

    code = "VALIDATION_FAILED"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class DuplicateResource(DomainError):
    """Creating something whose unique key (e.g. external_customer_id) already exists."""

    code = "DUPLICATE_RESOURCE"


class ConstraintViolation(DomainError):
    """A well-formed request that the current state forbids (e.g. a cycle in a hierarchy)."""

    code = "CONSTRAINT_VIOLATION"


class Conflict(DomainError):
    """A concurrent or replayed request that disagrees with the stored one."""

    code = "CONFLICT"


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"


class PermissionDenied(DomainError):
    code = "PERMISSION_DENIED"
