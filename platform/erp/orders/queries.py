"""Reads: tax rates, customers and channels, cursor-paginated (API.md, Lists)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from erp.orders.models import Channel, Customer, TaxRate
from erp.pagination import Page, paginate


def tax_rates_page(
    s: Session, include_archived: bool, cursor: str | None, limit: int
) -> Page[TaxRate]:
    stmt: Select[Any] = select(TaxRate)
    if not include_archived:
        stmt = stmt.where(TaxRate.archived.is_(False))
    return paginate(
        s,
        stmt,
        list_name="orders.tax_rates",
        sort=TaxRate.created_at,
        id_col=TaxRate.id,
        cursor=cursor,
        limit=limit,
    )


def customers_page(s: Session, email: str | None, cursor: str | None, limit: int) -> Page[Customer]:
    stmt: Select[Any] = select(Customer)
    if email is not None:  # case-insensitive, on the unique index (tenant_id, lower(email))
        stmt = stmt.where(func.lower(Customer.email) == func.lower(email))
    return paginate(
        s,
        stmt,
        list_name="orders.customers",
        sort=Customer.created_at,
        id_col=Customer.id,
        cursor=cursor,
        limit=limit,
    )


def channels_page(
    s: Session, include_archived: bool, cursor: str | None, limit: int
) -> Page[Channel]:
    stmt: Select[Any] = select(Channel)
    if not include_archived:
        stmt = stmt.where(Channel.archived.is_(False))
    return paginate(
        s,
        stmt,
        list_name="orders.channels",
        sort=Channel.created_at,
        id_col=Channel.id,
        cursor=cursor,
        limit=limit,
    )
