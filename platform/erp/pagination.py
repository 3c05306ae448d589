"""Cursor pagination shared by every list endpoint (API.md: lists).

A cursor is the last row's sort key, signed with the app's secret and bound to
the list and the tenant, so a cursor from another list or tenant, or one that
was edited, is refused with 422 and never yields rows.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import marshmallow as ma
from flask import current_app
from sqlalchemy import Select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

from erp.db import current_tenant
from erp.errors import Problem

T = TypeVar("T")
#: A cursor we issue is about 250 characters; anything longer is not one of ours.
CURSOR_MAX = 512


class ListArgs(ma.Schema):
    cursor = ma.fields.String(load_default=None, validate=ma.validate.Length(max=CURSOR_MAX))
    limit = ma.fields.Integer(load_default=50, validate=ma.validate.Range(min=1, max=200))


@dataclass
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def _sign(payload: bytes) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return base64.urlsafe_b64encode(hmac.new(key, payload, hashlib.sha256).digest()[:16]).decode()


def _scope() -> str:
    tenant = current_tenant.get()
    return str(tenant) if tenant else "-"


def encode_cursor(list_name: str, sort_value: datetime, row_id: object) -> str:
    body = json.dumps([list_name, _scope(), sort_value.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(body).decode().rstrip("=") + "." + _sign(body)


def _bad_cursor() -> Problem:
    return Problem(
        "validation",
        "The cursor is not valid for this list.",
        errors={"cursor": ["Invalid cursor."]},
    )


def decode_cursor(list_name: str, cursor: str) -> tuple[datetime, str]:
    try:
        raw, sig = cursor.split(".", 1)
        body = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        if not hmac.compare_digest(sig, _sign(body)):
            raise ValueError("signature")
        name, scope, sort_value, row_id = json.loads(body)
        if name != list_name or scope != _scope():
            raise ValueError("scope")
        return datetime.fromisoformat(sort_value), str(row_id)
    except (ValueError, TypeError) as exc:
        raise _bad_cursor() from exc


def paginate(
    s: Session,
    stmt: Select[Any],
    *,
    list_name: str,
    sort: InstrumentedAttribute[datetime],
    id_col: InstrumentedAttribute[Any],
    cursor: str | None,
    limit: int,
) -> Page[Any]:
    """Newest first by (sort, id); `stmt` selects one ORM entity."""
    if cursor:
        after_sort, raw_id = decode_cursor(list_name, cursor)
        try:
            after_id = id_col.type.python_type(raw_id)
        except ValueError as exc:
            raise _bad_cursor() from exc
        stmt = stmt.where(tuple_(sort, id_col) < tuple_(after_sort, after_id))
    rows = list(s.scalars(stmt.order_by(sort.desc(), id_col.desc()).limit(limit + 1)))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(list_name, getattr(last, sort.key), getattr(last, id_col.key))
    return Page(rows, next_cursor)


class PageSchema(ma.Schema):
    next_cursor = ma.fields.String(allow_none=True)


def page_schema(item: type[ma.Schema], name: str) -> type[ma.Schema]:
    """`{"items": [...], "next_cursor": ...}` around an item schema."""
    return type(name, (PageSchema,), {"items": ma.fields.List(ma.fields.Nested(item))})
