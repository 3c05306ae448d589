"""The outbox's one entry point: every domain emits its events here, in its own transaction."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from erp.registry import registry
from erp.webhooks.models import OutboxEvent


def check_event_type(event_type: str) -> None:
    """Only types a domain registered (API.md, Outbound events); another is a bug."""
    if event_type not in registry().event_types:
        raise ValueError(f"unknown event type {event_type!r}")


def emit(s: Session, event_type: str, payload: dict[str, Any]) -> uuid.UUID:
    """Write an event to the outbox; it is delivered only if this transaction commits."""
    check_event_type(event_type)
    event_id = uuid.uuid4()
    s.execute(insert(OutboxEvent).values(id=event_id, event_type=event_type, payload=payload))
    return event_id
