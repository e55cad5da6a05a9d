"""Orb's `/v1` as a table of rows over the graph (paths, statuses and shapes of Orb's API reference)."""

from __future__ import annotations

from typing import Any

from gateway.faces import engine
from gateway.faces.engine import Body, BodyField, Path, Query, Row, query_bool, query_int
from gateway.faces.orb.shapes import (
    BACKFILL,
    COSTS,
    CUSTOMER,
    EVENT,
    EVENT_AMEND_FIELDS,
    INGEST_RESULT,
    INVOICE,
    INVOICE_FIELDS,
    ITEM,
    METRIC,
    PLAN,
    PRICE,
    PRICE_EVALUATION,
    SUBSCRIPTION,
    SUBSCRIPTION_SCHEDULE,
    UPCOMING_INVOICE,
    USAGE,
    VOLUME_BUCKET,
    page_of,
    upcoming_or_refused,
    usage_envelope,
)

# The customer fields Orb's API documents (its SDKs' create/update params); anything else is refused.
CUSTOMER_FIELDS = (
    "name", "email", "external_customer_id", "currency", "timezone", "payment_provider", "payment_provider_id",
    "auto_collection", "auto_issuance", "email_delivery", "additional_emails", "metadata", "billing_address",
    "shipping_address", "tax_id", "accounting_sync_configuration", "reporting_configuration",
    "payment_configuration", "tax_configuration", "hierarchy",
)
CUSTOMER_BODY = Body(allow=CUSTOMER_FIELDS)
PAGE_ARGS = {"first": Query("limit", convert=query_int), "after": Query("cursor")}

PRICE_FIELDS = (
    "name", "item_id", "cadence", "currency", "model_type", "billable_metric_id", "external_price_id",
    "fixed_price_quantity", "metadata", "unit_config", "tiered_config", "package_config", "matrix_config",
    "bulk_config", "tiered_package_config", "grouped_tiered_config", "threshold_total_amount_config",
)

BACKFILL_FIELDS = ("timeframe_start", "timeframe_end", "close_time", "customer_id", "external_customer_id",
                   "replace_existing_events", "deprecation_filter")
SUBSCRIPTION_FIELDS = ("customer_id", "external_customer_id", "plan_id", "external_plan_id", "start_date", "net_terms",
                       "auto_collection", "metadata", "end_date", "currency", "billing_cycle_anchor_configuration",
                       "align_billing_with_subscription_start_date", "default_invoice_memo", "trial_duration_days",
                       "plan_version_number", "initial_phase_order")
SUBSCRIPTION_UPDATE_FIELDS = ("metadata", "net_terms", "auto_collection", "default_invoice_memo")
PLAN_CHANGE_FIELDS = ("change_option", "change_date", "plan_id", "external_plan_id", "billing_cycle_alignment",
                      "align_billing_with_plan_change_date", "net_terms", "auto_collection", "default_invoice_memo",
                      "trial_duration_days", "plan_version_number")
FIXED_FEE_QUANTITY_FIELDS = ("price_id", "quantity", "effective_date", "change_option")
# The SDKs send the customer filters as lists (customer_id[]=...): one value at a time is taken.
SUBSCRIPTION_LIST_ARGS = {**PAGE_ARGS, "customerId": engine.SingleListQuery("customer_id"),
                          "externalCustomerId": engine.SingleListQuery("external_customer_id"),
                          "status": Query("status")}

PLAN_FIELDS = ("name", "currency", "prices", "external_plan_id", "description", "net_terms", "status", "metadata",
               "trial_config", "plan_phases")


def plan_prices_as_sdk_sends_them(body: dict[str, Any]) -> dict[str, Any]:
    """Orb's API reference lists a plan's prices as price objects; its SDKs wrap each as {"price": ...}."""
    entries = body.get("prices")
    if isinstance(entries, list):
        body = {**body, "prices": [e if not isinstance(e, dict) or "price" in e else _wrapped(e) for e in entries]}
    return body


def _wrapped(entry: dict[str, Any]) -> dict[str, Any]:
    """A flat price object as the SDKs' entry; its plan_phase_order belongs to the entry, not the price."""
    if "plan_phase_order" not in entry:
        return {"price": entry}
    price = {key: value for key, value in entry.items() if key != "plan_phase_order"}
    return {"price": price, "plan_phase_order": entry["plan_phase_order"]}


ROWS: list[Row] = [
    Row("GET", "/customers", "customers", page_of(CUSTOMER), args=PAGE_ARGS),
    Row("POST", "/customers", "createCustomer", CUSTOMER, status=201, args={"input": CUSTOMER_BODY}),
    Row("GET", "/customers/{customer_id}", "customer", CUSTOMER, args={"id": Path("customer_id")}),
    Row("PUT", "/customers/{customer_id}", "updateCustomer", CUSTOMER,
        args={"id": Path("customer_id"), "input": CUSTOMER_BODY}),
    Row("DELETE", "/customers/{customer_id}", "deleteCustomer", "id", status=204, args={"id": Path("customer_id")}),
    Row("GET", "/customers/external_customer_id/{external_customer_id}", "customerByExternalId", CUSTOMER,
        args={"externalCustomerId": Path("external_customer_id")}),
    Row("PUT", "/customers/external_customer_id/{external_customer_id}", "updateCustomerByExternalId", CUSTOMER,
        args={"externalCustomerId": Path("external_customer_id"), "input": CUSTOMER_BODY}),
    Row("GET", "/items", "items", page_of(ITEM), args=PAGE_ARGS),
    Row("POST", "/items", "createItem", ITEM, status=201, args={"input": Body(allow=("name", "metadata"))}),
    Row("GET", "/items/{item_id}", "item", ITEM, args={"id": Path("item_id")}),
    Row("GET", "/metrics", "metrics", page_of(METRIC), args=PAGE_ARGS),
    Row("POST", "/metrics", "createMetric", METRIC, status=201,
        args={"input": Body(allow=("name", "description", "sql", "item_id", "metadata"))}),
    Row("GET", "/metrics/{metric_id}", "metric", METRIC, args={"id": Path("metric_id")}),
    Row("GET", "/prices", "prices", page_of(PRICE), args=PAGE_ARGS),
    Row("POST", "/prices", "createPrice", PRICE, status=201, args={"input": Body(allow=PRICE_FIELDS)}),
    Row("GET", "/prices/{price_id}", "price", PRICE, args={"id": Path("price_id")}),
    Row("GET", "/prices/external_price_id/{external_price_id}", "priceByExternalId", PRICE,
        args={"externalPriceId": Path("external_price_id")}),
    Row("GET", "/plans", "plans", page_of(PLAN), args=PAGE_ARGS),
    Row("POST", "/plans", "createPlan", PLAN, status=201,
        args={"input": Body(allow=PLAN_FIELDS, normalise=plan_prices_as_sdk_sends_them)}),
    Row("GET", "/plans/{plan_id}", "plan", PLAN, args={"id": Path("plan_id")}),
    Row("PUT", "/plans/{plan_id}", "updatePlan", PLAN,
        args={"id": Path("plan_id"), "input": Body(allow=("metadata", "external_plan_id", "name", "description"))}),
    Row("GET", "/plans/external_plan_id/{external_plan_id}", "planByExternalId", PLAN,
        args={"externalPlanId": Path("external_plan_id")}),
    Row("GET", "/subscriptions", "subscriptions", page_of(SUBSCRIPTION), args=SUBSCRIPTION_LIST_ARGS),
    Row("POST", "/subscriptions", "createSubscription", SUBSCRIPTION, status=201,
        args={"input": Body(allow=SUBSCRIPTION_FIELDS)}),
    Row("GET", "/subscriptions/{subscription_id}", "subscription", SUBSCRIPTION, args={"id": Path("subscription_id")}),
    Row("PUT", "/subscriptions/{subscription_id}", "updateSubscription", SUBSCRIPTION,
        args={"id": Path("subscription_id"), "input": Body(allow=SUBSCRIPTION_UPDATE_FIELDS)}),
    Row("POST", "/subscriptions/{subscription_id}/cancel", "cancelSubscription", SUBSCRIPTION,
        args={"id": Path("subscription_id"), "input": Body(allow=("cancel_option", "cancellation_date"))}),
    Row("POST", "/subscriptions/{subscription_id}/unschedule_cancellation", "unscheduleSubscriptionCancellation",
        SUBSCRIPTION, args={"id": Path("subscription_id")}),
    Row("POST", "/subscriptions/{subscription_id}/schedule_plan_change", "schedulePlanChange", SUBSCRIPTION,
        args={"id": Path("subscription_id"), "input": Body(allow=PLAN_CHANGE_FIELDS)}),
    Row("POST", "/subscriptions/{subscription_id}/unschedule_pending_plan_changes", "unschedulePendingPlanChanges",
        SUBSCRIPTION, args={"id": Path("subscription_id")}),
    Row("POST", "/subscriptions/{subscription_id}/price_quantity", "changeFixedFeeQuantity", SUBSCRIPTION,
        args={"id": Path("subscription_id"), "input": Body(allow=FIXED_FEE_QUANTITY_FIELDS)}),
    # The path Orb's SDKs call (update_fixed_fee_quantity); the same operation as price_quantity.
    Row("POST", "/subscriptions/{subscription_id}/update_fixed_fee_quantity", "changeFixedFeeQuantity", SUBSCRIPTION,
        args={"id": Path("subscription_id"), "input": Body(allow=FIXED_FEE_QUANTITY_FIELDS)}),
    Row("POST", "/subscriptions/{subscription_id}/unschedule_fixed_fee_quantity_updates",
        "unscheduleFixedFeeQuantityUpdates", SUBSCRIPTION,
        args={"id": Path("subscription_id"), "priceId": BodyField("price_id")}),
    Row("GET", "/subscriptions/{subscription_id}/schedule", "subscriptionSchedule", page_of(SUBSCRIPTION_SCHEDULE),
        args={"id": Path("subscription_id"), **PAGE_ARGS}),
    Row("POST", "/ingest", "ingestEvents", INGEST_RESULT,
        args={"input": Body(allow=("events",)), "debug": Query("debug", convert=query_bool),
              "backfillId": Query("backfill_id")}),
    Row("POST", "/prices/evaluate", "priceEvaluations", PRICE_EVALUATION,
        args={"input": Body(allow=("timeframe_start", "timeframe_end", "customer_id", "external_customer_id",
                                   "price_evaluations"))},
        envelope=lambda data, _inputs: {"data": data}),
    Row("POST", "/events/search", "events", EVENT,
        args={"eventIds": BodyField("event_ids"), "timeframeStart": BodyField("timeframe_start"),
              "timeframeEnd": BodyField("timeframe_end")},
        envelope=lambda data, _inputs: {"data": data}),
    Row("GET", "/events/volume", "eventVolume", VOLUME_BUCKET,
        args={"timeframeStart": Query("timeframe_start"), "timeframeEnd": Query("timeframe_end")},
        envelope=lambda data, _inputs: {"data": data}),
    Row("POST", "/events/backfills", "createBackfill", BACKFILL, status=201,
        args={"input": Body(allow=BACKFILL_FIELDS)}),
    Row("GET", "/events/backfills", "backfills", page_of(BACKFILL),
        args={**PAGE_ARGS, "status": Query("status"), "customerId": Query("customer_id")}),
    Row("GET", "/events/backfills/{backfill_id}", "backfill", BACKFILL, args={"id": Path("backfill_id")}),
    Row("POST", "/events/backfills/{backfill_id}/close", "closeBackfill", BACKFILL, args={"id": Path("backfill_id")}),
    Row("POST", "/events/backfills/{backfill_id}/revert", "revertBackfill", BACKFILL,
        args={"id": Path("backfill_id")}),
    # The API reference's path, and the one Orb's SDKs call (`events.update`).
    Row("PUT", "/events/{event_id}/amend", "amendEvent", "amended",
        args={"eventId": Path("event_id"), "input": Body(allow=EVENT_AMEND_FIELDS)}),
    Row("PUT", "/events/{event_id}", "amendEvent", "amended",
        args={"eventId": Path("event_id"), "input": Body(allow=EVENT_AMEND_FIELDS)}),
    Row("PUT", "/events/{event_id}/deprecate", "deprecateEvent", "deprecated", args={"eventId": Path("event_id")}),
]

# Invoices (issue 5). `upcoming` comes before `{invoice_id}` so it is not read as an id.
INVOICE_LIST_ARGS = {**PAGE_ARGS, "customerId": Query("customer_id"), "subscriptionId": Query("subscription_id"),
                     "externalCustomerId": Query("external_customer_id"), "status": engine.SingleListQuery("status")}
ROWS += [
    Row("GET", "/invoices", "invoices", page_of(INVOICE), args=INVOICE_LIST_ARGS),
    Row("POST", "/invoices", "createInvoice", INVOICE, status=201, args={"input": Body(allow=INVOICE_FIELDS)}),
    Row("GET", "/invoices/upcoming", "upcomingInvoice", UPCOMING_INVOICE,
        args={"subscriptionId": Query("subscription_id")}, envelope=upcoming_or_refused),
    Row("GET", "/invoices/{invoice_id}", "invoice", INVOICE, args={"id": Path("invoice_id")}),
    Row("POST", "/invoices/{invoice_id}/issue", "issueInvoice", INVOICE,
        args={"id": Path("invoice_id"), "synchronous": BodyField("synchronous")}),
    Row("POST", "/invoices/{invoice_id}/void", "voidInvoice", INVOICE, args={"id": Path("invoice_id")}),
    Row("POST", "/invoices/{invoice_id}/mark_paid", "markInvoicePaid", INVOICE,
        args={"id": Path("invoice_id"), "input": Body(allow=("payment_received_date", "external_id", "notes"))}),
]

# Usage and costs: Orb wraps both lists in {"data": [...]}.
WINDOW_ARGS = {"timeframeStart": Query("timeframe_start"), "timeframeEnd": Query("timeframe_end"),
               "viewMode": Query("view_mode")}
ROWS += [
    Row("GET", "/subscriptions/{subscription_id}/usage", "subscriptionUsage", USAGE,
        args={"id": Path("subscription_id"), **WINDOW_ARGS, "granularity": Query("granularity"),
              "billableMetricId": Query("billable_metric_id"), "groupBy": Query("group_by"),
              "secondDimensionKey": Query("second_dimension_key")},
        envelope=usage_envelope),
    Row("GET", "/subscriptions/{subscription_id}/costs", "subscriptionCosts", COSTS,
        args={"id": Path("subscription_id"), **WINDOW_ARGS}, envelope=lambda data, _inputs: {"data": data}),
    Row("GET", "/customers/{customer_id}/costs", "customerCosts", COSTS,
        args={"id": Path("customer_id"), **WINDOW_ARGS}, envelope=lambda data, _inputs: {"data": data}),
    Row("GET", "/customers/external_customer_id/{external_customer_id}/costs", "customerCosts", COSTS,
        args={"externalCustomerId": Path("external_customer_id"), **WINDOW_ARGS},
        envelope=lambda data, _inputs: {"data": data}),
]
ROWS.append(Row("POST", "/subscriptions/{subscription_id}/update_trial", "updateTrial", SUBSCRIPTION,
                args={"id": Path("subscription_id"), "input": Body(allow=("trial_end_date", "shift"))}))
ROWS.append(Row("POST", "/subscriptions/{subscription_id}/trigger_phase", "triggerPhase", SUBSCRIPTION,
                args={"id": Path("subscription_id"),
                      "input": Body(allow=("effective_date", "allow_invoice_credit_or_void"))}))
