"""An order's steps (API.md, Orders: Steps): cancel, fulfil, pay, return — each rule,
each 409/422 with nothing half done, the postings and their rounding, Idempotency-Key,
and two steps racing on one order."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.orders.placement_support import ORDERS, Shop, new_shop, order_body


@pytest.fixture
def shop(client: Any, ops_headers: dict[str, str], app_url: str) -> Shop:
    return new_shop(client, ops_headers, app_url)


def place(shop: Shop, *lines: dict[str, Any], **extra: Any) -> dict[str, Any]:
    r = shop.post(ORDERS, order_body(*lines, **extra))
    assert r.status_code == 201, r.get_json()
    order: dict[str, Any] = r.get_json()
    return order


def events(shop: Shop, event_type: str) -> list[Any]:
    return [
        row[0]
        for row in shop.rows(
            "SELECT payload FROM webhooks.outbox_events WHERE event_type = %s ORDER BY occurred_at",
            event_type,
        )
    ]


def step_rows(shop: Shop) -> dict[str, int]:
    """What a step writes, to show a refused one wrote nothing."""
    return {
        t: shop.count(t)
        for t in (
            "orders.fulfilments",
            "orders.fulfilment_lines",
            "orders.payments",
            "orders.returns",
            "orders.return_lines",
            "inventory.stock_moves",
            "ledger.transactions",
            "webhooks.outbox_events",
        )
    }


# -- cancel ----------------------------------------------------------------------------


def test_cancel_releases_the_open_units_and_announces_it(shop: Shop) -> None:
    mug, _ = shop.item(stock=10)
    order = place(shop, {"item_id": mug, "quantity": 3, "unit_price": 1000})
    assert shop.level(mug) == (10, 3)
    r = shop.post(f"{ORDERS}/{order['id']}/cancel", {"reason": "changed mind"})
    assert r.status_code == 200, r.get_json()
    got = r.get_json()
    assert got["status"] == "cancelled"
    assert got["lines"][0]["cancelled"] == 3
    assert (got["subtotal"], got["tax"], got["total"], got["balance_due"]) == (0, 0, 0, 0)
    assert shop.level(mug) == (10, 0)
    assert events(shop, "order.cancelled") == [got]
    again = shop.post(f"{ORDERS}/{order['id']}/cancel", {})
    assert again.status_code == 409
    assert again.get_json()["type"].endswith("conflict")
    assert len(events(shop, "order.cancelled")) == 1


def test_cancel_of_an_unknown_order_is_404(shop: Shop) -> None:
    r = shop.post(f"{ORDERS}/{uuid.uuid4()}/cancel", {})
    assert r.status_code == 404
