"""Pure rules for customer input: what a valid email, currency, timezone, address or tax id is."""

from __future__ import annotations

import re
import zoneinfo
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from email_validator import EmailNotValidError, validate_email

from domains.amounts import bounded
from domains.errors import ValidationFailed
from domains.text import one_of, refuse_unknown

STATUSES = ("active", "inactive", "archived")
PAYMENT_PROVIDERS = ("quickbooks", "bill.com", "stripe_charge", "stripe_invoice", "netsuite", "adyen")
ADDRESS_KEYS = ("line1", "line2", "city", "state", "postal_code", "country")
ACCOUNTING_PROVIDERS = ("quickbooks", "netsuite")
MAX_ADDITIONAL_EMAILS = 50

_COUNTRY = re.compile(r"^[A-Z]{2}$")


def email(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed(field, "is required and must be an email address")
    try:
        # Syntax only: no DNS look-up on the request path.
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValidationFailed(field, f"is not a valid email address ({exc})") from None


def name(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed(field, "is required and must not be blank")
    if len(value) > 500:
        raise ValidationFailed(field, "must be at most 500 characters")
    return value.strip()


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def timezone_name(field: str, value: Any) -> str:
    if not isinstance(value, str) or value not in _timezones():
        raise ValidationFailed(field, f"{value!r} is not an IANA timezone (e.g. America/New_York)")
    return value


def optional_text(field: str, value: Any, max_length: int = 255) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationFailed(field, "must be a string")
    if len(value) > max_length:
        raise ValidationFailed(field, f"must be at most {max_length} characters")
    return value


def external_customer_id(field: str, value: Any) -> str | None:
    value = optional_text(field, value)
    if value is not None and not value.strip():
        raise ValidationFailed(field, "must not be blank")
    return value


def address(field: str, value: Any) -> dict[str, str | None] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationFailed(field, "must be an object")
    refuse_unknown(value, ADDRESS_KEYS, "an address field", prefix=field)
    cleaned = {key: optional_text(f"{field}.{key}", value.get(key)) for key in ADDRESS_KEYS}
    if cleaned["country"] is not None and not _COUNTRY.match(cleaned["country"]):
        raise ValidationFailed(f"{field}.country", "must be an ISO 3166-1 alpha-2 code")
    return cleaned


def tax_id(field: str, value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationFailed(field, "must be an object with country, type and value")
    for key in ("country", "type", "value"):
        if not isinstance(value.get(key), str) or not value[key]:
            raise ValidationFailed(f"{field}.{key}", "is required")
    if not _COUNTRY.match(value["country"]):
        raise ValidationFailed(f"{field}.country", "must be an ISO 3166-1 alpha-2 code")
    return {"country": value["country"], "type": value["type"], "value": value["value"]}


def additional_emails(field: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValidationFailed(field, "must be a list of email addresses")
    if len(value) > MAX_ADDITIONAL_EMAILS:
        raise ValidationFailed(field, f"at most {MAX_ADDITIONAL_EMAILS} addresses")
    return [email(f"{field}[{i}]", item) for i, item in enumerate(value)]


def money_amount(field: str, value: Any, *, minimum: Decimal | None = Decimal(0)) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise ValidationFailed(field, "must be a decimal number written as a string")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValidationFailed(field, f"{value!r} is not a decimal number") from None
    bounded(field, amount)
    if minimum is not None and amount < minimum:
        raise ValidationFailed(field, f"must be at least {minimum}")
    return amount


def accounting_sync_configuration(field: str, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationFailed(field, "must be an object")
    providers = value.get("accounting_providers") or []
    cleaned = []
    for i, provider in enumerate(providers):
        one_of(f"{field}.accounting_providers[{i}].provider_type", provider.get("provider_type"), ACCOUNTING_PROVIDERS)
        cleaned.append({"provider_type": provider["provider_type"],
                        "external_provider_id": provider.get("external_provider_id")})
    return {"excluded": bool(value.get("excluded", False)), "accounting_providers": cleaned}


def reporting_configuration(field: str, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("exempt"), bool):
        raise ValidationFailed(f"{field}.exempt", "is required and must be a boolean")
    return {"exempt": value["exempt"]}
