"""The JSON-RPC method table: each method a row over the graph, params mapped like a REST body."""

from __future__ import annotations

from gateway.faces.engine import Body, BodyField, Row
from gateway.faces.orb.routes import plan_prices_as_sdk_sends_them
from gateway.faces.orb.shapes import (
    BACKFILL,
    COSTS,
    CUSTOMER,
    EVENT,
    INGEST_RESULT,
    INVOICE,
    INVOICE_FIELDS,
    ITEM,
    METRIC,
    PLAN,
    PRICE,
    SUBSCRIPTION,
    SUBSCRIPTION_SCHEDULE,
    UPCOMING_INVOICE,
    USAGE,
    VOLUME_BUCKET,
    page_of,
    upcoming_or_refused,
    usage_items,
)

CUSTOMER_WITH_PROFILE = CUSTOMER + """
  status account_number: accountNumber payment_terms: paymentTerms credit_limit: creditLimit
  contact_first_name: contactFirstName contact_last_name: contactLastName contact_email: contactEmail
  contact_phone: contactPhone notes custom_fields: customFields updated_at: updatedAt
"""

METHODS: list[Row] = [
    Row("customers.list", "", "customers", page_of(CUSTOMER_WITH_PROFILE),
        args={"first": BodyField("limit"), "after": BodyField("cursor"), "status": BodyField("status")}),
    Row("customers.get", "", "customer", CUSTOMER_WITH_PROFILE, args={"id": BodyField("id")}),
    Row("customers.get_by_external_id", "", "customerByExternalId", CUSTOMER_WITH_PROFILE,
        args={"externalCustomerId": BodyField("external_customer_id")}),
    Row("customers.create", "", "createCustomer", CUSTOMER_WITH_PROFILE, args={"input": Body()}),
    Row("customers.update", "", "updateCustomer", CUSTOMER_WITH_PROFILE,
        args={"id": BodyField("id"), "input": Body(exclude=("id",))}),
    Row("customers.delete", "", "deleteCustomer", "id deleted", args={"id": BodyField("id")}),
    Row("items.list", "", "items", page_of(ITEM), args={"first": BodyField("limit"), "after": BodyField("cursor")}),
    Row("items.get", "", "item", ITEM, args={"id": BodyField("id")}),
    Row("items.create", "", "createItem", ITEM, args={"input": Body()}),
    Row("metrics.list", "", "metrics", page_of(METRIC), args={"first": BodyField("limit"), "after": BodyField("cursor")}),
    Row("metrics.get", "", "metric", METRIC, args={"id": BodyField("id")}),
    Row("metrics.create", "", "createMetric", METRIC, args={"input": Body()}),
    Row("prices.list", "", "prices", page_of(PRICE), args={"first": BodyField("limit"), "after": BodyField("cursor")}),
    Row("prices.get", "", "price", PRICE, args={"id": BodyField("id")}),
    Row("prices.get_by_external_id", "", "priceByExternalId", PRICE,
        args={"externalPriceId": BodyField("external_price_id")}),
    Row("prices.create", "", "createPrice", PRICE, args={"input": Body()}),
    Row("plans.list", "", "plans", page_of(PLAN), args={"first": BodyField("limit"), "after": BodyField("cursor")}),
    Row("plans.get", "", "plan", PLAN, args={"id": BodyField("id")}),
    Row("plans.create", "", "createPlan", PLAN, args={"input": Body(normalise=plan_prices_as_sdk_sends_them)}),
    Row("plans.update", "", "updatePlan", PLAN, args={"id": BodyField("id"), "input": Body(exclude=("id",))}),
    Row("subscriptions.list", "", "subscriptions", page_of(SUBSCRIPTION),
        args={"first": BodyField("limit"), "after": BodyField("cursor"), "customerId": BodyField("customer_id"),
              "externalCustomerId": BodyField("external_customer_id"), "status": BodyField("status")}),
    Row("subscriptions.get", "", "subscription", SUBSCRIPTION, args={"id": BodyField("id")}),
    Row("subscriptions.create", "", "createSubscription", SUBSCRIPTION, args={"input": Body()}),
    Row("subscriptions.update", "", "updateSubscription", SUBSCRIPTION,
        args={"id": BodyField("id"), "input": Body(exclude=("id",))}),
    Row("subscriptions.cancel", "", "cancelSubscription", SUBSCRIPTION,
        args={"id": BodyField("id"), "input": Body(exclude=("id",))}),
    Row("subscriptions.unschedule_cancellation", "", "unscheduleSubscriptionCancellation", SUBSCRIPTION,
        args={"id": BodyField("id")}),
    Row("subscriptions.schedule_plan_change", "", "schedulePlanChange", SUBSCRIPTION,
        args={"id": BodyField("id"), "input": Body(exclude=("id",))}),
    Row("subscriptions.unschedule_pending_plan_changes", "", "unschedulePendingPlanChanges", SUBSCRIPTION,
        args={"id": BodyField("id")}),
    Row("subscriptions.update_fixed_fee_quantity", "", "changeFixedFeeQuantity", SUBSCRIPTION,
        args={"id": BodyField("id"), "input": Body(exclude=("id",))}),
    Row("subscriptions.unschedule_fixed_fee_quantity_updates", "", "unscheduleFixedFeeQuantityUpdates", SUBSCRIPTION,
        args={"id": BodyField("id"), "priceId": BodyField("price_id")}),
    Row("subscriptions.schedule", "", "subscriptionSchedule", page_of(SUBSCRIPTION_SCHEDULE),
        args={"id": BodyField("id"), "first": BodyField("limit"), "after": BodyField("cursor")}),
    Row("events.ingest", "", "ingestEvents", INGEST_RESULT,
        args={"input": Body(allow=("events",), exclude=("debug", "backfill_id")), "debug": BodyField("debug"),
              "backfillId": BodyField("backfill_id")}),
    Row("events.search", "", "events", EVENT,
        args={"eventIds": BodyField("event_ids"), "timeframeStart": BodyField("timeframe_start"),
              "timeframeEnd": BodyField("timeframe_end")}),
    Row("events.volume", "", "eventVolume", VOLUME_BUCKET,
        args={"timeframeStart": BodyField("timeframe_start"), "timeframeEnd": BodyField("timeframe_end")}),
    Row("events.amend", "", "amendEvent", "amended",
        args={"eventId": BodyField("event_id"), "input": Body(exclude=("event_id",))}),
    Row("events.deprecate", "", "deprecateEvent", "deprecated", args={"eventId": BodyField("event_id")}),
    Row("events.backfills.create", "", "createBackfill", BACKFILL, args={"input": Body()}),
    Row("events.backfills.list", "", "backfills", page_of(BACKFILL),
        args={"first": BodyField("limit"), "after": BodyField("cursor"), "status": BodyField("status"),
              "customerId": BodyField("customer_id")}),
    Row("events.backfills.get", "", "backfill", BACKFILL, args={"id": BodyField("id")}),
    Row("events.backfills.close", "", "closeBackfill", BACKFILL, args={"id": BodyField("id")}),
    Row("events.backfills.revert", "", "revertBackfill", BACKFILL, args={"id": BodyField("id")}),
]

# Invoices (issue 5): Orb's invoice object, params named as in Orb's bodies.
METHODS += [
    Row("invoices.list", "", "invoices", page_of(INVOICE),
        args={"first": BodyField("limit"), "after": BodyField("cursor"), "customerId": BodyField("customer_id"),
              "subscriptionId": BodyField("subscription_id"), "externalCustomerId": BodyField("external_customer_id"),
              "status": BodyField("status")}),
    Row("invoices.get", "", "invoice", INVOICE, args={"id": BodyField("id")}),
    Row("invoices.upcoming", "", "upcomingInvoice", UPCOMING_INVOICE,
        args={"subscriptionId": BodyField("subscription_id")}, envelope=upcoming_or_refused),
    Row("invoices.create", "", "createInvoice", INVOICE, args={"input": Body(allow=INVOICE_FIELDS)}),
    Row("invoices.issue", "", "issueInvoice", INVOICE,
        args={"id": BodyField("id"), "synchronous": BodyField("synchronous")}),
    Row("invoices.void", "", "voidInvoice", INVOICE, args={"id": BodyField("id")}),
    Row("invoices.mark_paid", "", "markInvoicePaid", INVOICE,
        args={"id": BodyField("id"), "input": Body(allow=("payment_received_date", "external_id", "notes"),
                                                   exclude=("id",))}),
]

# Usage and costs.
_WINDOW = {"timeframeStart": BodyField("timeframe_start"), "timeframeEnd": BodyField("timeframe_end"),
           "viewMode": BodyField("view_mode")}
METHODS += [
    Row("subscriptions.usage", "", "subscriptionUsage", USAGE,
        args={"id": BodyField("id"), **_WINDOW, "granularity": BodyField("granularity"),
              "billableMetricId": BodyField("billable_metric_id"), "groupBy": BodyField("group_by"),
              "secondDimensionKey": BodyField("second_dimension_key")}, envelope=usage_items),
    Row("subscriptions.costs", "", "subscriptionCosts", COSTS, args={"id": BodyField("id"), **_WINDOW}),
    Row("customers.costs", "", "customerCosts", COSTS,
        args={"id": BodyField("id"), "externalCustomerId": BodyField("external_customer_id"), **_WINDOW}),
]
METHODS.append(Row("subscriptions.update_trial", "", "updateTrial", SUBSCRIPTION,
                   args={"id": BodyField("id"), "input": Body(exclude=("id",))}))
METHODS.append(Row("subscriptions.trigger_phase", "", "triggerPhase", SUBSCRIPTION,
                   args={"id": BodyField("id"), "input": Body(exclude=("id",))}))
