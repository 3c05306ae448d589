"""Inventory endpoints (/api/v1/inventory): thin — parse, call one service, shape the reply."""

from __future__ import annotations

from erp.extensions import Blueprint

blp = Blueprint(
    "inventory", __name__, url_prefix="/api/v1/inventory", description="Items, locations, stock"
)
