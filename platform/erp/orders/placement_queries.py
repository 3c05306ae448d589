"""Reading orders (API.md, Orders: GET /orders, GET /orders/{id}): the order's JSON is
`orders.order_json` (policies/orders_place.sql), the same text the placing call answers
and the `order.created` event carries, so the three never disagree."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from erp.errors import Problem
from erp.pagination import decode_cursor, encode_cursor

#: GET /orders filters (API.md): query parameter -> column.
LIST_FILTERS = ("status", "channel_id", "external_id", "customer_id")
LIST_NAME = "orders.orders"

_ONE = text("SELECT orders.order_json(:id)::text")


def order_json(s: Session, order_id: uuid.UUID) -> str:
    """The order's JSON text; another tenant's reads as absent: 404 `not-found`."""
    body = s.execute(_ONE, {"id": order_id}).scalar_one()
    if body is None:
        raise Problem("not-found")
    return str(body)


def get_order(s: Session, order_id: uuid.UUID) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(order_json(s, order_id))
    return data


def orders_page_json(s: Session, filters: dict[str, Any], cursor: str | None, limit: int) -> str:
    """A page of orders, newest first by (created_at, id), as the list's JSON text
    `{"items": [...], "next_cursor": ...}`."""
    where = [f"o.{name} = :{name}" for name in LIST_FILTERS if filters.get(name) is not None]
    params: dict[str, Any] = {n: filters[n] for n in LIST_FILTERS if filters.get(n) is not None}
    if cursor:
        after_at, raw_id = decode_cursor(LIST_NAME, cursor)
        try:
            params["after_id"] = uuid.UUID(raw_id)
        except ValueError:
            raise Problem(
                "validation",
                "The cursor is not valid for this list.",
                errors={"cursor": ["Invalid cursor."]},
            ) from None
        params["after_at"] = after_at
        where.append("(o.created_at, o.id) < (:after_at, :after_id)")
    params["limit"] = limit + 1
    sql = (
        "SELECT o.id, o.created_at, orders.order_json(o.id)::text FROM orders.orders o"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY o.created_at DESC, o.id DESC LIMIT :limit"
    )
    rows = s.execute(text(sql), params).all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(LIST_NAME, rows[-1][1], rows[-1][0])
    return (
        '{"items":['
        + ",".join(r[2] for r in rows)
        + '],"next_cursor":'
        + (json.dumps(next_cursor) + "}")
    )
