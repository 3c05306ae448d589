"""Ledger tables (schema `ledger`); DDL in migrations/versions/0002_ledger.py.

Money is bigint minor units with an ISO 4217 code. An entry's amount is signed:
debit > 0, credit < 0. Balances are never stored as mutable values: they are
sums of entries, kept incrementally in `balance_deltas` (per day) and `balance_hours` (per
hour) by triggers.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from erp.model_base import Base, TenantScoped, created_at_column

ACCOUNT_TYPES = ("asset", "liability", "equity", "revenue", "expense")
#: Accounts whose balance is normally a debit (positive); the others are credit-normal.
DEBIT_NORMAL = frozenset({"asset", "expense"})
GUARDS = ("none", "non_negative")
#: Account roles: the one account per role and currency the system posts to
#: (retained_earnings: year-end closing; the others: inventory and order postings, API.md).
ROLES = (
    "retained_earnings",
    "inventory",
    "accounts_payable",
    "cost_of_goods_sold",
    "inventory_adjustments",
    "accounts_receivable",
    "sales_revenue",
    "sales_tax_payable",
    "cash",
)
STATUSES = ("pending", "posted", "voided")


class Account(TenantScoped, Base):
    __tablename__ = "accounts"
    __table_args__ = {"schema": "ledger"}

    code: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(String(3))
    parent_id: Mapped[uuid.UUID | None] = mapped_column()
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    guard: Mapped[str] = mapped_column(Text, default="none")
    role: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()


class Transaction(TenantScoped, Base):
    __tablename__ = "transactions"
    __table_args__ = {"schema": "ledger"}

    description: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text, default="standard")
    effective_at: Mapped[datetime] = mapped_column()
    posted_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = created_at_column()
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    reverses_id: Mapped[uuid.UUID | None] = mapped_column()
    adjusts_id: Mapped[uuid.UUID | None] = mapped_column()


class Entry(TenantScoped, Base):
    __tablename__ = "entries"
    __table_args__ = {"schema": "ledger"}

    transaction_id: Mapped[uuid.UUID] = mapped_column()
    account_id: Mapped[uuid.UUID] = mapped_column()
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    effective_at: Mapped[datetime] = mapped_column()


class _BalanceSums:
    """Derived: an account's sums per bucket and writer slot. Written only by triggers
    (policies/ledger_balances.sql)."""

    account_id: Mapped[uuid.UUID] = mapped_column()
    slot: Mapped[int] = mapped_column(SmallInteger)
    posted: Mapped[int] = mapped_column(BigInteger)
    pending_dr: Mapped[int] = mapped_column(BigInteger)
    pending_cr: Mapped[int] = mapped_column(BigInteger)


class BalanceDelta(_BalanceSums, TenantScoped, Base):
    """Per UTC day."""

    __tablename__ = "balance_deltas"
    __table_args__ = {"schema": "ledger"}

    day: Mapped[date] = mapped_column()


class BalanceHour(_BalanceSums, TenantScoped, Base):
    """Per UTC hour."""

    __tablename__ = "balance_hours"
    __table_args__ = {"schema": "ledger"}

    hour: Mapped[datetime] = mapped_column()


class Period(TenantScoped, Base):
    """A closed month (open months have no row)."""

    __tablename__ = "periods"
    __table_args__ = {"schema": "ledger"}

    period: Mapped[date] = mapped_column()
    closed_at: Mapped[datetime] = created_at_column()
    closed_by: Mapped[str] = mapped_column(Text)
    closing_transaction_id: Mapped[uuid.UUID | None] = mapped_column()
