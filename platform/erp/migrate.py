"""`erp migrate`: roles, then Alembic, every DDL statement as erp_owner (DESIGN.md §3)."""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from erp.config import Settings
from erp.paths import MIGRATIONS, POLICIES

#: Each role and the options it is created with. Only a superuser may create
#: erp_auth (BYPASSRLS), so the first `erp migrate` of a server needs one.
_ROLES = {
    "erp_owner": "NOLOGIN",
    "erp_ops": "NOLOGIN",
    "erp_auth": "NOLOGIN BYPASSRLS",
    "erp_app": "LOGIN",
}
#: The attributes a role must have: pg_roles column -> (wanted, ALTER ROLE keyword).
_ATTRS: dict[str, dict[str, tuple[bool, str]]] = {
    "erp_app": {
        "rolsuper": (False, "NOSUPERUSER"),
        "rolbypassrls": (False, "NOBYPASSRLS"),
        "rolcreatedb": (False, "NOCREATEDB"),
        "rolcreaterole": (False, "NOCREATEROLE"),
        "rolinherit": (False, "NOINHERIT"),
        "rolreplication": (False, "NOREPLICATION"),
    },
    "erp_ops": {"rolcanlogin": (False, "NOLOGIN"), "rolbypassrls": (False, "NOBYPASSRLS")},
}
#: (role, member): erp_app assumes erp_ops with SET LOCAL ROLE in operator requests.
_MEMBERSHIPS = (("erp_ops", "erp_app"),)
#: What a concurrent `erp migrate` on another database of the server can make us hit.
_RACES = (pg_errors.DuplicateObject, pg_errors.UniqueViolation, pg_errors.InternalError_)

FIRST_INSTALL = (
    "the first `erp migrate` of a PostgreSQL server must log in as a superuser "
    "(only a superuser may create the BYPASSRLS role erp_auth); later runs need only "
    "a login with CREATEROLE that is a member of erp_owner and erp_auth"
)


class MigrateError(RuntimeError):
    """The migration login lacks a privilege a step needs; the message says which."""


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
        except pg_errors.InsufficientPrivilege as exc:
            shown = stmt if isinstance(stmt, str) else stmt.as_string(conn)
            raise MigrateError(f"{shown}: {exc}; {FIRST_INSTALL}") from exc


def _one(conn: psycopg.Connection[Any], query: str, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


def _has_acl(conn: psycopg.Connection[Any], catalog: str, grantee: str, privilege: str) -> bool:
    """Whether `grantee` ('' for PUBLIC) holds `privilege` by a grant of its own.

    `catalog` is "database" (this one) or "schema public". Effective privileges
    (has_database_privilege) would count PUBLIC's CONNECT for erp_app, and a later
    REVOKE ... FROM PUBLIC would then lock the app out.
    """
    source = {
        "database": "SELECT aclexplode(COALESCE(datacl, acldefault('d', datdba))) AS a "
        "FROM pg_database WHERE datname = current_database()",
        "schema public": "SELECT aclexplode(COALESCE(nspacl, acldefault('n', nspowner))) AS a "
        "FROM pg_namespace WHERE nspname = 'public'",
    }[catalog]
    query = (
        f"SELECT EXISTS (SELECT 1 FROM ({source}) x WHERE (x.a).privilege_type = %(p)s "
        "AND (x.a).grantee = CASE WHEN %(g)s = '' THEN 0 ELSE to_regrole(%(g)s)::oid END)"
    )
    return bool(_one(conn, query, {"g": grantee, "p": privilege}))


def bootstrap(url: str, app_password: str | None = None, settings: Settings | None = None) -> None:
    """Create the roles and the database-level grants: idempotent and race-tolerant.

    Every step first reads the catalog and runs only when something differs, so a
    later run with a CREATEROLE non-superuser login succeeds: in PostgreSQL 15 such
    a login may neither create a BYPASSRLS role nor name SUPERUSER, BYPASSRLS or
    REPLICATION in ALTER ROLE, even to restate what is already true.
    """
    settings = settings or Settings()
    with psycopg.connect(url, autocommit=True) as conn:
        for role, options in _ROLES.items():
            if _one(conn, "SELECT to_regrole(%s)", [role]) is None:
                _run(conn, f"CREATE ROLE {role} {options}")
        for role, attrs in _ATTRS.items():
            columns = ", ".join(attrs)
            row = conn.execute(f"SELECT {columns} FROM pg_roles WHERE rolname = %s", [role])
            have = row.fetchone()
            assert have is not None
            fix = [kw for (want, kw), got in zip(attrs.values(), have, strict=True) if got != want]
            if fix:
                _run(conn, f"ALTER ROLE {role} {' '.join(fix)}")
        for role, member in _MEMBERSHIPS:
            if not _one(conn, "SELECT pg_has_role(%s, %s, 'MEMBER')", [member, role]):
                _run(conn, f"GRANT {role} TO {member}")
        is_super, dbname = conn.execute(
            "SELECT rolsuper, current_database() FROM pg_roles WHERE rolname = current_user"
        ).fetchone() or (False, "")
        if not is_super:  # migrations SET ROLE to both
            for role in ("erp_owner", "erp_auth"):
                if not _one(conn, "SELECT pg_has_role(current_user, %s, 'MEMBER')", [role]):
                    _run(conn, f"GRANT {role} TO CURRENT_USER")
        db = sql.Identifier(dbname)
        for grantee, privilege in (("erp_owner", "CONNECT"), ("erp_owner", "CREATE")):
            if not _has_acl(conn, "database", grantee, privilege):
                stmt = sql.SQL("GRANT {} ON DATABASE {} TO {}")
                _run(conn, stmt.format(sql.SQL(privilege), db, sql.Identifier(grantee)))
        if not _has_acl(conn, "database", "erp_app", "CONNECT"):
            _run(conn, sql.SQL("GRANT CONNECT ON DATABASE {} TO erp_app").format(db))
        for privilege in ("USAGE", "CREATE"):
            if not _has_acl(conn, "schema public", "erp_owner", privilege):
                _run(conn, f"GRANT {privilege} ON SCHEMA public TO erp_owner")
        if _has_acl(conn, "schema public", "", "CREATE"):
            _run(conn, "REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        _set_role_timeouts(conn, db, settings.db_timeouts())
        if app_password:
            _run(conn, sql.SQL("ALTER ROLE erp_app PASSWORD {}").format(sql.Literal(app_password)))


def _set_role_timeouts(
    conn: psycopg.Connection[Any], db: sql.Identifier, wanted: dict[str, int]
) -> None:
    """`ALTER ROLE erp_app IN DATABASE ... SET` each timeout that differs.

    Per database, not for the role everywhere: roles are cluster-wide, and two
    databases of one server may be configured differently. Every erp_app login
    to this database starts with these, pgbouncer's server connections included.
    """
    current = _one(
        conn,
        "SELECT setconfig FROM pg_db_role_setting WHERE setrole = to_regrole('erp_app') "
        "AND setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    have = dict(item.split("=", 1) for item in current or ())
    for name, value in wanted.items():
        if have.get(name) != str(value):
            stmt = sql.SQL("ALTER ROLE erp_app IN DATABASE {} SET {} = {}")
            _run(conn, stmt.format(db, sql.Identifier(name), sql.Literal(value)))


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    from erp.config import sqlalchemy_url

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return cfg


def upgrade(
    url: str,
    revision: str = "head",
    app_password: str | None = None,
    settings: Settings | None = None,
) -> None:
    """Roles and grants (`bootstrap`), then Alembic; see FIRST_INSTALL for the login."""
    from alembic import command

    bootstrap(url, app_password, settings)
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


def as_erp_auth(statements: str) -> None:
    """Run `statements` as erp_auth, the owner of the SECURITY DEFINER functions that
    read across tenants (erp_auth has BYPASSRLS: FORCE RLS hides every row from
    erp_owner before a tenant is known), allowed to create in schema `app` only
    meanwhile."""
    run_sql("GRANT CREATE ON SCHEMA app TO erp_auth; SET LOCAL ROLE erp_auth")
    run_sql(statements)
    run_sql("SET LOCAL ROLE erp_owner; REVOKE CREATE ON SCHEMA app FROM erp_auth")


def in_each_tenant(body: str) -> None:
    """Run `body` (plpgsql statements; the tenant's row is `t`, with `t.id` and
    `t.base_currency`) once per tenant with that tenant pinned: under FORCE RLS the
    owner sees and changes only the pinned tenant's rows (a statement without a pin
    changes nothing)."""
    run_sql(f"""
        DO $$
        DECLARE t record;
        BEGIN
            FOR t IN SELECT id, base_currency FROM platform.tenants ORDER BY id LOOP
                PERFORM set_config('app.tenant_id', t.id::text, true);
{body}
            END LOOP;
            PERFORM set_config('app.tenant_id', '', true);
        END
        $$;
    """)


def tenant_table(table: str, grants: str = "SELECT, INSERT", *, append_only: bool = False) -> None:
    """Apply DESIGN.md §3 to a freshly created tenant table and grant erp_app `grants`."""
    run_sql(policy_sql("tenant_table.sql", table=table))
    run_sql(f"GRANT {grants} ON {table} TO erp_app")
    if append_only:
        run_sql(policy_sql("append_only.sql", table=table))


def tenant_schema(schema: str) -> None:
    run_sql(f"CREATE SCHEMA {schema}; GRANT USAGE ON SCHEMA {schema} TO erp_app")
