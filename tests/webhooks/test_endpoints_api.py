"""The endpoints API (API.md, Webhooks): shapes, the secret shown once and encrypted at
rest, bad input as named problems with nothing written, another tenant's as 404."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from sqlalchemy import Engine, text

from erp.secretbox import SecretBox
from tests.conftest import TEST_ENCRYPTION_KEY, TenantHandle
from tests.webhooks.conftest import create_endpoint

BASE = "/api/v1/webhooks/endpoints"


def _count(owner_engine: Engine, tenant: TenantHandle) -> int:
    with owner_engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM webhooks.endpoints WHERE tenant_id = :t"),
                {"t": tenant.id},
            ).scalar_one()
        )


def test_create_shows_the_secret_once_and_stores_it_encrypted(
    client: Any, tenant: TenantHandle, owner_engine: Engine
) -> None:
    headers = {**tenant.headers, "Idempotency-Key": "create-1"}
    body = {
        "url": "https://example.com/erp-hooks",
        "event_types": ["ledger.transaction.posted"],
        "description": "books sync",
    }
    r = client.post(BASE, json=body, headers=headers)
    assert r.status_code == 201, r.get_json()
    out = r.get_json()
    assert set(out) == {
        "id",
        "url",
        "description",
        "event_types",
        "disabled",
        "disabled_reason",
        "created_at",
        "secret",
    }
    assert out["url"] == body["url"]
    assert out["event_types"] == ["ledger.transaction.posted"]
    assert out["disabled"] is False
    assert out["disabled_reason"] is None
    secret = out["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:])) == 32

    replay = client.post(BASE, json=body, headers=headers)
    assert replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert "secret" not in replay.get_json()
    shown = client.get(f"{BASE}/{out['id']}", headers=tenant.headers).get_json()
    assert "secret" not in shown
    listed = client.get(BASE, headers=tenant.headers).get_json()
    assert [e["id"] for e in listed["items"]] == [out["id"]]
    assert "secret" not in listed["items"][0]

    with owner_engine.connect() as conn:
        stored = conn.execute(
            text("SELECT secret FROM webhooks.endpoints WHERE id = :id"), {"id": out["id"]}
        ).scalar_one()
    assert secret not in stored
    assert secret[6:] not in stored
    assert SecretBox([TEST_ENCRYPTION_KEY]).decrypt(stored) == secret


def test_every_type_when_event_types_is_absent(client: Any, tenant: TenantHandle) -> None:
    out = create_endpoint(client, tenant, "https://example.com/all")
    assert out["event_types"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://example.com/hooks"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "example.com/hooks"}, "url"),
        ({"url": "https://user:pw@example.com/hooks"}, "url"),
        ({"url": "https://example.com/hooks#frag"}, "url"),
        ({"url": "https://10.0.0.7/hooks"}, "url"),
        ({"url": "https://169.254.169.254/latest"}, "url"),
        ({"url": "https://[::1]/hooks"}, "url"),
        ({"url": "https://100.64.0.1/hooks"}, "url"),
        ({"url": "https://example.com:99999/hooks"}, "url"),
        ({"url": "https://example.com/" + "a" * 2048}, "url"),
        ({"url": "https://example.com/h", "event_types": ["order.nope"]}, "event_types.0"),
        ({"url": "https://example.com/h", "event_types": ["webhook.test"]}, "event_types.0"),
        ({"url": "https://example.com/h", "event_types": []}, "event_types"),
        ({"url": "https://example.com/h", "description": "d" * 501}, "description"),
        ({"url": "https://example.com/h", "secret": "whsec_x"}, "secret"),
    ],
)
def test_bad_input_is_a_named_422_and_writes_nothing(
    client: Any, tenant: TenantHandle, owner_engine: Engine, body: dict[str, Any], field: str
) -> None:
    r = client.post(BASE, json=body, headers=tenant.headers)
    assert r.status_code == 422, r.get_json()
    problem = r.get_json()
    assert problem["type"].endswith("/validation")
    assert field in problem["errors"], problem
    assert _count(owner_engine, tenant) == 0


def test_update_disable_enable_and_delete(client: Any, tenant: TenantHandle) -> None:
    made = create_endpoint(client, tenant, "https://example.com/a")
    url = f"{BASE}/{made['id']}"
    r = client.patch(url, json={}, headers=tenant.headers)
    assert r.status_code == 200
    assert r.get_json()["url"] == made["url"]
    r = client.patch(
        url,
        json={
            "url": "https://example.org/b",
            "event_types": ["ledger.transaction.posted"],
            "description": None,
        },
        headers=tenant.headers,
    )
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["url"] == "https://example.org/b"
    off = client.patch(url, json={"disabled": True}, headers=tenant.headers).get_json()
    assert off["disabled"] is True
    assert off["disabled_reason"] == "manual"
    assert client.post(f"{url}/test", headers=tenant.headers).status_code == 409
    on = client.patch(url, json={"disabled": False}, headers=tenant.headers).get_json()
    assert on["disabled"] is False
    assert on["disabled_reason"] is None
    bad = client.patch(url, json={"url": "http://example.org/"}, headers=tenant.headers)
    assert bad.status_code == 422
    assert "url" in bad.get_json()["errors"]
    bad = client.patch(url, json={"event_types": None, "created_at": "x"}, headers=tenant.headers)
    assert bad.status_code == 422
    assert client.delete(url, headers=tenant.headers).status_code == 204
    assert client.get(url, headers=tenant.headers).status_code == 404
    assert client.get(BASE, headers=tenant.headers).get_json()["items"] == []


def test_another_tenants_endpoint_is_404_everywhere(
    client: Any, tenant: TenantHandle, other_tenant: TenantHandle
) -> None:
    theirs = create_endpoint(client, other_tenant, "https://example.com/theirs")
    url = f"{BASE}/{theirs['id']}"
    h = tenant.headers
    for r in (
        client.get(url, headers=h),
        client.patch(url, json={"description": "mine"}, headers=h),
        client.delete(url, headers=h),
        client.post(f"{url}/rotate-secret", headers=h),
        client.post(f"{url}/test", headers=h),
        client.post(f"{url}/recover", json={"since": "2026-12-01T00:00:00Z"}, headers=h),
        client.get(f"{url}/messages", headers=h),
        client.get(f"{url}/attempts", headers=h),
    ):
        assert r.status_code == 404, (r.request.path, r.get_json())
    assert client.get(BASE, headers=h).get_json()["items"] == []
    assert client.get(url, headers=other_tenant.headers).status_code == 200


def test_malformed_ids_name_the_parameter(client: Any, tenant: TenantHandle) -> None:
    r = client.get(f"{BASE}/nope", headers=tenant.headers)
    assert r.status_code == 422
    assert "endpoint_id" in r.get_json()["errors"]
    made = create_endpoint(client, tenant, "https://example.com/a")
    r = client.post(f"{BASE}/{made['id']}/messages/nope/retry", headers=tenant.headers)
    assert r.status_code == 422
    assert "message_id" in r.get_json()["errors"]


def test_scopes(client: Any, ops_headers: dict[str, str]) -> None:
    from tests.conftest import make_tenant

    reader = make_tenant(client, ops_headers, scopes=["webhooks:read"])
    assert client.get(BASE, headers=reader.headers).status_code == 200
    r = client.post(BASE, json={"url": "https://example.com/x"}, headers=reader.headers)
    assert r.status_code == 403
    nobody = make_tenant(client, ops_headers, scopes=["ledger:read"])
    assert client.get(BASE, headers=nobody.headers).status_code == 403


def test_rotate_secret_returns_a_new_secret_once(client: Any, tenant: TenantHandle) -> None:
    made = create_endpoint(client, tenant, "https://example.com/a")
    r = client.post(
        f"{BASE}/{made['id']}/rotate-secret",
        headers={**tenant.headers, "Idempotency-Key": "rot-1"},
    )
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["secret"].startswith("whsec_")
    assert r.get_json()["secret"] != made["secret"]
    replay = client.post(
        f"{BASE}/{made['id']}/rotate-secret",
        headers={**tenant.headers, "Idempotency-Key": "rot-1"},
    )
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert "secret" not in replay.get_json()


def test_recover_checks_its_window(client: Any, tenant: TenantHandle) -> None:
    made = create_endpoint(client, tenant, "https://example.com/a")
    url = f"{BASE}/{made['id']}/recover"
    r = client.post(url, json={"since": "2020-01-01T00:00:00Z"}, headers=tenant.headers)
    assert r.status_code == 422
    assert "since" in r.get_json()["errors"]
    r = client.post(url, json={"since": "2026-12-01T00:00"}, headers=tenant.headers)
    assert r.status_code == 422  # naive time
    r = client.post(url, json={}, headers=tenant.headers)
    assert r.status_code == 422
    assert "since" in r.get_json()["errors"]


def test_event_types_are_served_with_schemas(client: Any, tenant: TenantHandle) -> None:
    r = client.get("/api/v1/webhooks/event-types", headers=tenant.headers)
    assert r.status_code == 200
    items = {i["type"]: i for i in r.get_json()["items"]}
    assert r.get_json()["next_cursor"] is None
    assert {"ledger.transaction.posted", "webhook_endpoint.disabled"} <= set(items)
    assert "webhook.test" not in items
    assert items["ledger.transaction.posted"]["schema"]["type"] == "object"


def test_erp_secrets_rotate_covers_both_secret_columns() -> None:
    from erp.registry import default_registry
    from erp.secretbox import EncryptedColumn

    columns = default_registry().encrypted_columns
    assert EncryptedColumn("webhooks.endpoints", "secret") in columns
    assert EncryptedColumn("webhooks.endpoints", "previous_secret") in columns
