"""Over HTTP: another tenant's id is a plain 404, and nothing the client sends picks a tenant."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests.conftest import TenantHandle
from tests.rls.conftest import Seeded

LEAKY_WORDS = ("psycopg", "sql", "violates", "row-level", "policy", "constraint", "traceback")
SPOOFS: dict[str, dict[str, Any]] = {
    "X-Tenant-Id header": {"headers": {"X-Tenant-Id": "{other_id}"}},
    "X-Tenant header": {"headers": {"X-Tenant": "{other_slug}"}},
    "tenant_id query": {"query": "tenant_id={other_id}"},
    "tenant query": {"query": "tenant={other_slug}"},
}


def _without_request_id(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "request_id"}


def _assert_no_leak(raw: bytes, *secrets: object) -> None:
    lowered = raw.decode().lower()
    for word in LEAKY_WORDS:
        assert word not in lowered, f"{word!r} in {raw!r}"
    for secret in secrets:
        assert str(secret).lower() not in lowered


def _key_rows(owner_engine: Engine, tenant: uuid.UUID) -> list[Any]:
    with owner_engine.connect() as conn:
        return list(
            conn.execute(
                text("SELECT id, revoked_at FROM iam.api_keys WHERE tenant_id = :t ORDER BY id"),
                {"t": tenant},
            )
        )


# -- another tenant's id -----------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "delete"])
def test_another_tenants_key_is_a_404_like_any_unknown_id(
    client: Any,
    tenant: TenantHandle,
    other_tenant: TenantHandle,
    owner_engine: Engine,
    method: str,
) -> None:
    before = _key_rows(owner_engine, other_tenant.id)
    call = getattr(client, method)
    foreign = call(f"/api/v1/api-keys/{other_tenant.key_id}", headers=tenant.headers)
    unknown = call(f"/api/v1/api-keys/{uuid.uuid4()}", headers=tenant.headers)
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.mimetype == unknown.mimetype == "application/problem+json"
    assert _without_request_id(foreign.get_json()) == _without_request_id(unknown.get_json())
    assert set(foreign.get_json()) == set(unknown.get_json())
    _assert_no_leak(foreign.data, other_tenant.id, other_tenant.key_id, other_tenant.slug)
    assert _key_rows(owner_engine, other_tenant.id) == before
    assert client.get("/api/v1/me", headers=other_tenant.headers).status_code == 200


@pytest.mark.parametrize("method", ["get", "delete"])
def test_malformed_key_id_is_a_422(client: Any, tenant: TenantHandle, method: str) -> None:
    r = getattr(client, method)("/api/v1/api-keys/not-a-uuid", headers=tenant.headers)
    assert r.status_code == 422
    assert r.get_json()["type"].endswith("validation")
    _assert_no_leak(r.data)


def test_another_tenants_list_cursor_is_refused(client: Any, seeded: Seeded) -> None:
    first = client.get("/api/v1/api-keys?limit=1", headers=seeded.a.headers)
    assert first.status_code == 200
    cursor = first.get_json()["next_cursor"]
    assert cursor, "tenant A has more than one key"
    stolen = client.get(f"/api/v1/api-keys?limit=1&cursor={cursor}", headers=seeded.b.headers)
    assert stolen.status_code == 422
    assert "items" not in stolen.get_json()


# -- nothing the client sends chooses the tenant ----------------------------------------


def _spoof(spec: dict[str, Any], victim: TenantHandle) -> tuple[dict[str, str], str]:
    fill = {"other_id": str(victim.id), "other_slug": victim.slug}
    headers = {k: v.format(**fill) for k, v in spec.get("headers", {}).items()}
    query = spec.get("query", "").format(**fill)
    return headers, query


@pytest.mark.parametrize("spec", SPOOFS.values(), ids=SPOOFS.keys())
def test_me_always_answers_the_keys_own_tenant(
    client: Any, seeded: Seeded, spec: dict[str, Any]
) -> None:
    headers, query = _spoof(spec, seeded.b)
    r = client.get(f"/api/v1/me?{query}", headers={**seeded.a.headers, **headers})
    assert r.status_code == 200
    assert r.get_json()["tenant"]["id"] == str(seeded.a.id)
    assert r.get_json()["tenant"]["slug"] == seeded.a.slug


@pytest.mark.parametrize("spec", SPOOFS.values(), ids=SPOOFS.keys())
def test_lists_stay_in_the_keys_own_tenant(
    client: Any, seeded: Seeded, owner_engine: Engine, spec: dict[str, Any]
) -> None:
    headers, query = _spoof(spec, seeded.b)
    r = client.get(f"/api/v1/api-keys?limit=200&{query}", headers={**seeded.a.headers, **headers})
    own = {str(row.id) for row in _key_rows(owner_engine, seeded.a.id)}
    if r.status_code == 422:  # refusing the unknown parameter is fine too
        return
    assert r.status_code == 200
    assert {k["id"] for k in r.get_json()["items"]} == own


def test_tenant_id_in_a_body_is_an_unknown_field(
    client: Any, tenant: TenantHandle, other_tenant: TenantHandle, owner_engine: Engine
) -> None:
    before = (_key_rows(owner_engine, tenant.id), _key_rows(owner_engine, other_tenant.id))
    r = client.post(
        "/api/v1/api-keys",
        json={"name": "spoof", "scopes": ["api_keys:read"], "tenant_id": str(other_tenant.id)},
        headers=tenant.headers,
    )
    assert r.status_code == 422
    assert "tenant_id" in r.get_json().get("errors", {})
    assert (_key_rows(owner_engine, tenant.id), _key_rows(owner_engine, other_tenant.id)) == before


def test_a_spoofing_header_on_create_still_creates_in_the_keys_tenant(
    client: Any, tenant: TenantHandle, other_tenant: TenantHandle, owner_engine: Engine
) -> None:
    before_other = _key_rows(owner_engine, other_tenant.id)
    r = client.post(
        f"/api/v1/api-keys?tenant_id={other_tenant.id}",
        json={"name": "spoof", "scopes": ["api_keys:read"]},
        headers={**tenant.headers, "X-Tenant-Id": str(other_tenant.id)},
    )
    assert r.status_code == 201, r.get_json()
    created = uuid.UUID(r.get_json()["id"])
    assert created in {row.id for row in _key_rows(owner_engine, tenant.id)}
    assert _key_rows(owner_engine, other_tenant.id) == before_other
    # the new key authenticates as the creator's tenant
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {r.get_json()['key']}"})
    assert me.get_json()["tenant"]["id"] == str(tenant.id)


def test_idempotency_keys_are_scoped_to_the_tenant(
    client: Any, tenant: TenantHandle, other_tenant: TenantHandle, owner_engine: Engine
) -> None:
    """B reusing A's Idempotency-Key gets its own new key, never A's stored response."""
    body = {"name": "same", "scopes": ["api_keys:read"]}
    shared = {"Idempotency-Key": f"shared-{uuid.uuid4()}"}
    first = client.post("/api/v1/api-keys", json=body, headers={**tenant.headers, **shared})
    second = client.post("/api/v1/api-keys", json=body, headers={**other_tenant.headers, **shared})
    assert first.status_code == second.status_code == 201
    assert "Idempotent-Replayed" not in second.headers
    assert second.get_json()["key"] != first.get_json()["key"]
    assert uuid.UUID(second.get_json()["id"]) in {
        row.id for row in _key_rows(owner_engine, other_tenant.id)
    }
    replay = client.post("/api/v1/api-keys", json=body, headers={**tenant.headers, **shared})
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.get_json()["id"] == first.get_json()["id"]
