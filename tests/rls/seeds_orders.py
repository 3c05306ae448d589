"""The orders domain's seed (imported by seeds.py after the inventory seeds, so it runs
after them and may use their facts: MUG-01 stocked at MAIN, the ledger's chart).

Everything through the API, as clients and shops make it: two tax rates (one
archived), a generic channel (rotated, so it has a previous secret) and a shopify
one; an order placed on the generic channel with one reserved line (3 MUG-01, the
customer Ada made by the placement), a fulfilment of one unit, a payment (to the
`cash` role's account: the ledger seed's petty cash keeps its asserted balance) and a
return of one unit, not restocked, so the order stays partially fulfilled; then a
signed message to the channel's hook that the intake drain job (run here for this
tenant only) turns into a second order, for Bob. The placed order is the tenant's
oldest, which the foreign-key attacks (fk_attacks_orders.py) pick first.
"""

from __future__ import annotations

import json
import uuid

from tests.rls.seeds import SeedContext, seed

#: The message's Standard Webhooks id: unique per channel, so one name serves each tenant.
WEBHOOK_ID = "msg_seed"


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
    rotated = ctx.call("POST", f"/api/v1/channels/{channel['id']}/rotate-secret", key="rotate")
    shopify = {"name": "Shopify", "kind": "shopify", "signing_secret": "shpss_seed"}
    ctx.call("POST", "/api/v1/channels", {**shopify, "on_shortage": "backorder"}, key="shopify")

    line = {"item_id": str(ctx.facts["inventory.item_id"]), "quantity": 3, "unit_price": 1500}
    order = ctx.call(
        "POST",
        "/api/v1/orders",
        {
            "customer": {"name": "Ada", "email": "ada@example.com"},
            "currency": "USD",
            "channel_id": channel["id"],
            "external_id": "seed-1",
            "lines": [{**line, "tax_code": code}],
        },
        key="order",
    )
    steps = _steps(ctx, order["id"], order["lines"][0]["id"])
    message = _inbound_order(ctx, channel["id"], rotated["signing_secret"], code)

    ids = {
        "rate": rate["id"],
        "customer": order["customer"]["id"],
        "channel": channel["id"],
        "order": order["id"],
        "line": order["lines"][0]["id"],
        "message": message,
        **steps,
    }
    ctx.facts.update({f"orders.{k}_id": uuid.UUID(str(v)) for k, v in ids.items()})
    ctx.facts["orders.tax_code"] = code


def _steps(ctx: SeedContext, order_id: str, line_id: str) -> dict[str, str]:
    """One unit fulfilled, 1000 paid, that unit returned without restocking: the ids."""
    one = {"lines": [{"line_id": line_id, "quantity": 1}]}
    path = f"/api/v1/orders/{order_id}"
    fulfilment = ctx.call("POST", f"{path}/fulfilments", one, key="fulfil")
    payment = ctx.call("POST", f"{path}/payments", {"amount": 1000, "method": "card"}, key="pay")
    ret = ctx.call("POST", f"{path}/returns", {**one, "restock": False}, key="return")
    got = ctx.call("GET", path)
    assert (got["status"], got["paid"], got["credited"]) == ("partially_fulfilled", 1000, 1800), got
    return {
        "fulfilment": fulfilment["id"],
        "fulfilment_line": _line_row(ctx, "fulfilment_lines", fulfilment["id"]),
        "payment": payment["id"],
        "return": ret["id"],
        "return_line": _line_row(ctx, "return_lines", ret["id"]),
    }


def _line_row(ctx: SeedContext, table: str, step_id: str) -> uuid.UUID:
    """The id of a step's only line (the API shows a step's lines without their own ids)."""
    from sqlalchemy import text

    from erp.extensions import db

    parent = "fulfilment_id" if table == "fulfilment_lines" else "return_id"
    sql = text(f"SELECT id FROM orders.{table} WHERE {parent} = :id")
    with ctx.client.application.app_context():
        found: uuid.UUID = db.unit_of_work(
            lambda s: s.execute(sql, {"id": step_id}).scalar_one(), tenant=ctx.tenant.id
        )
    return found


def _inbound_order(ctx: SeedContext, channel_id: str, secret: str, code: str) -> str:
    """A shop's signed order to the channel's hook (202, stored `received`), applied by
    the drain job the hook enqueued, run here for this tenant only: the message's id,
    `processed` into an order."""
    from erp.orders import jobs
    from tests.orders.intake_support import hook, signed_headers

    body = json.dumps(
        {
            "external_id": "seed-web-1",
            "customer": {"name": "Bob", "email": "bob@example.com"},
            "currency": "USD",
            "lines": [{"sku": "MUG-01", "quantity": 1, "unit_price": 1500, "tax_code": code}],
        }
    ).encode()
    r = hook(ctx.client, channel_id, body, signed_headers(secret, body, WEBHOOK_ID))
    assert r.status_code == 202, f"seed inbound message: {r.status_code} {r.get_json()}"
    with ctx.client.application.app_context():
        assert jobs.drain(str(ctx.tenant.id), None) == 1
    message = ctx.call("GET", f"/api/v1/channels/{channel_id}/inbound/{r.get_json()['id']}")
    assert (message["status"], message["webhook_id"]) == ("processed", WEBHOOK_ID), message
    assert message["order_id"] is not None, message
    return str(message["id"])
