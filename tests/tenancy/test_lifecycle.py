"""Suspend, reactivate, delete and restore: every credential of the tenant follows at once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from tests.conftest import ALL_SCOPES, TenantHandle
from tests.core.helpers import assert_problem, owner_sql


def _second_key(client: Any, tenant: TenantHandle) -> dict[str, str]:
    r = client.post(
        "/api/v1/api-keys",
        json={"name": "second", "scopes": ["ledger:read"]},
        headers=tenant.headers,
    )
    assert r.status_code == 201, r.get_json()
    return {"Authorization": f"Bearer {r.get_json()['key']}"}


def _status(client: Any, ops_headers: dict[str, str], tenant: TenantHandle) -> dict[str, Any]:
    r = client.get(f"/ops/v1/tenants/{tenant.id}", headers=ops_headers)
    assert r.status_code == 200
    return dict(r.get_json())


def test_suspend_blocks_every_key_and_reactivate_restores_them(
    client: Any, ops_headers: dict[str, str], tenant: TenantHandle, other_tenant: TenantHandle
) -> None:
    second = _second_key(client, tenant)
    r = client.post(
        f"/ops/v1/tenants/{tenant.id}/suspend", json={"reason": "unpaid"}, headers=ops_headers
    )
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["status"] == "suspended"
    detail = _status(client, ops_headers, tenant)
    assert detail["status_reason"] == "unpaid"

    for headers in (tenant.headers, second):
        assert_problem(client.get("/api/v1/me", headers=headers), 403, "tenant-suspended")
        r = client.get("/api/v1/api-keys", headers=headers)
        assert_problem(r, 403, "tenant-suspended")
    assert client.get("/api/v1/me", headers=other_tenant.headers).status_code == 200

    # no new key for a suspended tenant, from the operator either
    r = client.post(
        f"/ops/v1/tenants/{tenant.id}/api-keys",
        json={"name": "k", "scopes": ["ledger:read"]},
        headers=ops_headers,
    )
    assert_problem(r, 409, "conflict")

    r = client.post(f"/ops/v1/tenants/{tenant.id}/reactivate", headers=ops_headers)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["status"] == "active"
    assert _status(client, ops_headers, tenant)["status_reason"] is None
    for headers in (tenant.headers, second):
        assert client.get("/api/v1/me", headers=headers).status_code == 200


def test_suspend_requires_a_reason(
    client: Any, ops_headers: dict[str, str], tenant: TenantHandle
) -> None:
    for body in ({}, {"reason": ""}):
        r = client.post(f"/ops/v1/tenants/{tenant.id}/suspend", json=body, headers=ops_headers)
        assert "reason" in assert_problem(r, 422, "validation")["errors"]
    assert _status(client, ops_headers, tenant)["status"] == "active"


def test_state_conflicts_are_409(
    client: Any, ops_headers: dict[str, str], tenant: TenantHandle
) -> None:
    base = f"/ops/v1/tenants/{tenant.id}"
    assert_problem(client.post(f"{base}/reactivate", headers=ops_headers), 409, "conflict")
    assert_problem(client.post(f"{base}/restore", headers=ops_headers), 409, "conflict")
    reason = {"reason": "r"}
    assert client.post(f"{base}/suspend", json=reason, headers=ops_headers).status_code == 200
    r = client.post(f"{base}/suspend", json=reason, headers=ops_headers)
    assert_problem(r, 409, "conflict")
    assert client.delete(base, headers=ops_headers).status_code == 202
    assert_problem(client.delete(base, headers=ops_headers), 409, "conflict")
    r = client.post(f"{base}/suspend", json=reason, headers=ops_headers)
    assert_problem(r, 409, "conflict")
    assert_problem(client.post(f"{base}/reactivate", headers=ops_headers), 409, "conflict")


def test_delete_stops_keys_and_restore_brings_them_back(
    client: Any, ops_headers: dict[str, str], tenant: TenantHandle
) -> None:
    r = client.delete(f"/ops/v1/tenants/{tenant.id}", headers=ops_headers)
    assert r.status_code == 202, r.get_json()
    body = r.get_json()
    assert body["status"] == "deleting"
    purge_after = datetime.fromisoformat(body["delete_after"])
    assert purge_after > datetime.now(UTC) + timedelta(days=29)

    r = client.get("/api/v1/me", headers=tenant.headers)
    assert "deleting" in assert_problem(r, 403, "tenant-suspended")["detail"]

    r = client.post(f"/ops/v1/tenants/{tenant.id}/restore", headers=ops_headers)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["status"] == "active"
    assert r.get_json()["delete_after"] is None
    assert client.get("/api/v1/me", headers=tenant.headers).status_code == 200


def test_restore_returns_a_suspended_tenant_to_suspended_with_its_reason(
    client: Any, ops_headers: dict[str, str], tenant: TenantHandle
) -> None:
    base = f"/ops/v1/tenants/{tenant.id}"
    r = client.post(f"{base}/suspend", json={"reason": "fraud review"}, headers=ops_headers)
    assert r.status_code == 200
    assert client.delete(base, headers=ops_headers).status_code == 202
    r = client.post(f"{base}/restore", headers=ops_headers)
    assert r.status_code == 200, r.get_json()
    detail = _status(client, ops_headers, tenant)
    assert (detail["status"], detail["status_reason"]) == ("suspended", "fraud review")
    assert_problem(client.get("/api/v1/me", headers=tenant.headers), 403, "tenant-suspended")


def test_restore_after_the_grace_period_is_409(
    client: Any, ops_headers: dict[str, str], tenant: TenantHandle, owner_engine: Engine
) -> None:
    assert client.delete(f"/ops/v1/tenants/{tenant.id}", headers=ops_headers).status_code == 202
    owner_sql(
        owner_engine,
        "UPDATE platform.tenants SET delete_after = now() - interval '1 second' WHERE id = :t",
        {"t": tenant.id},
    )
    r = client.post(f"/ops/v1/tenants/{tenant.id}/restore", headers=ops_headers)
    assert_problem(r, 409, "conflict")
    assert _status(client, ops_headers, tenant)["status"] == "deleting"


# -- the audit trail --------------------------------------------------------------------


def _events(client: Any, ops_headers: dict[str, str], tenant_id: uuid.UUID) -> list[Any]:
    r = client.get(
        "/ops/v1/audit-events", query_string={"tenant_id": str(tenant_id)}, headers=ops_headers
    )
    assert r.status_code == 200, r.get_json()
    return list(r.get_json()["items"])


def test_every_operator_action_is_audited(
    client: Any, ops_headers: dict[str, str], tenant: TenantHandle
) -> None:
    base = f"/ops/v1/tenants/{tenant.id}"
    client.post(f"{base}/suspend", json={"reason": "unpaid"}, headers=ops_headers)
    client.post(f"{base}/reactivate", headers=ops_headers)
    client.delete(base, headers=ops_headers)
    client.post(f"{base}/restore", headers=ops_headers)
    events = _events(client, ops_headers, tenant.id)
    assert [e["action"] for e in events] == [
        "tenant.restored",
        "tenant.deleted",
        "tenant.reactivated",
        "tenant.suspended",
        "api_key.issued",
        "tenant.provisioned",
    ]
    assert events[4]["details"] == {"key_id": str(tenant.key_id), "scopes": ALL_SCOPES}
    for event in events:
        assert event["tenant_id"] == str(tenant.id)
        assert event["tenant_slug"] == tenant.slug
        assert event["actor"].startswith("operator:")
        assert event["request_id"]
    assert events[3]["details"] == {"reason": "unpaid"}

    r = client.get("/ops/v1/audit-events?limit=2", headers=ops_headers)
    page = r.get_json()
    assert len(page["items"]) == 2
    assert page["next_cursor"]
    r = client.get(
        "/ops/v1/audit-events", query_string={"cursor": page["next_cursor"]}, headers=ops_headers
    )
    assert r.status_code == 200
    later_ids = {e["id"] for e in r.get_json()["items"]}
    assert not later_ids & {e["id"] for e in page["items"]}
    assert max(later_ids) < min(e["id"] for e in page["items"])


def test_failed_actions_are_not_audited(
    client: Any, ops_headers: dict[str, str], tenant: TenantHandle
) -> None:
    client.post(f"/ops/v1/tenants/{tenant.id}/reactivate", headers=ops_headers)  # 409
    actions = [e["action"] for e in _events(client, ops_headers, tenant.id)]
    assert actions == ["api_key.issued", "tenant.provisioned"]


def test_operator_reads_are_audited(
    client: Any, ops_headers: dict[str, str], tenant: TenantHandle, owner_engine: Engine
) -> None:
    r = client.get(f"/ops/v1/tenants/{tenant.id}", headers=ops_headers)
    assert r.status_code == 200
    read = _events(client, ops_headers, tenant.id)[0]
    assert read["action"] == "tenant.read"
    assert read["tenant_slug"] == tenant.slug
    assert read["actor"].startswith("operator:")
    assert read["request_id"] == r.headers["X-Request-Id"]

    # a list is one event naming no tenant: its filter and how many tenants it showed
    r = client.get("/ops/v1/tenants?status=active&limit=3", headers=ops_headers)
    assert r.status_code == 200
    rows = owner_sql(
        owner_engine,
        "SELECT action, tenant_id, details FROM platform.audit_events WHERE request_id = :r",
        {"r": r.headers["X-Request-Id"]},
    )
    assert [(e.action, e.tenant_id, e.details) for e in rows] == [
        ("tenant.listed", None, {"status": "active", "shown": len(r.get_json()["items"])})
    ]

    # a read that finds nothing records nothing
    r = client.get(f"/ops/v1/tenants/{uuid.uuid4()}", headers=ops_headers)
    assert r.status_code == 404
    assert not owner_sql(
        owner_engine,
        "SELECT 1 FROM platform.audit_events WHERE request_id = :r",
        {"r": r.headers["X-Request-Id"]},
    )
