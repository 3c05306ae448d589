"""A tenant's stock, suppliers, purchase orders and counts through the API, and the
owner-side reads the purchasing and count tests assert with."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from psycopg.rows import dict_row
from sqlalchemy import Engine

from tests.conftest import TenantHandle, make_tenant
from tests.core.helpers import assert_problem, owner_sql
from tests.inventory.conftest import pinned

INV = "/api/v1/inventory"
PO = f"{INV}/purchase-orders"


@dataclass
class Shop:
    """One tenant on the default template: suppliers, purchase orders, receipts and
    counts through the API (the Flask test client); items, locations, plain stock and
    reservations made, and levels and values read, through SQL as erp_app in the
    tenant (tests/inventory/conftest.py), so these tests stand on the schema alone."""

    client: Any
    tenant: TenantHandle
    url: str  # erp_app's database URL
    accounts: dict[str, str]  # ledger code -> id
    default_location: str

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        expect: int | None = None,
        key: str | None = None,
        **query: Any,
    ) -> Any:
        headers = dict(self.tenant.headers)
        if key is not None:
            headers["Idempotency-Key"] = key
        r = self.client.open(
            path, method=method, json=body, headers=headers, query_string=query or None
        )
        if expect is not None:
            assert r.status_code == expect, (r.status_code, r.get_json(silent=True))
        return r

    def ok(self, method: str, path: str, body: Any = None, **query: Any) -> Any:
        r = self.call(method, path, body, **query)
        assert r.status_code in (200, 201), (method, path, r.status_code, r.get_json())
        return r.get_json()

    # -- through SQL ---------------------------------------------------------------------

    def sql(self, statement: str, params: Any = None) -> list[Any]:
        with pinned(self.url, self.tenant.id, commit=True) as conn:
            cur = conn.execute(statement, params)
            return list(cur.fetchall()) if cur.description else []

    def item(self, sku: str | None = None) -> str:
        item_id = uuid.uuid4()
        self.sql(
            "INSERT INTO inventory.items (id, sku, name, unit) VALUES (%s, %s, 'Thing', 'each')",
            (item_id, sku or f"SKU-{item_id.hex[:10]}"),
        )
        return str(item_id)

    def archive_item(self, item_id: str) -> None:
        self.sql("UPDATE inventory.items SET archived = true WHERE id = %s", (item_id,))

    def location(self, code: str | None = None) -> str:
        loc = uuid.uuid4()
        self.sql(
            "INSERT INTO inventory.locations (id, code, name, kind)"
            " VALUES (%s, %s, 'Other', 'warehouse')",
            (loc, code or f"W-{loc.hex[:8]}"),
        )
        return str(loc)

    def receive_direct(self, item_id: str, quantity: int, unit_cost: int) -> None:
        """Stock on hand without a purchase order: a receipt move and its posting."""
        move, tx = uuid.uuid4(), uuid.uuid4()
        with pinned(self.url, self.tenant.id, commit=True) as conn:
            value = conn.execute(
                "SELECT value FROM inventory.apply_move(%s, 'receipt', %s, %s, NULL, %s, %s,"
                " NULL, NULL, NULL, NULL, NULL, %s)",
                (move, item_id, quantity, self.default_location, unit_cost, tx),
            ).fetchone()
            assert value is not None
            conn.execute(
                "SELECT inventory.post_value(%s, gen_random_uuid(), 'inventory',"
                " 'accounts_payable', %s, '{}')",
                (tx, value[0]),
            )

    def reserve(self, item_id: str, quantity: int) -> None:
        """Hold `quantity` at the default location, as a reservation writes it: the item
        locked first, one conditional statement on the level."""
        rid = uuid.uuid4()
        with pinned(self.url, self.tenant.id, commit=True) as conn:
            conn.execute("SELECT inventory.lock_items(ARRAY[%s]::uuid[])", (item_id,))
            cur = conn.execute(
                "UPDATE inventory.stock_levels SET reserved = reserved + %(q)s"
                " WHERE item_id = %(i)s AND location_id = %(l)s AND on_hand - reserved >= %(q)s",
                {"q": quantity, "i": item_id, "l": self.default_location},
            )
            assert cur.rowcount == 1, "not enough available to reserve"
            conn.execute(
                "INSERT INTO inventory.reservations (id, item_id, location_id, quantity)"
                " VALUES (%s, %s, %s, %s)",
                (rid, item_id, self.default_location, quantity),
            )
            conn.execute(
                "SELECT inventory.note_change(%s, %s, 0, %s, 'reservation', %s)",
                (item_id, self.default_location, quantity, rid),
            )

    def stock(self, item_id: str, location_id: str | None = None) -> dict[str, int]:
        rows = self.sql(
            "SELECT on_hand, reserved FROM inventory.stock_levels"
            " WHERE item_id = %s AND location_id = %s",
            (item_id, location_id or self.default_location),
        )
        on_hand, reserved = rows[0] if rows else (0, 0)
        return {"on_hand": on_hand, "reserved": reserved, "available": on_hand - reserved}

    def move(self, move_id: str) -> dict[str, Any]:
        with pinned(self.url, self.tenant.id) as conn:
            conn.row_factory = dict_row
            row = conn.execute(
                "SELECT * FROM inventory.stock_moves WHERE id = %s", (move_id,)
            ).fetchone()
        assert row is not None, move_id
        return {k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in row.items()}

    def valuation(self) -> dict[str, int]:
        """The items' values summed, beside the `inventory` account's posted balance:
        what GET /inventory/valuation reports as `total` and `ledger_balance`."""
        [(total, ledger)] = self.sql(
            """SELECT (SELECT coalesce(sum(value), 0) FROM inventory.items),
                      (SELECT coalesce(sum(e.amount), 0) FROM ledger.entries e
                         JOIN ledger.transactions t ON t.id = e.transaction_id
                         JOIN ledger.accounts a ON a.id = e.account_id
                        WHERE a.role = 'inventory' AND t.status = 'posted')"""
        )
        return {"total": int(total), "ledger_balance": int(ledger)}

    def balance(self, code: str) -> int:
        body = self.ok("GET", f"/api/v1/ledger/accounts/{self.accounts[code]}/balance")
        return int(body["posted"])

    # -- through the API -----------------------------------------------------------------

    def supplier(self, name: str = "Acme Supplies") -> str:
        return str(self.ok("POST", f"{INV}/suppliers", {"name": name})["id"])

    def po(
        self, lines: list[tuple[str, int, int]], supplier: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        body = {
            "supplier_id": supplier or self.supplier(),
            "lines": [{"item_id": i, "quantity": q, "unit_cost": c} for i, q, c in lines],
            **extra,
        }
        return dict(self.ok("POST", PO, body))

    def sent_po(self, lines: list[tuple[str, int, int]], **extra: Any) -> dict[str, Any]:
        po = self.po(lines, **extra)
        return dict(self.ok("POST", f"{PO}/{po['id']}/send"))

    def receive(
        self, po_id: str, lines: list[tuple[str, int]], expect: int = 201, **extra: Any
    ) -> Any:
        body = {"lines": [{"line_id": i, "quantity": q} for i, q in lines], **extra}
        return self.call("POST", f"{PO}/{po_id}/receive", body, expect=expect).get_json()

    def get_po(self, po_id: str) -> dict[str, Any]:
        return dict(self.ok("GET", f"{PO}/{po_id}"))


def open_shop(client: Any, ops_headers: dict[str, str], url: str) -> Shop:
    tenant = make_tenant(client, ops_headers)
    r = client.get("/api/v1/ledger/accounts?limit=200", headers=tenant.headers)
    assert r.status_code == 200, r.get_json()
    accounts = {a["code"]: a["id"] for a in r.get_json()["items"]}
    with pinned(url, tenant.id) as conn:
        row = conn.execute("SELECT id FROM inventory.locations WHERE is_default").fetchone()
    assert row is not None
    return Shop(client, tenant, url, accounts, str(row[0]))


def assert_field(response: Any, status: int, slug: str, field: str) -> dict[str, Any]:
    body = assert_problem(response, status, slug)
    assert field in (body.get("errors") or {}), body
    return body


#: Every table a purchase order, a receipt or a count writes, and what they post.
_COUNTS = """
    SELECT (SELECT count(*) FROM inventory.suppliers WHERE tenant_id = :t) AS suppliers,
           (SELECT count(*) FROM inventory.purchase_orders WHERE tenant_id = :t) AS pos,
           (SELECT count(*) FROM inventory.purchase_order_lines WHERE tenant_id = :t) AS lines,
           (SELECT coalesce(sum(received), 0)
              FROM inventory.purchase_order_lines WHERE tenant_id = :t) AS received,
           (SELECT string_agg(status, ',' ORDER BY id)
              FROM inventory.purchase_orders WHERE tenant_id = :t) AS statuses,
           (SELECT count(*) FROM inventory.po_receipts WHERE tenant_id = :t) AS receipts,
           (SELECT count(*) FROM inventory.po_receipt_lines WHERE tenant_id = :t) AS receipt_lines,
           (SELECT count(*) FROM inventory.counts WHERE tenant_id = :t) AS counts,
           (SELECT count(*) FROM inventory.count_lines WHERE tenant_id = :t) AS count_lines,
           (SELECT coalesce(sum(value), 0) FROM inventory.items WHERE tenant_id = :t) AS value,
           (SELECT count(*) FROM inventory.stock_moves WHERE tenant_id = :t) AS moves,
           (SELECT coalesce(sum(on_hand), 0) FROM inventory.stock_levels
             WHERE tenant_id = :t) AS on_hand,
           (SELECT count(*) FROM ledger.transactions WHERE tenant_id = :t) AS transactions,
           (SELECT count(*) FROM webhooks.outbox_events WHERE tenant_id = :t) AS events
"""


def written(engine: Engine, tenant_id: uuid.UUID) -> dict[str, Any]:
    """What the tenant holds in every table these commands write (as the superuser)."""
    return dict(owner_sql(engine, _COUNTS, {"t": tenant_id})[0]._mapping)


def events(engine: Engine, tenant_id: uuid.UUID, event_type: str) -> list[dict[str, Any]]:
    rows = owner_sql(
        engine,
        "SELECT payload FROM webhooks.outbox_events WHERE tenant_id = :t AND event_type = :e "
        "ORDER BY occurred_at, id",
        {"t": tenant_id, "e": event_type},
    )
    return [dict(r.payload) for r in rows]


def ledger_transactions(engine: Engine, tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    """Each transaction with its entries as (account_id, amount), oldest first."""
    rows = owner_sql(
        engine,
        """SELECT t.id, t.metadata, t.status,
                  array_agg(e.account_id::text ORDER BY e.amount) AS accounts,
                  array_agg(e.amount ORDER BY e.amount) AS amounts
             FROM ledger.transactions t
             JOIN ledger.entries e ON e.tenant_id = t.tenant_id AND e.transaction_id = t.id
            WHERE t.tenant_id = :t
            GROUP BY t.id, t.metadata, t.status, t.created_at
            ORDER BY t.created_at, t.id""",
        {"t": tenant_id},
    )
    return [
        {
            "id": str(r.id),
            "metadata": r.metadata,
            "status": r.status,
            "entries": list(zip(r.accounts, r.amounts, strict=True)),
        }
        for r in rows
    ]
