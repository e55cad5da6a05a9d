"""Billing: subscriptions, their billing periods and proration."""
