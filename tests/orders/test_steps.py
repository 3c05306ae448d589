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


# -- helpers for the books -------------------------------------------------------------


def role_balance(shop: Shop, role: str, currency: str = "USD") -> int:
    value = shop.one(
        "SELECT coalesce(sum(e.amount), 0) FROM ledger.entries e"
        " JOIN ledger.accounts a ON a.id = e.account_id WHERE a.role = %s AND a.currency = %s",
        role,
        currency,
    )
    return int(value)


def fulfil(shop: Shop, order_id: str, *lines: tuple[str, int], status: int = 201) -> Any:
    r = shop.post(
        f"{ORDERS}/{order_id}/fulfilments",
        {"lines": [{"line_id": lid, "quantity": q} for lid, q in lines]},
    )
    assert r.status_code == status, r.get_json()
    return r.get_json()


def get_order(shop: Shop, order_id: str) -> dict[str, Any]:
    r = shop.client.get(f"{ORDERS}/{order_id}", headers=shop.tenant.headers)
    assert r.status_code == 200
    data: dict[str, Any] = r.get_json()
    return data


# -- fulfil ----------------------------------------------------------------------------


def test_fulfilment_issues_stock_and_posts_one_transaction(shop: Shop) -> None:
    mug, _ = shop.item(stock=10)  # at 100 each
    shop.tax_rate("T20", 200_000)
    order = place(
        shop,
        {"item_id": mug, "quantity": 3, "unit_price": 1000, "tax_code": "T20"},
        shipping={"amount": 500, "tax_code": "T20"},
    )
    line = order["lines"][0]["id"]
    f = fulfil(shop, order["id"], (line, 1))
    assert list(f) == ["id", "order_id", "lines", "transaction_id", "created_at"]
    assert f["lines"][0]["quantity"] == 1 and f["lines"][0]["cost"] == 100
    assert shop.level(mug) == (9, 2)
    got = get_order(shop, order["id"])
    assert got["status"] == "partially_fulfilled"
    assert got["lines"][0]["fulfilled"] == 1
    # 1/3 of 3000 + 600 tax, and the whole shipping 500 + 100
    assert role_balance(shop, "accounts_receivable") == 1000 + 200 + 600
    assert role_balance(shop, "sales_revenue") == -1500
    assert role_balance(shop, "sales_tax_payable") == -300
    assert role_balance(shop, "cost_of_goods_sold") == 100
    tx = shop.rows("SELECT metadata FROM ledger.transactions WHERE id = %s", f["transaction_id"])
    assert tx[0][0] == {"order_id": order["id"], "fulfilment_id": f["id"]}
    fulfil(shop, order["id"], (line, 2))
    got = get_order(shop, order["id"])
    assert got["status"] == "fulfilled"
    assert role_balance(shop, "accounts_receivable") == got["total"] == 3000 + 600 + 600
    assert role_balance(shop, "cost_of_goods_sold") == 300
    assert shop.level(mug) == (7, 0)
    evs = events(shop, "order.fulfilled")
    assert len(evs) == 2 and evs[1]["status"] == "fulfilled" and "fulfilment" in evs[1]
    listed = shop.client.get(f"{ORDERS}/{order['id']}/fulfilments", headers=shop.tenant.headers)
    assert [x["id"] for x in listed.get_json()["items"]][1] == f["id"]
