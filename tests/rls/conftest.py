"""Fixtures of the isolation attack suite: seeded tenants and erp_app connections.

Every attack connects as erp_app (`app_engine`); the owner engine (a superuser,
which bypasses RLS) only sets up fixtures and counts what really is there.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from erp.db import TENANT_SCHEMAS, sqlstate
from erp.http import ErpFlask
from tests.conftest import TenantHandle, make_tenant
from tests.rls.seeds import seed_tenant, unseeded


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


def true_rows(owner_engine: Engine, table: str, tenant: uuid.UUID) -> tuple[int, str]:
    """(count, digest of every row's text) of `tenant` in `table`, read by the superuser.

    The digest changes when any column of any row does, so "B's attack left A's rows
    as they were" is checked on content, not only on the count.
    """
    with owner_engine.connect() as conn:
        row = conn.execute(
            text(
                f"""SELECT count(*), coalesce(md5(string_agg(r::text, ',' ORDER BY r::text)), '')
                      FROM {table} r WHERE tenant_id = :t"""
            ),
            {"t": tenant},
        ).one()
    return int(row[0]), str(row[1])


def snapshot(owner_engine: Engine, tenant: uuid.UUID) -> dict[str, tuple[int, str]]:
    """`true_rows` of `tenant` in every tenant table."""
    with owner_engine.connect() as conn:
        tables = tenant_tables(conn)
    return {t: true_rows(owner_engine, t, tenant) for t in tables}


def ids_of(owner_engine: Engine, table: str, tenant: uuid.UUID) -> list[uuid.UUID]:
    """The ids of `tenant`'s rows in `table` (every tenant table has an id, §3)."""
    with owner_engine.connect() as conn:
        return list(
            conn.execute(
                text(f"SELECT id FROM {table} WHERE tenant_id = :t ORDER BY id"), {"t": tenant}
            ).scalars()
        )


def attempt(
    conn: Connection, sql: str, params: Mapping[str, Any] | None = None, *, keep: bool = False
) -> tuple[str | None, int]:
    """(SQLSTATE or None if it ran, rows affected or counted), in a savepoint.

    The savepoint is rolled back unless `keep`: an attack meant to change nothing is
    kept (and committed by the caller) so the superuser's later look is at real effects.
    """
    nested = conn.begin_nested()
    try:
        result = conn.execute(text(sql), dict(params or {}))
        n = int(result.scalar_one()) if result.returns_rows else result.rowcount
    except DBAPIError as exc:
        nested.rollback()
        return sqlstate(exc), 0
    if keep:
        nested.commit()
    else:
        nested.rollback()
    return None, n


@dataclass(frozen=True)
class Seeded:
    """Two tenants with rows in every tenant table (tests/rls/seeds.py); read-only for tests.

    `facts` holds, per tenant id, the ids the seeds recorded (e.g. "ledger.pending_id").
    """

    a: TenantHandle
    b: TenantHandle
    facts: Mapping[uuid.UUID, Mapping[str, Any]]

    def of(self, t: TenantHandle) -> Mapping[str, Any]:
        return self.facts[t.id]


def seed_tenants(
    client: Any, owner_engine: Engine, tenants: Sequence[TenantHandle]
) -> dict[uuid.UUID, dict[str, Any]]:
    """Seed `tenants` through the API, then fail naming any tenant table one of them lacks."""
    facts = {t.id: seed_tenant(client, t) for t in tenants}
    labels = [(f"{chr(ord('A') + i)} ({t.slug})", t.id) for i, t in enumerate(tenants)]
    with owner_engine.connect() as conn:
        gaps = unseeded(conn, tenant_tables(conn), labels)
    if gaps:
        pytest.fail("\n".join(gaps), pytrace=False)
    return facts


@pytest.fixture(scope="session")
def seeded(app: ErpFlask, ops_headers: dict[str, str], owner_engine: Engine) -> Seeded:
    """Every attack in this suite runs against these rows, in every tenant table."""
    client = app.test_client()
    a, b = make_tenant(client, ops_headers), make_tenant(client, ops_headers)
    return Seeded(a, b, seed_tenants(client, owner_engine, [a, b]))
