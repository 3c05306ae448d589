"""The orders domain's seed (imported by seeds.py after the inventory seeds, so it runs
after them and may use their facts).

Until the orders API exists, rows are inserted as its services will write them (the
README's last resort); each feature's owner replaces its inserts with API calls: a
tax rate, a customer, a generic channel (secret encrypted as the service does), an
order on that channel with one reserved line, a fulfilment of one unit, a payment, a
return (not restocked) and an inbound message.
"""

from __future__ import annotations

import uuid
from typing import Any

from tests.rls.seeds import SeedContext, _each, seed

_ORDERS_SQL = """
INSERT INTO orders.tax_rates (id, code, name, rate_ppm)
    VALUES (:rate, :code, 'VAT 20%', 200000);
INSERT INTO orders.customers (id, name, email) VALUES (:customer, 'Ada', 'ada@example.com');
INSERT INTO orders.channels (id, name, kind, location_id, secret)
    VALUES (:channel, 'Shop', 'generic', :main, :secret);
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
    from erp.secretbox import current_box

    names = ("rate", "customer", "channel", "order", "line", "fulfilment", "fulfilment_line")
    names += ("payment", "return", "return_line", "message")
    ids: dict[str, Any] = {k: uuid.uuid4() for k in names}
    # a code of this tenant's only, so a foreign-key attack naming it cannot hit its own
    code = f"VAT-{ctx.tenant.id.hex[:8]}"
    ids.update(
        code=code,
        item=ctx.facts["inventory.item_id"],
        main=ctx.facts["inventory.location_id"],
        reservation=ctx.facts["inventory.reservation_id"],
        move=ctx.facts["inventory.move_id"],
        account=ctx.facts["ledger.account_id"],
        tx=ctx.facts["ledger.posted_id"],
    )

    def run(s: Any) -> None:
        _each(s, _ORDERS_SQL, {**ids, "secret": current_box().encrypt("whsec_c2VlZA==")})

    with ctx.client.application.app_context():
        db.unit_of_work(run, tenant=ctx.tenant.id)
    ctx.facts.update({f"orders.{k}_id": ids[k] for k in names})
    ctx.facts["orders.tax_code"] = code
