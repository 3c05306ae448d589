"""Inventory: items, locations, stock moves, reservations, suppliers, purchase orders,
and the real-time stock stream (erp/inventory/stream.py)."""

from __future__ import annotations

from erp.registry import Registry


def register(r: Registry) -> None:
    from erp.inventory.stream import register_stream

    register_stream(r)
