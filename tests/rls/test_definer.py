"""Every SECURITY DEFINER function (the audit's allow-list), attacked one by one.

`app.lookup_api_key` runs as erp_auth (BYPASSRLS) before a tenant is known: it
must answer only for a matching (public id, secret hash), only to erp_app, and
with a search_path the caller cannot bend. The ledger's balance functions run
as erp_owner, whom FORCE RLS keeps inside the caller's tenant.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from erp import credentials
from erp.db import sqlstate
from tests.conftest import TenantHandle
from tests.rls.audit import DEFINERS
from tests.rls.conftest import Seeded, in_tenant

LOOKUP = "SELECT * FROM app.lookup_api_key(:p, :h)"
EVIL = "rls_evil"


def _cred(t: TenantHandle) -> credentials.Credential:
    cred = credentials.parse_api_key(t.key)
    assert cred is not None
    return cred


def _lookup(conn: Connection, public_id: str | None, secret_hash: str | None) -> list[Any]:
    return list(conn.execute(text(LOOKUP), {"p": public_id, "h": secret_hash}))


def test_every_allow_listed_definer_exists_pinned_and_tested(owner_engine: Engine) -> None:
    with owner_engine.connect() as conn:
        conn.execute(text("SET LOCAL search_path = pg_catalog"))
        rows = {
            r.fn: r
            for r in conn.execute(
                text(
                    """SELECT p.oid::regprocedure::text AS fn, p.proconfig,
                              pg_get_userbyid(p.proowner) AS owner
                         FROM pg_proc p WHERE p.prosecdef
                          AND p.pronamespace NOT IN ('pg_catalog'::regnamespace,
                                                     'information_schema'::regnamespace)"""
                )
            )
        }
    assert set(rows) == set(DEFINERS)
    for fn, owner in DEFINERS.items():
        assert rows[fn].owner == owner
        assert "search_path=pg_catalog, pg_temp" in (rows[fn].proconfig or []), fn


# -- app.lookup_api_key --------------------------------------------------------------


def test_lookup_answers_a_matching_pair_only(seeded: Seeded, app_engine: Engine) -> None:
    a, b = _cred(seeded.a), _cred(seeded.b)
    with app_engine.connect() as conn:  # no tenant yet, as during authentication
        found = _lookup(conn, a.public_id, a.secret_hash)
        assert [(r.key_id, r.tenant_id) for r in found] == [(seeded.a.key_id, seeded.a.id)]
        assert _lookup(conn, a.public_id, credentials.hash_secret("wrong")) == []
        assert _lookup(conn, a.public_id, b.secret_hash) == []
        assert _lookup(conn, b.public_id, a.secret_hash) == []
        assert _lookup(conn, a.public_id, None) == []
        assert _lookup(conn, None, a.secret_hash) == []
        assert _lookup(conn, "%", "%") == []
        assert _lookup(conn, a.public_id, a.secret_hash.upper()) == []
        conn.rollback()
    # a tenant GUC changes nothing: B's transaction still finds only A's exact key
    with in_tenant(app_engine, seeded.b.id) as conn:
        assert [r.tenant_id for r in _lookup(conn, a.public_id, a.secret_hash)] == [seeded.a.id]
        assert _lookup(conn, a.public_id, b.secret_hash) == []


def test_lookup_is_executable_by_erp_app_only(owner_engine: Engine) -> None:
    with owner_engine.connect() as conn:
        allowed = {
            role: conn.execute(
                text(
                    "SELECT has_function_privilege(:r, 'app.lookup_api_key(text, text)', 'EXECUTE')"
                ),
                {"r": role},
            ).scalar_one()
            for role in ("erp_app", "erp_ops", "erp_owner")
        }
    assert allowed == {"erp_app": True, "erp_ops": False, "erp_owner": False}


def test_lookup_refuses_a_role_without_the_grant(owner_engine: Engine) -> None:
    """A fresh role (PUBLIC's rights only) gets permission denied; the role is rolled back."""
    probe = f"rls_probe_{uuid.uuid4().hex[:8]}"
    with owner_engine.connect() as conn:
        try:
            conn.execute(text(f"CREATE ROLE {probe} NOLOGIN"))
            conn.execute(text(f"GRANT USAGE ON SCHEMA app TO {probe}"))
            conn.execute(text(f"SET LOCAL ROLE {probe}"))
            with pytest.raises(DBAPIError) as caught:
                conn.execute(text(LOOKUP), {"p": "x", "h": "y"})
            assert sqlstate(caught.value) == "42501"
            assert "permission denied for function lookup_api_key" in str(caught.value.orig)
        finally:
            conn.rollback()
        assert (
            conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": probe}).first()
            is None
        )


def test_temp_tables_shadowing_the_lookup_change_nothing(
    seeded: Seeded, app_engine: Engine
) -> None:
    """erp_app's only writable namespace is pg_temp; shadow tables there are ignored."""
    a = _cred(seeded.a)
    with app_engine.connect() as conn:
        conn.execute(
            text(
                """CREATE TEMP TABLE api_keys AS SELECT * FROM iam.api_keys WITH NO DATA;
                   CREATE TEMP TABLE tenants (id uuid, slug text, name text, status text)"""
            )
        )
        conn.execute(
            text(
                """INSERT INTO pg_temp.api_keys (tenant_id, id, name, env, public_id,
                       secret_hash, scopes, created_by)
                   VALUES (:t, :id, 'shadow', 'live', :p, 'forged', ARRAY['api_keys:write'], 'x')"""
            ),
            {"t": seeded.b.id, "id": uuid.uuid4(), "p": a.public_id},
        )
        conn.execute(
            text("INSERT INTO pg_temp.tenants VALUES (:t, 'shadow', 'shadow', 'active')"),
            {"t": seeded.b.id},
        )
        conn.execute(text("SET LOCAL search_path = pg_temp, iam, platform, public"))
        assert _lookup(conn, a.public_id, "forged") == []
        assert [r.tenant_id for r in _lookup(conn, a.public_id, a.secret_hash)] == [seeded.a.id]
        conn.rollback()


@pytest.fixture
def evil_schema(owner_engine: Engine) -> Iterator[str]:
    """A schema (made by the superuser) whose `=` on text is always true."""
    with owner_engine.begin() as conn:
        conn.execute(
            text(
                f"""CREATE SCHEMA {EVIL};
                    CREATE FUNCTION {EVIL}.always(text, text) RETURNS boolean
                        LANGUAGE sql IMMUTABLE AS 'SELECT true';
                    CREATE OPERATOR {EVIL}.= (LEFTARG = text, RIGHTARG = text,
                                             FUNCTION = {EVIL}.always);
                    GRANT USAGE ON SCHEMA {EVIL} TO erp_app, erp_auth;
                    GRANT EXECUTE ON FUNCTION {EVIL}.always(text, text) TO PUBLIC"""
            )
        )
    try:
        yield EVIL
    finally:
        with owner_engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {EVIL} CASCADE"))


def test_search_path_is_pinned_against_a_shadowing_operator(
    seeded: Seeded, app_engine: Engine, evil_schema: str
) -> None:
    a = _cred(seeded.a)
    with app_engine.connect() as conn:
        conn.execute(text(f"SET LOCAL search_path = {evil_schema}, pg_catalog"))
        assert conn.execute(text("SELECT 'a'::text = 'b'::text")).scalar_one() is True
        assert _lookup(conn, a.public_id, "forged") == []
        assert _lookup(conn, "nobody", "nothing") == []
        assert [r.key_id for r in _lookup(conn, a.public_id, a.secret_hash)] == [seeded.a.key_id]
        conn.rollback()


def test_the_shadowing_attack_works_on_an_unpinned_definer(
    seeded: Seeded, owner_engine: Engine, evil_schema: str
) -> None:
    """The test above has teeth: unpin the path (rolled back) and every key leaks."""
    with owner_engine.connect() as conn:
        try:
            conn.execute(text("ALTER FUNCTION app.lookup_api_key(text, text) RESET search_path"))
            conn.execute(text("SET LOCAL ROLE erp_app"))
            conn.execute(text(f"SET LOCAL search_path = {evil_schema}, pg_catalog"))
            leaked = {r.tenant_id for r in _lookup(conn, "nobody", "nothing")}
        finally:
            conn.rollback()
    assert {seeded.a.id, seeded.b.id} <= leaked


# -- the ledger's balance functions ----------------------------------------------------


def _accounts(client: Any, t: TenantHandle) -> dict[str, str]:
    r = client.get("/api/v1/ledger/accounts?limit=200", headers=t.headers)
    assert r.status_code == 200, r.get_json()
    return {acc["code"]: acc["id"] for acc in r.get_json()["items"]}


def _post(client: Any, t: TenantHandle, debit: str, credit: str, amount: int) -> None:
    r = client.post(
        "/api/v1/ledger/transactions",
        json={
            "description": "rls definer probe",
            "entries": [
                {"account_id": debit, "amount": amount, "currency": "USD"},
                {"account_id": credit, "amount": -amount, "currency": "USD"},
            ],
        },
        headers=t.headers,
    )
    assert r.status_code == 201, r.get_json()


def _deltas(
    owner_engine: Engine, tenant: uuid.UUID, table: str = "ledger.balance_deltas"
) -> list[tuple[Any, ...]]:
    bucket = "hour" if table == "ledger.balance_hours" else "day"
    with owner_engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    f"""SELECT account_id, {bucket}, slot, posted, pending_dr, pending_cr
                          FROM {table} WHERE tenant_id = :t ORDER BY 1, 2, 3"""
                ),
                {"t": tenant},
            )
        ]


BUCKETS = ("ledger.balance_deltas", "ledger.balance_hours")


@pytest.mark.parametrize("table", BUCKETS)
def test_balance_triggers_write_only_the_posting_tenants_deltas(
    client: Any, tenant: TenantHandle, seeded: Seeded, owner_engine: Engine, table: str
) -> None:
    """A fresh tenant posts; the seeded tenants' deltas (they have some) stay as they were."""
    mine = _accounts(client, tenant)
    before_other = {t.id: _deltas(owner_engine, t.id, table) for t in (seeded.a, seeded.b)}
    assert all(before_other.values()), "seeded tenants hold deltas"
    _post(client, tenant, mine["1000"], mine["4000"], 2500)
    with owner_engine.connect() as conn:
        owners = set(
            conn.execute(
                text(f"SELECT DISTINCT tenant_id FROM {table} WHERE account_id = ANY(:a)"),
                {"a": [uuid.UUID(x) for x in mine.values()]},
            ).scalars()
        )
    assert owners == {tenant.id}
    assert {t.id: _deltas(owner_engine, t.id, table) for t in (seeded.a, seeded.b)} == before_other


def test_balance_trigger_functions_are_not_callable(owner_engine: Engine) -> None:
    with owner_engine.connect() as conn:
        for fn in (
            "ledger.after_entries_insert()",
            "ledger.after_transaction_settled()",
            "ledger.after_entries_insert_hours()",
            "ledger.after_transaction_settled_hours()",
        ):
            held = conn.execute(
                text("SELECT has_function_privilege('erp_app', :f, 'EXECUTE')"), {"f": fn}
            ).scalar_one()
            assert held is False, fn


def test_compaction_touches_only_the_callers_tenant(
    client: Any,
    tenant: TenantHandle,
    other_tenant: TenantHandle,
    app_engine: Engine,
    owner_engine: Engine,
) -> None:
    for t in (tenant, other_tenant):
        accounts = _accounts(client, t)
        _post(client, t, accounts["1000"], accounts["4000"], 700)
        with owner_engine.begin() as conn:  # a second slot, so there is something to merge
            for sql in (
                """INSERT INTO ledger.balance_deltas
                     (tenant_id, id, account_id, day, slot, posted, pending_dr, pending_cr)
                   VALUES (:t, gen_random_uuid(), :acc, current_date - 1, 7, 0, 0, 0)""",
                """INSERT INTO ledger.balance_hours
                     (tenant_id, id, account_id, hour, slot, posted, pending_dr, pending_cr)
                   VALUES (:t, gen_random_uuid(), :acc,
                           date_trunc('hour', now() - interval '1 day', 'UTC'), 7, 0, 0, 0)""",
            ):
                conn.execute(text(sql), {"t": t.id, "acc": accounts["1000"]})
    other_before = {b: _deltas(owner_engine, other_tenant.id, b) for b in BUCKETS}
    mine_before = {b: _deltas(owner_engine, tenant.id, b) for b in BUCKETS}
    compact = text(
        "SELECT ledger.compact_balance_deltas(current_date + 1)"
        " + ledger.compact_balance_hours(current_date + 1)"
    )
    with app_engine.connect() as conn:  # no tenant: nothing is visible, nothing merges
        assert conn.execute(compact).scalar_one() == 0
        conn.commit()
    assert {b: _deltas(owner_engine, tenant.id, b) for b in BUCKETS} == mine_before
    with in_tenant(app_engine, tenant.id, commit=True) as conn:
        assert conn.execute(compact).scalar_one() >= 2
    assert {b: _deltas(owner_engine, other_tenant.id, b) for b in BUCKETS} == other_before
    for b in BUCKETS:
        after = _deltas(owner_engine, tenant.id, b)
        assert all(slot == 0 for _, _, slot, *_ in after), b
        assert sum(r[3] for r in after) == sum(r[3] for r in mine_before[b]), b


def test_webhook_discovery_names_tenant_ids_only_and_only_to_erp_app(
    seeded: Seeded, app_engine: Engine, owner_engine: Engine
) -> None:
    """app.tenants_with_due_webhooks (policies/webhooks.sql) looks across tenants before
    one is known: both seeded tenants have events waiting, and all it tells is their ids."""
    with app_engine.connect() as conn:
        result = conn.execute(text("SELECT * FROM app.tenants_with_due_webhooks(100000)"))
        assert list(result.keys()) == ["tenants_with_due_webhooks"]
        named = set(result.scalars())
        assert {seeded.a.id, seeded.b.id} <= named
        assert conn.execute(text("SELECT * FROM app.tenants_with_due_webhooks(0)")).all() == []
    with owner_engine.connect() as conn:
        allowed = {
            role: conn.execute(
                text(
                    "SELECT has_function_privilege(:r, "
                    "'app.tenants_with_due_webhooks(int)', 'EXECUTE')"
                ),
                {"r": role},
            ).scalar_one()
            for role in ("erp_app", "erp_ops", "erp_owner")
        }
    assert allowed == {"erp_app": True, "erp_ops": False, "erp_owner": False}
