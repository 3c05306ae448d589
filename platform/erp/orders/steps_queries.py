"""Reading an order's steps (API.md, Orders: Steps): a fulfilment, payment or return as
GET /orders/{id}/fulfilments|payments|returns lists it and its event carries it, built
by PostgreSQL (timestamps as orders.order_json writes them), and the lists."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from erp.errors import Problem
from erp.orders.models import Fulfilment, Order, Payment, Return
from erp.pagination import paginate

_FULFILMENTS = text("""
    SELECT f.id, json_build_object(
        'id', f.id, 'order_id', f.order_id,
        'lines', (SELECT json_agg(json_build_object(
                         'line_id', l.line_id, 'item_id', l.item_id, 'quantity', l.quantity,
                         'cost', l.cost, 'move_id', l.move_id) ORDER BY l.line_no)
                    FROM orders.fulfilment_lines l WHERE l.fulfilment_id = f.id),
        'transaction_id', f.transaction_id,
        'created_at', inventory.iso_utc(f.created_at))::text
      FROM orders.fulfilments f WHERE f.id = ANY (:ids)
""")

_PAYMENTS = text("""
    SELECT p.id, json_build_object(
        'id', p.id, 'order_id', p.order_id, 'amount', p.amount, 'currency', p.currency,
        'method', p.method, 'account_id', p.account_id, 'reference', p.reference,
        'transaction_id', p.transaction_id,
        'created_at', inventory.iso_utc(p.created_at))::text
      FROM orders.payments p WHERE p.id = ANY (:ids)
""")

_RETURNS = text("""
    SELECT r.id, json_build_object(
        'id', r.id, 'order_id', r.order_id,
        'lines', (SELECT json_agg(json_build_object(
                         'line_id', l.line_id, 'item_id', l.item_id, 'quantity', l.quantity,
                         'cost', l.cost, 'move_id', l.move_id) ORDER BY l.line_no)
                    FROM orders.return_lines l WHERE l.return_id = r.id),
        'restock', r.restock, 'location_id', r.location_id, 'reason', r.reason,
        'transaction_id', r.transaction_id,
        'created_at', inventory.iso_utc(r.created_at))::text
      FROM orders.returns r WHERE r.id = ANY (:ids)
""")

_SQL = {"fulfilments": _FULFILMENTS, "payments": _PAYMENTS, "returns": _RETURNS}
_MODELS: dict[str, type[Fulfilment] | type[Payment] | type[Return]] = {
    "fulfilments": Fulfilment,
    "payments": Payment,
    "returns": Return,
}
KINDS = tuple(_SQL)


def step_views(s: Session, kind: str, ids: list[uuid.UUID]) -> list[dict[str, Any]]:
    """The steps of `kind` (fulfilments, payments, returns) with these ids, in that order."""
    if not ids:
        return []
    rows = {row[0]: row[1] for row in s.execute(_SQL[kind], {"ids": ids})}
    return [json.loads(rows[i]) for i in ids]


def step_view(s: Session, kind: str, step_id: uuid.UUID) -> dict[str, Any]:
    s.flush()
    return step_views(s, kind, [step_id])[0]


def steps_page(
    s: Session, kind: str, order_id: uuid.UUID, cursor: str | None, limit: int
) -> dict[str, Any]:
    """An order's steps of `kind`, newest first; an unknown order (another tenant's): 404."""
    if s.scalar(select(Order.id).where(Order.id == order_id)) is None:
        raise Problem("not-found")
    model = _MODELS[kind]
    page = paginate(
        s,
        select(model).where(model.order_id == order_id),
        list_name=f"orders.{kind}",
        sort=model.created_at,
        id_col=model.id,
        cursor=cursor,
        limit=limit,
    )
    return {
        "items": step_views(s, kind, [row.id for row in page.items]),
        "next_cursor": page.next_cursor,
    }
