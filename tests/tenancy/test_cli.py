"""`erp tenants|operators|keys`: the operator's command line, against the real database."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine

from erp.cli import main
from erp.config import Settings
from erp.tenancy.keycache import EPOCH_EVERY_S
from tests.conftest import TenantHandle
from tests.core.helpers import assert_problem, owner_sql

KEY_RE = re.compile(r"^erp_(live|test)_[a-z0-9]{12}_[0-9A-Za-z]{43}$")
TOKEN_RE = re.compile(r"^erpop_[a-z0-9]{12}_[0-9A-Za-z]{43}$")


@pytest.fixture
def erp(app_url: str, owner_url: str, redis_url: str, settings: Settings) -> Any:
    runner = CliRunner()
    env = {"DATABASE_URL": app_url, "MIGRATION_DATABASE_URL": owner_url, "REDIS_URL": redis_url}
    env["QUEUE_PREFIX"] = settings.queue_prefix  # one deployment: the API's auth epoch

    def run(*args: str, ok: bool = True) -> Result:
        result = runner.invoke(main, list(args), env=env)
        if ok:
            assert result.exit_code == 0, (result.output, result.stderr, result.exception)
        # Another process (the API) sees a revocation or a suspension within this.
        time.sleep(EPOCH_EVERY_S)
        return result

    return run


def _fields(line: str) -> list[str]:
    return line.split("\t")


def test_operators_create_prints_a_working_token_last(erp: Any, client: Any) -> None:
    email = f"cli-{uuid.uuid4().hex[:8]}@example.com"
    result = erp("operators", "create", email)
    token = result.stdout.splitlines()[-1]
    assert TOKEN_RE.match(token), result.stdout
    r = client.get("/ops/v1/tenants", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    again = erp("operators", "create", email, ok=False)
    assert again.exit_code == 1
    assert "exists already" in again.stderr


def _operator_line(erp: Any, email: str) -> list[str]:
    lines = [_fields(x) for x in erp("operators", "list").stdout.splitlines()]
    return next(f for f in lines if f[1] == email)


def test_operators_list_and_revoke(erp: Any, client: Any, owner_engine: Engine) -> None:
    email = f"cli-{uuid.uuid4().hex[:8]}@example.com"
    token = erp("operators", "create", email).stdout.splitlines()[-1]
    headers = {"Authorization": f"Bearer {token}"}
    op_id, _, state, created = _operator_line(erp, email)
    assert state == "active"
    assert created
    assert client.get("/ops/v1/tenants", headers=headers).status_code == 200

    assert _fields(erp("operators", "revoke", email).stdout.strip()) == ["revoked", op_id, email]
    assert_problem(client.get("/ops/v1/tenants", headers=headers), 401, "unauthorized")
    assert _operator_line(erp, email)[2].startswith("revoked ")
    # by id too; a second revoke changes nothing and is not audited twice
    again = erp("operators", "revoke", op_id).stdout.strip()
    assert _fields(again) == ["already revoked", op_id, email]
    rows = owner_sql(
        owner_engine,
        "SELECT actor, action, tenant_id FROM platform.audit_events "
        "WHERE details->>'operator_id' = :o ORDER BY id",
        {"o": op_id},
    )
    assert [(r.actor, r.action, r.tenant_id) for r in rows] == [
        ("system:cli", "operator.created", None),
        ("system:cli", "operator.revoked", None),
    ]
    unknown = erp("operators", "revoke", "nobody@example.com", ok=False)
    assert unknown.exit_code == 1
    assert "no operator 'nobody@example.com'" in unknown.stderr
    assert "Traceback" not in unknown.output + unknown.stderr


def test_tenant_lifecycle_from_the_cli(
    erp: Any, client: Any, ops_headers: dict[str, str], owner_engine: Engine
) -> None:
    slug = f"cli-{uuid.uuid4().hex[:8]}"
    out = erp("tenants", "create", slug, "--name", "CLI Co", "--currency", "EUR").stdout
    status, tid, got_slug, state, currency, name = _fields(out.strip())
    assert (status, got_slug, state, currency, name) == ("created", slug, "active", "EUR", "CLI Co")
    out = erp("tenants", "create", slug, "--name", "CLI Co", "--currency", "EUR").stdout
    assert _fields(out.strip())[:2] == ["exists", tid]
    conflict = erp("tenants", "create", slug, "--name", "Other", ok=False)
    assert conflict.exit_code == 1
    assert "conflict" in conflict.stderr
    assert "Traceback" not in conflict.output + conflict.stderr

    listed = "SELECT count(*) FROM platform.audit_events WHERE action = 'tenant.listed'"
    before = owner_sql(owner_engine, listed)[0][0]
    assert any(_fields(line)[0] == tid for line in erp("tenants", "list").stdout.splitlines())
    assert owner_sql(owner_engine, listed)[0][0] == before + 1, "the CLI's list is audited too"

    result = erp("keys", "create", slug, "--name", "cli key", "--scope", "ledger:read")
    key = result.stdout.splitlines()[-1]
    assert KEY_RE.match(key), result.stdout
    headers = {"Authorization": f"Bearer {key}"}
    me = client.get("/api/v1/me", headers=headers)
    assert me.status_code == 200
    assert me.get_json()["scopes"] == ["ledger:read"]
    assert me.get_json()["tenant"]["id"] == tid

    assert _fields(erp("tenants", "suspend", slug, "--reason", "cli test").stdout)[2] == "suspended"
    assert_problem(client.get("/api/v1/me", headers=headers), 403, "tenant-suspended")
    refused = erp("keys", "create", slug, "--name", "x", "--scope", "ledger:read", ok=False)
    assert refused.exit_code == 1
    assert "suspended" in refused.stderr
    assert _fields(erp("tenants", "reactivate", tid).stdout)[2] == "active"
    assert client.get("/api/v1/me", headers=headers).status_code == 200

    assert _fields(erp("tenants", "delete", slug).stdout)[2] == "deleting"
    assert client.get("/api/v1/me", headers=headers).status_code in (401, 403)
    assert _fields(erp("tenants", "restore", slug).stdout)[2] == "active"
    assert client.get("/api/v1/me", headers=headers).status_code == 200

    erp("tenants", "delete", slug)
    out = erp("tenants", "purge", "--tenant", slug).stdout
    assert out.startswith(f"purged\t{tid}\t{slug}\t")
    assert client.get("/api/v1/me", headers=headers).status_code == 401

    events = client.get(
        "/ops/v1/audit-events", query_string={"tenant_id": tid, "limit": 200}, headers=ops_headers
    ).get_json()["items"]
    assert [e["action"] for e in reversed(events)] == [
        "tenant.provisioned",
        "api_key.issued",
        "tenant.suspended",
        "tenant.reactivated",
        "tenant.deleted",
        "tenant.restored",
        "tenant.deleted",
        "tenant.purged",
    ]
    assert {e["actor"] for e in events} == {"system:cli", "system:purge"}


def test_keys_create_then_revoke(
    erp: Any, client: Any, tenant: TenantHandle, owner_engine: Engine
) -> None:
    key = erp(
        "keys",
        "create",
        str(tenant.id),
        "--name",
        "k",
        "--scope",
        "orders:write",
        "--scope",
        "ledger:read",
    ).stdout.splitlines()[-1]
    headers = {"Authorization": f"Bearer {key}"}
    me = client.get("/api/v1/me", headers=headers).get_json()
    assert me["scopes"] == ["ledger:read", "orders:write"]
    key_id = me["principal"]["id"]
    rows = owner_sql(
        owner_engine,
        "SELECT created_by FROM iam.api_keys WHERE id = :k",
        {"k": key_id},
        tenant=tenant.id,
    )
    assert rows[0].created_by == "system:cli"

    assert erp("keys", "revoke", tenant.slug, key_id).stdout.strip() == f"revoked {key_id}"
    assert_problem(client.get("/api/v1/me", headers=headers), 401, "unauthorized")
    assert client.get("/api/v1/me", headers=tenant.headers).status_code == 200


def test_cli_refusals_are_one_line_errors(erp: Any, tenant: TenantHandle) -> None:
    cases = [
        (("keys", "create", tenant.slug, "--name", "k", "--scope", "ledger:admin"), "scopes"),
        (("keys", "revoke", tenant.slug, str(uuid.uuid4())), "not-found"),
        (("keys", "revoke", "no-such-tenant", str(uuid.uuid4())), "no tenant"),
        (("tenants", "reactivate", tenant.slug), "conflict"),
        (("tenants", "suspend", str(uuid.uuid4()), "--reason", "x"), "not-found"),
        (("tenants", "create", "Bad Slug", "--name", "x"), "slug"),
        (("tenants", "create", "good-slug", "--name", "x", "--currency", "XXX"), "base_currency"),
        (("keys", "create", tenant.slug, "--name", "", "--scope", "ledger:read"), "name"),
        (
            ("tenants", "create", f"ok-{uuid.uuid4().hex[:6]}", "--name", "x", "--template", "zz"),
            "template",
        ),
    ]
    for args, needle in cases:
        result = erp(*args, ok=False)
        assert result.exit_code == 1, (args, result.output)
        assert needle in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
