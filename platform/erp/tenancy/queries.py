"""Reads of the tenancy domain: lists (cursor-paginated) and single rows."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from erp.audit import AuditEvent
from erp.errors import Problem
from erp.pagination import Page, paginate
from erp.tenancy.models import ApiKey, Tenant


def tenants_query(status: str | None = None) -> Select[Any]:
    stmt = select(Tenant)
    return stmt.where(Tenant.status == status) if status else stmt


def audit_events_query(tenant_id: uuid.UUID | None = None) -> Select[Any]:
    stmt = select(AuditEvent)
    return stmt.where(AuditEvent.tenant_id == tenant_id) if tenant_id else stmt


def tenants_page(s: Session, status: str | None, cursor: str | None, limit: int) -> Page[Tenant]:
    return paginate(
        s,
        tenants_query(status),
        list_name="ops.tenants",
        sort=Tenant.created_at,
        id_col=Tenant.id,
        cursor=cursor,
        limit=limit,
    )


def audit_events_page(
    s: Session, tenant_id: uuid.UUID | None, cursor: str | None, limit: int
) -> Page[AuditEvent]:
    return paginate(
        s,
        audit_events_query(tenant_id),
        list_name="ops.audit",
        sort=AuditEvent.occurred_at,
        id_col=AuditEvent.id,
        cursor=cursor,
        limit=limit,
    )


def api_keys_page(s: Session, cursor: str | None, limit: int) -> Page[ApiKey]:
    return paginate(
        s,
        select(ApiKey),
        list_name="iam.api_keys",
        sort=ApiKey.created_at,
        id_col=ApiKey.id,
        cursor=cursor,
        limit=limit,
    )


def get_api_key(s: Session, key_id: uuid.UUID) -> ApiKey:
    key = s.get(ApiKey, key_id)
    if key is None:
        raise Problem("not-found")
    return key
