"""Orb's JSON shapes as GraphQL selections: each alias is Orb's field name."""

from __future__ import annotations

from typing import Any

from domains.errors import ConstraintViolation

_ADDRESS = "line1 line2 city state postal_code: postalCode country"
_MINIFIED = "id external_customer_id: externalCustomerId"

CUSTOMER = f"""
  id
  external_customer_id: externalCustomerId
  name
  email
  currency
  timezone
  balance
  payment_provider: paymentProvider
  payment_provider_id: paymentProviderId
  auto_collection: autoCollection
  auto_issuance: autoIssuance
  exempt_from_automated_tax: exemptFromAutomatedTax
  email_delivery: emailDelivery
  additional_emails: additionalEmails
  metadata
  billing_address: billingAddress {{ {_ADDRESS} }}
  shipping_address: shippingAddress {{ {_ADDRESS} }}
  tax_id: taxId {{ country type value }}
  accounting_sync_configuration: accountingSyncConfiguration {{
    excluded accounting_providers: accountingProviders {{ provider_type: providerType
      external_provider_id: externalProviderId }}
  }}
  reporting_configuration: reportingConfiguration {{ exempt }}
  payment_configuration: paymentConfiguration
  portal_url: portalUrl
  hierarchy {{ parent {{ {_MINIFIED} }} children {{ {_MINIFIED} }} }}
  created_at: createdAt
"""

ITEM = """
  id name metadata created_at: createdAt archived_at: archivedAt
  external_connections: externalConnections {
    external_connection_name: externalConnectionName external_entity_id: externalEntityId }
"""

METRIC = f"""
  id name description sql status metadata item {{ {ITEM} }}
"""

PRICE = """
  id external_price_id: externalPriceId name price_type: priceType model_type: modelType cadence currency
  fixed_price_quantity: fixedPriceQuantity metadata created_at: createdAt billing_mode: billingMode
  billing_cycle_configuration: billingCycleConfiguration { duration duration_unit: durationUnit }
  item { id name } billable_metric: billableMetric { id }
  unit_config: unitConfig tiered_config: tieredConfig package_config: packageConfig matrix_config: matrixConfig
  bulk_config: bulkConfig tiered_package_config: tieredPackageConfig grouped_tiered_config: groupedTieredConfig
  threshold_total_amount_config: thresholdTotalAmountConfig plan_phase_order: planPhaseOrder
"""

PLAN = f"""
  id external_plan_id: externalPlanId name description status currency net_terms: netTerms metadata
  created_at: createdAt prices {{ {PRICE} }} invoicing_currency: invoicingCurrency version adjustments
  trial_config: trialConfig {{ trial_period: trialPeriod trial_period_unit: trialPeriodUnit }}
  product {{ id name created_at: createdAt }}
  plan_phases: planPhases {{ id order name description duration duration_unit: durationUnit discount minimum maximum
    minimum_amount: minimumAmount maximum_amount: maximumAmount }}
"""

_PRICE_INTERVAL = f"""
  id start_date: startDate end_date: endDate price {{ {PRICE} }} billing_cycle_day: billingCycleDay
  can_defer_billing: canDeferBilling current_billing_period_start_date: currentBillingPeriodStartDate
  current_billing_period_end_date: currentBillingPeriodEndDate filter usage_customer_ids: usageCustomerIds
  fixed_fee_quantity_transitions: fixedFeeQuantityTransitions {{
    price_id: priceId effective_date: effectiveDate quantity }}
"""

SUBSCRIPTION = f"""
  id name customer {{ {CUSTOMER} }} plan {{ {PLAN} }} status start_date: startDate end_date: endDate
  price_intervals: priceIntervals {{ {_PRICE_INTERVAL} }}
  current_billing_period_start_date: currentBillingPeriodStartDate
  current_billing_period_end_date: currentBillingPeriodEndDate net_terms: netTerms auto_collection: autoCollection
  auto_issuance: autoIssuance default_invoice_memo: defaultInvoiceMemo invoicing_threshold: invoicingThreshold
  pending_subscription_change: pendingSubscriptionChange
  metadata created_at: createdAt billing_cycle_day: billingCycleDay
  billing_cycle_anchor_configuration: billingCycleAnchorConfiguration {{ day month year }}
  trial_info: trialInfo {{ end_date: endDate }} active_plan_phase_order: activePlanPhaseOrder
  redeemed_coupon: redeemedCoupon discount_intervals: discountIntervals adjustment_intervals: adjustmentIntervals
  minimum_intervals: minimumIntervals maximum_intervals: maximumIntervals
  fixed_fee_quantity_schedule: fixedFeeQuantitySchedule {{
    price_id: priceId start_date: startDate end_date: endDate quantity }}
"""

SUBSCRIPTION_SCHEDULE = """
  start_date: startDate end_date: endDate created_at: createdAt
  plan { id external_plan_id: externalPlanId name }
"""

INGEST_RESULT = """
  validation_failed: validationFailed { idempotency_key: idempotencyKey validation_errors: validationErrors }
  debug { ingested duplicate }
"""

PRICE_EVALUATION = """
  price_id: priceId external_price_id: externalPriceId currency quantity amount
"""

EVENT = """
  id customer_id: customerId external_customer_id: externalCustomerId event_name: eventName
  properties timestamp deprecated
"""

BACKFILL = """
  id status events_ingested: eventsIngested created_at: createdAt timeframe_start: timeframeStart
  timeframe_end: timeframeEnd customer_id: customerId close_time: closeTime reverted_at: revertedAt
  replace_existing_events: replaceExistingEvents deprecation_filter: deprecationFilter
"""

EVENT_AMEND_FIELDS = ("event_name", "timestamp", "properties", "customer_id", "external_customer_id")

VOLUME_BUCKET = "timeframe_start: timeframeStart timeframe_end: timeframeEnd count"

PAGINATION = "pagination_metadata: pageInfo { has_more: hasNextPage next_cursor: nextCursor }"


def page_of(item_shape: str) -> str:
    return f"data: nodes {{ {item_shape} }} {PAGINATION}"

_INVOICE_LINE_ITEM = f"""
  id name quantity amount subtotal: amount adjusted_subtotal: amount start_date: startDate end_date: endDate
  price {{ {PRICE} }} credits_applied: creditsApplied partially_invoiced_amount: partiallyInvoicedAmount
  adjustments sub_line_items: subLineItems tax_amounts: taxAmounts grouping filter
  usage_customer_ids: usageCustomerIds
"""

# Orb's Invoice; the upcoming invoice has the same body with target_date in place of invoice_date.
_INVOICE_BODY = f"""
  id invoice_number: invoiceNumber status invoice_source: invoiceSource currency
  customer {{ {_MINIFIED} }} subscription {{ id }}
  created_at: createdAt due_date: dueDate issued_at: issuedAt paid_at: paidAt voided_at: voidedAt
  payment_received_at: paymentReceivedAt memo metadata subtotal total amount_due: amountDue
  line_items: lineItems {{ {_INVOICE_LINE_ITEM} }} hidden_line_item_count: hiddenLineItemCount
  will_auto_issue: willAutoIssue
  auto_collection: autoCollection {{ enabled next_attempt_at: nextAttemptAt num_attempts: numAttempts
    previously_attempted_at: previouslyAttemptedAt }}
  credit_notes: creditNotes customer_balance_transactions: customerBalanceTransactions discounts discount
  payment_attempts: paymentAttempts minimum maximum minimum_amount: minimumAmount maximum_amount: maximumAmount
  billing_address: billingAddress shipping_address: shippingAddress customer_tax_id: customerTaxId
  hosted_invoice_url: hostedInvoiceUrl invoice_pdf: invoicePdf eligible_to_issue_at: eligibleToIssueAt
  scheduled_issue_at: scheduledIssueAt issue_failed_at: issueFailedAt payment_started_at: paymentStartedAt
  payment_failed_at: paymentFailedAt sync_failed_at: syncFailedAt
"""
INVOICE = _INVOICE_BODY + " invoice_date: invoiceDate"
UPCOMING_INVOICE = _INVOICE_BODY + " target_date: invoiceDate"
INVOICE_FIELDS = ("customer_id", "external_customer_id", "currency", "invoice_date", "line_items", "net_terms",
                  "memo", "metadata", "will_auto_issue")


def upcoming_or_refused(data: Any, inputs: Any) -> Any:
    """The graph answers null when a subscription has no running period; Orb's object is never null."""
    if data is None:
        raise ConstraintViolation("the subscription is not active, so it has no upcoming invoice",
                                  field="subscription_id")
    return data

# Usage and costs (domains.billing.usage).
USAGE = """
  billable_metric: billableMetric { id name } view_mode: viewMode
  usage { quantity timeframe_start: timeframeStart timeframe_end: timeframeEnd }
  metric_group: metricGroup { property_key: propertyKey property_value: propertyValue }
"""


def _grouped(inputs: Any) -> bool:
    body = inputs.body if isinstance(inputs.body, dict) else {}
    return inputs.query.get("group_by") is not None or body.get("group_by") is not None


def usage_items(data: Any, inputs: Any) -> Any:
    """Ungrouped usage has no metric_group (Orb's UngroupedSubscriptionUsage); grouped usage has it on each."""
    if _grouped(inputs):
        return data
    return [{k: v for k, v in item.items() if k != "metric_group"} for item in data]


def usage_envelope(data: Any, inputs: Any) -> Any:
    """Orb's {"data": [...]}; grouped, with Orb's pagination_metadata (every group is in the one page).

    Orb's metric_group.property_value is a string: the group of events without the property (null on
    the graph and JSON-RPC) has no place in it, and would make the SDKs read the response with their
    ungrouped model, so this face leaves it out."""
    if _grouped(inputs):
        groups = [entry for entry in data if entry["metric_group"]["property_value"] is not None]
        return {"data": groups, "pagination_metadata": {"has_more": False, "next_cursor": None}}
    return {"data": usage_items(data, inputs)}

COSTS = f"""
  timeframe_start: timeframeStart timeframe_end: timeframeEnd subtotal total
  per_price_costs: perPriceCosts {{ subtotal total quantity price_id: priceId price {{ {PRICE} }} }}
"""
