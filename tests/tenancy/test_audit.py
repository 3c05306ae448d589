"""platform.audit_events is append-only for every role, the owner and superusers included."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from tests.conftest import TenantHandle

STATEMENTS = [
    "UPDATE platform.audit_events SET action = 'forged' WHERE tenant_id = :t",
    "DELETE FROM platform.audit_events WHERE tenant_id = :t",
    "TRUNCATE platform.audit_events",
]


def _count(engine: Engine, tenant: TenantHandle) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM platform.audit_events WHERE tenant_id = :t"),
                {"t": tenant.id},
            ).scalar_one()
        )


@pytest.mark.parametrize("statement", STATEMENTS)
@pytest.mark.parametrize("role", ["erp_ops", "erp_owner", None])
def test_audit_events_cannot_be_changed(
    app_engine: Engine,
    owner_engine: Engine,
    tenant: TenantHandle,
    statement: str,
    role: str | None,
) -> None:
    # erp_app reaches the platform schema only through erp_ops; the superuser may
    # assume erp_owner, the table's owner; with role None the superuser acts as itself.
    engine = app_engine if role == "erp_ops" else owner_engine
    before = _count(owner_engine, tenant)
    assert before >= 1
    with engine.connect() as conn:
        if role is not None:
            conn.execute(text(f"SET ROLE {role}"))
        with pytest.raises(DBAPIError) as caught:
            conn.execute(text(statement), {"t": tenant.id})
    assert caught.value.orig is not None
    assert getattr(caught.value.orig, "sqlstate", None) == "42501"
    assert _count(owner_engine, tenant) == before


def test_erp_app_cannot_read_audit_events_without_erp_ops(
    app_engine: Engine, tenant: TenantHandle
) -> None:
    with app_engine.connect() as conn, pytest.raises(DBAPIError):
        conn.execute(text("SELECT count(*) FROM platform.audit_events"))


def test_audit_insert_as_erp_ops_works(app_engine: Engine, owner_engine: Engine) -> None:
    with app_engine.begin() as conn:
        conn.execute(text("SET LOCAL ROLE erp_ops"))
        conn.execute(
            text(
                "INSERT INTO platform.audit_events (actor, action) VALUES ('test', 'test.appended')"
            )
        )
    with owner_engine.connect() as conn:
        n = conn.execute(
            text("SELECT count(*) FROM platform.audit_events WHERE action = 'test.appended'")
        ).scalar_one()
    assert n >= 1


def test_ops_audit_events_endpoint_filters_by_tenant(
    client: Any, ops_headers: dict[str, str], tenant: TenantHandle, other_tenant: TenantHandle
) -> None:
    r = client.get(f"/ops/v1/audit-events?tenant_id={tenant.id}", headers=ops_headers)
    assert {e["tenant_id"] for e in r.get_json()["items"]} == {str(tenant.id)}
    r = client.get("/ops/v1/audit-events?tenant_id=nope", headers=ops_headers)
    assert r.status_code == 422
    assert "tenant_id" in r.get_json()["errors"]
