"""The outbox: events written in the same transaction as the change they describe.

Deliveries, endpoints and signing arrive with the webhooks issue; they read this table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Text
from sqlalchemy.orm import Mapped, mapped_column

from erp.model_base import Base, TenantScoped, created_at_column


class OutboxEvent(TenantScoped, Base):
    __tablename__ = "outbox_events"
    __table_args__ = {"schema": "webhooks"}

    event_type: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column()
    occurred_at: Mapped[datetime] = created_at_column()
