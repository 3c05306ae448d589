"""Inventory fixtures: a tenant on the default template (chart with the inventory roles,
MAIN warehouse), and direct calls of the domain's SQL functions as erp_app."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from tests.conftest import TenantHandle, make_tenant

MOVE = """
    SELECT value, created_at FROM inventory.apply_move(
        %(id)s, %(kind)s, %(item)s, %(quantity)s, %(from)s, %(to)s, %(unit_cost)s,
        %(reason_code)s, %(reason)s, %(reference)s, NULL, NULL, %(tx)s)
"""


@contextmanager
def pinned(url: str, tenant: uuid.UUID, commit: bool = False) -> Iterator[psycopg.Connection[Any]]:
    """A transaction as erp_app in `tenant`: committed if `commit`, else rolled back."""
    with psycopg.connect(url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")  # as the app's connections are
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        if commit:
            conn.commit()
        else:
            conn.rollback()


@dataclass
class Stock:
    """One tenant's stock, driven through the SQL functions."""

    url: str
    tenant: TenantHandle
    main: uuid.UUID

    def item(self, sku: str | None = None, reorder_point: int | None = None) -> uuid.UUID:
        item_id = uuid.uuid4()
        with pinned(self.url, self.tenant.id, commit=True) as conn:
            conn.execute(
                "INSERT INTO inventory.items (id, sku, name, unit, reorder_point)"
                " VALUES (%s, %s, 'Item', 'each', %s)",
                (item_id, sku or f"SKU-{item_id.hex[:8]}", reorder_point),
            )
        return item_id

    def location(self, code: str | None = None, allow_negative: bool = False) -> uuid.UUID:
        loc = uuid.uuid4()
        with pinned(self.url, self.tenant.id, commit=True) as conn:
            conn.execute(
                "INSERT INTO inventory.locations (id, code, name, kind, allow_negative)"
                " VALUES (%s, %s, 'Place', 'warehouse', %s)",
                (loc, code or f"L-{loc.hex[:8]}", allow_negative),
            )
        return loc

    def move(
        self, conn: psycopg.Connection[Any], kind: str, item: uuid.UUID, quantity: int, **kw: Any
    ) -> tuple[int | None, Any]:
        params = {
            "id": kw.pop("id", uuid.uuid4()),
            "kind": kind,
            "item": item,
            "quantity": quantity,
            "from": kw.pop("frm", None),
            "to": kw.pop("to", None),
            "unit_cost": kw.pop("unit_cost", None),
            "reason_code": kw.pop("reason_code", None),
            "reason": kw.pop("reason", None),
            "reference": kw.pop("reference", None),
            "tx": kw.pop("tx", None),
        }
        assert not kw, kw
        row = conn.execute(MOVE, params).fetchone()
        assert row is not None
        return row[0], row[1]

    def committed_move(self, kind: str, item: uuid.UUID, quantity: int, **kw: Any) -> int | None:
        with pinned(self.url, self.tenant.id, commit=True) as conn:
            return self.move(conn, kind, item, quantity, **kw)[0]

    def one(self, sql: str, *args: Any) -> Any:
        with pinned(self.url, self.tenant.id) as conn:
            row = conn.execute(sql, args).fetchone()
            return None if row is None else (row[0] if len(row) == 1 else row)

    def events(self, event_type: str) -> list[dict[str, Any]]:
        with pinned(self.url, self.tenant.id) as conn:
            rows = conn.execute(
                "SELECT payload FROM webhooks.outbox_events WHERE event_type = %s"
                " ORDER BY occurred_at, id",
                (event_type,),
            ).fetchall()
        return [r[0] for r in rows]


def open_stock(client: Any, ops_headers: dict[str, str], url: str) -> Stock:
    tenant = make_tenant(client, ops_headers)
    with pinned(url, tenant.id) as conn:
        row = conn.execute("SELECT id FROM inventory.locations WHERE is_default").fetchone()
    assert row is not None
    return Stock(url, tenant, row[0])


@pytest.fixture
def stock(client: Any, ops_headers: dict[str, str], app_url: str) -> Stock:
    return open_stock(client, ops_headers, app_url)


# The stream tests' fixtures live in stream_support.py; imported here so pytest finds them.
from tests.inventory.stream_support import live_url, open_stream, stream_app  # noqa: E402, F401
