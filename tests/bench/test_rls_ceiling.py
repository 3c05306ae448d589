"""The RLS ceiling of the benchmarks (Settings.bench_rls_ceiling): only bench/ turns
it on, `erp serve` refuses its BYPASSRLS login whatever the environment says, and
with it every read of the measured request is filtered by tenant by hand."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql
from sqlalchemy import text

from erp import create_app
from erp.cli import main
from erp.config import Settings
from erp.db import tenant_context
from erp.extensions import db
from erp.http import ErpFlask
from erp.ledger import queries
from erp.ledger.models import Account
from erp.paths import ROOT
from tests.conftest import TEST_ENCRYPTION_KEY, TenantHandle

AppFactory = Callable[..., ErpFlask]

#: Names someone might try to turn the ceiling on with.
TEMPTING_ENV = {
    "BENCH_RLS_CEILING": "1",
    "ERP_BENCH_RLS_CEILING": "true",
    "BENCH_RLS_BYPASS": "1",
    "bench_rls_ceiling": "true",
}


@pytest.fixture(scope="module")
def bypass_url(owner_url: str) -> Iterator[str]:
    """A BYPASSRLS login (no superuser) with erp_app's grants, as the bench creates."""
    role = f"erp_test_bypass_{uuid.uuid4().hex[:8]}"
    password = secrets.token_urlsafe(18)
    ident = sql.Identifier(role)
    with psycopg.connect(owner_url, autocommit=True) as conn:
        dbname = conn.info.dbname
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN BYPASSRLS PASSWORD {}").format(
                ident, sql.Literal(password)
            )
        )
        conn.execute(sql.SQL("GRANT erp_app TO {}").format(ident))
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(dbname), ident)
        )
    parts = urlsplit(owner_url)
    netloc = f"{quote(role)}:{quote(password)}@{parts.netloc.rsplit('@', 1)[-1]}"
    yield urlunsplit(parts._replace(netloc=netloc))
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("REVOKE CONNECT ON DATABASE {} FROM {}").format(sql.Identifier(dbname), ident)
        )
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,)
        )
        conn.execute(sql.SQL("DROP ROLE {}").format(ident))


@pytest.fixture
def make_app(settings: Settings) -> Iterator[AppFactory]:
    made: list[ErpFlask] = []

    def factory(**changes: Any) -> ErpFlask:
        new = create_app(settings.replace(**changes))
        new.config["TESTING"] = True
        made.append(new)
        return new

    yield factory
    for app in made:
        with app.app_context():
            db.dispose()


def test_no_environment_variable_turns_the_ceiling_on() -> None:
    assert Settings.from_env({**TEMPTING_ENV, "SECRET_KEY": "k"}).bench_rls_ceiling is False


def test_only_the_bench_sets_the_ceiling() -> None:
    setters = [
        str(path.relative_to(ROOT))
        for top in ("platform", "bench")
        for path in (ROOT / top).rglob("*.py")
        if "bench_rls_ceiling=True" in path.read_text()
    ]
    assert setters == ["bench/rls_ceiling.py"]


def test_erp_serve_refuses_a_bypassrls_login_whatever_the_environment(
    bypass_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*_args: Any) -> None:
        raise AssertionError("gunicorn must not start")

    monkeypatch.setattr("erp.server.run_gunicorn", never)
    env = {**TEMPTING_ENV, "DATABASE_URL": bypass_url, "REDIS_URL": redis_url, "SECRET_KEY": "k"}
    env["ENCRYPTION_KEYS"] = TEST_ENCRYPTION_KEY  # a domain stores secrets: keys are required
    result = CliRunner().invoke(main, ["serve"], env=env)
    assert result.exit_code == 1, result.output
    assert "BYPASSRLS" in result.stderr


def test_the_ceiling_refuses_erp_app_and_a_superuser(
    make_app: AppFactory, owner_url: str, tenant: TenantHandle
) -> None:
    # the ceiling is the app without RLS: on erp_app it would measure RLS twice
    for url in (None, owner_url):
        changes: dict[str, Any] = {"bench_rls_ceiling": True}
        if url is not None:
            changes["database_url"] = url
        ready = make_app(**changes).test_client().get("/readyz")
        assert ready.status_code == 503
        assert ready.get_json()["checks"]["postgres"] == "error: PrivilegedLoginError"


def test_the_ceiling_filters_the_account_lookup_by_tenant(
    make_app: AppFactory,
    client: Any,
    bypass_url: str,
    tenant: TenantHandle,
    other_tenant: TenantHandle,
) -> None:
    mine = client.get("/api/v1/ledger/accounts", headers=tenant.headers).get_json()["items"][0]
    theirs = client.get("/api/v1/ledger/accounts", headers=other_tenant.headers).get_json()
    other_id = theirs["items"][0]["id"]
    ceiling = make_app(database_url=bypass_url, bench_rls_ceiling=True)
    c = ceiling.test_client()

    own = c.get(f"/api/v1/ledger/accounts/{mine['id']}", headers=tenant.headers)
    assert own.status_code == 200
    assert own.get_json() == mine
    assert c.get(f"/api/v1/ledger/accounts/{other_id}", headers=tenant.headers).status_code == 404

    with ceiling.app_context(), tenant_context(tenant.id), db.new_session() as s:
        # the login does bypass RLS: only the explicit filters keep the other tenant out
        seen = s.execute(
            text("SELECT count(*) FROM ledger.accounts WHERE id = :id"), {"id": other_id}
        ).scalar_one()
        assert seen == 1
        assert s.get(Account, uuid.UUID(other_id)) is None
        assert queries.balances(s, [uuid.UUID(other_id)]) == {}
        assert set(queries.balances(s, [uuid.UUID(mine["id"])])) == {uuid.UUID(mine["id"])}
