"""Orb's `/v1` as a table of rows over the graph (paths, statuses and shapes of Orb's API reference)."""

from __future__ import annotations

from gateway.faces.engine import Body, Path, Query, Row, query_int
from gateway.faces.orb.shapes import CUSTOMER, page_of

ROWS: list[Row] = [
    Row("GET", "/customers", "customers", page_of(CUSTOMER),
        args={"first": Query("limit", convert=query_int), "after": Query("cursor")}),
    Row("POST", "/customers", "createCustomer", CUSTOMER, status=201, args={"input": Body()}),
    Row("GET", "/customers/{customer_id}", "customer", CUSTOMER, args={"id": Path("customer_id")}),
    Row("PUT", "/customers/{customer_id}", "updateCustomer", CUSTOMER,
        args={"id": Path("customer_id"), "input": Body()}),
    Row("DELETE", "/customers/{customer_id}", "deleteCustomer", "id", status=204, args={"id": Path("customer_id")}),
    Row("GET", "/customers/external_customer_id/{external_customer_id}", "customerByExternalId", CUSTOMER,
        args={"externalCustomerId": Path("external_customer_id")}),
    Row("PUT", "/customers/external_customer_id/{external_customer_id}", "updateCustomerByExternalId", CUSTOMER,
        args={"externalCustomerId": Path("external_customer_id"), "input": Body()}),
]
