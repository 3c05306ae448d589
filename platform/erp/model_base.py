"""Declarative base and the tenant-scoped mixin every tenant table's model uses.

The table's primary key is ``(tenant_id, id)`` (DESIGN.md §3); the ORM identifies a
row by ``id`` alone, since row-level security already narrows every query to one
tenant. ``tenant_id`` defaults to the current tenant, and the policy's WITH CHECK
refuses anything else.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from erp.db import current_tenant

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: DateTime(timezone=True), dict[str, Any]: JSONB}


def _tenant_default() -> uuid.UUID | None:
    return current_tenant.get()


class TenantScoped:
    """Columns and mapper settings shared by every tenant table."""

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        primary_key=True,
        default=_tenant_default,
        server_default=text("app.current_tenant_id()"),
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:  # noqa: N805
        return {"primary_key": [cls.__table__.c.id]}  # type: ignore[attr-defined]


def created_at_column() -> Mapped[datetime]:
    return mapped_column(nullable=False, server_default=func.now())
