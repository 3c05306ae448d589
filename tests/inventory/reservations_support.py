"""Helpers of the reservation tests: a tenant's stock reached through the services (as the
order pipeline reaches it), the API (Flask test client), and SQL as erp_app under RLS.

Items, locations and stock are made by SQL as erp_app in the tenant: rows through RLS
as any client's, stock only through `inventory.apply_move` (the inventory core's one
move function), so every level is the sum of its moves.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg

from erp.extensions import db
from erp.http import ErpFlask
from erp.inventory import services
from erp.inventory.reservation_commands import ReservationView, Reserve, ReserveLine
from tests.conftest import TenantHandle, make_tenant

T = TypeVar("T")


@contextmanager
def pinned(url: str, tenant: uuid.UUID) -> Iterator[psycopg.Connection[Any]]:
    """A transaction as erp_app in `tenant` (RLS applies), committed on success."""
    with psycopg.connect(url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        yield conn


@dataclass
class Shop:
    """One tenant's stock."""

    app: ErpFlask
    client: Any
    app_url: str
    tenant: TenantHandle
    made: dict[str, int] = field(default_factory=dict)

    # -- SQL as erp_app ---------------------------------------------------------------

    def rows(self, sql: str, params: Any = None) -> list[Any]:
        with pinned(self.app_url, self.tenant.id) as conn:
            return list(conn.execute(sql, params).fetchall())

    def scalar(self, sql: str, params: Any = None) -> Any:
        rows = self.rows(sql, params)
        assert len(rows) == 1, rows
        return rows[0][0]

    def _next(self, prefix: str) -> str:
        self.made[prefix] = self.made.get(prefix, 0) + 1
        return f"{prefix}-{self.made[prefix]}"

    def item(self, *, archived: bool = False, reorder_point: int | None = None) -> uuid.UUID:
        item_id = uuid.uuid4()
        sku = self._next("SKU")
        with pinned(self.app_url, self.tenant.id) as conn:
            conn.execute(
                "INSERT INTO inventory.items (id, sku, name, unit, archived, reorder_point)"
                " VALUES (%s, %s, %s, 'each', %s, %s)",
                (item_id, sku, f"Item {sku}", archived, reorder_point),
            )
        return item_id

    def location(self, *, allow_negative: bool = False, archived: bool = False) -> uuid.UUID:
        location_id = uuid.uuid4()
        code = self._next("LOC")
        with pinned(self.app_url, self.tenant.id) as conn:
            conn.execute(
                "INSERT INTO inventory.locations (id, code, name, kind, allow_negative, archived)"
                " VALUES (%s, %s, %s, 'warehouse', %s, %s)",
                (location_id, code, f"Location {code}", allow_negative, archived),
            )
        return location_id

    def move(
        self,
        kind: str,
        item: uuid.UUID,
        quantity: int,
        *,
        src: uuid.UUID | None = None,
        dst: uuid.UUID | None = None,
        unit_cost: int | None = None,
        reason_code: str | None = None,
    ) -> int:
        """One move by inventory.apply_move (not posted); returns its value."""
        with pinned(self.app_url, self.tenant.id) as conn:
            row = conn.execute(
                "SELECT value FROM inventory.apply_move(%s, %s, %s, %s, %s, %s, %s, %s,"
                " NULL, NULL)",
                (uuid.uuid4(), kind, item, quantity, src, dst, unit_cost, reason_code),
            ).fetchone()
        assert row is not None
        return int(row[0] or 0)

    def receive(self, item: uuid.UUID, location: uuid.UUID, quantity: int, cost: int = 100) -> int:
        return self.move("receipt", item, quantity, dst=location, unit_cost=cost)

    def level(self, item: uuid.UUID, location: uuid.UUID) -> tuple[int, int]:
        """(on_hand, reserved); (0, 0) for a level no move or reservation touched."""
        rows = self.rows(
            "SELECT on_hand, reserved FROM inventory.stock_levels"
            " WHERE item_id = %s AND location_id = %s",
            (item, location),
        )
        return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)

    def count(self, table: str) -> int:
        return int(self.scalar(f"SELECT count(*) FROM {table}"))

    def events(self, event_type: str = "stock.changed") -> list[dict[str, Any]]:
        rows = self.rows(
            "SELECT payload FROM webhooks.outbox_events WHERE event_type = %s"
            " ORDER BY occurred_at, id",
            (event_type,),
        )
        return [r[0] if isinstance(r[0], dict) else json.loads(r[0]) for r in rows]

    def footprint(self) -> tuple[int, ...]:
        """What a refused command must leave as it was."""
        return (
            self.count("inventory.reservations"),
            self.count("inventory.stock_moves"),
            self.count("inventory.level_changes"),
            self.count("webhooks.outbox_events"),
            int(self.scalar("SELECT coalesce(sum(reserved), 0) FROM inventory.stock_levels")),
            int(self.scalar("SELECT coalesce(sum(on_hand), 0) FROM inventory.stock_levels")),
        )

    # -- the services, each call its own unit of work ----------------------------------

    def run(self, fn: Callable[[Any], T], *, one_flight: bool = False) -> T:
        with self.app.app_context():
            return db.unit_of_work(fn, tenant=self.tenant.id, one_flight=one_flight)

    def reserve(
        self, lines: Sequence[tuple[uuid.UUID, uuid.UUID, int]], order_id: uuid.UUID | None = None
    ) -> list[ReservationView]:
        cmd = Reserve([ReserveLine(i, loc, q) for i, loc, q in lines], order_id=order_id)
        return self.run(lambda s: services.reserve(s, cmd), one_flight=True)

    # -- the API (test client) ---------------------------------------------------------

    def api(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        return self.client.open(
            f"/api/v1/inventory{path}",
            method=method,
            json=body,
            headers={**self.tenant.headers, **(headers or {})},
        )


def new_shop(app: ErpFlask, client: Any, app_url: str, ops_headers: dict[str, str]) -> Shop:
    """A fresh tenant on the default template."""
    return Shop(app, client, app_url, make_tenant(client, ops_headers))


def assert_stock_consistent(shop: Shop) -> None:
    """Every level's on_hand is the sum of its moves and its reserved the sum of its held
    reservations (quantity - consumed); available >= 0 except where the location allows
    negative stock; no reservation is over-consumed."""
    bad = shop.rows(
        """
        WITH moved AS (
            SELECT item_id, location_id, sum(q) AS q FROM (
                SELECT item_id, to_location_id AS location_id, quantity AS q
                  FROM inventory.stock_moves WHERE to_location_id IS NOT NULL
                UNION ALL
                SELECT item_id, from_location_id, -quantity
                  FROM inventory.stock_moves WHERE from_location_id IS NOT NULL) m
             GROUP BY 1, 2),
        held AS (
            SELECT item_id, location_id, sum(quantity - consumed) AS q
              FROM inventory.reservations WHERE status = 'held' GROUP BY 1, 2)
        SELECT l.item_id, l.location_id, l.on_hand, coalesce(m.q, 0), l.reserved,
               coalesce(h.q, 0), lo.allow_negative
          FROM inventory.stock_levels l
          JOIN inventory.locations lo ON lo.id = l.location_id
          LEFT JOIN moved m ON m.item_id = l.item_id AND m.location_id = l.location_id
          LEFT JOIN held h ON h.item_id = l.item_id AND h.location_id = l.location_id
         WHERE l.on_hand <> coalesce(m.q, 0) OR l.reserved <> coalesce(h.q, 0)
            OR (l.on_hand - l.reserved < 0 AND NOT lo.allow_negative)
        """
    )
    assert bad == [], bad
    orphans = shop.rows(
        """SELECT r.id FROM inventory.reservations r
            WHERE NOT EXISTS (SELECT 1 FROM inventory.stock_levels l
                               WHERE l.item_id = r.item_id AND l.location_id = r.location_id)
               OR r.consumed > r.quantity"""
    )
    assert orphans == [], orphans
