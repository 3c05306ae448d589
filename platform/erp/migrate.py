"""`erp migrate`: roles, then Alembic, every DDL statement as erp_owner (DESIGN.md §3)."""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from erp.paths import MIGRATIONS, POLICIES

_ROLES = (
    "CREATE ROLE erp_owner NOLOGIN",
    "CREATE ROLE erp_ops NOLOGIN",
    "CREATE ROLE erp_auth NOLOGIN BYPASSRLS",
    "CREATE ROLE erp_app LOGIN",
)
_ROLE_ATTRS = (
    "ALTER ROLE erp_app NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION",
    "ALTER ROLE erp_ops NOLOGIN NOBYPASSRLS",
    "GRANT erp_ops TO erp_app",
)
#: What a concurrent `erp migrate` on another database of the server can make us hit.
_RACES = (pg_errors.DuplicateObject, pg_errors.UniqueViolation, pg_errors.InternalError_)


def policy_sql(name: str, **fmt: str) -> str:
    """The text of policies/<name>, with `{table}`-style placeholders filled."""
    text = (POLICIES / name).read_text()
    return text.format(**fmt) if fmt else text


def _run(conn: psycopg.Connection[Any], stmt: str | sql.Composed, tolerate: bool = True) -> None:
    for attempt in range(10):
        try:
            conn.execute(stmt)
            return
        except _RACES as exc:
            if isinstance(exc, pg_errors.DuplicateObject) and tolerate:
                return
            if attempt == 9:
                raise
            time.sleep(0.05 * (attempt + 1))


def bootstrap(url: str, app_password: str | None = None) -> None:
    """Create the roles (idempotent, race-tolerant) and the database-level grants."""
    with psycopg.connect(url, autocommit=True) as conn:
        for stmt in _ROLES:
            _run(conn, stmt)
        for stmt in _ROLE_ATTRS:
            _run(conn, stmt)
        row = conn.execute(
            "SELECT rolsuper, current_database() FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert row is not None
        is_super, dbname = row
        if not is_super:
            _run(conn, "GRANT erp_owner, erp_auth TO CURRENT_USER")
        db = sql.Identifier(dbname)
        _run(conn, sql.SQL("GRANT CONNECT, CREATE ON DATABASE {} TO erp_owner").format(db))
        _run(conn, sql.SQL("GRANT CONNECT ON DATABASE {} TO erp_app").format(db))
        _run(conn, "GRANT USAGE, CREATE ON SCHEMA public TO erp_owner")
        _run(conn, "REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        if app_password:
            _run(conn, sql.SQL("ALTER ROLE erp_app PASSWORD {}").format(sql.Literal(app_password)))


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    from erp.config import sqlalchemy_url

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head", app_password: str | None = None) -> None:
    from alembic import command

    bootstrap(url, app_password)
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)


# -- helpers for migration scripts -------------------------------------------------


def run_sql(statements: str) -> None:
    """Execute raw SQL in the migration's transaction (no bind-parameter parsing)."""
    from alembic import op

    dbapi = op.get_bind().connection.dbapi_connection
    assert dbapi is not None
    cur = dbapi.cursor()
    try:
        cur.execute(statements)  # no parameters: psycopg leaves '%' alone
    finally:
        cur.close()


def tenant_table(table: str, grants: str = "SELECT, INSERT", *, append_only: bool = False) -> None:
    """Apply DESIGN.md §3 to a freshly created tenant table and grant erp_app `grants`."""
    run_sql(policy_sql("tenant_table.sql", table=table))
    run_sql(f"GRANT {grants} ON {table} TO erp_app")
    if append_only:
        run_sql(policy_sql("append_only.sql", table=table))


def tenant_schema(schema: str) -> None:
    run_sql(f"CREATE SCHEMA {schema}; GRANT USAGE ON SCHEMA {schema} TO erp_app")
