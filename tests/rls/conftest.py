"""Fixtures of the isolation attack suite: seeded tenants and erp_app connections.

Every attack connects as erp_app (`app_engine`); the owner engine (a superuser,
which bypasses RLS) only sets up fixtures and counts what really is there.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text

from erp.db import TENANT_SCHEMAS
from erp.http import ErpFlask
from tests.conftest import TenantHandle, make_tenant


@contextmanager
def in_tenant(engine: Engine, tenant: object, *, commit: bool = False) -> Iterator[Connection]:
    """One erp_app transaction with `app.tenant_id` set as the app sets it (§2)."""
    with engine.connect() as conn:
        conn.execute(
            text("SELECT set_config('app.tenant_id', :t, true)"),
            {"t": "" if tenant is None else str(tenant)},
        )
        yield conn
        if commit:
            conn.commit()
        else:
            conn.rollback()


def tenant_tables(conn: Connection) -> list[str]:
    """Every table of every tenant schema, from the catalog (quoted, schema-qualified)."""
    return [
        r[0]
        for r in conn.execute(
            text(
                """SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
                     JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = ANY(:schemas) AND c.relkind IN ('r', 'p')
                    ORDER BY 1"""
            ),
            {"schemas": list(TENANT_SCHEMAS)},
        )
    ]


def app_may(conn: Connection, table: str, privilege: str, column: str | None = None) -> bool:
    """Whether erp_app holds `privilege` on `table` (or on one of its columns)."""
    if column is None:
        sql = "SELECT has_table_privilege('erp_app', CAST(:t AS regclass), :p)"
    else:
        sql = "SELECT has_column_privilege('erp_app', CAST(:t AS regclass), :c, :p)"
    return bool(conn.execute(text(sql), {"t": table, "p": privilege, "c": column}).scalar_one())


def updatable_column(conn: Connection, table: str) -> str | None:
    """A column erp_app may UPDATE in `table`, if any."""
    return conn.execute(
        text(
            """SELECT quote_ident(attname) FROM pg_attribute
                WHERE attrelid = CAST(:t AS regclass) AND attnum > 0 AND NOT attisdropped
                  AND has_column_privilege('erp_app', attrelid, attnum, 'UPDATE')
                ORDER BY attnum LIMIT 1"""
        ),
        {"t": table},
    ).scalar_one_or_none()


def true_count(owner_engine: Engine, table: str, tenant: uuid.UUID) -> int:
    """Rows of `tenant` in `table` as they are, counted by the superuser (no RLS)."""
    with owner_engine.connect() as conn:
        return int(
            conn.execute(
                text(f"SELECT count(*) FROM {table} WHERE tenant_id = :t"), {"t": tenant}
            ).scalar_one()
        )


@dataclass(frozen=True)
class Seeded:
    """Two tenants with rows in every iam table and in the outbox; read-only for tests."""

    a: TenantHandle
    b: TenantHandle


def seed_rows(client: Any, app_engine: Engine, t: TenantHandle) -> None:
    r = client.post(
        "/api/v1/api-keys",
        json={"name": "seeded", "scopes": ["api_keys:read"]},
        headers={**t.headers, "Idempotency-Key": f"seed-{t.id}"},
    )
    assert r.status_code == 201, r.get_json()
    with in_tenant(app_engine, t.id, commit=True) as conn:
        conn.execute(
            text(
                "INSERT INTO webhooks.outbox_events (id, event_type, payload) "
                "VALUES (gen_random_uuid(), 'rls.seeded', '{}')"
            )
        )


@pytest.fixture(scope="session")
def seeded(app: ErpFlask, ops_headers: dict[str, str], app_engine: Engine) -> Seeded:
    client = app.test_client()
    a, b = make_tenant(client, ops_headers), make_tenant(client, ops_headers)
    for t in (a, b):
        seed_rows(client, app_engine, t)
    return Seeded(a, b)
