"""Reads: endpoints, messages, attempts and events, cursor-paginated."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from erp.errors import Problem
from erp.pagination import Page, paginate
from erp.webhooks.models import Attempt, Endpoint, Message, OutboxEvent


def endpoints_page(s: Session, cursor: str | None, limit: int) -> Page[Endpoint]:
    stmt = select(Endpoint).where(Endpoint.deleted_at.is_(None))
    return paginate(
        s,
        stmt,
        list_name="webhook_endpoints",
        sort=Endpoint.created_at,
        id_col=Endpoint.id,
        cursor=cursor,
        limit=limit,
    )


def messages_page(
    s: Session, endpoint_id: uuid.UUID, filters: dict[str, Any], cursor: str | None, limit: int
) -> Page[Message]:
    stmt = select(Message).where(Message.endpoint_id == endpoint_id)
    if filters.get("status"):
        stmt = stmt.where(Message.status == filters["status"])
    if filters.get("event_type"):
        stmt = stmt.where(Message.event_type == filters["event_type"])
    return paginate(
        s,
        stmt,
        list_name=f"webhook_messages:{endpoint_id}",
        sort=Message.created_at,
        id_col=Message.id,
        cursor=cursor,
        limit=limit,
    )


def attempts_page(
    s: Session, endpoint_id: uuid.UUID, filters: dict[str, Any], cursor: str | None, limit: int
) -> dict[str, Any]:
    stmt = select(Attempt).where(Attempt.endpoint_id == endpoint_id)
    if filters.get("message_id"):
        stmt = stmt.where(Attempt.message_id == filters["message_id"])
    if filters.get("status"):
        stmt = stmt.where(Attempt.status == filters["status"])
    page = paginate(
        s,
        stmt,
        list_name=f"webhook_attempts:{endpoint_id}",
        sort=Attempt.created_at,
        id_col=Attempt.id,
        cursor=cursor,
        limit=limit,
    )
    ids = {a.message_id for a in page.items}
    events = {
        r.id: r
        for r in s.execute(
            select(Message.id, Message.event_id, Message.event_type).where(Message.id.in_(ids))
        )
    }
    items = [
        {
            **{c.key: getattr(a, c.key) for c in Attempt.__table__.columns},
            "event_id": events[a.message_id].event_id,
            "event_type": events[a.message_id].event_type,
        }
        for a in page.items
    ]
    return {"items": items, "next_cursor": page.next_cursor}


def _event(e: OutboxEvent) -> dict[str, Any]:
    return {"id": e.id, "type": e.event_type, "timestamp": e.occurred_at, "data": e.payload}


def events_page(
    s: Session, event_type: str | None, since: datetime | None, cursor: str | None, limit: int
) -> dict[str, Any]:
    stmt = select(OutboxEvent)
    if event_type:
        stmt = stmt.where(OutboxEvent.event_type == event_type)
    if since is not None:
        stmt = stmt.where(OutboxEvent.occurred_at >= since)
    page = paginate(
        s,
        stmt,
        list_name="webhook_events",
        sort=OutboxEvent.occurred_at,
        id_col=OutboxEvent.id,
        cursor=cursor,
        limit=limit,
    )
    return {"items": [_event(e) for e in page.items], "next_cursor": page.next_cursor}


def get_event(s: Session, event_id: uuid.UUID) -> dict[str, Any]:
    found = s.get(OutboxEvent, event_id)
    if found is None:
        raise Problem("not-found")
    return _event(found)
