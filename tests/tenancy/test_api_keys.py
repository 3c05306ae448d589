"""/api/v1/me and /api/v1/api-keys: scopes, the key's shape, hashing, revocation, expiry."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.conftest import TenantHandle, make_tenant
from tests.core.helpers import assert_problem, forget_cached_keys, owner_sql

KEY_RE = re.compile(r"^erp_(live|test)_([a-z0-9]{12})_([0-9A-Za-z]{43})$")


def _create(client: Any, headers: dict[str, str], **body: Any) -> Any:
    body.setdefault("name", "integration")
    body.setdefault("scopes", ["ledger:read"])
    return client.post("/api/v1/api-keys", json=body, headers=headers)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_me(client: Any, tenant: TenantHandle) -> None:
    r = client.get("/api/v1/me", headers=tenant.headers)
    assert r.status_code == 200
    body = r.get_json()
    assert body["principal"] == {"kind": "api_key", "id": str(tenant.key_id), "name": "test key"}
    assert body["tenant"] == {
        "id": str(tenant.id),
        "slug": tenant.slug,
        "name": body["tenant"]["name"],
    }
    assert body["scopes"] == sorted(body["scopes"])


def test_me_needs_no_scope(client: Any, ops_headers: dict[str, str]) -> None:
    narrow = make_tenant(client, ops_headers, scopes=["orders:read"])
    r = client.get("/api/v1/me", headers=narrow.headers)
    assert r.status_code == 200
    assert r.get_json()["scopes"] == ["orders:read"]


def test_created_key_has_the_documented_shape_and_is_shown_once(
    client: Any, tenant: TenantHandle
) -> None:
    r = _create(client, tenant.headers, scopes=["ledger:write", "orders:read"])
    assert r.status_code == 201, r.get_json()
    created = r.get_json()
    m = KEY_RE.match(created["key"])
    assert m, created["key"]
    assert created["prefix"] == f"erp_{m.group(1)}_{m.group(2)}"
    assert created["key"].startswith(created["prefix"] + "_")
    assert created["scopes"] == ["ledger:write", "orders:read"]
    assert created["created_by"] == f"api_key:{tenant.key_id}"
    assert set(created) >= {"id", "name", "key", "prefix", "scopes", "expires_at", "created_at"}

    # the key works, with exactly its scopes
    me = client.get("/api/v1/me", headers=_bearer(created["key"])).get_json()
    assert me["scopes"] == ["ledger:write", "orders:read"]

    listed = client.get("/api/v1/api-keys?limit=200", headers=tenant.headers)
    assert listed.status_code == 200
    items = {k["id"]: k for k in listed.get_json()["items"]}
    assert set(items) == {created["id"], str(tenant.key_id)}
    assert items[created["id"]]["prefix"] == created["prefix"]
    one = client.get(f"/api/v1/api-keys/{created['id']}", headers=tenant.headers)
    assert one.status_code == 200
    for shown in (items[created["id"]], one.get_json()):
        assert "key" not in shown
        assert created["key"] not in str(shown)
        assert KEY_RE.match(created["key"]).group(3) not in str(shown)  # type: ignore[union-attr]


def test_only_a_hash_of_the_secret_is_stored(
    client: Any, tenant: TenantHandle, owner_engine: Engine
) -> None:
    created = _create(client, tenant.headers).get_json()
    secret = created["key"].rsplit("_", 1)[1]
    rows = owner_sql(
        owner_engine,
        "SELECT * FROM iam.api_keys WHERE id = :id",
        {"id": created["id"]},
        tenant=tenant.id,
    )
    assert len(rows) == 1
    stored = " ".join(str(v) for v in rows[0])
    assert secret not in stored
    assert created["key"] not in stored
    assert rows[0].secret_hash != secret
    assert len(rows[0].secret_hash) == 64
    # nor does any audit row or idempotency record carry it
    for table in ("iam.audit_log", "iam.idempotency_records"):
        dump = owner_sql(owner_engine, f"SELECT * FROM {table}", tenant=tenant.id)
        assert secret not in " ".join(str(v) for row in dump for v in row)


def test_write_implies_read_and_scopes_must_be_held(
    client: Any, ops_headers: dict[str, str]
) -> None:
    creator = make_tenant(client, ops_headers, scopes=["api_keys:write", "ledger:write"])
    for scopes in (
        ["ledger:read"],
        ["ledger:write"],
        ["api_keys:read"],
        ["ledger:read", "ledger:write"],
    ):
        assert _create(client, creator.headers, scopes=scopes).status_code == 201, scopes
    for scopes in (["orders:read"], ["ledger:read", "inventory:write"]):
        r = _create(client, creator.headers, scopes=scopes)
        problem = assert_problem(r, 403, "forbidden")
        assert "scopes" in problem["errors"]


def test_listing_keys_needs_read_and_creating_needs_write(
    client: Any, ops_headers: dict[str, str]
) -> None:
    reader = make_tenant(client, ops_headers, scopes=["api_keys:read"])
    assert client.get("/api/v1/api-keys", headers=reader.headers).status_code == 200
    assert_problem(_create(client, reader.headers), 403, "forbidden")
    r = client.delete(f"/api/v1/api-keys/{reader.key_id}", headers=reader.headers)
    assert_problem(r, 403, "forbidden")
    outsider = make_tenant(client, ops_headers, scopes=["ledger:write"])
    assert_problem(client.get("/api/v1/api-keys", headers=outsider.headers), 403, "forbidden")
    r = client.get(f"/api/v1/api-keys/{outsider.key_id}", headers=outsider.headers)
    assert_problem(r, 403, "forbidden")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scopes": ["ledger:admin"]}, "scopes"),
        ({"scopes": ["nope"]}, "scopes"),
        ({"scopes": []}, "scopes"),
        ({"scopes": "ledger:read"}, "scopes"),
        ({"scopes": ["ledger:read", 7]}, "scopes.1"),
        ({"name": ""}, "name"),
        ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"expires_at": "2999-01-01T00:00:00"}, "expires_at"),
        ({"expires_at": "tomorrow"}, "expires_at"),
        ({"extra": True}, "extra"),
    ],
)
def test_invalid_key_requests_are_422(
    client: Any, tenant: TenantHandle, body: dict[str, Any], field: str
) -> None:
    r = _create(client, tenant.headers, **body)
    problem = assert_problem(r, 422, "validation")
    assert field in problem["errors"], problem
    keys = client.get("/api/v1/api-keys", headers=tenant.headers).get_json()["items"]
    assert len(keys) == 1


def test_a_key_with_a_future_expiry_works(client: Any, tenant: TenantHandle) -> None:
    expires = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    r = _create(client, tenant.headers, expires_at=expires)
    assert r.status_code == 201, r.get_json()
    assert datetime.fromisoformat(r.get_json()["expires_at"]) == datetime.fromisoformat(expires)
    assert client.get("/api/v1/me", headers=_bearer(r.get_json()["key"])).status_code == 200


def test_revoked_key_is_401_from_the_next_request(client: Any, tenant: TenantHandle) -> None:
    created = _create(client, tenant.headers).get_json()
    headers = _bearer(created["key"])
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    r = client.delete(f"/api/v1/api-keys/{created['id']}", headers=tenant.headers)
    assert r.status_code == 204
    assert r.get_data() == b""
    r = client.get("/api/v1/me", headers=headers)
    assert_problem(r, 401, "unauthorized")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    shown = client.get(f"/api/v1/api-keys/{created['id']}", headers=tenant.headers).get_json()
    assert shown["revoked_at"] is not None
    # revoking again is harmless; the creator still works
    r = client.delete(f"/api/v1/api-keys/{created['id']}", headers=tenant.headers)
    assert r.status_code == 204
    assert client.get("/api/v1/me", headers=tenant.headers).status_code == 200


def test_a_key_can_revoke_itself(client: Any, tenant: TenantHandle) -> None:
    r = client.delete(f"/api/v1/api-keys/{tenant.key_id}", headers=tenant.headers)
    assert r.status_code == 204
    assert_problem(client.get("/api/v1/me", headers=tenant.headers), 401, "unauthorized")


def test_other_tenants_keys_are_404(
    client: Any, tenant: TenantHandle, other_tenant: TenantHandle
) -> None:
    theirs = other_tenant.key_id
    r = client.get(f"/api/v1/api-keys/{theirs}", headers=tenant.headers)
    assert_problem(r, 404, "not-found")
    r = client.delete(f"/api/v1/api-keys/{theirs}", headers=tenant.headers)
    assert_problem(r, 404, "not-found")
    assert client.get("/api/v1/me", headers=other_tenant.headers).status_code == 200
    assert_problem(
        client.get(f"/api/v1/api-keys/{uuid.uuid4()}", headers=tenant.headers), 404, "not-found"
    )
    r = client.get("/api/v1/api-keys/not-a-uuid", headers=tenant.headers)
    assert "key_id" in assert_problem(r, 422, "validation")["errors"]


def test_expired_key_is_401(
    app: Any, client: Any, tenant: TenantHandle, owner_engine: Engine
) -> None:
    created = _create(client, tenant.headers).get_json()
    headers = _bearer(created["key"])
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    owner_sql(
        owner_engine,
        "UPDATE iam.api_keys SET expires_at = now() - interval '1 second' WHERE id = :id",
        {"id": created["id"]},
        tenant=tenant.id,
    )
    forget_cached_keys(app)
    assert_problem(client.get("/api/v1/me", headers=headers), 401, "unauthorized")


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer ",
        "Token abc",
        "Bearer erp_live_short_abc",
        "Bearer erp_prod_abcdefghijkl_" + "a" * 43,
        "Bearer erp_live_ABCDEFGHIJKL_" + "a" * 43,
        "Bearer erp_live_abcdefghijkl_" + "a" * 42,
        "Bearer erp_live_abcdefghijkl_" + "a" * 43,  # well-formed, unknown
    ],
)
def test_bad_or_missing_bearer_is_401_with_www_authenticate(
    client: Any, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    r = client.get("/api/v1/me", headers=headers)
    assert_problem(r, 401, "unauthorized")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_key_with_a_wrong_secret_is_401(client: Any, tenant: TenantHandle) -> None:
    prefix, secret = tenant.key.rsplit("_", 1)
    forged = prefix + "_" + ("A" if secret[0] != "A" else "B") + secret[1:]
    assert_problem(client.get("/api/v1/me", headers=_bearer(forged)), 401, "unauthorized")


def _last_used(owner_engine: Engine, tenant: TenantHandle) -> datetime | None:
    (row,) = owner_sql(
        owner_engine,
        "SELECT last_used_at FROM iam.api_keys WHERE id = :id",
        {"id": tenant.key_id},
        tenant=tenant.id,
    )
    return row.last_used_at  # type: ignore[no-any-return]


def test_last_used_at_is_written_at_most_once_a_minute(
    app: Any, client: Any, tenant: TenantHandle, owner_engine: Engine
) -> None:
    assert client.get("/api/v1/me", headers=tenant.headers).status_code == 200
    first = _last_used(owner_engine, tenant)
    assert first is not None
    assert client.get("/api/v1/me", headers=tenant.headers).status_code == 200
    assert _last_used(owner_engine, tenant) == first

    owner_sql(
        owner_engine,
        "UPDATE iam.api_keys SET last_used_at = now() - interval '61 seconds' WHERE id = :id",
        {"id": tenant.key_id},
        tenant=tenant.id,
    )
    forget_cached_keys(app)
    moved = _last_used(owner_engine, tenant)
    assert moved is not None
    assert client.get("/api/v1/me", headers=tenant.headers).status_code == 200
    latest = _last_used(owner_engine, tenant)
    assert latest is not None
    assert latest > moved + timedelta(seconds=60)
