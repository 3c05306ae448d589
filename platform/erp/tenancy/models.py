"""Tables of the tenancy core.

`platform.*` is global (no tenant_id, written only as `erp_ops`); `iam.*` is
tenant data under row-level security. The DDL lives in migrations/ and
policies/; these models mirror it.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ARRAY, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from erp.audit import AuditEvent, TenantAuditEntry
from erp.model_base import Base, TenantScoped, created_at_column

__all__ = ["ApiKey", "AuditEvent", "Operator", "Tenant", "TenantAuditEntry"]

TENANT_STATUSES = ("active", "suspended", "deleting")


class Tenant(Base):
    __tablename__ = "tenants"
    __table_args__ = {"schema": "platform"}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    slug: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, default="active")
    status_reason: Mapped[str | None] = mapped_column(Text)
    base_currency: Mapped[str] = mapped_column(String(3))
    template: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
    delete_after: Mapped[datetime | None] = mapped_column()
    #: While deleting: the status `restore` brings back (status_reason is kept as is).
    status_before_delete: Mapped[str | None] = mapped_column(Text)


class Operator(Base):
    __tablename__ = "operators"
    __table_args__ = {"schema": "platform"}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(Text, unique=True)
    public_id: Mapped[str] = mapped_column(Text, unique=True)
    token_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class ApiKey(TenantScoped, Base):
    __tablename__ = "api_keys"
    __table_args__ = {"schema": "iam"}

    name: Mapped[str] = mapped_column(Text)
    env: Mapped[str] = mapped_column(Text)
    public_id: Mapped[str] = mapped_column(Text)
    secret_hash: Mapped[str] = mapped_column(Text)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    expires_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()

    @property
    def prefix(self) -> str:
        return f"erp_{self.env}_{self.public_id}"
