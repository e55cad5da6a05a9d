"""Bad input to today's billing features, on Orb's /v1, the graph and JSON-RPC, both databases.

Each case is one refused request, sent in turn to every face: the answer is a 4xx (never a 500) in that
face's own error shape, names the field where a field is at fault, and leaves the organisation's
subscriptions, plan change rows, plans and prices exactly as they were (no half-written change).
"""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import text

from tests.conftest import make_tenant
from tests.faces.drivers import graphql_input

ORB_TYPES = {
    "validation": "https://docs.withorb.com/reference/error-responses#400-request-validation-errors",
    "not_found": "https://docs.withorb.com/reference/error-responses#404-resource-not-found",
    "constraint": "https://docs.withorb.com/reference/error-responses#400-constraint-violation",
    "conflict": "https://docs.withorb.com/reference/error-responses#409-resource-conflict",
}
ORB_STATUS = {"validation": 400, "not_found": 404, "constraint": 400, "conflict": 409}
GRAPHQL_CODES = {"validation": "VALIDATION_FAILED", "not_found": "NOT_FOUND", "constraint": "CONSTRAINT_VIOLATION",
                 "conflict": "CONFLICT"}
RPC_CODES = {"validation": -32602, "not_found": -32004, "constraint": -32010, "conflict": -32009}

PHASES = [{"order": 1, "duration": 10, "duration_unit": "annual"}, {"order": 2, "duration": None}]
HUGE = 10**30
LONG = "x" * 5000

# Per operation: Orb's method and path, the JSON-RPC method, and the graph's mutation (input type).
OPERATIONS = {
    "create": ("POST", "/subscriptions", "subscriptions.create", "createSubscription", "SubscriptionInput!"),
    "update": ("PUT", "/subscriptions/{id}", "subscriptions.update", "updateSubscription", "SubscriptionUpdateInput!"),
    "change": ("POST", "/subscriptions/{id}/schedule_plan_change", "subscriptions.schedule_plan_change",
               "schedulePlanChange", "PlanChangeInput!"),
    "trigger": ("POST", "/subscriptions/{id}/trigger_phase", "subscriptions.trigger_phase", "triggerPhase",
                "TriggerPhaseInput"),
    "plan": ("POST", "/plans", "plans.create", "createPlan", "PlanInput!"),
}
_ids = itertools.count(1)


async def _call(client, key, method, path, body=None, params=None):
    response = await client.request(method, path, json=body, params=params,
                                    headers={"Authorization": f"Bearer {key}"})
    return response.status, await response.json()


async def _made(client, key, path, body):
    status, made = await _call(client, key, "POST", "/v1" + path, body)
    assert status == 201, made
    return made


def _fee(item_id, name, order=None, metric_id=None):
    price = {"name": name, "item_id": item_id, "cadence": "monthly", "model_type": "unit",
             "unit_config": {"unit_amount": "1.00"}}
    price.update({"billable_metric_id": metric_id} if metric_id else {"fixed_price_quantity": "1"})
    return price if order is None else {"price": price, "plan_phase_order": order}


class World:
    """One organisation's catalog and subscriptions, and a second organisation's, to aim bad ids at."""

    async def build(self, client, tenant, other_tenant, database):
        self.client, self.key, self.database, self.org_id = client, tenant.key, database, tenant.org_id
        self.principal = tenant.principal
        key = self.key
        self.item = await _made(client, key, "/items", {"name": "Seat"})
        self.metric = await _made(client, key, "/metrics", {
            "name": "Tokens", "item_id": self.item["id"], "sql": "SELECT SUM(tokens) FROM events"})
        self.avg_metric = await _made(client, key, "/metrics", {
            "name": "Avg", "item_id": self.item["id"], "sql": "SELECT AVG(tokens) FROM events"})
        self.plain = await _made(client, key, "/plans", {"name": "Plain", "currency": "USD", "prices": [
            _fee(self.item["id"], "Fee"), _fee(self.item["id"], "Tokens", metric_id=self.metric["id"]),
            _fee(self.item["id"], "Avg", metric_id=self.avg_metric["id"])]})
        self.phased = await _made(client, key, "/plans", {
            "name": "Phased", "currency": "USD", "plan_phases": PHASES,
            "prices": [_fee(self.item["id"], "Intro", 1), _fee(self.item["id"], "Platform", 2)]})
        self.eur = await _made(client, key, "/plans", {"name": "Euro", "currency": "EUR",
                                                       "prices": [_fee(self.item["id"], "Fee")]})
        self.customer = await _made(client, key, "/customers", {"name": "Acme", "email": "a@acme.com"})
        self.sub = await self.subscribe(self.plain["id"])
        self.phased_sub = await self.subscribe(self.phased["id"])
        other = other_tenant.key
        other_item = await _made(client, other, "/items", {"name": "Theirs"})
        self.foreign_plan = await _made(client, other, "/plans", {"name": "Theirs", "currency": "USD",
                                                                  "prices": [_fee(other_item["id"], "Fee")]})
        self.foreign_metric = await _made(client, other, "/metrics", {
            "name": "Theirs", "item_id": other_item["id"], "sql": "SELECT SUM(tokens) FROM events"})
        foreign_customer = await _made(client, other, "/customers", {"name": "B", "email": "b@b.com"})
        self.foreign_customer_id = foreign_customer["id"]
        self.foreign_sub = await _made(client, other, "/subscriptions", {
            "customer_id": foreign_customer["id"], "plan_id": self.foreign_plan["id"],
            "start_date": "2024-01-01T00:00:00Z"})
        return self

    async def subscribe(self, plan_id, **extra):
        return await _made(self.client, self.key, "/subscriptions", {
            "customer_id": self.customer["id"], "plan_id": plan_id, "start_date": "2024-01-01T00:00:00Z", **extra})

    async def snapshot(self):
        """Every row a refused call could have touched, as stored."""
        rows = {}
        async with self.database.engine.connect() as conn:
            for table in ("subscriptions", "subscription_plan_changes", "plans", "prices",
                          "subscription_price_quantities"):
                result = await conn.execute(text(f"SELECT * FROM {table} WHERE org_id = :org ORDER BY id"),
                                            {"org": self.org_id})
                rows[table] = [tuple(map(str, row)) for row in result]
        return rows


# Tests whose accepted calls change the world's own subscriptions or add events: each gets a world of its
# own. The others only send refused calls (each checks nothing was written) and share one per database.
FRESH = {"test_trigger_phase_where_there_is_no_next_phase", "test_far_dates_are_an_answer_or_a_refusal",
         "test_a_body_that_is_not_an_object", "test_plan_change_combinations_are_an_answer_or_a_refusal",
         "test_grouped_usage_over_values_of_every_type", "test_float_group_names_are_the_same_on_both_databases"}
_SHARED: dict[str, World] = {}


@pytest.fixture
async def world(request, client, database):
    if request.node.originalname not in FRESH and database.url in _SHARED:
        return _SHARED[database.url]
    built = await World().build(client, await make_tenant(database), await make_tenant(database), database)
    if request.node.originalname not in FRESH:
        _SHARED[database.url] = built
    return built


async def _orb(world, op, target, body):
    method, path, *_ = OPERATIONS[op]
    status, error = await _call(world.client, world.key, method, "/v1" + path.format(id=target), body)
    return status, error


async def _rpc(world, op, target, body):
    params = dict(body) if isinstance(body, dict) else body
    if target is not None and isinstance(params, dict):
        params = {"id": target, **params}
    response = await world.client.post("/", headers={"X-Api-Key": world.key}, json={
        "jsonrpc": "2.0", "id": next(_ids), "method": OPERATIONS[op][2], "params": params})
    return response.status, await response.json()


JSON_INPUTS = ("metadata", "plan_phases", "unit_config")  # JSON scalars of the graph: passed as they are


def _graphql_value(value):
    """The graph's input: names camelCased in input objects (lists of them too), JSON scalars as they are."""
    if isinstance(value, list):
        return [_graphql_value(item) for item in value]
    if not isinstance(value, dict):
        return value
    return {graphql_input({key: None}).popitem()[0]: item if key in JSON_INPUTS else _graphql_value(item)
            for key, item in value.items()}


async def _graphql(world, op, target, body):
    _, _, _, mutation, input_type = OPERATIONS[op]
    head, call = ("$i: " + input_type, "input: $i")
    if target is not None:
        head, call = f"$id: ID!, {head}", f"id: $id, {call}"
    variables = {"i": _graphql_value(body), "id": target}
    response = await world.client.post("/graphql", headers={"Authorization": f"Bearer {world.key}"}, json={
        "query": f"mutation({head}) {{ {mutation}({call}) {{ id }} }}", "variables": variables})
    return response.status, await response.json()


def _names(actual, field):
    """The field itself, or a part of it (billing_cycle_anchor_configuration.day, plan_phases[1].order)."""
    return actual == field or str(actual).startswith((field + ".", field + "["))


def assert_orb_error(status, body, kind, field):
    assert status == ORB_STATUS[kind], (status, body)
    assert set(body) >= {"status", "type", "title", "detail"} and body["status"] == status, body
    assert body["type"] == ORB_TYPES[kind], body
    if field is not None:
        assert _names(body["validation_errors"][0]["field"], field), body


def assert_rpc_error(status, body, kind, field):
    assert status == 200 and "result" not in body, body
    assert body["error"]["code"] == RPC_CODES[kind], body
    if field is not None:
        assert _names(body["error"]["data"]["field"], field), body


def _camel_path(field):
    head, *rest = field.split(".")[0].split("[")[0].split("_")
    return head + "".join(part.title() for part in rest)


def assert_graphql_error(status, body, kind, field):
    assert status == 200 and not any((body.get("data") or {}).values()), body
    assert body.get("errors"), body
    extensions = body["errors"][0]["extensions"]
    if extensions["code"] == "GRAPHQL_VALIDATION_FAILED":
        # A value of the wrong type for the schema: refused before any resolver, the message naming it.
        assert kind == "validation", body
        if field is not None:
            assert _camel_path(field) in body["errors"][0]["message"], body
        return
    assert extensions["code"] == GRAPHQL_CODES[kind], body
    if field is not None:
        assert _names(extensions.get("field"), field), body


async def refused_everywhere(world, op, target, body, kind, field, faces=("orb", "rpc", "graphql")):
    before = await world.snapshot()
    if "orb" in faces:
        assert_orb_error(*await _orb(world, op, target, body), kind, field)
    if "rpc" in faces:
        assert_rpc_error(*await _rpc(world, op, target, body), kind, field)
    if "graphql" in faces:
        assert_graphql_error(*await _graphql(world, op, target, body), kind, field)
    assert await world.snapshot() == before  # nothing of a refused call was written


# --- Subscription create: every field with a value of the wrong type or out of range. -----------------

WRONG_TYPES = ["abc", 1.5, True, [], {}, HUGE, -HUGE]
INT_FIELDS = ["net_terms", "trial_duration_days", "plan_version_number", "initial_phase_order"]
DATE_FIELDS = ["start_date", "end_date"]
BAD_DATES = ["yesterday", "0001-01-01T00:00:00+01:00", "2024-13-01", "2024-02-30T00:00:00Z", 20240101, True,
             [], {}, "", LONG, "2024-01-01T00:00:00+25:00", "10000-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00",
             "0001-01-01", "2024-01-01T00:00:00", "\u0661\u0662\u0663\u0664-01-01"]


def _create_cases():
    cases = []
    for name in INT_FIELDS:
        cases += [(name, value) for value in (*WRONG_TYPES, -1, "1", "NaN", 2**31, 2**63)]
    cases += [("auto_collection", v) for v in ("yes", 1, [], {}, "true")]
    cases += [("currency", v) for v in (1, True, [], {}, "", "usd1", LONG, "\u20ac\u20ac\u20ac", "EUR")]
    cases += [("default_invoice_memo", v) for v in (1, True, [], {}, LONG * 5)]
    cases += [("metadata", v) for v in ("x", 1, [], "", 0, False, {"k": {"nested": 1}})]
    cases += [(name, v) for name in DATE_FIELDS for v in BAD_DATES]
    cases += [("billing_cycle_anchor_configuration", v) for v in (
        "x", 1, [], {}, {"day": 0}, {"day": 32}, {"day": "1"}, {"day": HUGE}, {"day": 1.5}, {"day": None},
        {"day": 1, "month": 0}, {"day": 1, "month": 13}, {"day": 1, "month": "x"}, {"day": 1, "year": 2024},
        {"day": 1, "hour": 2})]
    cases += [("align_billing_with_subscription_start_date", v) for v in ("x", 1, [], {})]
    return cases


@pytest.mark.parametrize(("name", "value"), _create_cases(), ids=lambda v: repr(v)[:40])
async def test_subscription_create_refuses_a_bad_field(world, name, value):
    body = {"customer_id": world.customer["id"], "plan_id": world.plain["id"], "start_date": "2024-01-01T00:00:00Z",
            name: value}
    if name == "initial_phase_order" or name == "currency" and value == "EUR":
        body["plan_id"] = world.phased["id"] if name == "initial_phase_order" else body["plan_id"]
    await refused_everywhere(world, "create", None, body, "validation", name)


async def test_nul_in_a_memo_refuses_the_whole_body(world):
    body = {"customer_id": world.customer["id"], "plan_id": world.plain["id"], "default_invoice_memo": "a\u0000b"}
    before = await world.snapshot()
    assert_orb_error(*await _orb(world, "create", None, body), "validation", "body")
    status, rpc = await _rpc(world, "create", None, body)
    assert status == 200 and rpc["error"]["code"] == -32700, rpc  # JSON-RPC's parse error: the body is refused
    # The graph stored it on SQLite and answered 500 on PostgreSQL: now refused like the other faces.
    status, graph = await _graphql(world, "create", None, body)
    assert status == 400 and graph["errors"][0]["extensions"] == {"code": "VALIDATION_FAILED", "field": "body"}, graph
    query = 'mutation { updateSubscription(id: "%s", input: {defaultInvoiceMemo: "a\\u0000b"}) { id } }'
    response = await world.client.post("/graphql", headers={"Authorization": f"Bearer {world.key}"},
                                       json={"query": query % world.sub["id"]})
    assert response.status == 400 and (await response.json())["errors"][0]["extensions"]["field"] == "body"
    response = await world.client.get("/graphql", headers={"Authorization": f"Bearer {world.key}"},
                                      params={"query": 'query { subscription(id: "a\u0000") { id } }'})
    assert response.status == 400 and (await response.json())["errors"][0]["extensions"]["field"] == "body"
    assert await world.snapshot() == before


# An id in the body that names nothing of the caller's is that field's validation error (Orb's 400).
@pytest.mark.parametrize(("name", "value"), [
    ("customer_id", "unknown"), ("plan_id", "unknown"), ("customer_id", None), ("plan_id", 5), ("plan_id", ["x"]),
    ("plan_id", LONG), ("plan_id", "\u2603" * 300), ("customer_id", ""),
])
async def test_subscription_create_refuses_bad_ids(world, name, value):
    body = {"customer_id": world.customer["id"], "plan_id": world.plain["id"], name: value}
    await refused_everywhere(world, "create", None, body, "validation", name)


@pytest.mark.parametrize(("name", "value"), [("external_plan_id", {"a": 1}), ("external_customer_id", "x" * 300),
                                             ("external_plan_id", "unknown")])
async def test_subscription_create_refuses_bad_external_ids(world, name, value):
    key = "customer_id" if "customer" in name else "plan_id"
    body = {"customer_id": world.customer["id"], "plan_id": world.plain["id"], name: value}
    body.pop(key)
    await refused_everywhere(world, "create", None, body, "validation", name)


@pytest.mark.parametrize("name", ["customer_id", "plan_id"])
async def test_subscription_create_refuses_another_organisations_ids(world, name):
    foreign = {"customer_id": world.foreign_customer_id, "plan_id": world.foreign_plan["id"]}[name]
    body = {"customer_id": world.customer["id"], "plan_id": world.plain["id"], name: foreign}
    await refused_everywhere(world, "create", None, body, "validation", name)


@pytest.mark.parametrize(("extra", "field"), [
    ({"end_date": "2023-12-31T00:00:00Z"}, "end_date"), ({"end_date": "2024-01-01T00:00:00Z"}, "end_date"),
    ({"initial_phase_order": 3}, "initial_phase_order"), ({"initial_phase_order": 0}, "initial_phase_order"),
    ({"currency": "EUR"}, "currency"), ({"plan_version_number": 2}, "plan_version_number"),
    ({"start_date": "9999-12-31T23:59:59Z"}, "start_date"), ({"start_date": "0001-01-01T00:00:00Z"}, "start_date"),
    ({"end_date": "9999-12-31T23:59:59Z", "trial_duration_days": 10**6}, None),
    ({"start_date": "2024-01-01"}, None), ({"start_date": "2024-01-01T00:00:00"}, None),
    # Dates whose billing arithmetic ran past year 9999 or before year 1 (500s): now refused, naming the date.
    ({"start_date": "9999-12-31T00:00:00Z", "trial_duration_days": 30}, "start_date"),
    ({"start_date": "9999-12-20T00:00:00Z", "billing_cycle_anchor_configuration": {"day": 5}}, "start_date"),
    ({"start_date": "9999-11-20T00:00:00Z", "billing_cycle_anchor_configuration": {"day": 5, "month": 2}},
     "start_date"),
    ({"start_date": "0001-01-01T00:00:00Z", "billing_cycle_anchor_configuration": {"day": 31}}, "start_date"),
    ({"start_date": "9999-12-31T00:00:00Z", "initial_phase_order": 1}, "start_date"),
    ({"start_date": "8999-12-31T00:00:00Z", "initial_phase_order": 1}, None),
    ({"start_date": "8999-12-20T00:00:00Z", "billing_cycle_anchor_configuration": {"day": 5}}, None),
    ({"start_date": "1900-01-01T00:00:00Z", "billing_cycle_anchor_configuration": {"day": 31}}, None),
])
async def test_subscription_create_combinations(world, extra, field):
    """Values each well-formed but wrong together: refused naming the field. Those with field None are
    allowed forms (a date, a naive date-time, far dates): either accepted or a 4xx, never a 500."""
    plan_id = world.phased["id"] if "initial_phase_order" in extra else world.plain["id"]
    body = {"customer_id": world.customer["id"], "plan_id": plan_id, "start_date": "2024-01-01T00:00:00Z", **extra}
    if field is not None:
        await refused_everywhere(world, "create", None, body, "validation", field)
        return
    for face in (_orb, _rpc, _graphql):
        status, answer = await face(world, "create", None, body)
        assert status < 500 and "INTERNAL" not in str(answer) and "-32603" not in str(answer), answer


# --- Subscription update. -------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "value"), [
    *[("net_terms", v) for v in (*WRONG_TYPES, -1, "NaN", 2**31, 2**63)],
    *[("auto_collection", v) for v in ("yes", 1, [], {})],
    *[("default_invoice_memo", v) for v in (1, True, [], {}, LONG * 5)],
    *[("metadata", v) for v in ("x", 1, [], {"k": 1})],
    ("plan_id", "x"), ("end_date", "2030-01-01T00:00:00Z"),
], ids=lambda v: repr(v)[:40])
async def test_subscription_update_refuses_a_bad_field(world, name, value):
    await refused_everywhere(world, "update", world.sub["id"], {name: value}, "validation", name)


@pytest.mark.parametrize("target", ["unknown", "foreign", LONG])
async def test_update_trigger_and_change_of_an_unknown_subscription(world, target):
    target = world.foreign_sub["id"] if target == "foreign" else target
    await refused_everywhere(world, "update", target, {"net_terms": 5}, "not_found", None)
    await refused_everywhere(world, "trigger", target, {}, "not_found", None)
    await refused_everywhere(world, "change", target, {"change_option": "immediate", "plan_id": world.plain["id"]},
                             "not_found", None)


# --- Plan change. ----------------------------------------------------------------------------------

def _change_cases():
    cases = [("change_option", v) for v in (None, 1, [], {}, "", "tomorrow", LONG)]
    cases += [("change_date", v) for v in BAD_DATES]
    cases += [("billing_cycle_alignment", v) for v in (1, True, [], {}, "", "weekly", LONG)]
    cases += [("align_billing_with_plan_change_date", v) for v in ("x", 1, [], {})]
    cases += [(name, v) for name in ("net_terms", "trial_duration_days", "plan_version_number")
              for v in (*WRONG_TYPES, -1, "NaN", 2**31, 2**63)]
    cases += [("auto_collection", v) for v in ("yes", 1, [], {})]
    cases += [("default_invoice_memo", v) for v in (1, True, [], {}, LONG * 5)]
    cases += [("plan_id", v) for v in (1, [], {}, None)]
    cases += [("external_plan_id", v) for v in (1, [], {})]
    cases += [("initial_phase_order", 2), ("end_date", "2030-01-01T00:00:00Z")]
    return cases


@pytest.mark.parametrize(("name", "value"), _change_cases(), ids=lambda v: repr(v)[:40])
async def test_plan_change_refuses_a_bad_field(world, name, value):
    body = {"change_option": "requested_date", "change_date": "2024-03-01T00:00:00Z", "plan_id": world.phased["id"],
            name: value}
    if name == "change_option":
        body.pop("change_date")
    if name == "external_plan_id":
        body.pop("plan_id")
    await refused_everywhere(world, "change", world.sub["id"], body, "validation", name)


@pytest.mark.parametrize(("body", "kind", "field"), [
    ({"change_option": "immediate", "plan_id": "unknown"}, "validation", "plan_id"),
    ({"change_option": "immediate", "plan_id": "foreign"}, "validation", "plan_id"),
    ({"change_option": "immediate", "plan_id": "eur"}, "validation", "plan_id"),
    ({"change_option": "immediate"}, "validation", "plan_id"),
    ({"change_option": "immediate", "plan_id": "phased", "change_date": "2024-03-01"}, "validation", "change_date"),
    ({"change_option": "requested_date", "plan_id": "phased"}, "validation", "change_date"),
    ({"change_option": "requested_date", "plan_id": "phased", "change_date": "2023-01-01T00:00:00Z"},
     "validation", "change_date"),
    ({"change_option": "immediate", "plan_id": "phased", "billing_cycle_alignment": "plan_change_date",
      "align_billing_with_plan_change_date": False}, "validation", "align_billing_with_plan_change_date"),
])
async def test_plan_change_combinations(world, body, kind, field):
    names = {"unknown": "unknown", "foreign": world.foreign_plan["id"], "eur": world.eur["id"],
             "phased": world.phased["id"]}
    body = {**body, **({"plan_id": names[body["plan_id"]]} if "plan_id" in body else {})}
    await refused_everywhere(world, "change", world.sub["id"], body, kind, field)


async def test_plan_change_of_a_cancelled_subscription_is_refused(world):
    sub = await world.subscribe(world.plain["id"], end_date="2024-02-01T00:00:00Z")
    await refused_everywhere(world, "change", sub["id"], {"change_option": "immediate", "plan_id": world.phased["id"]},
                             "constraint", None)
    await refused_everywhere(world, "trigger", sub["id"], {}, "constraint", None)


# --- trigger_phase. --------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "value"), [
    *[("effective_date", v) for v in BAD_DATES],
    ("effective_date", "2023-06-01"), ("effective_date", "2099-01-01T00:00:00Z"),
    *[("allow_invoice_credit_or_void", v) for v in ("yes", 1, [], {})],
    ("phase", 2),
], ids=lambda v: repr(v)[:40])
async def test_trigger_phase_refuses_a_bad_field(world, name, value):
    sub = await world.subscribe(world.phased["id"], end_date="2050-01-01T00:00:00Z")
    await refused_everywhere(world, "trigger", sub["id"], {name: value}, "validation", name)


@pytest.mark.parametrize("case", ["plain", "last_phase", "ended", "cancelled_then", "upcoming_end", "twice"])
async def test_trigger_phase_where_there_is_no_next_phase(world, case):
    key = world.key
    if case == "plain":
        target = world.sub["id"]
    elif case == "last_phase":
        target = (await world.subscribe(world.phased["id"], initial_phase_order=2))["id"]
    elif case == "ended":
        target = (await world.subscribe(world.phased["id"], end_date="2024-06-01T00:00:00Z"))["id"]
    elif case == "cancelled_then":
        target = world.phased_sub["id"]
        status, _ = await _call(world.client, key, "POST", f"/v1/subscriptions/{target}/cancel",
                                {"cancel_option": "immediate"})
        assert status == 200
    elif case == "upcoming_end":
        target = (await world.subscribe(world.phased["id"], start_date="2040-01-01T00:00:00Z"))["id"]
        # Upcoming: a trigger now is before its start, so the date is at fault.
        await refused_everywhere(world, "trigger", target, {"effective_date": "2030-01-01"}, "validation",
                                 "effective_date")
        return
    else:
        target = world.phased_sub["id"]
        status, moved = await _call(world.client, key, "POST", f"/v1/subscriptions/{target}/trigger_phase",
                                    {"effective_date": "2024-02-01"})
        assert status == 200 and moved["active_plan_phase_order"] == 2, moved
    await refused_everywhere(world, "trigger", target, {}, "constraint", None)


# --- Plans with phases. ----------------------------------------------------------------------------

def _phase_cases():
    one = {"order": 1, "duration": 1, "duration_unit": "monthly"}
    cases = [("plan_phases", v) for v in ("x", 1, True, {}, [1], [None], ["x"], [[]], [{}])]
    cases += [("plan_phases[0].order", [{**one, "order": v}, {"order": 2}]) for v in
              ("1", 1.5, HUGE, -1, 0, None, True, [])]
    cases += [("plan_phases[0].duration", [{**one, "duration": v}, {"order": 2}]) for v in
              ("1", 1.5, HUGE, -1, 0, True, [], {}, 2**31, 10**6)]
    # Ten years at most in any unit: 3650 annual phases ran past year 9999 when subscribed to (a 500).
    cases += [("plan_phases[0].duration", [{**one, "duration": d, "duration_unit": u}, {"order": 2}]) for d, u in
              ((3650, "annual"), (11, "annual"), (121, "monthly"), (41, "quarterly"), (21, "semi_annual"),
               (3651, "daily"))]
    cases += [("plan_phases[0].duration_unit", [{**one, "duration_unit": v}, {"order": 2}]) for v in
              (1, True, [], {}, "", "fortnightly", LONG, None)]
    cases += [("plan_phases[0].align_billing_with_phase_start_date",
               [{**one, "align_billing_with_phase_start_date": v}, {"order": 2}]) for v in ("yes", 1, 0, [], {})]
    cases += [("plan_phases[0].discounts", [{**one, "discounts": [{"x": 1}]}, {"order": 2}])]
    cases += [("plan_phases[1].order", [one, {"order": 1}])]
    return cases


@pytest.mark.parametrize(("field", "phases"), _phase_cases(), ids=lambda v: repr(v)[:50])
async def test_plan_create_refuses_bad_phases(world, field, phases):
    prices = [_fee(world.item["id"], "A", 1), _fee(world.item["id"], "B", 2)]
    body = {"name": "Bad", "currency": "USD", "plan_phases": phases, "prices": prices}
    await refused_everywhere(world, "plan", None, body, "validation", field)


@pytest.mark.parametrize("order", ["1", 1.5, HUGE, -1, True, [], {}, 2**63])
async def test_plan_create_refuses_a_bad_plan_phase_order(world, order):
    prices = [_fee(world.item["id"], "A", 1), _fee(world.item["id"], "B", order)]
    body = {"name": "Bad", "currency": "USD", "plan_phases": PHASES, "prices": prices}
    await refused_everywhere(world, "plan", None, body, "validation", "prices[1].plan_phase_order")


async def test_plan_phase_order_without_phases_is_refused(world):
    body = {"name": "Bad", "currency": "USD", "prices": [_fee(world.item["id"], "A", 1)]}
    await refused_everywhere(world, "plan", None, body, "validation", "prices[0].plan_phase_order")


async def test_plan_change_into_a_phased_plan_then_trigger_and_cancel(world):
    """A plan change into a phased plan starts it in its first phase; a trigger then moves it on; after a
    cancellation takes effect, a trigger is refused and writes nothing."""
    sub = await world.subscribe(world.plain["id"])
    path = f"/v1/subscriptions/{sub['id']}"
    status, changed = await _call(world.client, world.key, "POST", f"{path}/schedule_plan_change", {
        "change_option": "requested_date", "change_date": "2024-02-01T00:00:00Z", "plan_id": world.phased["id"]})
    assert status == 200, changed
    status, moved = await _call(world.client, world.key, "POST", f"{path}/trigger_phase",
                                {"effective_date": "2024-01-15"})
    # On Jan 15 it is still on the plain plan: no phases to trigger.
    assert status == 400 and moved["type"] == ORB_TYPES["constraint"], moved
    status, moved = await _call(world.client, world.key, "POST", f"{path}/trigger_phase",
                                {"effective_date": "2024-03-01"})
    assert status == 200 and moved["active_plan_phase_order"] == 2, moved
    status, _ = await _call(world.client, world.key, "POST", f"{path}/cancel", {"cancel_option": "immediate"})
    assert status == 200
    await refused_everywhere(world, "trigger", sub["id"], {"effective_date": "2024-04-01"}, "constraint", None)


# --- Grouped usage. --------------------------------------------------------------------------------

async def _usage_everywhere(world, params, sub_id=None):
    """The usage read on the three faces: each (status, body), the refusal in its shape if refused."""
    sub_id = sub_id or world.sub["id"]
    key = world.key
    orb = await _call(world.client, key, "GET", f"/v1/subscriptions/{sub_id}/usage",
                      params={k: str(v) for k, v in params.items()})
    response = await world.client.post("/", headers={"X-Api-Key": key}, json={
        "jsonrpc": "2.0", "id": next(_ids), "method": "subscriptions.usage", "params": {"id": sub_id, **params}})
    rpc = (response.status, await response.json())
    names = {"timeframe_start": ("timeframeStart", "DateTime"), "timeframe_end": ("timeframeEnd", "DateTime"),
             "granularity": ("granularity", "String"), "billable_metric_id": ("billableMetricId", "String"),
             "view_mode": ("viewMode", "String"), "group_by": ("groupBy", "String")}
    head = "".join(f", ${names[k][0]}: {names[k][1]}" for k in params)
    call = "".join(f", {names[k][0]}: ${names[k][0]}" for k in params)
    query = (f"query($id: ID!{head}) {{ subscriptionUsage(id: $id{call}) {{ viewMode "
             "metricGroup { propertyKey propertyValue } usage { quantity } } }")
    response = await world.client.post("/graphql", headers={"Authorization": f"Bearer {key}"}, json={
        "query": query, "variables": {"id": sub_id, **{names[k][0]: v for k, v in params.items()}}})
    graph = (response.status, await response.json())
    return orb, rpc, graph


WINDOW = {"timeframe_start": "2024-01-01T00:00:00Z", "timeframe_end": "2024-01-06T00:00:00Z"}


@pytest.mark.parametrize(("params", "field"), [
    ({"group_by": "region"}, "billable_metric_id"),
    ({"group_by": "region", "billable_metric_id": "unknown"}, "billable_metric_id"),
    ({"group_by": "region", "billable_metric_id": "foreign"}, "billable_metric_id"),
    ({"group_by": "", "billable_metric_id": "sum"}, "group_by"),
    ({"group_by": LONG, "billable_metric_id": "sum"}, "group_by"),
    ({"group_by": "region", "billable_metric_id": "sum", "granularity": "hour"}, "granularity"),
    ({"group_by": "region", "billable_metric_id": "sum", "view_mode": "weird"}, "view_mode"),
    ({"billable_metric_id": "sum", "timeframe_start": "yesterday"}, "timeframe_start"),
    ({"billable_metric_id": "sum", "timeframe_end": "2024-01-01T00:00:00"}, "timeframe_end"),
    ({"billable_metric_id": "sum", "timeframe_start": "2024-01-06T00:00:00Z", "timeframe_end": "2024-01-01T00:00:00Z"},
     "timeframe_end"),
    ({"billable_metric_id": "sum", "timeframe_start": "0001-01-01T00:00:00Z", "timeframe_end": "9999-12-31T00:00:00Z",
      "granularity": "day"}, None),
    ({"billable_metric_id": "sum", "timeframe_start": "0001-01-01T00:00:00+01:00"}, "timeframe_start"),
    ({"billable_metric_id": "sum", "timeframe_end": "9999-12-31T23:59:59-01:00"}, "timeframe_end"),
    ({"billable_metric_id": "sum", "group_by": "region", "view_mode": "cumulative", "granularity": "day",
      "timeframe_start": "0001-01-01T00:00:00Z", "timeframe_end": "9999-12-31T23:59:59Z"}, None),
])
async def test_usage_refuses_bad_parameters(world, params, field):
    metric = {"sum": world.metric["id"], "unknown": "unknown", "foreign": world.foreign_metric["id"]}
    params = {**WINDOW, **params}
    if "billable_metric_id" in params:
        params["billable_metric_id"] = metric[params["billable_metric_id"]]
    (orb_status, orb), (_, rpc), (_, graph) = await _usage_everywhere(world, params)
    assert 400 <= orb_status < 500 and orb["type"] in ORB_TYPES.values(), orb
    assert rpc["error"]["code"] in (-32602, -32004, -32010), rpc
    code = graph["errors"][0]["extensions"]["code"]
    assert code in ("VALIDATION_FAILED", "GRAPHQL_VALIDATION_FAILED", "NOT_FOUND", "CONSTRAINT_VIOLATION"), graph
    if field is not None:
        assert _names(orb["validation_errors"][0]["field"], field), orb
        assert _names(rpc["error"]["data"]["field"], field), rpc
        if code == "VALIDATION_FAILED":
            assert _names(graph["errors"][0]["extensions"]["field"], field), graph


@pytest.mark.parametrize("key", ["a b", "a.b", "a'b", 'a"b', "$.x", "x') OR 1=1 --", "\u00fc\u00df\u2603",
                                 "region[0]", "%", "_", "a\\b", "tokens"])
@pytest.mark.parametrize("view_mode", ["periodic", "cumulative"])
@pytest.mark.parametrize("metric", ["sum", "avg"])
async def test_grouped_usage_on_odd_keys_is_an_answer_or_a_refusal(world, key, view_mode, metric):
    params = {**WINDOW, "group_by": key, "view_mode": view_mode,
              "billable_metric_id": {"sum": world.metric["id"], "avg": world.avg_metric["id"]}[metric]}
    (orb_status, orb), (_, rpc), (_, graph) = await _usage_everywhere(world, params)
    assert orb_status in (200, 400), orb
    if orb_status == 400:  # refused: the same refusal, naming the field, on every face
        field = orb["validation_errors"][0]["field"]
        assert field in ("group_by", "view_mode", "billable_metric_id"), orb
        assert rpc["error"]["code"] == -32602 and rpc["error"]["data"]["field"] == field, rpc
        assert graph["errors"][0]["extensions"] == {"code": "VALIDATION_FAILED", "field": field}, graph
    else:  # no event has the key: no groups
        assert orb["data"] == [] and rpc["result"] == [], (orb, rpc)
        assert graph == {"data": {"subscriptionUsage": []}}, graph


@pytest.mark.parametrize(("name", "value"), [("group_by", 1), ("group_by", []), ("group_by", {}),
                                             ("billable_metric_id", 5), ("view_mode", True),
                                             ("granularity", []), ("timeframe_start", 20240101)])
async def test_usage_refuses_wrong_types_on_rpc_and_graphql(world, name, value):
    params = {**WINDOW, "billable_metric_id": world.metric["id"], name: value}
    _, (_, rpc), (_, graph) = await _usage_everywhere(world, params)
    assert rpc["error"]["code"] == -32602 and rpc["error"]["data"]["field"] == name, rpc
    assert graph["errors"][0]["extensions"]["code"] in ("VALIDATION_FAILED", "GRAPHQL_VALIDATION_FAILED"), graph


async def test_trigger_phase_takes_only_a_bool_for_allow_invoice_credit_or_void(world, uow):
    """The faces type it as a boolean; the domain refuses 1 and 0 too (they compare equal to True and False)."""
    from domains.billing import phases
    from domains.errors import ValidationFailed

    before = await world.snapshot()
    for value in (1, 0, "true"):
        with pytest.raises(ValidationFailed) as refused:
            await phases.trigger_phase(uow, principal=world.principal, subscription_id=world.phased_sub["id"],
                                       fields={"allow_invoice_credit_or_void": value})
        assert refused.value.field == "allow_invoice_credit_or_void"
    assert await world.snapshot() == before


@pytest.mark.parametrize(("op", "body"), [
    ("trigger", {"effective_date": "9999-12-31"}),
    ("trigger", {"effective_date": "9999-12-31T23:59:59Z"}),
    ("change", {"change_option": "requested_date", "change_date": "9999-12-31T00:00:00Z", "plan_id": "phased"}),
    ("change", {"change_option": "requested_date", "change_date": "9999-12-31T00:00:00Z", "plan_id": "phased",
                "billing_cycle_alignment": "start_of_month"}),
    ("change", {"change_option": "requested_date", "change_date": "9999-12-31T00:00:00Z", "plan_id": "phased",
                "trial_duration_days": 30}),
    ("change", {"change_option": "requested_date", "change_date": "0001-01-01T00:00:00Z", "plan_id": "phased"}),
])
async def test_far_dates_are_an_answer_or_a_refusal(world, op, body):
    """Far but valid dates: taken or refused naming a field; never a 500 from date arithmetic past 9999."""
    target = world.phased_sub["id"] if op == "trigger" else world.sub["id"]
    body = {**body, **({"plan_id": world.phased["id"]} if "plan_id" in body else {})}
    for face in (_orb, _rpc, _graphql):
        status, answer = await face(world, op, target, body)
        assert status < 500 and "INTERNAL" not in str(answer) and "-32603" not in str(answer), answer
        # Read back: the subscription (its periods, phases and costs) still answers.
        status, read = await _call(world.client, world.key, "GET", f"/v1/subscriptions/{target}")
        assert status == 200, read
        status, read = await _call(world.client, world.key, "GET", f"/v1/subscriptions/{target}/costs",
                                   params={"timeframe_start": "2024-01-01T00:00:00Z",
                                           "timeframe_end": "2024-03-01T00:00:00Z"})
        assert status == 200, read


# --- Bodies of the wrong shape, raw JSON oddities, and a good field beside a bad one. ----------------

@pytest.mark.parametrize("op", ["create", "update", "change", "trigger", "plan"])
@pytest.mark.parametrize("body", [[], "x", 1, None, [{"net_terms": 1}]], ids=repr)
async def test_a_body_that_is_not_an_object(world, op, body):
    target = None if op in ("create", "plan") else world.phased_sub["id"]
    before = await world.snapshot()
    status, orb = await _orb(world, op, target, body)
    if body is None and op in ("trigger", "update"):  # no body: a trigger with its defaults, an empty update
        assert status == 200, orb
        return
    assert 400 <= status < 500 and orb["type"] in ORB_TYPES.values(), orb
    response = await world.client.post("/", headers={"X-Api-Key": world.key}, json={
        "jsonrpc": "2.0", "id": 1, "method": OPERATIONS[op][2], "params": body})
    rpc = await response.json()
    assert rpc.get("error", {}).get("code") in (-32602, -32600, -32004), rpc
    assert await world.snapshot() == before


@pytest.mark.parametrize("raw", ['{"net_terms": 1e400}', '{"net_terms": -0.0}', '{"net_terms": 1.0}',
                                 '{"net_terms": NaN}', '{"net_terms": Infinity}', '{"net_terms": 99999999999999999999999}',
                                 '{"metadata": ' + "[" * 2000 + "]" * 2000 + "}",
                                 '{"default_invoice_memo": "\\ud800"}', '{"net_terms": 5, "net_terms": "x"}'])
async def test_raw_json_oddities_on_update(world, raw):
    before = await world.snapshot()
    headers = {"Authorization": f"Bearer {world.key}", "Content-Type": "application/json"}
    response = await world.client.put(f"/v1/subscriptions/{world.sub['id']}", data=raw, headers=headers)
    body = await response.json()
    if response.status == 200:  # 1.0 and -0.0 are whole numbers; taken as they are
        assert raw in ('{"net_terms": -0.0}', '{"net_terms": 1.0}'), body
        return
    assert response.status == 400 and body["type"] == ORB_TYPES["validation"], body
    assert await world.snapshot() == before
    rpc_raw = ('{"jsonrpc": "2.0", "id": 1, "method": "subscriptions.update", "params": {"id": "'
               + world.sub["id"] + '", ' + raw[1:] + "}")
    response = await world.client.post("/", data=rpc_raw, headers={"X-Api-Key": world.key,
                                                                  "Content-Type": "application/json"})
    rpc = await response.json()
    assert rpc["error"]["code"] in (-32700, -32602), rpc
    assert await world.snapshot() == before


async def test_deeply_nested_plan_phases_in_a_graphql_document(world):
    nested = "[" * 3000 + "]" * 3000
    query = 'mutation { createPlan(input: {name: "Deep", currency: "USD", planPhases: ' + nested + "}) { id } }"
    response = await world.client.post("/graphql", headers={"Authorization": f"Bearer {world.key}"},
                                       json={"query": query})
    body = await response.json()
    assert response.status in (200, 400) and body["errors"][0]["extensions"]["code"] != "INTERNAL_SERVER_ERROR", body


@pytest.mark.parametrize(("op", "body", "field"), [
    ("update", {"net_terms": 5, "default_invoice_memo": 1}, "default_invoice_memo"),
    ("update", {"metadata": {"a": "b"}, "auto_collection": "x"}, "auto_collection"),
    ("update", {"default_invoice_memo": "ok", "net_terms": 400}, "net_terms"),
    ("change", {"change_option": "immediate", "plan_id": "phased", "net_terms": 5, "trial_duration_days": -1},
     "trial_duration_days"),
    ("change", {"change_option": "immediate", "plan_id": "phased", "default_invoice_memo": "m",
                "billing_cycle_alignment": "weekly"}, "billing_cycle_alignment"),
])
async def test_a_good_field_beside_a_bad_one_writes_nothing(world, op, body, field):
    body = {**body, **({"plan_id": world.phased["id"]} if "plan_id" in body else {})}
    await refused_everywhere(world, op, world.sub["id"], body, "validation", field)


async def test_a_plan_with_a_bad_second_price_writes_nothing(world):
    prices = [_fee(world.item["id"], "A", 1), {"price": {**_fee(world.item["id"], "B"), "cadence": "hourly"},
                                               "plan_phase_order": 2}]
    body = {"name": "Half", "currency": "USD", "plan_phases": PHASES, "prices": prices}
    await refused_everywhere(world, "plan", None, body, "validation", "prices[1]")


async def test_trigger_after_a_scheduled_cancellation(world):
    sub = await world.subscribe(world.phased["id"])
    status, _ = await _call(world.client, world.key, "POST", f"/v1/subscriptions/{sub['id']}/cancel",
                            {"cancel_option": "requested_date", "cancellation_date": "2030-01-01T00:00:00Z"})
    assert status == 200
    await refused_everywhere(world, "trigger", sub["id"], {"effective_date": "2031-01-01"}, "validation",
                             "effective_date")


@pytest.mark.parametrize("target", ["unknown", "foreign"])
async def test_usage_of_an_unknown_subscription(world, target):
    sub_id = world.foreign_sub["id"] if target == "foreign" else "unknown"
    params = {**WINDOW, "billable_metric_id": world.metric["id"], "group_by": "region"}
    (orb_status, orb), (_, rpc), (_, graph) = await _usage_everywhere(world, params, sub_id=sub_id)
    assert orb_status == 404 and orb["type"] == ORB_TYPES["not_found"], orb
    assert rpc["error"]["code"] == -32004, rpc
    assert graph["errors"][0]["extensions"]["code"] == "NOT_FOUND", graph


@pytest.mark.parametrize("subscription", ["plain", "upcoming", "ended", "phased", "ending"])
@pytest.mark.parametrize("body", [
    {"change_option": "end_of_subscription_term", "plan_id": "phased"},
    {"change_option": "end_of_subscription_term", "plan_id": "phased", "change_date": "2030-01-01T00:00:00Z"},
    {"change_option": "immediate", "plan_id": "same"},
    {"change_option": "immediate", "plan_id": "phased", "billing_cycle_alignment": "start_of_month",
     "trial_duration_days": 3650},
    {"change_option": "requested_date", "plan_id": "phased", "change_date": "2024-01-01T00:00:00Z",
     "align_billing_with_plan_change_date": True},
    {"change_option": "requested_date", "plan_id": "phased", "change_date": "2039-12-31T23:59:59Z"},
], ids=lambda b: "-".join(str(v)[:12] for v in b.values()))
async def test_plan_change_combinations_are_an_answer_or_a_refusal(world, subscription, body):
    """Well-formed plan changes on subscriptions in every state: each taken or refused in the face's shape."""
    if subscription == "upcoming":
        target = (await world.subscribe(world.plain["id"], start_date="2040-01-01T00:00:00Z"))["id"]
    elif subscription == "ended":
        target = (await world.subscribe(world.plain["id"], end_date="2024-03-01T00:00:00Z"))["id"]
    elif subscription == "ending":
        target = (await world.subscribe(world.plain["id"], end_date="2050-01-01T00:00:00Z"))["id"]
    else:
        target = world.sub["id"] if subscription == "plain" else world.phased_sub["id"]
    same = world.plain["id"] if subscription != "phased" else world.phased["id"]
    body = {**body, "plan_id": same if body["plan_id"] == "same" else world.phased["id"]}
    for face in (_orb, _rpc, _graphql):
        before = await world.snapshot()
        status, answer = await face(world, "change", target, body)
        assert status < 500 and "INTERNAL" not in str(answer) and "-32603" not in str(answer), answer
        refused = status >= 400 or "error" in answer or answer.get("errors")
        if refused:
            assert await world.snapshot() == before
        if face is _orb and refused:
            assert answer["type"] in ORB_TYPES.values(), answer
        status, read = await _call(world.client, world.key, "GET", f"/v1/subscriptions/{target}/costs",
                                   params={"timeframe_start": "2024-01-01T00:00:00Z",
                                           "timeframe_end": "2024-03-01T00:00:00Z"})
        assert status == 200, read


# --- Grouped usage over events whose group values are of every JSON type. ----------------------------

ODD_VALUES = ["eu", "", "\u00fc\u2603", 1, 1.5, True, False, None, 2**63, 2**64 - 1, -1, "x" * 1000,
              "a'b\"c\\d"]
GROUP_NAMES = sorted(["eu", "", "\u00fc\u2603", "1", "1.5", "true", "false", "9223372036854775808",
                      "18446744073709551615", "-1", "x" * 1000, "a'b\"c\\d"])


async def _ingest_at(world, when, properties, key):
    from domains.clock import FixedClock
    from domains.metering import events
    from domains.unit_of_work import UnitOfWork
    from persistence.db import session_factory

    unit = UnitOfWork(session_factory(world.database.engine), clock=FixedClock(when))
    try:
        result = await events.ingest_events(unit, principal=world.principal, events=[{
            "event_name": "llm", "timestamp": when.isoformat(), "idempotency_key": key,
            "customer_id": world.customer["id"], "properties": properties}])
        assert result.ingested == [key], result
    finally:
        await unit.close()


@pytest.mark.parametrize("granularity", [None, "day"])
@pytest.mark.parametrize("view_mode", ["periodic", "cumulative"])
@pytest.mark.parametrize("metric", ["sum", "avg"])
async def test_grouped_usage_over_values_of_every_type(world, granularity, view_mode, metric):
    from datetime import UTC, datetime, timedelta

    for index, value in enumerate(ODD_VALUES):
        when = datetime(2024, 1, 2, tzinfo=UTC) + timedelta(hours=index * 5)
        await _ingest_at(world, when, {"tokens": index + 1, "region": value, "a-b_c": value}, f"odd-{index}")
    params = {**WINDOW, "billable_metric_id": {"sum": world.metric["id"], "avg": world.avg_metric["id"]}[metric],
              "view_mode": view_mode, "group_by": "region"}
    if granularity:
        params["granularity"] = granularity
    (orb_status, orb), (_, rpc), (_, graph) = await _usage_everywhere(world, params)
    assert orb_status == 200, orb
    groups = {entry["metric_group"]["property_value"] for entry in orb["data"]}
    # Each value is its own group, named by its text; null's group is the graph's and JSON-RPC's only.
    assert len(orb["data"]) == len(groups) and sorted(groups) == GROUP_NAMES, groups
    assert [e for e in rpc["result"] if e["metric_group"]["property_value"] is not None] == orb["data"], rpc
    assert len(graph["data"]["subscriptionUsage"]) == len(rpc["result"]), graph
    (status, by_other_key), _, _ = await _usage_everywhere(world, {**params, "group_by": "a-b_c"})
    assert status == 200 and by_other_key["data"] == [
        {**e, "metric_group": {**e["metric_group"], "property_key": "a-b_c"}} for e in orb["data"]], by_other_key


@pytest.mark.parametrize("number", ["100000000000000000000000000000", "-9223372036854775809", "18446744073709551616"])
async def test_a_graphql_literal_beyond_64_bits_in_an_event_is_refused(world, number):
    """JSON bodies carry no such integer (read as a float); a GraphQL literal did, and failed as a 500."""
    from datetime import UTC, datetime

    query = ('mutation { ingestEvents(input: {events: [{event_name: "x", timestamp: "' + datetime.now(UTC).isoformat()
             + '", idempotency_key: "big", customer_id: "' + world.customer["id"] + '", properties: {n: ' + number
             + "}}]}) { validationFailed { idempotencyKey validationErrors } } }")
    response = await world.client.post("/graphql", json={"query": query}, headers={"Authorization": f"Bearer {world.key}"})
    body = await response.json()
    assert body["data"]["ingestEvents"]["validationFailed"] == [
        {"idempotencyKey": "big", "validationErrors": ["property 'n' is a whole number beyond 64 bits"]}], body


@pytest.mark.xfail(strict=True, reason="left: a float's group is named by each engine's own text of it: SQLite "
                                       "-0.0, 1e+300, 1e-7; PostgreSQL (jsonb numeric) 0.0, 1000...0, 0.0000001")
async def test_float_group_names_are_the_same_on_both_databases(world, backend):
    from datetime import UTC, datetime, timedelta

    for index, value in enumerate([-0.0, 1e300, 1e-7]):
        await _ingest_at(world, datetime(2024, 1, 2, tzinfo=UTC) + timedelta(hours=index),
                         {"tokens": 1, "region": value}, f"float-{index}")
    params = {**WINDOW, "billable_metric_id": world.metric["id"], "group_by": "region"}
    (status, orb), _, _ = await _usage_everywhere(world, params)
    assert status == 200 and sorted(e["metric_group"]["property_value"] for e in orb["data"]) == [
        "-0.0", "1e+300", "1e-07"], orb  # Python's text of the floats, as JSON wrote them


@pytest.mark.parametrize(("literal", "field"), [
    ("planPhases: [{order: 1, duration: 100000000000000000000000000000, duration_unit: \"monthly\"}, {order: 2}]",
     "plan_phases[0].duration"),
    ("planPhases: [{order: 100000000000000000000000000000}, {order: 2}]", "plan_phases[0].order"),
    ("planPhases: [{order: 1, duration: 1.0e400, duration_unit: \"monthly\"}, {order: 2}]", "plan_phases[0].duration"),
    ("trialConfig: {trial_period: 100000000000000000000000000000, trial_period_unit: \"days\"}", "trial_config"),
    ("metadata: {k: 100000000000000000000000000000}", "metadata"),
])
async def test_graphql_literals_beyond_json_in_plan_inputs(world, literal, field):
    """GraphQL literals carry numbers no JSON body does (integers beyond 64 bits, 1.0e400): refused by field."""
    before = await world.snapshot()
    query = ('mutation { createPlan(input: {name: "Lit", currency: "USD", ' + literal + ', prices: [{price: {name: "A", '
             'itemId: "' + world.item["id"] + '", cadence: "monthly", modelType: "unit", unitConfig: {unit_amount: "1"}},'
             ' planPhaseOrder: 1}]}) { id } }')
    response = await world.client.post("/graphql", json={"query": query}, headers={"Authorization": f"Bearer {world.key}"})
    body = await response.json()
    extensions = body["errors"][0]["extensions"]
    assert extensions["code"] in ("VALIDATION_FAILED", "GRAPHQL_VALIDATION_FAILED"), body
    if extensions["code"] == "VALIDATION_FAILED":
        assert _names(extensions["field"], field), body
    assert await world.snapshot() == before


@pytest.mark.parametrize("sub_id", ["%00", "a%00b", "x" * 3000, "%E2%98%83", "..%2F..", "%27%20OR%201%3D1"])
@pytest.mark.parametrize(("method", "suffix", "body"), [
    ("POST", "/trigger_phase", {}), ("PUT", "", {"net_terms": 1}), ("GET", "/usage", None),
    ("POST", "/schedule_plan_change", {"change_option": "immediate", "plan_id": "x"}),
])
async def test_odd_subscription_ids_in_the_path(world, sub_id, method, suffix, body):
    before = await world.snapshot()
    response = await world.client.request(method, f"/v1/subscriptions/{sub_id}{suffix}", json=body,
                                          headers={"Authorization": f"Bearer {world.key}"})
    answer = await response.json()
    assert response.status in (400, 404) and answer["type"] in (*ORB_TYPES.values(),
        "https://docs.withorb.com/reference/error-responses#404-url-not-found"), answer
    if "%00" in sub_id:  # was a 500 on PostgreSQL (404 on SQLite): refused like a NUL in the body
        assert_orb_error(response.status, answer, "validation", "subscription_id")
    assert await world.snapshot() == before


@pytest.mark.parametrize("path", ["/v1/customers/a%00", "/v1/plans/%00", "/v1/subscriptions?customer_id=%00",
                                  "/v1/subscriptions/x/usage?group_by=a%00b",
                                  "/v1/customers/external_customer_id/%00/costs"])
async def test_nul_in_any_path_or_query_parameter(world, path):
    response = await world.client.get(path, headers={"Authorization": f"Bearer {world.key}"})
    answer = await response.json()
    assert response.status == 400 and answer["type"] == ORB_TYPES["validation"], answer
    assert "NUL" in answer["detail"], answer


@pytest.mark.parametrize("method", ["subscriptions.trigger_phase", "subscriptions.update", "subscriptions.usage",
                                    "subscriptions.schedule_plan_change"])
@pytest.mark.parametrize("sub_id", [5, [], {}, None, True, "a\u0000b", "x" * 3000])
async def test_odd_subscription_ids_on_json_rpc(world, method, sub_id):
    before = await world.snapshot()
    response = await world.client.post("/", headers={"X-Api-Key": world.key}, json={
        "jsonrpc": "2.0", "id": 1, "method": method, "params": {"id": sub_id, "change_option": "immediate"}})
    rpc = await response.json()
    assert rpc["error"]["code"] in (-32602, -32004, -32700), rpc
    if rpc["error"]["code"] == -32602:
        assert rpc["error"]["data"]["field"] in ("id", "change_option", "plan_id"), rpc
    assert await world.snapshot() == before


async def test_concurrent_triggers_and_plan_changes_never_fail_as_500(world):
    """Several triggers and plan changes at once on one subscription: each taken or refused in shape; the
    stored phase transitions stay one per phase (no two writers both moved it to phase 2)."""
    import asyncio

    sub = await world.subscribe(world.phased["id"])
    path = f"/v1/subscriptions/{sub['id']}"
    calls = [_call(world.client, world.key, "POST", f"{path}/trigger_phase", {"effective_date": f"2024-02-{d:02d}"})
             for d in range(1, 6)]
    calls += [_call(world.client, world.key, "POST", f"{path}/schedule_plan_change", {
        "change_option": "requested_date", "change_date": "2024-03-01T00:00:00Z", "plan_id": world.phased["id"]})]
    answers = await asyncio.gather(*calls)
    for status, answer in answers:
        assert status in (200, 400, 409), answer
        if status != 200:
            assert answer["type"] in ORB_TYPES.values(), answer
    async with world.database.engine.connect() as conn:
        rows = (await conn.execute(text(
            "SELECT plan_phase_order, effective_date FROM subscription_plan_changes WHERE subscription_id = :s "
            "AND plan_phase_order IS NOT NULL ORDER BY effective_date"), {"s": sub["id"]})).all()
    # Whatever order they ran in: one transition into phase 2 before the plan change (and the plan change's own).
    assert [r[0] for r in rows if str(r[1]) < "2024-03"] == [2], rows


async def test_trigger_around_a_plan_change_out_of_the_phased_plan(world):
    """On the phased plan until a (past) change to a plain plan on Mar 1, 2024: a trigger after the change
    has no phases to move (a constraint); one before it would rewrite the history before the plan in effect
    now (refused naming effective_date). Neither writes anything."""
    sub = await world.subscribe(world.phased["id"])
    path = f"/v1/subscriptions/{sub['id']}"
    status, changed = await _call(world.client, world.key, "POST", f"{path}/schedule_plan_change", {
        "change_option": "requested_date", "change_date": "2024-03-01T00:00:00Z", "plan_id": world.plain["id"]})
    assert status == 200, changed
    await refused_everywhere(world, "trigger", sub["id"], {"effective_date": "2024-04-01"}, "constraint", None)
    await refused_everywhere(world, "trigger", sub["id"], {}, "constraint", None)
    await refused_everywhere(world, "trigger", sub["id"], {"effective_date": "2024-02-01"}, "validation",
                             "effective_date")


async def test_a_graphql_document_with_a_good_and_a_bad_mutation_writes_nothing(world):
    """One mutation document is one transaction: a refused second field undoes the first."""
    sub = await world.subscribe(world.phased["id"])
    before = await world.snapshot()
    query = """mutation($id: ID!) {
      a: triggerPhase(id: $id, input: {effectiveDate: "2024-02-01"}) { id activePlanPhaseOrder }
      b: updateSubscription(id: $id, input: {netTerms: 400}) { id }
    }"""
    response = await world.client.post("/graphql", headers={"Authorization": f"Bearer {world.key}"},
                                       json={"query": query, "variables": {"id": sub["id"]}})
    body = await response.json()
    assert any(e["extensions"] == {"code": "VALIDATION_FAILED", "field": "net_terms"} for e in body["errors"]), body
    assert await world.snapshot() == before


@pytest.mark.parametrize("window", [
    {"timeframe_start": "0001-01-01T00:00:00+01:00"}, {"timeframe_end": "9999-12-31T23:59:59-01:00"},
    {"timeframe_start": "0001-01-01T00:00:00Z", "timeframe_end": "9999-12-31T23:59:59Z"},
    {"timeframe_start": "2024-01-01T00:00:00Z", "timeframe_end": "9999-12-31T23:59:59Z", "view_mode": "cumulative"},
])
async def test_costs_over_far_windows(world, window):
    for target in (world.sub["id"], world.phased_sub["id"]):
        status, body = await _call(world.client, world.key, "GET", f"/v1/subscriptions/{target}/costs", params=window)
        assert status in (200, 400), body
        if status == 400:
            assert body["type"] == ORB_TYPES["validation"] and body["validation_errors"][0]["field"] in (
                "timeframe_start", "timeframe_end"), body
