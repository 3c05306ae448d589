"""Inventory tables (schema `inventory`); DDL in migrations/versions/0008_inventory.py,
functions in policies/inventory.sql.

Quantities are bigint counts of the item's unit; values are bigint minor units of the
tenant's stock currency (`Settings.currency`, its base currency). Stock levels change
only through inventory.apply_move and the reservation functions, each one conditional
statement; moves, counts and receipts are append-only.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from erp.model_base import Base, TenantScoped, created_at_column

MOVE_KINDS = ("receipt", "issue", "transfer", "adjustment")
REASON_CODES = ("count", "damaged", "lost", "found", "expired", "correction", "other")
LOCATION_KINDS = ("warehouse", "zone", "bin")
#: What a zone or bin may hang under (a warehouse has no parent).
PARENT_KINDS = {"zone": ("warehouse",), "bin": ("warehouse", "zone")}
SOURCE_TYPES = ("receipt", "fulfilment", "return", "count")
RESERVATION_STATUSES = ("held", "released", "consumed")
PO_STATUSES = ("draft", "sent", "partially_received", "received", "cancelled")
#: The ledger roles inventory postings find their accounts by (API.md, Inventory).
LEDGER_ROLES = ("inventory", "accounts_payable", "cost_of_goods_sold", "inventory_adjustments")

_SCHEMA = {"schema": "inventory"}


class Settings(TenantScoped, Base):
    """One row per tenant: the currency stock is valued in (the base currency)."""

    __tablename__ = "settings"
    __table_args__ = _SCHEMA

    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = created_at_column()


class Item(TenantScoped, Base):
    __tablename__ = "items"
    __table_args__ = _SCHEMA

    sku: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    unit: Mapped[str] = mapped_column(Text)
    reorder_point: Mapped[int | None] = mapped_column(BigInteger)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    #: moving-average stock value over the item's total on_hand (written by apply_move)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
    #: stock.low sent for the current crossing (written at commit by the event trigger)
    low: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = created_at_column()


class Location(TenantScoped, Base):
    __tablename__ = "locations"
    __table_args__ = _SCHEMA

    code: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    parent_id: Mapped[uuid.UUID | None] = mapped_column()
    parent_kind: Mapped[str | None] = mapped_column(Text)
    allow_negative: Mapped[bool] = mapped_column(Boolean, default=False)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = created_at_column()


class StockLevel(TenantScoped, Base):
    __tablename__ = "stock_levels"
    __table_args__ = _SCHEMA

    item_id: Mapped[uuid.UUID] = mapped_column()
    location_id: Mapped[uuid.UUID] = mapped_column()
    on_hand: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()


class StockMove(TenantScoped, Base):
    """Append-only (erp_app may only INSERT; triggers refuse UPDATE/DELETE/TRUNCATE)."""

    __tablename__ = "stock_moves"
    __table_args__ = _SCHEMA

    kind: Mapped[str] = mapped_column(Text)
    item_id: Mapped[uuid.UUID] = mapped_column()
    quantity: Mapped[int] = mapped_column(BigInteger)
    from_location_id: Mapped[uuid.UUID | None] = mapped_column()
    to_location_id: Mapped[uuid.UUID | None] = mapped_column()
    unit_cost: Mapped[int | None] = mapped_column(BigInteger)
    value: Mapped[int | None] = mapped_column(BigInteger)
    reason_code: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    reference: Mapped[str | None] = mapped_column(Text)
    source_type: Mapped[str | None] = mapped_column(Text)
    source_id: Mapped[uuid.UUID | None] = mapped_column()
    transaction_id: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = created_at_column()


class LevelChange(TenantScoped, Base):
    """One row per level and committing transaction (inventory.note_change); its id is
    the id of the stock.changed event written from it at commit."""

    __tablename__ = "level_changes"
    __table_args__ = _SCHEMA

    xact_id: Mapped[int] = mapped_column(BigInteger)
    item_id: Mapped[uuid.UUID] = mapped_column()
    location_id: Mapped[uuid.UUID] = mapped_column()
    d_on_hand: Mapped[int] = mapped_column(BigInteger)
    d_reserved: Mapped[int] = mapped_column(BigInteger)
    sources: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = created_at_column()


class Reservation(TenantScoped, Base):
    __tablename__ = "reservations"
    __table_args__ = _SCHEMA

    item_id: Mapped[uuid.UUID] = mapped_column()
    location_id: Mapped[uuid.UUID] = mapped_column()
    quantity: Mapped[int] = mapped_column(BigInteger)
    consumed: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(Text, default="held")
    order_id: Mapped[uuid.UUID | None] = mapped_column()
    order_line_id: Mapped[uuid.UUID | None] = mapped_column()
    reference: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()


class Count(TenantScoped, Base):
    __tablename__ = "counts"
    __table_args__ = _SCHEMA

    location_id: Mapped[uuid.UUID] = mapped_column()
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()


class CountLine(TenantScoped, Base):
    __tablename__ = "count_lines"
    __table_args__ = _SCHEMA

    count_id: Mapped[uuid.UUID] = mapped_column()
    line_no: Mapped[int] = mapped_column(Integer)
    item_id: Mapped[uuid.UUID] = mapped_column()
    expected: Mapped[int] = mapped_column(BigInteger)
    counted: Mapped[int] = mapped_column(BigInteger)
    difference: Mapped[int] = mapped_column(BigInteger)
    move_id: Mapped[uuid.UUID | None] = mapped_column()


class Supplier(TenantScoped, Base):
    __tablename__ = "suppliers"
    __table_args__ = _SCHEMA

    name: Mapped[str] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(Text)
    reference: Mapped[str | None] = mapped_column(Text)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = created_at_column()


class PurchaseOrder(TenantScoped, Base):
    __tablename__ = "purchase_orders"
    __table_args__ = _SCHEMA

    supplier_id: Mapped[uuid.UUID] = mapped_column()
    status: Mapped[str] = mapped_column(Text, default="draft")
    currency: Mapped[str] = mapped_column(String(3))
    location_id: Mapped[uuid.UUID] = mapped_column()
    reference: Mapped[str | None] = mapped_column(Text)
    expected_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()


class PurchaseOrderLine(TenantScoped, Base):
    __tablename__ = "purchase_order_lines"
    __table_args__ = _SCHEMA

    purchase_order_id: Mapped[uuid.UUID] = mapped_column()
    line_no: Mapped[int] = mapped_column(Integer)
    item_id: Mapped[uuid.UUID] = mapped_column()
    quantity: Mapped[int] = mapped_column(BigInteger)
    received: Mapped[int] = mapped_column(BigInteger, default=0)
    unit_cost: Mapped[int] = mapped_column(BigInteger)


class PoReceipt(TenantScoped, Base):
    __tablename__ = "po_receipts"
    __table_args__ = _SCHEMA

    purchase_order_id: Mapped[uuid.UUID] = mapped_column()
    transaction_id: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = created_at_column()


class PoReceiptLine(TenantScoped, Base):
    __tablename__ = "po_receipt_lines"
    __table_args__ = _SCHEMA

    receipt_id: Mapped[uuid.UUID] = mapped_column()
    line_no: Mapped[int] = mapped_column(Integer)
    line_id: Mapped[uuid.UUID] = mapped_column()
    item_id: Mapped[uuid.UUID] = mapped_column()
    quantity: Mapped[int] = mapped_column(BigInteger)
    location_id: Mapped[uuid.UUID] = mapped_column()
    unit_cost: Mapped[int] = mapped_column(BigInteger)
    move_id: Mapped[uuid.UUID] = mapped_column()
