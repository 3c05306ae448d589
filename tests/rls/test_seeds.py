"""The seed check itself can fail: a table without a seed, or without rows, is named.

Each case changes the catalog or the registry inside one superuser transaction
that is rolled back, and asks `unseeded` what it would report.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Engine, text

from erp.migrate import policy_sql
from tests.rls.conftest import Seeded, tenant_tables
from tests.rls.seeds import HERE, SEEDS, Seed, unseeded


def _labels(seeded: Seeded) -> list[tuple[str, uuid.UUID]]:
    return [("A", seeded.a.id), ("B", seeded.b.id)]


def test_the_seeded_tenants_leave_no_gap(seeded: Seeded, owner_engine: Engine) -> None:
    with owner_engine.connect() as conn:
        assert unseeded(conn, tenant_tables(conn), _labels(seeded)) == []


def test_every_seed_declares_tables(seeded: Seeded) -> None:
    assert SEEDS, "no seeds registered"
    for s in SEEDS:
        assert s.tables, s.name
    declared = [t for s in SEEDS for t in s.tables]
    assert len(declared) == len(set(declared)), "a table is declared by two seeds"


def test_a_new_tenant_table_without_a_seed_fails_naming_it(
    seeded: Seeded, owner_engine: Engine
) -> None:
    table = f"ledger.rls_unseeded_{uuid.uuid4().hex[:8]}"
    with owner_engine.connect() as conn:
        conn.execute(text("SET LOCAL ROLE erp_owner"))
        conn.execute(
            text(
                f"""CREATE TABLE {table} (
                        tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
                        id uuid NOT NULL, PRIMARY KEY (tenant_id, id))"""
            )
        )
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        with dbapi.cursor() as cur:
            cur.execute(policy_sql("tenant_table.sql", table=table))
        conn.execute(text("RESET ROLE"))
        gaps = unseeded(conn, tenant_tables(conn), _labels(seeded))
        conn.rollback()
    assert gaps == [
        f"seed {HERE}: no seed declares {table} (see tests/rls/README.md)",
        f"seed {HERE}: no rows for tenant A in {table}",
        f"seed {HERE}: no rows for tenant B in {table}",
    ]


def test_a_table_one_tenant_has_no_rows_in_fails_naming_it(
    seeded: Seeded, owner_engine: Engine
) -> None:
    """Tenant B's periods deleted (by the superuser, in a rolled-back transaction)."""
    with owner_engine.connect() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))  # skip guard triggers
        conn.execute(text("DELETE FROM ledger.periods WHERE tenant_id = :b"), {"b": seeded.b.id})
        gaps = unseeded(conn, tenant_tables(conn), _labels(seeded))
        conn.rollback()
    assert gaps == [f"seed {HERE}: no rows for tenant B in ledger.periods"]


def test_a_tenant_never_seeded_is_reported_in_every_table(
    seeded: Seeded, owner_engine: Engine
) -> None:
    with owner_engine.connect() as conn:
        tables = tenant_tables(conn)
        gaps = unseeded(conn, tables, [("C", uuid.uuid4())])
    assert gaps == [f"seed {HERE}: no rows for tenant C in {t}" for t in tables]


def test_a_seed_dropped_from_the_registry_leaves_its_tables_undeclared(
    seeded: Seeded, owner_engine: Engine
) -> None:
    without_periods = [
        Seed(s.name, tuple(t for t in s.tables if t != "ledger.periods"), s.run) for s in SEEDS
    ]
    stale = [*SEEDS, Seed("seed_gone", ("inventory.rls_no_such_table",), lambda ctx: None)]
    with owner_engine.connect() as conn:
        tables = tenant_tables(conn)
        assert unseeded(conn, tables, _labels(seeded), without_periods) == [
            f"seed {HERE}: no seed declares ledger.periods (see tests/rls/README.md)"
        ]
        assert unseeded(conn, tables, _labels(seeded), stale) == [
            f"seed {HERE}: seed_gone declares inventory.rls_no_such_table, "
            "which is not a tenant table in the catalog"
        ]
