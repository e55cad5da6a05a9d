"""Invoices on Orb's /v1, the graph and JSON-RPC: a one-off invoice created, issued and marked paid;
the void rules; list filters and pages; bad input named; the upcoming (live) invoice; tenancy."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domains.billing.periods import billing_period_for


async def _call(client, key, method, path, body=None):
    response = await client.request(method, path, json=body, headers={"Authorization": f"Bearer {key}"})
    return response.status, await response.json()


async def _rpc(client, key, method, params):
    response = await client.post("/", json={"jsonrpc": "2.0", "method": method, "params": params, "id": 1},
                                 headers={"X-Api-Key": key})
    assert response.status == 200
    return await response.json()


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def _customer(client, key, external="acme"):
    status, customer = await _call(client, key, "POST", "/v1/customers", {
        "name": "Acme", "email": "billing@acme.com", "external_customer_id": external})
    assert status == 201, customer
    return customer


async def _one_off(client, key, customer, **extra):
    _, item = await _call(client, key, "POST", "/v1/items", {"name": "Consulting"})
    body = {"customer_id": customer["id"], "currency": "USD", "invoice_date": "2024-03-01T00:00:00Z",
            "net_terms": 30, "memo": "March work", "metadata": {"po": "PO-7"},
            "line_items": [
                {"name": "Consulting", "quantity": 3, "unit_config": {"unit_amount": "150.00"}, "item_id": item["id"],
                 "model_type": "unit", "start_date": "2024-02-01", "end_date": "2024-02-29"},
                {"name": "Setup", "quantity": "1", "unit_config": {"unit_amount": "99.995"}, "item_id": item["id"],
                 "start_date": "2024-02-01", "end_date": "2024-02-01"}],
            **extra}
    status, invoice = await _call(client, key, "POST", "/v1/invoices", body)
    assert status == 201, invoice
    return invoice, item


async def test_one_off_created_issued_then_paid_in_orbs_shape(client, tenant):
    customer = await _customer(client, tenant.key)
    invoice, item = await _one_off(client, tenant.key, customer)
    assert {k: invoice[k] for k in ("status", "invoice_number", "invoice_source", "currency", "invoice_date",
                                    "due_date", "issued_at", "memo", "metadata", "subtotal", "total",
                                    "amount_due", "subscription", "will_auto_issue")} == {
        "status": "draft", "invoice_number": "", "invoice_source": "one_off", "currency": "USD",
        "invoice_date": "2024-03-01T00:00:00Z", "due_date": None, "issued_at": None, "memo": "March work",
        "metadata": {"po": "PO-7"}, "subtotal": "550.00", "total": "550.00", "amount_due": "550.00",
        "subscription": None, "will_auto_issue": False}
    assert invoice["customer"] == {"id": customer["id"], "external_customer_id": "acme"}
    first, second = invoice["line_items"]
    assert {k: first[k] for k in ("name", "quantity", "amount", "subtotal", "adjusted_subtotal", "start_date",
                                  "end_date", "credits_applied", "adjustments", "sub_line_items", "tax_amounts")} == {
        "name": "Consulting", "quantity": "3.00", "amount": "450.00", "subtotal": "450.00",
        "adjusted_subtotal": "450.00", "start_date": "2024-02-01T00:00:00Z", "end_date": "2024-02-29T00:00:00Z",
        "credits_applied": "0.00", "adjustments": [], "sub_line_items": [], "tax_amounts": []}
    assert second["amount"] == "100.00"  # 99.995 rounded half up to the cent
    # A one-off line's price is its own unit price, shown under the line's id.
    assert first["price"]["id"] == first["id"] and first["price"]["model_type"] == "unit"
    assert first["price"]["unit_config"] == {"unit_amount": "150"} and first["price"]["cadence"] == "one_time"
    assert first["price"]["item"] == {"id": item["id"], "name": "Consulting"}
    assert invoice["credit_notes"] == [] and invoice["discount"] is None and invoice["invoice_pdf"] is None

    path = f"/v1/invoices/{invoice['id']}"
    status, fetched = await _call(client, tenant.key, "GET", path)
    assert status == 200 and fetched == invoice
    status, issued = await _call(client, tenant.key, "POST", f"{path}/issue", {"synchronous": True})
    assert status == 200, issued
    assert issued["status"] == "issued" and issued["invoice_number"] == "1" and issued["issued_at"] is not None
    issued_at = datetime.fromisoformat(issued["issued_at"])
    assert (datetime.fromisoformat(issued["due_date"]) - issued_at).days == 30
    status, paid = await _call(client, tenant.key, "POST", f"{path}/mark_paid", {
        "payment_received_date": "2024-03-15", "external_id": "wire-42", "notes": "paid by wire"})
    assert status == 200, paid
    assert paid["status"] == "paid" and paid["payment_received_at"] == "2024-03-15T00:00:00Z"
    assert paid["paid_at"] is not None and paid["invoice_number"] == "1"
    graph = await client.post("/graphql", headers=tenant.bearer, json={
        "query": "query($id: ID!) { invoice(id: $id) { status invoiceNumber paymentReceivedDate externalId notes "
                 "customer { id } subscription { id } lineItems { name amount } total } }",
        "variables": {"id": invoice["id"]}})
    assert (await graph.json())["data"]["invoice"] == {
        "status": "paid", "invoiceNumber": "1", "paymentReceivedDate": "2024-03-15", "externalId": "wire-42",
        "notes": "paid by wire", "customer": {"id": customer["id"]}, "subscription": None,
        "lineItems": [{"name": "Consulting", "amount": "450.00"}, {"name": "Setup", "amount": "100.00"}],
        "total": "550.00"}


async def test_void_rules_and_refused_transitions_change_nothing(client, tenant):
    customer = await _customer(client, tenant.key)
    draft, _ = await _one_off(client, tenant.key, customer)
    path = f"/v1/invoices/{draft['id']}"
    for verb, body in (("void", None), ("mark_paid", {"payment_received_date": "2024-03-15"})):
        status, error = await _call(client, tenant.key, "POST", f"{path}/{verb}", body)
        assert status == 400 and error["type"].endswith("400-constraint-violation"), error
        assert error["validation_errors"][0]["field"] == "status" and "draft" in error["detail"]
    assert (await _call(client, tenant.key, "GET", path))[1] == draft
    _, issued = await _call(client, tenant.key, "POST", f"{path}/issue")
    status, voided = await _call(client, tenant.key, "POST", f"{path}/void")
    assert status == 200 and voided["status"] == "void" and voided["voided_at"] is not None
    assert voided["invoice_number"] == issued["invoice_number"]
    for verb, body in (("void", None), ("issue", None), ("mark_paid", {"payment_received_date": "2024-03-15"})):
        status, error = await _call(client, tenant.key, "POST", f"{path}/{verb}", body)
        assert status == 400 and error["validation_errors"][0]["field"] == "status", error
    assert (await _call(client, tenant.key, "GET", path))[1] == voided
    # A paid invoice cannot be voided either.
    other, _ = await _one_off(client, tenant.key, customer, will_auto_issue=True)
    assert other["status"] == "issued" and other["invoice_number"] == "2"
    await _call(client, tenant.key, "POST", f"/v1/invoices/{other['id']}/mark_paid",
                {"payment_received_date": "2024-03-20"})
    status, error = await _call(client, tenant.key, "POST", f"/v1/invoices/{other['id']}/void")
    assert status == 400 and "paid" in error["detail"]


async def test_list_filters_and_pages(client, tenant):
    acme = await _customer(client, tenant.key)
    globex = await _customer(client, tenant.key, external="globex")
    made = []
    for customer in (acme, globex, acme):
        invoice, _ = await _one_off(client, tenant.key, customer)
        made.append(invoice["id"])
    await _call(client, tenant.key, "POST", f"/v1/invoices/{made[2]}/issue")
    status, page = await _call(client, tenant.key, "GET", "/v1/invoices?limit=2")
    assert status == 200 and [i["id"] for i in page["data"]] == made[::-1][:2]
    assert page["pagination_metadata"]["has_more"] is True
    cursor = page["pagination_metadata"]["next_cursor"]
    _, rest = await _call(client, tenant.key, "GET", f"/v1/invoices?limit=2&cursor={cursor}")
    assert [i["id"] for i in rest["data"]] == [made[0]] and rest["pagination_metadata"]["has_more"] is False
    _, by_customer = await _call(client, tenant.key, "GET", f"/v1/invoices?customer_id={acme['id']}")
    assert [i["id"] for i in by_customer["data"]] == [made[2], made[0]]
    _, drafts = await _call(client, tenant.key, "GET", f"/v1/invoices?customer_id={acme['id']}&status=draft")
    assert [i["id"] for i in drafts["data"]] == [made[0]]
    _, drafts_sdk_style = await _call(client, tenant.key, "GET", f"/v1/invoices?customer_id={acme['id']}&status[]=draft")
    assert drafts_sdk_style == drafts
    _, by_external = await _call(client, tenant.key, "GET", "/v1/invoices?external_customer_id=globex")
    assert [i["id"] for i in by_external["data"]] == [made[1]]
    _, unknown_external = await _call(client, tenant.key, "GET", "/v1/invoices?external_customer_id=nobody")
    assert unknown_external["data"] == []
    _, none = await _call(client, tenant.key, "GET", "/v1/invoices?subscription_id=nope")
    assert none["data"] == []
    for query, field in (("status=sent", "status"), ("status[]=draft&status[]=paid", "status"), ("limit=0", "limit"), ("limit=ten", "limit"),
                         ("cursor=garbage", "cursor")):
        status, error = await _call(client, tenant.key, "GET", f"/v1/invoices?{query}")
        assert status == 400 and error["validation_errors"][0]["field"] == field, (query, error)


@pytest.mark.parametrize(("change", "field"), [
    ({"customer_id": "nope"}, "customer_id"),
    ({"currency": "dollars"}, "currency"),
    ({"currency": None}, "currency"),
    ({"invoice_date": "March"}, "invoice_date"),
    ({"net_terms": -1}, "net_terms"),
    ({"line_items": []}, "line_items"),
    ({"line_items": [{"name": "X", "quantity": "two", "unit_config": {"unit_amount": "1"}}]},
     "line_items[0].quantity"),
    ({"line_items": [{"name": "X", "quantity": 1, "unit_config": {}}]}, "line_items[0].unit_config.unit_amount"),
    ({"line_items": [{"name": "X", "quantity": 1, "unit_config": {"unit_amount": "1"}, "model_type": "tiered"}]},
     "line_items[0].model_type"),
    ({"line_items": [{"name": "X", "quantity": 1, "unit_config": {"unit_amount": "1"}, "colour": "red"}]},
     "line_items[0].colour"),
    ({"due_date": "2024-04-01"}, "due_date"),
    ({"discount": {"discount_type": "percentage"}}, "discount"),
])
async def test_bad_one_offs_are_400s_naming_the_field_and_write_nothing(client, tenant, change, field):
    customer = await _customer(client, tenant.key)
    body = {"customer_id": customer["id"], "currency": "USD", "invoice_date": "2024-03-01",
            "line_items": [{"name": "X", "quantity": 1, "unit_config": {"unit_amount": "1"}}], **change}
    status, error = await _call(client, tenant.key, "POST", "/v1/invoices", body)
    assert status == 400 and error["type"].endswith("400-request-validation-errors"), error
    assert error["validation_errors"][0]["field"] == field, error
    assert (await _call(client, tenant.key, "GET", "/v1/invoices"))[1]["data"] == []


async def test_bad_lifecycle_bodies_are_named(client, tenant):
    customer = await _customer(client, tenant.key)
    invoice, _ = await _one_off(client, tenant.key, customer, will_auto_issue=True)
    path = f"/v1/invoices/{invoice['id']}"
    for verb, body, field in (("mark_paid", {}, "payment_received_date"),
                              ("mark_paid", {"payment_received_date": "yesterday"}, "payment_received_date"),
                              ("mark_paid", {"payment_received_date": "2024-03-01", "amount": "1"}, "amount"),
                              ("issue", {"synchronous": "yes"}, "synchronous")):
        status, error = await _call(client, tenant.key, "POST", f"{path}/{verb}", body)
        assert status == 400 and error["validation_errors"][0]["field"] == field, (verb, body, error)
    assert (await _call(client, tenant.key, "GET", path))[1] == invoice


async def test_another_tenants_invoice_is_not_found(client, tenant, other_tenant):
    theirs, _ = await _one_off(client, other_tenant.key, await _customer(client, other_tenant.key))
    for method, suffix, body in (("GET", "", None), ("POST", "/issue", None), ("POST", "/void", None),
                                 ("POST", "/mark_paid", {"payment_received_date": "2024-03-01"})):
        status, error = await _call(client, tenant.key, method, f"/v1/invoices/{theirs['id']}{suffix}", body)
        assert status == 404 and error["type"].endswith("404-resource-not-found"), error
    assert (await _call(client, tenant.key, "GET", "/v1/invoices"))[1]["data"] == []
    status, still = await _call(client, other_tenant.key, "GET", f"/v1/invoices/{theirs['id']}")
    assert status == 200 and still == theirs


async def test_upcoming_invoice_is_the_live_draft_of_the_running_period(client, tenant):
    _, item = await _call(client, tenant.key, "POST", "/v1/items", {"name": "Platform"})
    _, plan = await _call(client, tenant.key, "POST", "/v1/plans", {
        "name": "Pro", "currency": "USD", "net_terms": 15, "prices": [
            {"name": "Platform fee", "item_id": item["id"], "cadence": "monthly", "model_type": "unit",
             "unit_config": {"unit_amount": "49.00"}, "fixed_price_quantity": "1"}]})
    customer = await _customer(client, tenant.key)
    _, sub = await _call(client, tenant.key, "POST", "/v1/subscriptions", {
        "customer_id": customer["id"], "plan_id": plan["id"], "start_date": "2024-01-31T00:00:00Z"})
    period = billing_period_for(datetime(2024, 1, 31, tzinfo=UTC), "monthly", datetime.now(UTC))
    status, upcoming = await _call(client, tenant.key, "GET", f"/v1/invoices/upcoming?subscription_id={sub['id']}")
    assert status == 200, upcoming
    assert upcoming["id"] == f"upcoming_{sub['id']}_{period.start:%Y%m%d}"
    assert "invoice_date" not in upcoming and upcoming["target_date"] == _iso(period.end)
    assert {k: upcoming[k] for k in ("status", "invoice_number", "invoice_source", "subtotal", "total",
                                     "amount_due", "due_date", "subscription", "currency")} == {
        "status": "draft", "invoice_number": "", "invoice_source": "subscription", "subtotal": "49.00",
        "total": "49.00", "amount_due": "49.00", "due_date": None, "subscription": {"id": sub["id"]},
        "currency": "USD"}
    [line] = upcoming["line_items"]
    assert line["name"] == "Platform fee" and line["amount"] == "49.00" and line["quantity"] == "1.00"
    assert line["price"]["id"] == plan["prices"][0]["id"] and line["id"] == f"{upcoming['id']}_0"
    assert line["start_date"] == _iso(period.start) and line["end_date"] == _iso(period.end)
    # The upcoming invoice is not stored: it is neither fetchable by id nor listed.
    assert (await _call(client, tenant.key, "GET", f"/v1/invoices/{upcoming['id']}"))[0] == 404
    assert (await _call(client, tenant.key, "GET", "/v1/invoices"))[1]["data"] == []
    rpc = await _rpc(client, tenant.key, "invoices.upcoming", {"subscription_id": sub["id"]})
    assert rpc["result"] == upcoming
    status, error = await _call(client, tenant.key, "GET", "/v1/invoices/upcoming")
    assert status == 400 and error["validation_errors"][0]["field"] == "subscription_id", error
    status, error = await _call(client, tenant.key, "GET", "/v1/invoices/upcoming?subscription_id=nope")
    assert status == 404 and error["type"].endswith("404-resource-not-found"), error
    _, later = await _call(client, tenant.key, "POST", "/v1/subscriptions", {
        "customer_id": customer["id"], "plan_id": plan["id"], "start_date": "2099-01-01T00:00:00Z"})
    status, error = await _call(client, tenant.key, "GET", f"/v1/invoices/upcoming?subscription_id={later['id']}")
    assert status == 400 and error["type"].endswith("400-constraint-violation"), error
    assert error["validation_errors"][0]["field"] == "subscription_id"
    refused = await _rpc(client, tenant.key, "invoices.upcoming", {"subscription_id": later["id"]})
    assert refused["error"]["data"]["field"] == "subscription_id", refused
    graph = await client.post("/graphql", headers=tenant.bearer, json={
        "query": "query($id: ID!) { upcomingInvoice(subscriptionId: $id) { id } }", "variables": {"id": later["id"]}})
    assert (await graph.json()) == {"data": {"upcomingInvoice": None}}


async def test_rpc_methods_match_the_orb_rows(client, tenant):
    customer = await _customer(client, tenant.key)
    _, item = await _call(client, tenant.key, "POST", "/v1/items", {"name": "Consulting"})
    created = await _rpc(client, tenant.key, "invoices.create", {
        "customer_id": customer["id"], "currency": "USD", "invoice_date": "2024-03-01",
        "line_items": [{"name": "Hours", "quantity": 2.5, "unit_config": {"unit_amount": "80"}, "item_id": item["id"]}]})
    invoice = created["result"]
    assert invoice["status"] == "draft" and invoice["total"] == "200.00"
    assert (await _call(client, tenant.key, "GET", f"/v1/invoices/{invoice['id']}"))[1] == invoice
    issued = (await _rpc(client, tenant.key, "invoices.issue", {"id": invoice["id"], "synchronous": False}))["result"]
    assert issued == (await _call(client, tenant.key, "GET", f"/v1/invoices/{invoice['id']}"))[1]
    assert issued["status"] == "issued" and issued["invoice_number"] == "1"
    paid = (await _rpc(client, tenant.key, "invoices.mark_paid",
                       {"id": invoice["id"], "payment_received_date": "2024-03-02", "external_id": "x"}))["result"]
    assert paid["status"] == "paid"
    listed = (await _rpc(client, tenant.key, "invoices.list", {"status": "paid"}))["result"]
    assert listed == (await _call(client, tenant.key, "GET", "/v1/invoices?status=paid"))[1]
    assert [i["id"] for i in listed["data"]] == [invoice["id"]]
    assert (await _rpc(client, tenant.key, "invoices.get", {"id": invoice["id"]}))["result"] == paid
    voided = await _rpc(client, tenant.key, "invoices.void", {"id": invoice["id"]})
    assert "error" in voided and voided["error"]["data"]["field"] == "status", voided
    bad = await _rpc(client, tenant.key, "invoices.create", {"currency": "USD", "invoice_date": "2024-03-01",
                                                            "line_items": [], "customer_id": customer["id"]})
    assert bad["error"]["data"]["field"] == "line_items", bad


async def _graph(client, tenant, query, variables):
    response = await client.post("/graphql", headers=tenant.bearer, json={"query": query, "variables": variables})
    return await response.json()


async def test_the_graph_lifecycle_with_typed_errors(client, tenant):
    customer = await _customer(client, tenant.key)
    created = await _graph(client, tenant, """
        mutation($input: InvoiceInput!) { createInvoice(input: $input) {
          id status invoiceNumber invoiceSource total lineItems { name quantity amount price { cadence unitConfig } } } }
    """, {"input": {"customerId": customer["id"], "currency": "EUR", "invoiceDate": "2024-05-01",
                    "lineItems": [{"name": "Audit", "quantity": "0.5", "unitConfig": {"unit_amount": "1000"}}]}})
    invoice = created["data"]["createInvoice"]
    assert {k: invoice[k] for k in ("status", "invoiceNumber", "invoiceSource", "total")} == {
        "status": "draft", "invoiceNumber": "", "invoiceSource": "one_off", "total": "500.00"}
    # No item given: the line has no price of its own to show.
    assert invoice["lineItems"] == [{"name": "Audit", "quantity": "0.50", "amount": "500.00", "price": None}]
    refused = await _graph(client, tenant, "mutation($id: ID!) { voidInvoice(id: $id) { status } }",
                           {"id": invoice["id"]})
    assert refused["errors"][0]["extensions"] == {"code": "CONSTRAINT_VIOLATION", "field": "status"}
    issued = await _graph(client, tenant, "mutation($id: ID!) { issueInvoice(id: $id) { status invoiceNumber } }",
                          {"id": invoice["id"]})
    assert issued["data"]["issueInvoice"] == {"status": "issued", "invoiceNumber": "1"}
    paid = await _graph(client, tenant, """
        mutation($id: ID!, $input: MarkInvoicePaidInput!) { markInvoicePaid(id: $id, input: $input) {
          status paymentReceivedDate paymentReceivedAt externalId notes } }
    """, {"id": invoice["id"], "input": {"paymentReceivedDate": "2024-05-03", "notes": "cheque"}})
    assert paid["data"]["markInvoicePaid"] == {"status": "paid", "paymentReceivedDate": "2024-05-03",
                                               "paymentReceivedAt": "2024-05-03T00:00:00Z", "externalId": None,
                                               "notes": "cheque"}
    listed = await _graph(client, tenant, """
        query($status: String) { invoices(first: 5, status: $status) { nodes { id } pageInfo { hasNextPage } } }
    """, {"status": "paid"})
    assert listed["data"]["invoices"] == {"nodes": [{"id": invoice["id"]}], "pageInfo": {"hasNextPage": False}}
    missing = await _graph(client, tenant, "query($id: ID!) { invoice(id: $id) { id } }", {"id": "nope"})
    assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    bad = await _graph(client, tenant, "mutation($input: InvoiceInput!) { createInvoice(input: $input) { id } }",
                       {"input": {"customerId": customer["id"], "currency": "EUR", "invoiceDate": "2024-05-01",
                                  "netTerms": 400, "lineItems": [{"name": "A", "quantity": 1, "unitConfig": {}}]}})
    assert bad["errors"][0]["extensions"]["field"] == "net_terms"
