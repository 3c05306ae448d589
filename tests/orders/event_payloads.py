"""Real payloads of orders' outbox event types, for the generic schema check of the
webhooks' event types (tests/webhooks/test_event_schemas.py): `produce(request, client,
tenant)` makes the domain emit the type in `tenant` through the API."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import TenantHandle
from tests.inventory.conftest import pinned
from tests.orders.placement_support import ORDERS, Shop, order_body


def _created(request: pytest.FixtureRequest, client: Any, tenant: TenantHandle) -> None:
    """Two orders: one plain, one taxed with shipping, a channel, an external id,
    metadata and a backordered line."""
    url = request.getfixturevalue("app_url")
    with pinned(url, tenant.id) as conn:
        row = conn.execute("SELECT id FROM inventory.locations WHERE is_default").fetchone()
    assert row is not None
    shop = Shop(client, tenant, url, row[0])
    item, sku = shop.item(stock=3)
    shop.tax_rate("EV", 200_000)
    channel = shop.channel("backorder")
    plain = shop.post(ORDERS, order_body({"item_id": item, "quantity": 1, "unit_price": 250}))
    assert plain.status_code == 201, plain.get_json()
    full = order_body(
        {"sku": sku, "quantity": 5, "unit_price": 1999, "discount": 5, "tax_code": "EV"},
        {"item_id": item, "quantity": 1, "unit_price": 100, "tax": 7},
        shipping={"amount": 500, "tax_code": "EV"},
        channel_id=channel,
        external_id="ev-1",
        metadata={"source": "events", "n": 1, "gift": True},
    )
    r = shop.post(ORDERS, full)
    assert r.status_code == 201, r.get_json()


PRODUCERS = {"order.created": _created}


def _shop(request: pytest.FixtureRequest, client: Any, tenant: TenantHandle) -> Shop:
    url = request.getfixturevalue("app_url")
    with pinned(url, tenant.id) as conn:
        row = conn.execute("SELECT id FROM inventory.locations WHERE is_default").fetchone()
    assert row is not None
    return Shop(client, tenant, url, row[0])


def _cancelled(request: pytest.FixtureRequest, client: Any, tenant: TenantHandle) -> None:
    """A confirmed order cancelled with a reason."""
    shop = _shop(request, client, tenant)
    item, _ = shop.item(stock=2)
    r = shop.post(ORDERS, order_body({"item_id": item, "quantity": 2, "unit_price": 300}))
    assert r.status_code == 201, r.get_json()
    c = shop.post(f"{ORDERS}/{r.get_json()['id']}/cancel", {"reason": "test"})
    assert c.status_code == 200, c.get_json()


PRODUCERS["order.cancelled"] = _cancelled


def _lifecycle(request: pytest.FixtureRequest, client: Any, tenant: TenantHandle) -> None:
    """A taxed order with shipping: fulfilled in two steps, paid, refunded after a return
    restocked, and one not restocked."""
    shop = _shop(request, client, tenant)
    item, _ = shop.item(stock=5)
    shop.tax_rate("LC", 100_000)
    r = shop.post(
        ORDERS,
        order_body(
            {"item_id": item, "quantity": 3, "unit_price": 700, "tax_code": "LC"},
            shipping={"amount": 300, "tax_code": "LC"},
        ),
    )
    assert r.status_code == 201, r.get_json()
    order = r.get_json()
    oid, line = order["id"], order["lines"][0]["id"]
    for q in (1, 2):
        f = shop.post(f"{ORDERS}/{oid}/fulfilments", {"lines": [{"line_id": line, "quantity": q}]})
        assert f.status_code == 201, f.get_json()
    p = shop.post(
        f"{ORDERS}/{oid}/payments", {"amount": 2640, "method": "card", "reference": "ch_1"}
    )
    assert p.status_code == 201, p.get_json()
    for restock in (True, False):
        back = shop.post(
            f"{ORDERS}/{oid}/returns",
            {"lines": [{"line_id": line, "quantity": 1}], "restock": restock, "reason": "r"},
        )
        assert back.status_code == 201, back.get_json()
    refund = shop.post(f"{ORDERS}/{oid}/payments", {"amount": -770, "method": "card"})
    assert refund.status_code == 201, refund.get_json()


PRODUCERS["order.fulfilled"] = _lifecycle
PRODUCERS["order.paid"] = _lifecycle
PRODUCERS["order.returned"] = _lifecycle
