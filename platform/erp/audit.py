"""Audit trails: `platform.audit_events` (operators) and `iam.audit_log` (in a tenant).

Core, not tenancy: every domain records what it did in the tenant's audit log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import BigInteger, Identity, Text
from sqlalchemy.orm import Mapped, Session, mapped_column

from erp.context import current_actor, current_request_id
from erp.model_base import Base, TenantScoped, created_at_column


class AuditEvent(Base):
    """Operator actions on tenants; append-only for every role."""

    __tablename__ = "audit_events"
    __table_args__ = {"schema": "platform"}

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    occurred_at: Mapped[datetime] = created_at_column()
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    tenant_id: Mapped[uuid.UUID | None] = mapped_column()
    tenant_slug: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    request_id: Mapped[str | None] = mapped_column(Text)


class TenantAuditEntry(TenantScoped, Base):
    """What happened inside a tenant (keys issued, periods closed...); append-only."""

    __tablename__ = "audit_log"
    __table_args__ = {"schema": "iam"}

    occurred_at: Mapped[datetime] = created_at_column()
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    subject_type: Mapped[str | None] = mapped_column(Text)
    subject_id: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    request_id: Mapped[str | None] = mapped_column(Text)


def operator_event(
    s: Session, action: str, tenant_id: UUID | None, tenant_slug: str | None, **details: Any
) -> None:
    """Record an operator action; must run as erp_ops."""
    s.add(
        AuditEvent(
            actor=current_actor.get(),
            action=action,
            tenant_id=tenant_id,
            tenant_slug=tenant_slug,
            details=details,
            request_id=current_request_id.get(),
        )
    )


def tenant_event(
    s: Session, action: str, subject_type: str | None, subject_id: object, **details: Any
) -> None:
    """Record what happened inside the current tenant."""
    s.add(
        TenantAuditEntry(
            actor=current_actor.get(),
            action=action,
            subject_type=subject_type,
            subject_id=None if subject_id is None else str(subject_id),
            details=details,
            request_id=current_request_id.get(),
        )
    )
