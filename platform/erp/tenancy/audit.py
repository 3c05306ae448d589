"""Audit trails: `platform.audit_events` (operators) and `iam.audit_log` (in a tenant)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy.orm import Session

from erp.context import current_actor, current_request_id
from erp.tenancy.models import AuditEvent, TenantAuditEntry


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
