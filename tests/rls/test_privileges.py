"""What erp_app may not do at all, tried for real (the audit reads the same from the catalog)."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from erp.db import sqlstate
from tests.rls.conftest import Seeded, in_tenant, tenant_tables

DENIED = "42501"


def _denied(conn: Connection, sql: str) -> str | None:
    """The SQLSTATE `sql` fails with (None if it ran), the transaction left usable."""
    nested = conn.begin_nested()
    try:
        conn.execute(text(sql))
    except DBAPIError as exc:
        nested.rollback()
        return sqlstate(exc)
    nested.rollback()
    return None


def _tables(app_engine: Engine) -> list[str]:
    with app_engine.connect() as conn:
        return tenant_tables(conn)


@pytest.mark.parametrize("role", [None, "erp_ops"], ids=["erp_app", "as erp_ops"])
def test_truncate_is_refused_on_every_tenant_table(
    seeded: Seeded, app_engine: Engine, role: str | None
) -> None:
    """TRUNCATE ignores RLS; neither erp_app nor the role it may assume holds it."""
    failures = []
    with in_tenant(app_engine, seeded.a.id) as conn:
        if role:
            conn.execute(text(f"SET LOCAL ROLE {role}"))
        for table in _tables(app_engine):
            if (state := _denied(conn, f"TRUNCATE {table}")) != DENIED:
                failures.append(f"{table}: TRUNCATE gave {state}")
    assert not failures, "\n".join(failures)


def test_row_security_cannot_be_switched_off(seeded: Seeded, app_engine: Engine) -> None:
    """`SET row_security = off` makes a policed query fail instead of unfiltering it."""
    with in_tenant(app_engine, seeded.b.id) as conn:
        conn.execute(text("SET LOCAL row_security = off"))
        for table in _tables(app_engine):
            assert _denied(conn, f"SELECT count(*) FROM {table}") == DENIED, table


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE iam.api_keys DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE iam.api_keys NO FORCE ROW LEVEL SECURITY",
        "DROP POLICY tenant_isolation ON iam.api_keys",
        "CREATE POLICY peek ON iam.api_keys FOR SELECT USING (true)",
        "ALTER TABLE iam.audit_log DISABLE TRIGGER refuse_update_delete",
        "CREATE TABLE public.rls_probe (id int)",
        "CREATE SCHEMA rls_probe",
        "CREATE FUNCTION app.rls_probe() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "CREATE VIEW iam.rls_probe AS SELECT * FROM iam.api_keys",
        "SET LOCAL ROLE erp_owner",
        "SET LOCAL ROLE erp_auth",
        "SET LOCAL SESSION AUTHORIZATION erp_owner",
        "SELECT count(*) FROM platform.tenants",
        "SELECT count(*) FROM platform.operators",
        "INSERT INTO platform.audit_events (actor, action) VALUES ('x', 'y')",
        "DELETE FROM iam.audit_log",
        "UPDATE iam.audit_log SET actor = 'rewritten'",
        "DELETE FROM webhooks.outbox_events",
    ],
)
def test_erp_app_is_refused(seeded: Seeded, app_engine: Engine, sql: str) -> None:
    with in_tenant(app_engine, seeded.a.id) as conn:
        assert _denied(conn, sql) == DENIED


def test_platform_tables_are_reachable_only_as_erp_ops(app_engine: Engine) -> None:
    with app_engine.connect() as conn:
        assert _denied(conn, "SELECT count(*) FROM platform.tenants") == DENIED
        conn.execute(text("SET LOCAL ROLE erp_ops"))
        assert conn.execute(text("SELECT count(*) FROM platform.tenants")).scalar_one() > 0
        # and erp_ops reads no tenant data
        assert _denied(conn, "SELECT count(*) FROM iam.api_keys") == DENIED
        conn.rollback()
