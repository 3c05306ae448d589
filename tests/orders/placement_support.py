"""A tenant to place orders in: items stocked at MAIN through the inventory API, tax
rates and channels written directly as erp_app (their own endpoints are not under test
here), and reads of what the database holds."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from tests.conftest import TenantHandle, make_tenant
from tests.inventory.conftest import pinned

ORDERS = "/api/v1/orders"
INV = "/api/v1/inventory"


@dataclass
class Shop:
    client: Any
    tenant: TenantHandle
    url: str
    main: uuid.UUID

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
        return self.client.post(path, json=body, headers={**self.tenant.headers, **(headers or {})})

    def item(self, stock: int = 0, sku: str | None = None) -> tuple[str, str]:
        sku = sku or f"SKU-{uuid.uuid4().hex[:10]}"
        r = self.post(f"{INV}/items", {"sku": sku, "name": "Thing", "unit": "each"})
        assert r.status_code == 201, r.get_json()
        item_id = r.get_json()["id"]
        if stock:
            self.receive(item_id, stock)
        return item_id, sku

    def receive(self, item_id: str, quantity: int, location: uuid.UUID | None = None) -> None:
        r = self.post(
            f"{INV}/moves",
            {
                "kind": "receipt",
                "item_id": item_id,
                "quantity": quantity,
                "to_location_id": str(location or self.main),
                "unit_cost": 100,
            },
        )
        assert r.status_code == 201, r.get_json()

    def execute(self, sql: str, *args: Any) -> None:
        with pinned(self.url, self.tenant.id, commit=True) as conn:
            conn.execute(sql, args)

    def rows(self, sql: str, *args: Any) -> list[Any]:
        with pinned(self.url, self.tenant.id) as conn:
            return conn.execute(sql, args).fetchall()

    def one(self, sql: str, *args: Any) -> Any:
        rows = self.rows(sql, *args)
        return rows[0][0] if rows else None

    def tax_rate(self, code: str, rate_ppm: int, archived: bool = False) -> None:
        self.execute(
            "INSERT INTO orders.tax_rates (id, code, name, rate_ppm, archived)"
            " VALUES (gen_random_uuid(), %s, %s, %s, %s)",
            code,
            f"Tax {code}",
            rate_ppm,
            archived,
        )

    def channel(
        self, on_shortage: str = "reject", location: uuid.UUID | None = None, archived: bool = False
    ) -> str:
        cid = uuid.uuid4()
        self.execute(
            "INSERT INTO orders.channels (id, name, kind, on_shortage, location_id, archived,"
            " secret) VALUES (%s, 'Shop', 'generic', %s, %s, %s, 'not-a-real-token')",
            cid,
            on_shortage,
            location,
            archived,
        )
        return str(cid)

    def location(self, allow_negative: bool = False) -> uuid.UUID:
        loc = uuid.uuid4()
        self.execute(
            "INSERT INTO inventory.locations (id, code, name, kind, allow_negative)"
            " VALUES (%s, %s, 'Place', 'warehouse', %s)",
            loc,
            f"L-{loc.hex[:8]}",
            allow_negative,
        )
        return loc

    def level(self, item_id: str, location: uuid.UUID | None = None) -> tuple[int, int]:
        row = self.rows(
            "SELECT on_hand, reserved FROM inventory.stock_levels"
            " WHERE item_id = %s AND location_id = %s",
            item_id,
            location or self.main,
        )
        return (int(row[0][0]), int(row[0][1])) if row else (0, 0)

    def count(self, table: str) -> int:
        return int(self.one(f"SELECT count(*) FROM {table}"))

    def written(self) -> dict[str, int]:
        """Rows a placement writes, to show a refused one wrote nothing."""
        return {
            t: self.count(t)
            for t in (
                "orders.orders",
                "orders.order_lines",
                "orders.customers",
                "inventory.reservations",
                "webhooks.outbox_events",
            )
        }


def new_shop(client: Any, ops_headers: dict[str, str], url: str) -> Shop:
    tenant = make_tenant(client, ops_headers)
    with pinned(url, tenant.id) as conn:
        row = conn.execute("SELECT id FROM inventory.locations WHERE is_default").fetchone()
    assert row is not None
    return Shop(client, tenant, url, row[0])


def order_body(*lines: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "customer": {"name": "Ada", "email": "ada@example.com"},
        "currency": "USD",
        "lines": list(lines),
        **extra,
    }
