"""With the GUC naming tenant B, tenant A's rows are invisible and untouchable.

Every table of every tenant schema is attacked (the list comes from the catalog),
as erp_app, with SELECT, UPDATE, DELETE and INSERT; the superuser counts what is
really there before and after.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from erp import credentials
from erp.db import sqlstate
from tests.conftest import TenantHandle
from tests.rls.conftest import (
    Seeded,
    app_may,
    in_tenant,
    tenant_tables,
    true_count,
    updatable_column,
)

RLS_REFUSAL = "new row violates row-level security policy"
SEEDED_TABLES = ("iam.api_keys", "iam.audit_log", "iam.idempotency_records")


def _tables(app_engine: Engine) -> list[str]:
    with app_engine.connect() as conn:
        return tenant_tables(conn)


def test_seeded_rows_exist(seeded: Seeded, owner_engine: Engine) -> None:
    """The attacks below are not vacuous: both tenants hold rows in these tables."""
    for table in (*SEEDED_TABLES, "webhooks.outbox_events"):
        for t in (seeded.a, seeded.b):
            assert true_count(owner_engine, table, t.id) > 0, (table, t.slug)


def test_select_sees_exactly_own_rows_in_every_table(
    seeded: Seeded, app_engine: Engine, owner_engine: Engine
) -> None:
    failures = []
    for table in _tables(app_engine):
        for me, other in ((seeded.a, seeded.b), (seeded.b, seeded.a)):
            with in_tenant(app_engine, me.id) as conn:
                seen = conn.execute(
                    text(f"SELECT count(*), count(*) FILTER (WHERE tenant_id <> :me) FROM {table}"),
                    {"me": me.id},
                ).one()
                by_other_id = conn.execute(
                    text(f"SELECT count(*) FROM {table} WHERE tenant_id = :other"),
                    {"other": other.id},
                ).scalar_one()
            if seen[1] or by_other_id:
                failures.append(f"{table}: tenant {me.slug} sees rows of another tenant")
            if seen[0] != true_count(owner_engine, table, me.id):
                failures.append(f"{table}: tenant {me.slug} does not see exactly its rows")
    assert not failures, "\n".join(failures)


def test_update_and_delete_of_another_tenants_rows_change_nothing(
    seeded: Seeded, app_engine: Engine, owner_engine: Engine
) -> None:
    """As B (aiming at A's rows) and as a tenant with no rows (aiming at everything)."""
    a, b = seeded.a, seeded.b
    failures, attempted = [], 0
    for table in _tables(app_engine):
        before = {t.id: true_count(owner_engine, table, t.id) for t in (a, b)}
        for attacker, where in ((b.id, "WHERE tenant_id = :a"), (uuid.uuid4(), "")):
            with in_tenant(app_engine, attacker, commit=True) as conn:
                column = updatable_column(conn, table)
                if column is not None:
                    attempted += 1
                    sql = f"UPDATE {table} SET {column} = {column} {where}"
                    if n := conn.execute(text(sql), {"a": a.id}).rowcount:
                        failures.append(f"{table}: UPDATE by {attacker} reached {n} rows")
                if app_may(conn, table, "DELETE"):
                    attempted += 1
                    sql = f"DELETE FROM {table} {where}"
                    if n := conn.execute(text(sql), {"a": a.id}).rowcount:
                        failures.append(f"{table}: DELETE by {attacker} reached {n} rows")
        after = {t.id: true_count(owner_engine, table, t.id) for t in (a, b)}
        if after != before:
            failures.append(f"{table}: rows changed: {before} -> {after}")
    assert attempted >= 4
    assert not failures, "\n".join(failures)


def test_update_of_another_tenants_api_key_and_record_by_id(
    seeded: Seeded, app_engine: Engine, owner_engine: Engine
) -> None:
    a, b = seeded.a, seeded.b
    with in_tenant(app_engine, b.id, commit=True) as conn:
        revoked = conn.execute(
            text("UPDATE iam.api_keys SET revoked_at = now() WHERE id = :id"), {"id": a.key_id}
        ).rowcount
        expired = conn.execute(
            text("UPDATE iam.idempotency_records SET expires_at = now() WHERE tenant_id = :a"),
            {"a": a.id},
        ).rowcount
    assert (revoked, expired) == (0, 0)
    with owner_engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT revoked_at FROM iam.api_keys WHERE id = :id"), {"id": a.key_id}
            ).scalar_one()
            is None
        )


def test_insert_with_a_foreign_tenant_id_is_refused_in_every_table(
    seeded: Seeded, app_engine: Engine
) -> None:
    """WITH CHECK runs before NOT NULL and CHECK constraints: the bare attempt is enough."""
    failures, attempted = [], 0
    for table in _tables(app_engine):
        with in_tenant(app_engine, seeded.b.id) as conn:
            if not app_may(conn, table, "INSERT", "tenant_id"):
                continue
            attempted += 1
            try:
                conn.execute(
                    text(f"INSERT INTO {table} (tenant_id) VALUES (:a)"), {"a": seeded.a.id}
                )
            except DBAPIError as exc:
                if sqlstate(exc) != "42501" or RLS_REFUSAL not in str(exc.orig):
                    failures.append(f"{table}: refused, but not by the policy: {exc.orig}")
            else:
                failures.append(f"{table}: a row with tenant A's id was inserted as B")
    assert attempted >= len(SEEDED_TABLES)
    assert not failures, "\n".join(failures)


def test_insert_of_a_complete_row_for_another_tenant_is_refused(
    seeded: Seeded, app_engine: Engine
) -> None:
    """A row that satisfies every constraint still may not carry a foreign tenant_id."""
    row = {
        "tenant": seeded.a.id,
        "id": uuid.uuid4(),
        "public_id": credentials.new_public_id(),
        "hash": credentials.hash_secret(credentials.new_secret()),
    }
    with in_tenant(app_engine, seeded.b.id) as conn, pytest.raises(DBAPIError) as caught:
        conn.execute(
            text(
                """INSERT INTO iam.api_keys
                     (tenant_id, id, name, env, public_id, secret_hash, scopes, created_by)
                   VALUES (:tenant, :id, 'planted', 'live', :public_id, :hash,
                           ARRAY['api_keys:write'], 'attacker')"""
            ),
            row,
        )
    assert sqlstate(caught.value) == "42501"
    assert RLS_REFUSAL in str(caught.value.orig)


def test_update_moving_a_row_to_another_tenant_is_refused(
    seeded: Seeded, app_engine: Engine, owner_engine: Engine
) -> None:
    """Every table where erp_app may update tenant_id: moving A's rows to B fails WITH CHECK."""
    a, b = seeded.a, seeded.b
    failures, attempted = [], 0
    for table in _tables(app_engine):
        with in_tenant(app_engine, a.id) as conn:
            if not app_may(conn, table, "UPDATE", "tenant_id"):
                continue
            if not conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one():
                continue
            attempted += 1
            try:
                conn.execute(text(f"UPDATE {table} SET tenant_id = :b"), {"b": b.id})
            except DBAPIError as exc:
                if sqlstate(exc) != "42501":
                    failures.append(f"{table}: refused, but not by the policy: {exc.orig}")
            else:
                failures.append(f"{table}: A's rows were moved to tenant B")
    assert attempted >= 1  # iam.idempotency_records at least
    assert not failures, "\n".join(failures)
    assert true_count(owner_engine, "iam.idempotency_records", a.id) > 0


def test_update_of_tenant_id_on_api_keys_is_not_even_granted(
    seeded: Seeded, app_engine: Engine
) -> None:
    with in_tenant(app_engine, seeded.a.id) as conn, pytest.raises(DBAPIError) as caught:
        conn.execute(text("UPDATE iam.api_keys SET tenant_id = :b"), {"b": seeded.b.id})
    assert sqlstate(caught.value) == "42501"


# -- a tenant-scoped UNIQUE reveals nothing ------------------------------------------


def _insert_key(conn: Connection, public_id: str) -> None:
    conn.execute(
        text(
            """INSERT INTO iam.api_keys (id, name, env, public_id, secret_hash, scopes, created_by)
               VALUES (:id, 'dup', 'live', :p, :h, ARRAY['api_keys:read'], 'test')"""
        ),
        {"id": uuid.uuid4(), "p": public_id, "h": credentials.hash_secret("x")},
    )


def test_another_tenants_unique_value_can_be_reused_and_reveals_nothing(
    tenant: TenantHandle, other_tenant: TenantHandle, app_engine: Engine, owner_engine: Engine
) -> None:
    """iam.api_keys is UNIQUE (tenant_id, public_id): B may hold A's public id too."""
    with in_tenant(app_engine, tenant.id) as conn:
        taken = conn.execute(
            text("SELECT public_id FROM iam.api_keys WHERE id = :id"), {"id": tenant.key_id}
        ).scalar_one()
    with in_tenant(app_engine, other_tenant.id, commit=True) as conn:
        _insert_key(conn, taken)  # A's value, in B: accepted like any fresh value
        upserted = conn.execute(
            text(
                """INSERT INTO iam.api_keys (id, name, env, public_id, secret_hash, scopes,
                                            created_by)
                   VALUES (gen_random_uuid(), 'dup2', 'live', :p, 'h', ARRAY['x'], 't')
                   ON CONFLICT (tenant_id, public_id) DO NOTHING RETURNING id"""
            ),
            {"p": taken},
        ).all()
        assert upserted == []  # B's own copy conflicts, A's never did
    with owner_engine.connect() as conn:
        owners = conn.execute(
            text("SELECT tenant_id FROM iam.api_keys WHERE public_id = :p"), {"p": taken}
        ).scalars()
        assert sorted(map(str, owners)) == sorted([str(tenant.id), str(other_tenant.id)])
    # The constraint is live within one tenant; under RLS PostgreSQL even leaves out the
    # key from the error's detail, and nothing in it names tenant A.
    with in_tenant(app_engine, other_tenant.id) as conn, pytest.raises(DBAPIError) as caught:
        _insert_key(conn, taken)
    assert sqlstate(caught.value) == "23505"
    detail = caught.value.orig.diag.message_detail or ""  # type: ignore[union-attr]
    assert str(tenant.id) not in detail + str(caught.value.orig)


def test_on_conflict_with_another_tenants_value_inserts(
    tenant: TenantHandle, other_tenant: TenantHandle, app_engine: Engine
) -> None:
    """ON CONFLICT DO NOTHING is no oracle either: A's value is no conflict for B."""
    with in_tenant(app_engine, tenant.id) as conn:
        taken = conn.execute(
            text("SELECT public_id FROM iam.api_keys WHERE id = :id"), {"id": tenant.key_id}
        ).scalar_one()
    with in_tenant(app_engine, other_tenant.id) as conn:
        inserted = conn.execute(
            text(
                """INSERT INTO iam.api_keys (id, name, env, public_id, secret_hash, scopes,
                                            created_by)
                   VALUES (gen_random_uuid(), 'probe', 'live', :p, 'h', ARRAY['x'], 't')
                   ON CONFLICT (tenant_id, public_id) DO NOTHING RETURNING id"""
            ),
            {"p": taken},
        ).all()
    assert len(inserted) == 1
