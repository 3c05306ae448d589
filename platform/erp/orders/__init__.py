"""Orders: tax rates, customers, sales channels, orders and their steps (fulfilments,
payments, returns), and the shops' inbound messages. Tables: migration 0014."""

from __future__ import annotations

from erp.registry import Registry


def register(r: Registry) -> None:
    r.usage_count("orders", "SELECT count(*) FROM orders.orders")
    r.encrypted("orders.channels", "secret")
    r.encrypted("orders.channels", "previous_secret")
    r.catalog(
        append_only=[
            "orders.fulfilments",
            "orders.fulfilment_lines",
            "orders.payments",
            "orders.returns",
            "orders.return_lines",
        ]
    )
