"""Over HTTP: another tenant's id is a plain 404, and nothing the client sends picks a tenant."""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests.conftest import TenantHandle
from tests.rls.conftest import Seeded, snapshot, true_count

LEAKY_WORDS = ("psycopg", "sql", "violates", "row-level", "policy", "constraint", "traceback")
SPOOFS: dict[str, dict[str, Any]] = {
    "X-Tenant-Id header": {"headers": {"X-Tenant-Id": "{other_id}"}},
    "X-Tenant header": {"headers": {"X-Tenant": "{other_slug}"}},
    "tenant_id query": {"query": "tenant_id={other_id}"},
    "tenant query": {"query": "tenant={other_slug}"},
}


def _without_request_id(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "request_id"}


def _assert_no_leak(raw: bytes, *secrets: object) -> None:
    lowered = raw.decode().lower()
    for word in LEAKY_WORDS:
        assert word not in lowered, f"{word!r} in {raw!r}"
    for secret in secrets:
        assert str(secret).lower() not in lowered


def _key_rows(owner_engine: Engine, tenant: uuid.UUID) -> list[Any]:
    with owner_engine.connect() as conn:
        return list(
            conn.execute(
                text("SELECT id, revoked_at FROM iam.api_keys WHERE tenant_id = :t ORDER BY id"),
                {"t": tenant},
            )
        )


# -- another tenant's id ------------------------------------------------------------

#: Calls that name one row by id: (method, path, body); {x} is a fact of the seeded
#: tenant A (tests/rls/seeds.py), or a random uuid for the control call.
BY_ID: dict[str, tuple[str, str, Any]] = {
    "get key": ("GET", "/api/v1/api-keys/{iam.key_id}", None),
    "revoke key": ("DELETE", "/api/v1/api-keys/{iam.key_id}", None),
    "get account": ("GET", "/api/v1/ledger/accounts/{ledger.account_id}", None),
    "rename account": (
        "PATCH",
        "/api/v1/ledger/accounts/{ledger.account_id}",
        {"name": "stolen", "archived": True},
    ),
    "account balance": ("GET", "/api/v1/ledger/accounts/{ledger.account_id}/balance", None),
    "account entries": ("GET", "/api/v1/ledger/accounts/{ledger.account_id}/entries", None),
    "get transaction": ("GET", "/api/v1/ledger/transactions/{ledger.posted_id}", None),
    "post pending": ("POST", "/api/v1/ledger/transactions/{ledger.pending_id}/post", {}),
    "void pending": ("POST", "/api/v1/ledger/transactions/{ledger.pending_id}/void", {}),
    "reverse": ("POST", "/api/v1/ledger/transactions/{ledger.posted_id}/reverse", {}),
    # purchasing and counts (erp/inventory/purchasing_routes.py, count_routes.py)
    "get supplier": ("GET", "/api/v1/inventory/suppliers/{inventory.supplier_id}", None),
    "archive supplier": (
        "PATCH",
        "/api/v1/inventory/suppliers/{inventory.supplier_id}",
        {"archived": True},
    ),
    "get purchase order": (
        "GET",
        "/api/v1/inventory/purchase-orders/{inventory.draft_po_id}",
        None,
    ),
    "edit purchase order": (
        "PATCH",
        "/api/v1/inventory/purchase-orders/{inventory.draft_po_id}",
        {"reference": "stolen"},
    ),
    "send purchase order": (
        "POST",
        "/api/v1/inventory/purchase-orders/{inventory.draft_po_id}/send",
        None,
    ),
    "cancel purchase order": (
        "POST",
        "/api/v1/inventory/purchase-orders/{inventory.draft_po_id}/cancel",
        None,
    ),
    "receive purchase order": (
        "POST",
        "/api/v1/inventory/purchase-orders/{inventory.purchase_order_id}/receive",
        {"lines": [{"line_id": "0b7e5a0e-0000-4000-8000-000000000001", "quantity": 1}]},
    ),
    "purchase order receipts": (
        "GET",
        "/api/v1/inventory/purchase-orders/{inventory.purchase_order_id}/receipts",
        None,
    ),
    "get count": ("GET", "/api/v1/inventory/counts/{inventory.count_id}", None),
    # orders: tax rates, customers, channels (erp/orders/routes.py)
    "get tax rate": ("GET", "/api/v1/tax-rates/{orders.rate_id}", None),
    "archive tax rate": (
        "PATCH",
        "/api/v1/tax-rates/{orders.rate_id}",
        {"name": "stolen", "archived": True},
    ),
    "get customer": ("GET", "/api/v1/customers/{orders.customer_id}", None),
    "get channel": ("GET", "/api/v1/channels/{orders.channel_id}", None),
    "edit channel": (
        "PATCH",
        "/api/v1/channels/{orders.channel_id}",
        {"name": "stolen", "on_shortage": "backorder", "location_id": None, "archived": True},
    ),
    "rotate channel secret": ("POST", "/api/v1/channels/{orders.channel_id}/rotate-secret", None),
    # reservations (erp/inventory/reservation_routes.py)
    "get reservation": ("GET", "/api/v1/inventory/reservations/{inventory.reservation_id}", None),
    "release reservation": (
        "POST",
        "/api/v1/inventory/reservations/{inventory.reservation_id}/release",
        {},
    ),
    # orders and their steps (placement_routes.py, steps_routes.py)
    "get order": ("GET", "/api/v1/orders/{orders.order_id}", None),
    "cancel order": ("POST", "/api/v1/orders/{orders.order_id}/cancel", {"reason": "stolen"}),
    "order fulfilments": ("GET", "/api/v1/orders/{orders.order_id}/fulfilments", None),
    "fulfil order": (
        "POST",
        "/api/v1/orders/{orders.order_id}/fulfilments",
        {"lines": [{"line_id": "0b7e5a0e-0000-4000-8000-000000000001", "quantity": 1}]},
    ),
    "order payments": ("GET", "/api/v1/orders/{orders.order_id}/payments", None),
    "pay order": (
        "POST",
        "/api/v1/orders/{orders.order_id}/payments",
        {"amount": 1, "method": "card"},
    ),
    "order returns": ("GET", "/api/v1/orders/{orders.order_id}/returns", None),
    "return order": (
        "POST",
        "/api/v1/orders/{orders.order_id}/returns",
        {
            "lines": [{"line_id": "0b7e5a0e-0000-4000-8000-000000000001", "quantity": 1}],
            "restock": True,
        },
    ),
    # a channel's inbound messages (intake_routes.py)
    "channel inbound": ("GET", "/api/v1/channels/{orders.channel_id}/inbound", None),
    "get inbound message": (
        "GET",
        "/api/v1/channels/{orders.channel_id}/inbound/{orders.message_id}",
        None,
    ),
    "retry inbound message": (
        "POST",
        "/api/v1/channels/{orders.channel_id}/inbound/{orders.message_id}/retry",
        None,
    ),
}


def _fill(path: str, facts: Any) -> str:
    return re.sub(r"\{([a-z_.]+)\}", lambda m: str(facts[m.group(1)]), path)


@pytest.mark.parametrize("call", BY_ID.values(), ids=BY_ID.keys())
def test_another_tenants_row_is_a_404_like_any_unknown_id(
    client: Any, seeded: Seeded, owner_engine: Engine, call: tuple[str, str, Any]
) -> None:
    """B names A's seeded row: the answer is the unknown id's, and nothing changes."""
    method, path, body = call
    a, b = seeded.a, seeded.b
    victim_before = snapshot(owner_engine, a.id)
    counts_before = {t: n for t, (n, _) in snapshot(owner_engine, b.id).items()}
    foreign = client.open(_fill(path, seeded.of(a)), method=method, json=body, headers=b.headers)
    unknown = client.open(
        _fill(path, defaultdict(uuid.uuid4)), method=method, json=body, headers=b.headers
    )
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.mimetype == unknown.mimetype == "application/problem+json"
    assert _without_request_id(foreign.get_json()) == _without_request_id(unknown.get_json())
    _assert_no_leak(foreign.data, a.id, a.slug, *seeded.of(a).values())
    assert snapshot(owner_engine, a.id) == victim_before
    assert {t: n for t, (n, _) in snapshot(owner_engine, b.id).items()} == counts_before
    # control: A itself reaches the row (the path and facts are right)
    own = client.open(_fill(path, seeded.of(a)), method="GET", headers=a.headers)
    assert own.status_code in (200, 405), own.get_json()


def test_posting_to_another_tenants_accounts_is_refused_like_unknown_ones(
    client: Any, seeded: Seeded, owner_engine: Engine
) -> None:
    a, b = seeded.a, seeded.b
    before = (snapshot(owner_engine, a.id), true_count(owner_engine, "ledger.entries", b.id))

    def post(account: object) -> Any:
        own = client.get("/api/v1/ledger/accounts?limit=1", headers=b.headers)
        body = {
            "description": "into A's books",
            "entries": [
                {"account_id": str(account), "amount": 100, "currency": "USD"},
                {"account_id": own.get_json()["items"][0]["id"], "amount": -100, "currency": "USD"},
            ],
        }
        return client.post("/api/v1/ledger/transactions", json=body, headers=b.headers)

    foreign, unknown = post(seeded.of(a)["ledger.account_id"]), post(uuid.uuid4())
    assert foreign.status_code == unknown.status_code == 422
    assert _without_request_id(foreign.get_json()) == _without_request_id(unknown.get_json())
    assert "entries.0.account_id" in foreign.get_json()["errors"]
    after = (snapshot(owner_engine, a.id), true_count(owner_engine, "ledger.entries", b.id))
    assert after == before


def _ids(owner_engine: Engine, sql: str, tenant: uuid.UUID) -> list[str]:
    with owner_engine.connect() as conn:
        return sorted(str(x) for x in conn.execute(text(sql), {"t": tenant}).scalars())


#: Lists and the superuser's query for what they must hold: exactly the tenant's rows.
LISTS = {
    "api keys": (
        "/api/v1/api-keys?limit=200",
        "id",
        "SELECT id FROM iam.api_keys WHERE tenant_id = :t",
    ),
    "accounts": (
        "/api/v1/ledger/accounts?limit=200",
        "id",
        "SELECT id FROM ledger.accounts WHERE tenant_id = :t",
    ),
    "transactions": (
        "/api/v1/ledger/transactions?limit=200",
        "id",
        "SELECT id FROM ledger.transactions WHERE tenant_id = :t",
    ),
    "periods": (
        "/api/v1/ledger/periods",
        "period",
        "SELECT to_char(period, 'YYYY-MM') FROM ledger.periods WHERE tenant_id = :t",
    ),
    "trial balance": (
        "/api/v1/ledger/reports/trial-balance",
        "account_id",
        "SELECT id FROM ledger.accounts WHERE tenant_id = :t",
    ),
    "suppliers": (
        "/api/v1/inventory/suppliers?limit=200",
        "id",
        "SELECT id FROM inventory.suppliers WHERE tenant_id = :t",
    ),
    "purchase orders": (
        "/api/v1/inventory/purchase-orders?limit=200",
        "id",
        "SELECT id FROM inventory.purchase_orders WHERE tenant_id = :t",
    ),
    "counts": (
        "/api/v1/inventory/counts?limit=200",
        "id",
        "SELECT id FROM inventory.counts WHERE tenant_id = :t",
    ),
    "tax rates": (
        "/api/v1/tax-rates?limit=200",
        "id",
        "SELECT id FROM orders.tax_rates WHERE tenant_id = :t",
    ),
    "customers": (
        "/api/v1/customers?limit=200",
        "id",
        "SELECT id FROM orders.customers WHERE tenant_id = :t",
    ),
    "customer by email": (
        "/api/v1/customers?email=ADA@example.com",
        "id",
        "SELECT id FROM orders.customers WHERE tenant_id = :t AND email = 'ada@example.com'",
    ),
    "channels": (
        "/api/v1/channels?limit=200",
        "id",
        "SELECT id FROM orders.channels WHERE tenant_id = :t",
    ),
    "reservations": (
        "/api/v1/inventory/reservations?limit=200",
        "id",
        "SELECT id FROM inventory.reservations WHERE tenant_id = :t",
    ),
    "orders": (
        "/api/v1/orders?limit=200",
        "id",
        "SELECT id FROM orders.orders WHERE tenant_id = :t",
    ),
}


@pytest.mark.parametrize("listing", LISTS.values(), ids=LISTS.keys())
def test_each_list_holds_exactly_the_tenants_own_rows(
    client: Any, seeded: Seeded, owner_engine: Engine, listing: tuple[str, str, str]
) -> None:
    path, field, sql = listing
    for me, other in ((seeded.a, seeded.b), (seeded.b, seeded.a)):
        r = client.get(path, headers=me.headers)
        assert r.status_code == 200, r.get_json()
        body = r.get_json()
        items = body.get("items", body.get("rows"))
        assert body.get("next_cursor") is None, "one page holds them all"
        # lists, not sets: both tenants hold a period "2024-01", and a leak shows twice
        listed = sorted(str(item[field]) for item in items)
        own = _ids(owner_engine, sql, me.id)
        assert own, "seeded"
        assert _ids(owner_engine, sql, other.id), "seeded"
        assert listed == own


def test_a_balance_counts_only_the_tenants_own_postings(client: Any, seeded: Seeded) -> None:
    """Both tenants posted the same seeded amounts; a leak across them would double these."""
    for t in (seeded.a, seeded.b):
        r = client.get(
            f"/api/v1/ledger/accounts/{seeded.of(t)['ledger.account_id']}/balance",
            headers=t.headers,
        )
        assert r.status_code == 200, r.get_json()
        # sale 12,500 + 4,000 reversed + 500 of the 700 held, settled; 900 still held
        assert (r.get_json()["posted"], r.get_json()["pending"]) == (13_000, 900)


@pytest.mark.parametrize("method", ["get", "delete"])
def test_malformed_key_id_is_a_422(client: Any, tenant: TenantHandle, method: str) -> None:
    r = getattr(client, method)("/api/v1/api-keys/not-a-uuid", headers=tenant.headers)
    assert r.status_code == 422
    assert r.get_json()["type"].endswith("validation")
    _assert_no_leak(r.data)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/api-keys",
        "/api/v1/ledger/accounts",
        "/api/v1/ledger/transactions",
        "/api/v1/inventory/purchase-orders",
        "/api/v1/tax-rates",
        "/api/v1/customers",
        "/api/v1/channels",
        "/api/v1/inventory/reservations",
        "/api/v1/orders",
    ],
)
def test_another_tenants_list_cursor_is_refused(client: Any, seeded: Seeded, path: str) -> None:
    first = client.get(f"{path}?limit=1", headers=seeded.a.headers)
    assert first.status_code == 200
    cursor = first.get_json()["next_cursor"]
    assert cursor, "tenant A has more than one row"
    page = f"{path}?limit=1&cursor={cursor}"
    assert client.get(page, headers=seeded.a.headers).status_code == 200
    stolen = client.get(page, headers=seeded.b.headers)
    assert stolen.status_code == 422
    assert "items" not in stolen.get_json()


# -- nothing the client sends chooses the tenant ----------------------------------------


def _spoof(spec: dict[str, Any], victim: TenantHandle) -> tuple[dict[str, str], str]:
    fill = {"other_id": str(victim.id), "other_slug": victim.slug}
    headers = {k: v.format(**fill) for k, v in spec.get("headers", {}).items()}
    query = spec.get("query", "").format(**fill)
    return headers, query


@pytest.mark.parametrize("spec", SPOOFS.values(), ids=SPOOFS.keys())
def test_me_always_answers_the_keys_own_tenant(
    client: Any, seeded: Seeded, spec: dict[str, Any]
) -> None:
    headers, query = _spoof(spec, seeded.b)
    r = client.get(f"/api/v1/me?{query}", headers={**seeded.a.headers, **headers})
    assert r.status_code == 200
    assert r.get_json()["tenant"]["id"] == str(seeded.a.id)
    assert r.get_json()["tenant"]["slug"] == seeded.a.slug


@pytest.mark.parametrize("listing", ["api keys", "transactions"])
@pytest.mark.parametrize("spec", SPOOFS.values(), ids=SPOOFS.keys())
def test_lists_stay_in_the_keys_own_tenant(
    client: Any, seeded: Seeded, owner_engine: Engine, spec: dict[str, Any], listing: str
) -> None:
    """A spoofing header is ignored; a spoofing parameter is an unknown one (API.md: 422)."""
    path, field, sql = LISTS[listing]
    headers, query = _spoof(spec, seeded.b)
    r = client.get(f"{path}&{query}", headers={**seeded.a.headers, **headers})
    if query:
        assert r.status_code == 422, r.get_json()
        assert query.split("=")[0] in r.get_json()["errors"]
        return
    assert r.status_code == 200
    assert sorted(str(k[field]) for k in r.get_json()["items"]) == _ids(
        owner_engine, sql, seeded.a.id
    )


def test_tenant_id_in_a_body_is_an_unknown_field(
    client: Any, tenant: TenantHandle, other_tenant: TenantHandle, owner_engine: Engine
) -> None:
    before = (_key_rows(owner_engine, tenant.id), _key_rows(owner_engine, other_tenant.id))
    r = client.post(
        "/api/v1/api-keys",
        json={"name": "spoof", "scopes": ["api_keys:read"], "tenant_id": str(other_tenant.id)},
        headers=tenant.headers,
    )
    assert r.status_code == 422
    assert "tenant_id" in r.get_json().get("errors", {})
    assert (_key_rows(owner_engine, tenant.id), _key_rows(owner_engine, other_tenant.id)) == before


def test_a_spoofing_header_on_create_still_creates_in_the_keys_tenant(
    client: Any, tenant: TenantHandle, other_tenant: TenantHandle, owner_engine: Engine
) -> None:
    before_other = _key_rows(owner_engine, other_tenant.id)
    r = client.post(
        f"/api/v1/api-keys?tenant_id={other_tenant.id}",
        json={"name": "spoof", "scopes": ["api_keys:read"]},
        headers={**tenant.headers, "X-Tenant-Id": str(other_tenant.id)},
    )
    assert r.status_code == 201, r.get_json()
    created = uuid.UUID(r.get_json()["id"])
    assert created in {row.id for row in _key_rows(owner_engine, tenant.id)}
    assert _key_rows(owner_engine, other_tenant.id) == before_other
    # the new key authenticates as the creator's tenant
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {r.get_json()['key']}"})
    assert me.get_json()["tenant"]["id"] == str(tenant.id)


def test_idempotency_keys_are_scoped_to_the_tenant(
    client: Any, tenant: TenantHandle, other_tenant: TenantHandle, owner_engine: Engine
) -> None:
    """B reusing A's Idempotency-Key gets its own new key, never A's stored response."""
    body = {"name": "same", "scopes": ["api_keys:read"]}
    shared = {"Idempotency-Key": f"shared-{uuid.uuid4()}"}
    first = client.post("/api/v1/api-keys", json=body, headers={**tenant.headers, **shared})
    second = client.post("/api/v1/api-keys", json=body, headers={**other_tenant.headers, **shared})
    assert first.status_code == second.status_code == 201
    assert "Idempotent-Replayed" not in second.headers
    assert second.get_json()["key"] != first.get_json()["key"]
    assert uuid.UUID(second.get_json()["id"]) in {
        row.id for row in _key_rows(owner_engine, other_tenant.id)
    }
    replay = client.post("/api/v1/api-keys", json=body, headers={**tenant.headers, **shared})
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.get_json()["id"] == first.get_json()["id"]
