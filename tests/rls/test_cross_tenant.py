"""With the GUC naming tenant B, tenant A's rows are invisible and untouchable.

Every table of every tenant schema is attacked (the list comes from the catalog),
as erp_app, with SELECT, UPDATE, DELETE and INSERT, against the `seeded` rows: both
tenants hold rows in every one of these tables (tests/rls/seeds.py checks it), so
"B sees none of A's rows" is never 0 compared with 0. The superuser reads what is
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
    attempt,
    ids_of,
    in_tenant,
    tenant_tables,
    true_count,
    true_rows,
    updatable_column,
)

RLS_REFUSAL = "new row violates row-level security policy"
DENIED = "42501"


def _tables(app_engine: Engine) -> list[str]:
    with app_engine.connect() as conn:
        return tenant_tables(conn)


def _writes(conn: Connection, table: str) -> tuple[str, bool, bool]:
    """(a column to SET, whether erp_app may UPDATE it, whether it may DELETE)."""
    column = updatable_column(conn, table)
    return column or "id", column is not None, app_may(conn, table, "DELETE")


def test_every_tenant_table_holds_rows_of_both_tenants(
    seeded: Seeded, app_engine: Engine, owner_engine: Engine
) -> None:
    """What the attacks below stand on (the `seeded` fixture already refuses less)."""
    tables = _tables(app_engine)
    assert {"ledger.periods", "ledger.entries", "iam.api_keys"} <= set(tables)
    for table in tables:
        for t in (seeded.a, seeded.b):
            assert true_count(owner_engine, table, t.id) > 0, (table, t.slug)


def test_select_sees_exactly_own_rows_in_every_table(
    seeded: Seeded, app_engine: Engine, owner_engine: Engine
) -> None:
    failures = []
    for table in _tables(app_engine):
        for me, other in ((seeded.a, seeded.b), (seeded.b, seeded.a)):
            own = true_count(owner_engine, table, me.id)
            others = true_count(owner_engine, table, other.id)
            assert min(own, others) > 0, f"{table}: not seeded"
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
                failures.append(f"{table}: {me.slug} sees {others} rows of another tenant")
            if seen[0] != own:
                failures.append(f"{table}: {me.slug} sees {seen[0]} rows, holds {own}")
    assert not failures, "\n".join(failures)


def test_update_and_delete_of_another_tenants_rows_change_nothing(
    seeded: Seeded, app_engine: Engine, owner_engine: Engine
) -> None:
    """As B (aiming at A's rows) and as a tenant with no rows (aiming at everything).

    Where erp_app holds the privilege, the statement runs, affects 0 rows and is
    committed; where it does not, it must fail with 42501. Either way A's and B's
    rows are exactly as they were.
    """
    a, b = seeded.a, seeded.b
    failures, ran = [], 0
    for table in _tables(app_engine):
        before = {t.id: true_rows(owner_engine, table, t.id) for t in (a, b)}
        assert before[a.id][0] > 0, f"{table}: tenant A holds no rows to attack"
        for attacker, where in ((b.id, "WHERE tenant_id = :a"), (uuid.uuid4(), "")):
            with in_tenant(app_engine, attacker, commit=True) as conn:
                column, may_update, may_delete = _writes(conn, table)
                for sql, granted in (
                    (f"UPDATE {table} SET {column} = {column} {where}", may_update),
                    (f"DELETE FROM {table} {where}", may_delete),
                ):
                    state, n = attempt(conn, sql, {"a": a.id}, keep=True)
                    ran += state is None
                    if granted and (state, n) != (None, 0):
                        failures.append(f"{table}: {sql!r} as {attacker}: {state or n} rows")
                    if not granted and state != DENIED:
                        failures.append(f"{table}: {sql!r} as {attacker} gave {state}, not 42501")
        after = {t.id: true_rows(owner_engine, table, t.id) for t in (a, b)}
        if after != before:
            failures.append(f"{table}: rows changed")
    assert ran >= 4  # the statements that do run: api_keys, idempotency_records, ...
    assert not failures, "\n".join(failures)


def test_every_row_of_another_tenant_is_out_of_reach_by_its_id(
    seeded: Seeded, app_engine: Engine, owner_engine: Engine
) -> None:
    """B names each of A's rows by primary key: SELECT finds none, UPDATE/DELETE touch none;
    the same SELECT as A finds every one (the ids are right)."""
    a, b = seeded.a, seeded.b
    failures = []
    for table in _tables(app_engine):
        ids = ids_of(owner_engine, table, a.id)
        assert ids, f"{table}: tenant A holds no rows"
        before = true_rows(owner_engine, table, a.id)
        by_id = {"ids": ids}
        with in_tenant(app_engine, a.id) as conn:
            if attempt(conn, f"SELECT count(*) FROM {table} WHERE id = ANY(:ids)", by_id) != (
                None,
                len(ids),
            ):
                failures.append(f"{table}: A does not find its own rows by id")
        with in_tenant(app_engine, b.id, commit=True) as conn:
            column, may_update, may_delete = _writes(conn, table)
            attacks = [f"SELECT count(*) FROM {table} WHERE id = ANY(:ids)"]
            if may_update:
                attacks.append(f"UPDATE {table} SET {column} = {column} WHERE id = ANY(:ids)")
            if may_delete:
                attacks.append(f"DELETE FROM {table} WHERE id = ANY(:ids)")
            for sql in attacks:
                if (got := attempt(conn, sql, by_id, keep=True)) != (None, 0):
                    failures.append(f"{table}: {sql!r} as B gave {got}")
        if true_rows(owner_engine, table, a.id) != before:
            failures.append(f"{table}: A's rows changed")
    assert not failures, "\n".join(failures)


def test_state_changes_aimed_at_another_tenants_rows_by_id_change_nothing(
    seeded: Seeded, app_engine: Engine, owner_engine: Engine
) -> None:
    """The updates erp_app is granted, each aimed by B at a named row of A's."""
    a, b = seeded.a, seeded.b
    facts = seeded.of(a)
    attacks = {
        "iam.api_keys": ("UPDATE iam.api_keys SET revoked_at = now() WHERE id = :id", a.key_id),
        "iam.idempotency_records": (
            "UPDATE iam.idempotency_records SET expires_at = now() WHERE tenant_id = :id",
            a.id,
        ),
        "ledger.transactions": (
            "UPDATE ledger.transactions SET status = 'voided' WHERE id = :id",
            facts["ledger.pending_id"],
        ),
        "ledger.accounts": (
            "UPDATE ledger.accounts SET archived = true, name = 'taken' WHERE id = :id",
            facts["ledger.account_id"],
        ),
    }
    before = {table: true_rows(owner_engine, table, a.id) for table in attacks}
    with in_tenant(app_engine, b.id, commit=True) as conn:
        for table, (sql, target) in attacks.items():
            assert conn.execute(text(sql), {"id": target}).rowcount == 0, table
    for table in attacks:
        assert true_rows(owner_engine, table, a.id) == before[table], table
    with owner_engine.connect() as conn:
        key = conn.execute(
            text("SELECT revoked_at FROM iam.api_keys WHERE id = :id"), {"id": a.key_id}
        ).scalar_one()
        status = conn.execute(
            text("SELECT status FROM ledger.transactions WHERE id = :id"),
            {"id": facts["ledger.pending_id"]},
        ).scalar_one()
    assert (key, status) == (None, "pending")


def test_insert_with_a_foreign_tenant_id_is_refused_in_every_table(
    seeded: Seeded, app_engine: Engine, owner_engine: Engine
) -> None:
    """WITH CHECK runs before NOT NULL and CHECK constraints: the bare attempt is enough.
    Where erp_app may not insert at all, the refusal is the privilege's."""
    failures, by_policy = [], 0
    for table in _tables(app_engine):
        before = true_rows(owner_engine, table, seeded.a.id)
        with in_tenant(app_engine, seeded.b.id) as conn:
            granted = app_may(conn, table, "INSERT", "tenant_id")
            try:
                conn.execute(
                    text(f"INSERT INTO {table} (tenant_id) VALUES (:a)"), {"a": seeded.a.id}
                )
            except DBAPIError as exc:
                policy = sqlstate(exc) == DENIED and RLS_REFUSAL in str(exc.orig)
                by_policy += policy
                if granted and not policy:
                    failures.append(f"{table}: refused, but not by the policy: {exc.orig}")
                if not granted and sqlstate(exc) != DENIED:
                    failures.append(f"{table}: refused with {sqlstate(exc)}, not 42501")
            else:
                failures.append(f"{table}: a row with tenant A's id was inserted as B")
        assert true_rows(owner_engine, table, seeded.a.id) == before
    assert by_policy >= 3  # iam.api_keys, iam.audit_log, ledger.transactions, ...
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
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() > 0, table
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
