"""Without a valid tenant in `app.tenant_id`, every tenant table is empty and closed.

Unset, empty, NULL, cleared, malformed: `app.current_tenant_id()` is NULL (or the
cast fails, which also fails closed), so no policy admits a row. Every table of
every tenant schema is tried, as erp_app, with SELECT, INSERT, UPDATE and DELETE.
Autocommit statements never inherit a transaction-local setting either.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from erp.db import sqlstate
from tests.rls.conftest import Seeded, app_may, tenant_tables, true_count, updatable_column

INVALID_TEXT = "22P02"  # a malformed GUC: the uuid cast fails, the statement fails closed
REFUSED = {"42501", INVALID_TEXT}


def _set(value: str | None) -> Callable[[Connection, Seeded], None]:
    def prepare(conn: Connection, _seeded: Seeded) -> None:
        conn.execute(text("SELECT set_config('app.tenant_id', :v, true)"), {"v": value})

    return prepare


def _unset(conn: Connection, _seeded: Seeded) -> None:
    assert conn.execute(text("SELECT current_setting('app.tenant_id', true)")).scalar() is None


def _cleared(conn: Connection, seeded: Seeded) -> None:
    """A tenant, then cleared in the same transaction, as `acting_in_tenant` leaves it."""
    _set(str(seeded.a.id))(conn, seeded)
    _set("")(conn, seeded)


def _reset(conn: Connection, seeded: Seeded) -> None:
    _set(str(seeded.a.id))(conn, seeded)
    conn.execute(text("RESET app.tenant_id"))


GUC_VALUES: dict[str, Callable[[Connection, Seeded], None]] = {
    "unset": _unset,
    "empty": _set(""),
    "null": _set(None),
    "cleared": _cleared,
    "reset": _reset,
    "malformed": _set("not-a-uuid"),
    "blank": _set(" "),
    "injection": _set("' OR true OR '"),
}


def _attempt(
    engine: Engine, prepare: Callable[[Connection, Seeded], None], seeded: Seeded, sql: str
) -> tuple[str, int]:
    """('ok', rows) or ('error', sqlstate), on a fresh erp_app connection, rolled back."""
    with engine.connect() as conn:
        prepare(conn, seeded)
        try:
            result = conn.execute(text(sql), {"a": seeded.a.id})
            rows = result.scalar_one() if result.returns_rows else result.rowcount
        except DBAPIError as exc:
            conn.rollback()
            return "error", sqlstate(exc) or "?"
        conn.rollback()
        return "ok", int(rows)


@pytest.mark.parametrize("prepare", GUC_VALUES.values(), ids=GUC_VALUES.keys())
def test_no_valid_tenant_sees_and_changes_nothing_in_every_table(
    prepare: Callable[[Connection, Seeded], None],
    seeded: Seeded,
    app_engine: Engine,
    owner_engine: Engine,
) -> None:
    with app_engine.connect() as conn:
        tables = tenant_tables(conn)
        grants = {
            t: (
                app_may(conn, t, "INSERT"),
                updatable_column(conn, t),
                app_may(conn, t, "DELETE"),
            )
            for t in tables
        }
    failures = []
    for table in tables:
        assert true_count(owner_engine, table, seeded.a.id) > 0, f"{table}: not seeded"
        may_insert, column, may_delete = grants[table]
        outcome, n = _attempt(app_engine, prepare, seeded, f"SELECT count(*) FROM {table}")
        if (outcome, n) != ("ok", 0) and not (outcome == "error" and n == INVALID_TEXT):
            failures.append(f"{table}: SELECT gave {outcome} {n}")
        attacks = []
        if may_insert:
            attacks += [
                f"INSERT INTO {table} (tenant_id) VALUES (:a)",
                f"INSERT INTO {table} DEFAULT VALUES",
            ]
        if column:
            attacks.append(f"UPDATE {table} SET {column} = {column}")
        if may_delete:
            attacks.append(f"DELETE FROM {table}")
        for sql in attacks:
            outcome, state = _attempt(app_engine, prepare, seeded, sql)
            writes = sql.startswith("INSERT")
            if writes and (outcome, state) not in {("error", s) for s in REFUSED}:
                failures.append(f"{table}: {sql!r} was not refused ({outcome} {state})")
            if not writes and outcome == "ok" and state:
                failures.append(f"{table}: {sql!r} touched {state} rows")
    assert not failures, "\n".join(failures)


def test_malformed_guc_is_an_error_not_a_wildcard(seeded: Seeded, app_engine: Engine) -> None:
    outcome, state = _attempt(
        app_engine, _set("not-a-uuid"), seeded, "SELECT count(*) FROM iam.api_keys"
    )
    assert (outcome, state) == ("error", INVALID_TEXT)


# -- autocommit --------------------------------------------------------------------


def _counts(conn: psycopg.Connection[tuple[int]], tables: list[str]) -> dict[str, int]:
    out = {}
    for t in tables:
        row = conn.execute(f"SELECT count(*) FROM {t}").fetchone()
        assert row is not None
        out[t] = row[0]
    return out


def test_autocommit_statements_do_not_inherit_a_local_tenant(
    seeded: Seeded, app_url: str, app_engine: Engine
) -> None:
    with app_engine.connect() as sa_conn:
        tables = tenant_tables(sa_conn)
    with psycopg.connect(app_url, autocommit=True) as conn:
        assert conn.execute("SELECT current_setting('app.tenant_id', true)").fetchone() == (None,)
        assert set(_counts(conn, tables).values()) == {0}
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", [str(seeded.a.id)])
        # the statement was its own transaction: the setting is gone with it
        assert conn.execute("SELECT current_setting('app.tenant_id', true)").fetchone() == ("",)
        assert set(_counts(conn, tables).values()) == {0}
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO webhooks.outbox_events (id, event_type, payload) "
                "VALUES (gen_random_uuid(), 'rls.autocommit', '{}')"
            )
        # control: the same call inside an explicit transaction reveals A's rows, in every table
        with conn.transaction():
            conn.execute("SELECT set_config('app.tenant_id', %s, true)", [str(seeded.a.id)])
            inside = _counts(conn, tables)
        assert [t for t, n in inside.items() if n == 0] == []
        assert set(_counts(conn, tables).values()) == {0}
