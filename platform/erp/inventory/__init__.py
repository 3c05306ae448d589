"""Inventory: items, locations, stock levels and moves, reservations, counts, suppliers,
purchase orders, the stock events (stock.changed, stock.low) and their live stream
(erp/inventory/stream.py)."""

from __future__ import annotations

from datetime import timedelta

from erp.registry import Registry


def register(r: Registry) -> None:
    from erp.inventory import provisioning, routes
    from erp.inventory.services import CHANGED_EVENT, LOW_EVENT

    r.blueprint(routes.blp)
    r.template_section("inventory", provisioning.validate, provisioning.apply, order=20)
    r.usage_count("inventory_items", "SELECT count(*) FROM inventory.items")
    r.usage_count("inventory_locations", "SELECT count(*) FROM inventory.locations")
    r.usage_count("inventory_moves", "SELECT count(*) FROM inventory.stock_moves")
    # Raised by policies/inventory*.sql, always with a DETAIL naming the field.
    r.sqlstate("EI001", "insufficient-stock", "Not enough stock is available.", field="quantity")
    r.sqlstate("EI002", "validation", "The request failed validation.")
    r.sqlstate("EI003", "conflict", "The resource's state does not allow that change.")
    r.events(CHANGED_EVENT, LOW_EVENT)
    # Purchasing and counts (purchasing.py, counts.py; policies/inventory_purchasing.sql)
    from erp.inventory import count_routes, purchasing_routes
    from erp.inventory.purchasing import RECEIVED_EVENT

    r.blueprint(purchasing_routes.blp, count_routes.blp)
    # inventory.receive_purchase_order: the order is absent (or another tenant's)
    r.sqlstate("EP001", "not-found", "Not found")
    r.events(RECEIVED_EVENT)
    # level_changes live for their transaction: purged after a day (retention.py)
    r.every(
        timedelta(minutes=15),
        "erp.inventory.retention.purge_level_changes",
        name="inventory.purge_level_changes",
    )
    r.catalog(
        definers={
            "app.tenants_with_old_level_changes(timestamp with time zone,integer)": "erp_auth"
        }
    )
    r.catalog(
        append_only=[
            "inventory.stock_moves",
            "inventory.counts",
            "inventory.count_lines",
            "inventory.po_receipts",
            "inventory.po_receipt_lines",
        ]
    )

    # -- reservations (erp/inventory/reservations.py, policies/inventory_reservations.sql):
    # routes of their own; EI010 is an unknown reservation (another tenant's included).
    from erp.inventory import reservation_routes

    r.blueprint(reservation_routes.blp)
    r.sqlstate("EI010", "not-found", "Not found")

    # -- the live stream (erp/inventory/stream.py): GET /inventory/events
    from erp.inventory.stream import blp as stream_blp

    r.blueprint(stream_blp)
