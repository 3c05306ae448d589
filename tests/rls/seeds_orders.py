"""The orders domain's seed (imported by seeds.py after the inventory seeds, so it runs
after them and may use their facts).

Through the API: two tax rates (one archived), a generic channel (rotated, so it has
a previous secret) and a shopify one; the customer through `customer_for`, as
placement makes it. Until placement, the steps and the intake exist, their rows are
inserted as those services will write them (the README's last resort); each
feature's owner replaces its inserts with API calls: an order on the generic channel
with one reserved line, a fulfilment of one unit, a payment, a return (not
restocked) and an inbound message.
"""

from __future__ import annotations

import uuid
from typing import Any

from tests.rls.seeds import SeedContext, _each, seed

_ORDERS_SQL = """
INSERT INTO orders.orders (id, channel_id, external_id, request_hash, customer_id, currency,
        location_id, status, subtotal, tax, total, paid, credited)
    VALUES (:order, :channel, 'seed-1', 'seed', :customer, 'USD', :main,
        'partially_fulfilled', 4500, 900, 5400, 1000, 1800);
INSERT INTO orders.order_lines (id, order_id, line_no, item_id, sku, quantity, unit_price,
        tax_code, tax_rate_ppm, subtotal, tax, total, fulfilled, returned, reservation_id)
    VALUES (:line, :order, 0, :item, 'MUG-01', 3, 1500, :code, 200000, 4500, 900, 5400,
        1, 1, :reservation);
INSERT INTO orders.fulfilments (id, order_id, subtotal, tax, cost)
    VALUES (:fulfilment, :order, 1500, 300, 400);
INSERT INTO orders.fulfilment_lines (id, fulfilment_id, order_id, line_no, line_id, item_id,
        quantity, cost, subtotal, tax, move_id)
    VALUES (:fulfilment_line, :fulfilment, :order, 0, :line, :item, 1, 400, 1500, 300, :move);
INSERT INTO orders.payments (id, order_id, amount, currency, method, account_id,
        transaction_id)
    VALUES (:payment, :order, 1000, 'USD', 'card', :account, :tx);
INSERT INTO orders.returns (id, order_id, restock, subtotal, tax)
    VALUES (:return, :order, false, 1500, 300);
INSERT INTO orders.return_lines (id, return_id, order_id, line_no, line_id, item_id,
        quantity, cost, subtotal, tax)
    VALUES (:return_line, :return, :order, 0, :line, :item, 1, 0, 1500, 300);
INSERT INTO orders.inbound_messages (id, channel_id, webhook_id, topic, body, status,
        order_id, processed_at)
    VALUES (:message, :channel, 'msg_seed', NULL, '{}', 'processed', :order, now())
"""


@seed(
    "orders.tax_rates",
    "orders.customers",
    "orders.channels",
    "orders.orders",
    "orders.order_lines",
    "orders.fulfilments",
    "orders.fulfilment_lines",
    "orders.payments",
    "orders.returns",
    "orders.return_lines",
    "orders.inbound_messages",
)
def seed_orders(ctx: SeedContext) -> None:
    from erp.extensions import db
    from erp.orders import services

    # a code of this tenant's only, so a foreign-key attack naming it cannot hit its own
    code = f"VAT-{ctx.tenant.id.hex[:8]}"
    rate = ctx.call(
        "POST", "/api/v1/tax-rates", {"code": code, "name": "VAT", "rate_ppm": 200000}, key="rate"
    )
    old = ctx.call("POST", "/api/v1/tax-rates", {"code": "OLD", "name": "Old", "rate_ppm": 5})
    ctx.call("PATCH", f"/api/v1/tax-rates/{old['id']}", {"archived": True})
    main = str(ctx.facts["inventory.location_id"])
    channel = ctx.call(
        "POST",
        "/api/v1/channels",
        {"name": "Shop", "kind": "generic", "location_id": main},
        key="channel",
    )
    ctx.call("POST", f"/api/v1/channels/{channel['id']}/rotate-secret", key="rotate")
    shopify = {"name": "Shopify", "kind": "shopify", "signing_secret": "shpss_seed"}
    ctx.call("POST", "/api/v1/channels", {**shopify, "on_shortage": "backorder"}, key="shopify")
    with ctx.client.application.app_context():
        for name in ("Bob", "Ada"):
            customer = db.unit_of_work(
                lambda s, n=name: services.customer_for(s, n, f"{n.lower()}@example.com"),
                tenant=ctx.tenant.id,
            )

    names = ("order", "line", "fulfilment", "fulfilment_line")
    names += ("payment", "return", "return_line", "message")
    ids: dict[str, Any] = {k: uuid.uuid4() for k in names}
    ids.update(
        rate=uuid.UUID(rate["id"]),
        customer=customer.id,
        channel=uuid.UUID(channel["id"]),
        code=code,
        item=ctx.facts["inventory.item_id"],
        main=ctx.facts["inventory.location_id"],
        reservation=ctx.facts["inventory.reservation_id"],
        move=ctx.facts["inventory.move_id"],
        account=ctx.facts["ledger.account_id"],
        tx=ctx.facts["ledger.posted_id"],
    )

    def run(s: Any) -> None:
        _each(s, _ORDERS_SQL, ids)

    with ctx.client.application.app_context():
        db.unit_of_work(run, tenant=ctx.tenant.id)
    ctx.facts.update({f"orders.{k}_id": ids[k] for k in (*names, "rate", "customer", "channel")})
    ctx.facts["orders.tax_code"] = code
