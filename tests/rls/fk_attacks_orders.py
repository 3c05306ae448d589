"""The orders domain's foreign-key attacks (test_composite_fk.py runs them): one per key,
keyed "child(columns other than tenant_id)", each an INSERT by tenant B whose other
references are B's own seeded rows and whose attacked one is :a (A's seeded row, or a
random id for the control)."""

from __future__ import annotations

_MUG = "(SELECT i.id FROM inventory.items i WHERE i.sku = 'MUG-01')"
_MAIN = "(SELECT l.id FROM inventory.locations l WHERE l.is_default)"
_MOVE = "(SELECT m.id FROM inventory.stock_moves m WHERE m.kind = 'receipt' LIMIT 1)"
_TX = "(SELECT t.id FROM ledger.transactions t WHERE t.status = 'posted' LIMIT 1)"
_CUSTOMER = "(SELECT c.id FROM orders.customers c ORDER BY c.created_at, c.id LIMIT 1)"
_CHANNEL = "(SELECT c.id FROM orders.channels c ORDER BY c.created_at, c.id LIMIT 1)"
_ORDER = "(SELECT o.id FROM orders.orders o ORDER BY o.created_at, o.id LIMIT 1)"
_ACCOUNT = "(SELECT a.id FROM ledger.accounts a WHERE a.code = '1000')"
_FUL = "(SELECT f.{} FROM orders.fulfilments f ORDER BY f.created_at, f.id LIMIT 1)"
_RET = "(SELECT r.{} FROM orders.returns r ORDER BY r.created_at, r.id LIMIT 1)"


def _line_of(order: str) -> str:
    return f"(SELECT l.id FROM orders.order_lines l WHERE l.order_id = {order} LIMIT 1)"


def _insert(table: str, values: dict[str, str], attacked: str) -> str:
    row = {**values, attacked: ":a"}
    return (
        f"INSERT INTO orders.{table} (id, {', '.join(row)}) "
        f"SELECT gen_random_uuid(), {', '.join(row.values())}"
    )


_CHANNEL_ROW = {"name": "'probe'", "kind": "'generic'", "secret": "'x'"}
_ORDER_ROW = {"customer_id": _CUSTOMER, "currency": "'USD'", "location_id": _MAIN}
_ORDER_TAXED = {**_ORDER_ROW, "shipping_tax_rate_ppm": "200000"}
_LINE_ROW = {
    "order_id": _ORDER,
    "line_no": "99",
    "item_id": _MUG,
    "sku": "'MUG-01'",
    "quantity": "1",
    "unit_price": "0",
    "subtotal": "0",
    "tax": "0",
    "total": "0",
}
_FUL_LINE = {
    "fulfilment_id": _FUL.format("id"),
    "order_id": _FUL.format("order_id"),
    "line_no": "99",
    "line_id": _line_of(_FUL.format("order_id")),
    "item_id": _MUG,
    "quantity": "1",
    "cost": "0",
    "move_id": _MOVE,
}
_PAYMENT = {
    "order_id": _ORDER,
    "amount": "1",
    "currency": "'USD'",
    "method": "'cash'",
    "account_id": _ACCOUNT,
    "transaction_id": _TX,
}
_RETURN = {"order_id": _ORDER, "restock": "false"}
_RET_LINE = {
    "return_id": _RET.format("id"),
    "order_id": _RET.format("order_id"),
    "line_no": "99",
    "line_id": _line_of(_RET.format("order_id")),
    "item_id": _MUG,
    "quantity": "1",
    "cost": "0",
}
_MESSAGE = {"channel_id": _CHANNEL, "webhook_id": "gen_random_uuid()::text", "body": "'{}'"}

ORDERS_FK_ATTACKS: dict[str, tuple[str, str]] = {
    "orders.channels(location_id)": (
        "inventory.location_id",
        _insert("channels", _CHANNEL_ROW, "location_id"),
    ),
    "orders.orders(channel_id)": ("orders.channel_id", _insert("orders", _ORDER_ROW, "channel_id")),
    "orders.orders(customer_id)": (
        "orders.customer_id",
        _insert("orders", _ORDER_ROW, "customer_id"),
    ),
    "orders.orders(location_id)": (
        "inventory.location_id",
        _insert("orders", _ORDER_ROW, "location_id"),
    ),
    "orders.orders(shipping_tax_code,shipping_tax_rate_ppm)": (
        "orders.tax_code",
        _insert("orders", _ORDER_TAXED, "shipping_tax_code"),
    ),
    "orders.order_lines(order_id)": (
        "orders.order_id",
        _insert("order_lines", _LINE_ROW, "order_id"),
    ),
    "orders.order_lines(item_id)": (
        "inventory.item_id",
        _insert("order_lines", _LINE_ROW, "item_id"),
    ),
    "orders.order_lines(tax_code,tax_rate_ppm)": (
        "orders.tax_code",
        _insert("order_lines", {**_LINE_ROW, "tax_rate_ppm": "200000"}, "tax_code"),
    ),
    "orders.order_lines(reservation_id)": (
        "inventory.reservation_id",
        _insert("order_lines", _LINE_ROW, "reservation_id"),
    ),
    "orders.fulfilments(order_id)": ("orders.order_id", _insert("fulfilments", {}, "order_id")),
    "orders.fulfilments(transaction_id)": (
        "ledger.posted_id",
        _insert("fulfilments", {"order_id": _ORDER}, "transaction_id"),
    ),
    "orders.fulfilment_lines(order_id,fulfilment_id)": (
        "orders.fulfilment_id",
        _insert("fulfilment_lines", _FUL_LINE, "fulfilment_id"),
    ),
    "orders.fulfilment_lines(order_id,line_id)": (
        "orders.line_id",
        _insert("fulfilment_lines", _FUL_LINE, "line_id"),
    ),
    "orders.fulfilment_lines(item_id)": (
        "inventory.item_id",
        _insert("fulfilment_lines", _FUL_LINE, "item_id"),
    ),
    "orders.fulfilment_lines(move_id)": (
        "inventory.move_id",
        _insert("fulfilment_lines", _FUL_LINE, "move_id"),
    ),
    "orders.payments(order_id,currency)": (
        "orders.order_id",
        _insert("payments", _PAYMENT, "order_id"),
    ),
    "orders.payments(account_id,currency)": (
        "ledger.account_id",
        _insert("payments", _PAYMENT, "account_id"),
    ),
    "orders.payments(transaction_id)": (
        "ledger.posted_id",
        _insert("payments", _PAYMENT, "transaction_id"),
    ),
    "orders.returns(order_id)": ("orders.order_id", _insert("returns", _RETURN, "order_id")),
    "orders.returns(location_id)": (
        "inventory.location_id",
        _insert("returns", _RETURN, "location_id"),
    ),
    "orders.returns(transaction_id)": (
        "ledger.posted_id",
        _insert("returns", _RETURN, "transaction_id"),
    ),
    "orders.return_lines(order_id,return_id)": (
        "orders.return_id",
        _insert("return_lines", _RET_LINE, "return_id"),
    ),
    "orders.return_lines(order_id,line_id)": (
        "orders.line_id",
        _insert("return_lines", _RET_LINE, "line_id"),
    ),
    "orders.return_lines(item_id)": (
        "inventory.item_id",
        _insert("return_lines", _RET_LINE, "item_id"),
    ),
    "orders.return_lines(move_id)": (
        "inventory.move_id",
        _insert("return_lines", _RET_LINE, "move_id"),
    ),
    "orders.inbound_messages(channel_id)": (
        "orders.channel_id",
        _insert("inbound_messages", _MESSAGE, "channel_id"),
    ),
    "orders.inbound_messages(order_id)": (
        "orders.order_id",
        _insert("inbound_messages", _MESSAGE, "order_id"),
    ),
}

#: Checked at commit (a reservation, move or ledger transaction made in the same step).
ORDERS_DEFERRED_KEYS = frozenset(
    {
        "orders.order_lines(reservation_id)",
        "orders.fulfilments(transaction_id)",
        "orders.fulfilment_lines(move_id)",
        "orders.payments(transaction_id)",
        "orders.returns(transaction_id)",
        "orders.return_lines(move_id)",
    }
)
