"""The outbox, and what delivering it needs: endpoints, messages, attempts.

The DDL lives in migrations 0001 (outbox) and 0005 (the rest, policies/webhooks.sql);
`webhooks.dispatch` (one row per event, filled by a trigger) is only touched by SQL in
erp.webhooks.dispatcher.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, Text
from sqlalchemy.orm import Mapped, mapped_column

from erp.model_base import Base, TenantScoped, created_at_column


class OutboxEvent(TenantScoped, Base):
    __tablename__ = "outbox_events"
    __table_args__ = {"schema": "webhooks"}

    event_type: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column()
    occurred_at: Mapped[datetime] = created_at_column()


class Endpoint(TenantScoped, Base):
    __tablename__ = "endpoints"
    __table_args__ = {"schema": "webhooks"}

    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    event_types: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    disabled: Mapped[bool] = mapped_column(default=False)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    #: SecretBox tokens (erp/secretbox.py) of `whsec_...`; never shown after creation
    secret: Mapped[str] = mapped_column(Text)
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_until: Mapped[datetime | None] = mapped_column()
    failing_since: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()
    deleted_at: Mapped[datetime | None] = mapped_column()


class Message(TenantScoped, Base):
    __tablename__ = "messages"
    __table_args__ = {"schema": "webhooks"}

    endpoint_id: Mapped[uuid.UUID] = mapped_column()
    event_id: Mapped[uuid.UUID] = mapped_column()
    event_type: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    schedule_step: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    lease_until: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()


class Attempt(TenantScoped, Base):
    __tablename__ = "attempts"
    __table_args__ = {"schema": "webhooks"}

    message_id: Mapped[uuid.UUID] = mapped_column()
    endpoint_id: Mapped[uuid.UUID] = mapped_column()
    status: Mapped[str] = mapped_column(Text)
    response_status: Mapped[int | None] = mapped_column()
    response_body: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column()
    created_at: Mapped[datetime] = created_at_column()
