"""Orders tables (schema `orders`); DDL in migrations/versions/0014_orders.py.

Amounts are bigint minor units: of the order's currency, except `cost` (the tenant's
base currency, as Inventory values stock). Quantities are bigint counts of the item's
unit. Fulfilments, payments and returns (and their lines) are append-only; an order's
running totals and a line's counters are kept by the steps that change them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from erp.model_base import Base, TenantScoped, created_at_column

CHANNEL_KINDS = ("generic", "shopify")
SHORTAGE_POLICIES = ("reject", "backorder")
ORDER_STATUSES = ("confirmed", "partially_fulfilled", "fulfilled", "cancelled")
PAYMENT_METHODS = ("card", "cash", "bank_transfer", "other")
INBOUND_STATUSES = ("received", "processed", "duplicate", "failed", "ignored")
#: The ledger roles order postings find their accounts by (API.md, Orders).
LEDGER_ROLES = ("accounts_receivable", "sales_revenue", "sales_tax_payable", "cash")

_SCHEMA = {"schema": "orders"}


class TaxRate(TenantScoped, Base):
    __tablename__ = "tax_rates"
    __table_args__ = _SCHEMA

    code: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    #: parts per million: 200000 = 20 %; never changes (a new rate is a new code)
    rate_ppm: Mapped[int] = mapped_column(Integer)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = created_at_column()


class Customer(TenantScoped, Base):
    """Made by orders, matched by lower(email) (unique per tenant)."""

    __tablename__ = "customers"
    __table_args__ = _SCHEMA

    name: Mapped[str] = mapped_column(Text)
    email: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()


class Channel(TenantScoped, Base):
    __tablename__ = "channels"
    __table_args__ = _SCHEMA

    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    on_shortage: Mapped[str] = mapped_column(Text, default="reject")
    location_id: Mapped[uuid.UUID | None] = mapped_column()
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    #: SecretBox tokens (erp/secretbox.py): `whsec_...` (generic) or the shop's secret
    secret: Mapped[str] = mapped_column(Text)
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()


class Order(TenantScoped, Base):
    __tablename__ = "orders"
    __table_args__ = _SCHEMA

    channel_id: Mapped[uuid.UUID | None] = mapped_column()
    #: unique per channel; orders without a channel share one namespace
    external_id: Mapped[str | None] = mapped_column(Text)
    #: the placing body's fingerprint (same external_id: same body 200, other 409)
    request_hash: Mapped[str | None] = mapped_column(Text)
    customer_id: Mapped[uuid.UUID] = mapped_column()
    currency: Mapped[str] = mapped_column(String(3))
    location_id: Mapped[uuid.UUID] = mapped_column()
    status: Mapped[str] = mapped_column(Text, default="confirmed")
    #: running totals: the non-cancelled share of the lines (and shipping)
    subtotal: Mapped[int] = mapped_column(BigInteger, default=0)
    tax: Mapped[int] = mapped_column(BigInteger, default=0)
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    #: signed (refunds lower it)
    paid: Mapped[int] = mapped_column(BigInteger, default=0)
    credited: Mapped[int] = mapped_column(BigInteger, default=0)
    #: the non-stock shipping charge, priced like a line of quantity 1, booked with the
    #: first fulfilment (shipping_booked)
    shipping_subtotal: Mapped[int] = mapped_column(BigInteger, default=0)
    shipping_tax: Mapped[int] = mapped_column(BigInteger, default=0)
    shipping_tax_code: Mapped[str | None] = mapped_column(Text)
    shipping_tax_rate_ppm: Mapped[int | None] = mapped_column(Integer)
    shipping_booked: Mapped[bool] = mapped_column(Boolean, default=False)
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()


class OrderLine(TenantScoped, Base):
    __tablename__ = "order_lines"
    __table_args__ = _SCHEMA

    order_id: Mapped[uuid.UUID] = mapped_column()
    line_no: Mapped[int] = mapped_column(Integer)
    item_id: Mapped[uuid.UUID] = mapped_column()
    sku: Mapped[str] = mapped_column(Text)
    quantity: Mapped[int] = mapped_column(BigInteger)
    unit_price: Mapped[int] = mapped_column(BigInteger)
    discount: Mapped[int] = mapped_column(BigInteger, default=0)
    #: the tax code and its rate at placing; both None for an explicit `tax`
    tax_code: Mapped[str | None] = mapped_column(Text)
    tax_rate_ppm: Mapped[int | None] = mapped_column(Integer)
    #: of the line's whole quantity
    subtotal: Mapped[int] = mapped_column(BigInteger)
    tax: Mapped[int] = mapped_column(BigInteger)
    total: Mapped[int] = mapped_column(BigInteger)
    backordered: Mapped[int] = mapped_column(BigInteger, default=0)
    fulfilled: Mapped[int] = mapped_column(BigInteger, default=0)
    cancelled: Mapped[int] = mapped_column(BigInteger, default=0)
    returned: Mapped[int] = mapped_column(BigInteger, default=0)
    #: the line's inventory reservation (None when nothing was reserved)
    reservation_id: Mapped[uuid.UUID | None] = mapped_column()


class Fulfilment(TenantScoped, Base):
    __tablename__ = "fulfilments"
    __table_args__ = _SCHEMA

    order_id: Mapped[uuid.UUID] = mapped_column()
    #: what this step booked (order currency), shipping apart; cost in the base currency
    subtotal: Mapped[int] = mapped_column(BigInteger, default=0)
    tax: Mapped[int] = mapped_column(BigInteger, default=0)
    shipping_subtotal: Mapped[int] = mapped_column(BigInteger, default=0)
    shipping_tax: Mapped[int] = mapped_column(BigInteger, default=0)
    cost: Mapped[int] = mapped_column(BigInteger, default=0)
    transaction_id: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = created_at_column()


class FulfilmentLine(TenantScoped, Base):
    __tablename__ = "fulfilment_lines"
    __table_args__ = _SCHEMA

    fulfilment_id: Mapped[uuid.UUID] = mapped_column()
    order_id: Mapped[uuid.UUID] = mapped_column()
    line_no: Mapped[int] = mapped_column(Integer)
    line_id: Mapped[uuid.UUID] = mapped_column()
    item_id: Mapped[uuid.UUID] = mapped_column()
    quantity: Mapped[int] = mapped_column(BigInteger)
    cost: Mapped[int] = mapped_column(BigInteger)
    subtotal: Mapped[int] = mapped_column(BigInteger, default=0)
    tax: Mapped[int] = mapped_column(BigInteger, default=0)
    move_id: Mapped[uuid.UUID] = mapped_column()


class Payment(TenantScoped, Base):
    __tablename__ = "payments"
    __table_args__ = _SCHEMA

    order_id: Mapped[uuid.UUID] = mapped_column()
    #: signed: negative is a refund
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    method: Mapped[str] = mapped_column(Text)
    account_id: Mapped[uuid.UUID] = mapped_column()
    reference: Mapped[str | None] = mapped_column(Text)
    transaction_id: Mapped[uuid.UUID] = mapped_column()
    created_at: Mapped[datetime] = created_at_column()


class Return(TenantScoped, Base):
    __tablename__ = "returns"
    __table_args__ = _SCHEMA

    order_id: Mapped[uuid.UUID] = mapped_column()
    restock: Mapped[bool] = mapped_column(Boolean)
    location_id: Mapped[uuid.UUID | None] = mapped_column()
    reason: Mapped[str | None] = mapped_column(Text)
    #: the credit note (order currency); the restocked units' cost (base currency)
    subtotal: Mapped[int] = mapped_column(BigInteger, default=0)
    tax: Mapped[int] = mapped_column(BigInteger, default=0)
    cost: Mapped[int] = mapped_column(BigInteger, default=0)
    transaction_id: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = created_at_column()


class ReturnLine(TenantScoped, Base):
    __tablename__ = "return_lines"
    __table_args__ = _SCHEMA

    return_id: Mapped[uuid.UUID] = mapped_column()
    order_id: Mapped[uuid.UUID] = mapped_column()
    line_no: Mapped[int] = mapped_column(Integer)
    line_id: Mapped[uuid.UUID] = mapped_column()
    item_id: Mapped[uuid.UUID] = mapped_column()
    quantity: Mapped[int] = mapped_column(BigInteger)
    cost: Mapped[int] = mapped_column(BigInteger)
    subtotal: Mapped[int] = mapped_column(BigInteger, default=0)
    tax: Mapped[int] = mapped_column(BigInteger, default=0)
    #: the receipt move, when restocked
    move_id: Mapped[uuid.UUID | None] = mapped_column()


class InboundMessage(TenantScoped, Base):
    """A shop's webhook, stored raw before anything else happens to it."""

    __tablename__ = "inbound_messages"
    __table_args__ = _SCHEMA

    channel_id: Mapped[uuid.UUID] = mapped_column()
    #: webhook-id (generic) or X-Shopify-Webhook-Id; unique per channel
    webhook_id: Mapped[str] = mapped_column(Text)
    topic: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, default="received")
    order_id: Mapped[uuid.UUID | None] = mapped_column()
    #: a problem object {type, title, detail, errors?} when failed
    error: Mapped[dict[str, Any] | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = created_at_column()
    processed_at: Mapped[datetime | None] = mapped_column()
