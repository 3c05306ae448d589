"""A composite foreign key (tenant_id, parent_id) cannot point at another tenant's row.

A foreign-key check runs past RLS, so only the key's shape keeps tenants apart.
Scratch parent/child tables are built exactly as §3 says (policies/tenant_table.sql),
committed for the length of one test so erp_app can attack them over its own
connection, and dropped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from erp.db import sqlstate
from erp.migrate import policy_sql
from tests.rls.audit import audit
from tests.rls.conftest import in_tenant

SCHEMA = "inventory"


@dataclass(frozen=True)
class Pair:
    parent: str
    child: str


def _ddl(parent: str, child: str) -> str:
    return f"""
        GRANT USAGE ON SCHEMA {SCHEMA} TO erp_app;
        CREATE TABLE {parent} (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            PRIMARY KEY (tenant_id, id)
        );
        CREATE TABLE {child} (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            parent_id uuid NOT NULL,
            PRIMARY KEY (tenant_id, id),
            FOREIGN KEY (tenant_id, parent_id) REFERENCES {parent} (tenant_id, id)
        );
        CREATE INDEX ON {child} (tenant_id, parent_id);
        {policy_sql("tenant_table.sql", table=parent)}
        {policy_sql("tenant_table.sql", table=child)}
        GRANT SELECT, INSERT ON {parent} TO erp_app;
        GRANT SELECT, INSERT, UPDATE (parent_id) ON {child} TO erp_app;
    """


@pytest.fixture
def pair(owner_engine: Engine) -> Iterator[Pair]:
    suffix = uuid.uuid4().hex[:8]
    p = Pair(f"{SCHEMA}.rls_fk_parent_{suffix}", f"{SCHEMA}.rls_fk_child_{suffix}")
    with owner_engine.begin() as conn:
        conn.execute(text("SET LOCAL ROLE erp_owner"))
        made_schema = conn.execute(text("SELECT to_regnamespace(:s)"), {"s": SCHEMA}).scalar()
        conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        with dbapi.cursor() as cur:
            cur.execute(_ddl(p.parent, p.child))
    try:
        yield p
    finally:
        with owner_engine.begin() as conn:
            conn.execute(text("SET LOCAL ROLE erp_owner"))
            conn.execute(text(f"DROP TABLE {p.child}, {p.parent}"))
            if made_schema is None:
                conn.execute(text(f"DROP SCHEMA {SCHEMA}"))


def _add_parent(engine: Engine, tenant: uuid.UUID, table: str) -> uuid.UUID:
    pid = uuid.uuid4()
    with in_tenant(engine, tenant, commit=True) as conn:
        conn.execute(text(f"INSERT INTO {table} (id) VALUES (:id)"), {"id": pid})
    return pid


def _fk_error(engine: Engine, tenant: uuid.UUID, child: str, parent_id: uuid.UUID) -> DBAPIError:
    with in_tenant(engine, tenant) as conn, pytest.raises(DBAPIError) as caught:
        conn.execute(
            text(f"INSERT INTO {child} (id, parent_id) VALUES (:id, :p)"),
            {"id": uuid.uuid4(), "p": parent_id},
        )
    return caught.value


def test_scratch_tables_pass_the_audit(pair: Pair, app_engine: Engine) -> None:
    with app_engine.connect() as conn:
        assert [v for v in audit(conn) if v.subject in (pair.parent, pair.child)] == []


def test_child_cannot_reference_another_tenants_parent(pair: Pair, app_engine: Engine) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    parent_of_a = _add_parent(app_engine, a, pair.parent)
    with in_tenant(app_engine, a) as conn:  # positive control: A may reference its own row
        conn.execute(
            text(f"INSERT INTO {pair.child} (id, parent_id) VALUES (:id, :p)"),
            {"id": uuid.uuid4(), "p": parent_of_a},
        )
    foreign = _fk_error(app_engine, b, pair.child, parent_of_a)
    absent = _fk_error(app_engine, b, pair.child, uuid.uuid4())
    assert sqlstate(foreign) == sqlstate(absent) == "23503"
    # No existence oracle: A's row and a random id fail in exactly the same words.
    assert _shape(foreign) == _shape(absent)
    assert str(a) not in str(foreign.orig)


def _shape(exc: DBAPIError) -> tuple[str | None, str | None]:
    diag = exc.orig.diag  # type: ignore[union-attr]
    return diag.message_primary, diag.message_detail


def test_child_cannot_be_repointed_at_another_tenants_parent(
    pair: Pair, app_engine: Engine, owner_engine: Engine
) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    parent_of_a = _add_parent(app_engine, a, pair.parent)
    parent_of_b = _add_parent(app_engine, b, pair.parent)
    child = uuid.uuid4()
    with in_tenant(app_engine, b, commit=True) as conn:
        conn.execute(
            text(f"INSERT INTO {pair.child} (id, parent_id) VALUES (:id, :p)"),
            {"id": child, "p": parent_of_b},
        )
    with in_tenant(app_engine, b) as conn, pytest.raises(DBAPIError) as caught:
        conn.execute(
            text(f"UPDATE {pair.child} SET parent_id = :p WHERE id = :id"),
            {"p": parent_of_a, "id": child},
        )
    assert sqlstate(caught.value) == "23503"
    with owner_engine.connect() as conn:
        assert (
            conn.execute(
                text(f"SELECT parent_id FROM {pair.child} WHERE id = :id"), {"id": child}
            ).scalar_one()
            == parent_of_b
        )


def test_explicit_foreign_tenant_id_on_the_child_is_refused_first(
    pair: Pair, app_engine: Engine
) -> None:
    """Naming A's tenant_id to satisfy the key trips the policy's WITH CHECK instead."""
    a, b = uuid.uuid4(), uuid.uuid4()
    parent_of_a = _add_parent(app_engine, a, pair.parent)
    with in_tenant(app_engine, b) as conn, pytest.raises(DBAPIError) as caught:
        conn.execute(
            text(f"INSERT INTO {pair.child} (tenant_id, id, parent_id) VALUES (:t, :id, :p)"),
            {"t": a, "id": uuid.uuid4(), "p": parent_of_a},
        )
    assert sqlstate(caught.value) == "42501"
