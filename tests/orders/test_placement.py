"""Placing orders (API.md, Orders: Placing): pricing and rounding, validation (problem+json,
nothing written), shortage refused or backordered, deduplication by (channel,
external_id) and by Idempotency-Key, races for the last unit and for one external_id,
tenant isolation, the reads (GET /orders, GET /orders/{id})."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import pytest

from erp.http import ErpFlask
from tests.conftest import AppFactory
from tests.ledger.helpers_concurrency import Reply, request, serve, together
from tests.orders.placement_support import ORDERS, Shop, new_shop, order_body

ORDER_KEYS = [
    "id", "status", "external_id", "channel_id", "currency", "customer", "location_id",
    "lines", "shipping", "subtotal", "tax", "total", "paid", "credited", "balance_due",
    "metadata", "created_at",
]  # fmt: skip
LINE_KEYS = [
    "id", "item_id", "sku", "quantity", "unit_price", "tax_code", "subtotal", "tax", "total",
    "backordered", "fulfilled", "cancelled", "returned",
]  # fmt: skip


@pytest.fixture
def shop(client: Any, ops_headers: dict[str, str], app_url: str) -> Shop:
    return new_shop(client, ops_headers, app_url)


# -- pricing ---------------------------------------------------------------------------


def test_an_order_is_priced_reserved_written_and_announced(shop: Shop) -> None:
    mug, mug_sku = shop.item(stock=10)
    tee, tee_sku = shop.item(stock=5)
    shop.tax_rate("NY", 88_750)
    body = order_body(
        {"item_id": mug, "quantity": 2, "unit_price": 1500},
        {"sku": tee_sku, "quantity": 3, "unit_price": 999, "discount": 97, "tax_code": "NY"},
        {"sku": mug_sku, "quantity": 1, "unit_price": 500, "tax": 40},
        shipping={"amount": 495, "tax_code": "NY"},
        external_id="shop-1001",
        metadata={"note": "gift"},
    )
    r = shop.post(ORDERS, body)
    assert r.status_code == 201, r.get_json()
    order = r.get_json()
    assert list(order) == ORDER_KEYS
    assert [list(line) for line in order["lines"]] == [LINE_KEYS] * 3
    # 2997 - 97 = 2900; 2900 × 8.875 % = 257.375 -> 257; shipping 495 × 8.875 % = 43.93 -> 44
    assert [(l["sku"], l["subtotal"], l["tax"], l["total"]) for l in order["lines"]] == [
        (mug_sku, 3000, 0, 3000),
        (tee_sku, 2900, 257, 3157),
        (mug_sku, 500, 40, 540),
    ]
    assert order["lines"][1]["item_id"] == tee and order["lines"][2]["item_id"] == mug
    assert order["shipping"] == {"amount": 495, "tax_code": "NY", "tax": 44, "total": 539}
    assert (order["subtotal"], order["tax"], order["total"]) == (6895, 341, 7236)
    assert (order["paid"], order["credited"], order["balance_due"]) == (0, 0, 7236)
    assert order["status"] == "confirmed" and order["external_id"] == "shop-1001"
    assert order["location_id"] == str(shop.main) and order["channel_id"] is None
    assert order["customer"]["email"] == "ada@example.com" and order["metadata"] == {"note": "gift"}
    assert all(l["backordered"] == 0 for l in order["lines"])
    assert shop.level(mug) == (10, 3) and shop.level(tee) == (5, 3)
    reservations = shop.rows(
        "SELECT r.order_line_id, r.quantity FROM inventory.reservations r"
        " JOIN orders.order_lines l ON l.reservation_id = r.id WHERE r.order_id = %s"
        " ORDER BY l.line_no",
        order["id"],
    )
    assert [(str(a), b) for a, b in reservations] == [
        (l["id"], l["quantity"]) for l in order["lines"]
    ]
    got = shop.client.get(f"{ORDERS}/{order['id']}", headers=shop.tenant.headers)
    assert got.status_code == 200 and got.get_json() == order
    events = shop.rows(
        "SELECT id, payload FROM webhooks.outbox_events WHERE event_type = 'order.created'"
    )
    assert [e[1] for e in events] == [order]


@pytest.mark.parametrize(
    ("unit_price", "quantity", "rate_ppm", "tax"),
    [
        (4, 1, 125_000, 1),  # 0.5 exactly: up
        (2, 1, 250_000, 1),  # 0.5 exactly: up
        (10, 1, 50_000, 1),  # 0.5 exactly: up
        (30, 1, 50_000, 2),  # 1.5 exactly: up
        (1, 1, 499_999, 0),  # 0.499999: down
        (3, 1, 166_667, 1),  # 0.500001: up
        (7, 1, 71_428, 0),  # 0.499996: down
        (1000, 1, 88_750, 89),  # 88.75
        (1, 1, 1_000_000, 1),  # 100 %
        (0, 5, 200_000, 0),
        (1, 1, 0, 0),
        (999_999_999_999, 9, 200_000, 1_799_999_999_998),  # 1,799,999,999,998.2
        (1_000_000_000_000_001, 1, 500_000, 500_000_000_000_001),  # .5 above 2**53
    ],
)
def test_tax_rounds_half_up_in_integer_minor_units(
    shop: Shop, unit_price: int, quantity: int, rate_ppm: int, tax: int
) -> None:
    item, _ = shop.item(stock=quantity)
    shop.tax_rate("T", rate_ppm)
    line = {"item_id": item, "quantity": quantity, "unit_price": unit_price, "tax_code": "T"}
    r = shop.post(ORDERS, order_body(line))
    assert r.status_code == 201, r.get_json()
    got = r.get_json()["lines"][0]
    assert (got["subtotal"], got["tax"], got["total"]) == (
        unit_price * quantity,
        tax,
        unit_price * quantity + tax,
    )
    assert got["tax_code"] == "T"
