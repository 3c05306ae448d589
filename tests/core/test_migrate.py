"""`erp migrate` as documented: a superuser for the first install (the session's own
database was migrated so), then a CREATEROLE non-superuser for every later run."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from erp.cli import main
from erp.migrate import upgrade
from tests import servers

#: Everything bootstrap manages, read as the superuser; equal before and after = idempotent.
STATE = {
    "roles": """SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin,
                       rolreplication, rolbypassrls
                  FROM pg_roles WHERE rolname IN ('erp_app', 'erp_ops', 'erp_owner', 'erp_auth')
                 ORDER BY 1""",
    "members": """SELECT r.rolname, m.rolname FROM pg_auth_members a
                    JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
                   WHERE m.rolname IN ('erp_app', 'erp_ops', 'erp_owner', 'erp_auth')
                   ORDER BY 1, 2""",
    "database": "SELECT datacl::text FROM pg_database WHERE datname = current_database()",
    "public": "SELECT nspacl::text FROM pg_namespace WHERE nspname = 'public'",
    "settings": """SELECT setconfig FROM pg_db_role_setting
                    WHERE setrole = 'erp_app'::regrole AND setdatabase =
                          (SELECT oid FROM pg_database WHERE datname = current_database())""",
    "version": "SELECT version_num FROM alembic_version",
}


def _state(owner_url: str) -> dict[str, Any]:
    with psycopg.connect(owner_url) as conn:
        return {key: conn.execute(query).fetchall() for key, query in STATE.items()}


@pytest.fixture
def login(owner_url: str, db_name: str) -> Iterator[Any]:
    """`login(options)`: the URL of a new login role with `options`, dropped afterwards.

    Its name is unique: roles are cluster-wide and other runs share the server.
    """
    made: list[str] = []

    def make(options: str) -> str:
        name = f"erp_m{uuid.uuid4().hex[:10]}"
        password = secrets.token_urlsafe(12)
        with psycopg.connect(owner_url, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {name} LOGIN {options} PASSWORD '{password}'")
        made.append(name)
        return servers.with_database(owner_url, db_name, name, password)

    yield make
    with psycopg.connect(owner_url, autocommit=True) as conn:
        for name in made:
            conn.execute(f"DROP OWNED BY {name}")
            conn.execute(f"DROP ROLE {name}")


def test_later_migrations_run_as_a_createrole_non_superuser(
    owner_url: str, app_url: str, redis_url: str, login: Any
) -> None:
    before = _state(owner_url)
    assert before["settings"] == [
        (
            [
                "statement_timeout=30000",
                "lock_timeout=10000",
                "idle_in_transaction_session_timeout=60000",
            ],
        )
    ]
    migrator = login("CREATEROLE")  # no memberships yet: migrate grants itself the two
    with psycopg.connect(owner_url, autocommit=True) as conn:
        if conn.info.server_version >= 160000:
            # From PostgreSQL 16 CREATEROLE manages only the roles it created: the
            # operator grants the login the platform's roles WITH ADMIN OPTION once
            # (docs/operations.md, Roles), and migrate can restate their settings.
            user = migrator.split("://", 1)[1].split(":", 1)[0]
            roles = "erp_owner, erp_auth, erp_app, erp_ops"
            conn.execute(f"GRANT {roles} TO {user} WITH ADMIN OPTION")
    env = {"MIGRATION_DATABASE_URL": migrator, "ERP_APP_PASSWORD": servers.APP_PASSWORD}
    for _ in range(2):
        result = CliRunner().invoke(main, ["migrate"], env=env)
        assert result.exit_code == 0, (result.output, result.stderr, result.exception)
        assert _state(owner_url) == before
    upgrade(migrator, "head")  # and through the function, without a password
    assert _state(owner_url) == before

    with psycopg.connect(migrator) as conn:
        member = "SELECT pg_has_role(current_user, %s, 'MEMBER')"
        assert all(
            conn.execute(member, [r]).fetchone() == (True,) for r in ("erp_owner", "erp_auth")
        )
        assert conn.execute(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone() == (False,)
    with psycopg.connect(app_url) as conn:  # erp_app's password still works
        assert conn.execute("SELECT current_user").fetchone() == ("erp_app",)

    # the other MIGRATION_DATABASE_URL commands work with this login too
    email = f"migrator-{uuid.uuid4().hex[:8]}@example.com"
    result = CliRunner().invoke(
        main, ["operators", "create", email], env={"MIGRATION_DATABASE_URL": migrator}
    )
    assert result.exit_code == 0, (result.output, result.stderr, result.exception)


def test_a_login_without_createrole_is_told_what_migrate_needs(login: Any) -> None:
    result = CliRunner().invoke(main, ["migrate"], env={"MIGRATION_DATABASE_URL": login("")})
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "GRANT erp_owner TO CURRENT_USER" in result.stderr
    assert "must log in as a superuser" in result.stderr
    assert "CREATEROLE" in result.stderr
