"""Operators provision and manage tenants through /ops/v1."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine

from erp.http import ErpFlask
from erp.templates import TEMPLATES_DIR
from tests.conftest import TenantHandle, make_tenant
from tests.core.helpers import assert_problem, new_slug, owner_sql


def _body(slug: str, **changes: Any) -> dict[str, Any]:
    return {"slug": slug, "name": f"Company {slug}", "base_currency": "EUR"} | changes


def _tenant_count(owner_engine: Engine, slug: str) -> int:
    rows = owner_sql(
        owner_engine, "SELECT count(*) FROM platform.tenants WHERE slug = :s", {"s": slug}
    )
    return int(rows[0][0])


# -- provisioning ---------------------------------------------------------------------


def test_provision_creates_tenant_from_template(
    client: Any, ops_headers: dict[str, str], owner_engine: Engine
) -> None:
    slug = new_slug()
    r = client.post("/ops/v1/tenants", json=_body(slug, template="empty"), headers=ops_headers)
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    uuid.UUID(body["id"])
    assert body["slug"] == slug
    assert body["name"] == f"Company {slug}"
    assert body["status"] == "active"
    assert body["base_currency"] == "EUR"
    assert body["created_at"]
    assert _tenant_count(owner_engine, slug) == 1
    # provisioning left a trace in the tenant's own audit log, written under its id
    rows = owner_sql(
        owner_engine,
        "SELECT tenant_id, action FROM iam.audit_log WHERE tenant_id = :t",
        {"t": body["id"]},
        tenant=body["id"],
    )
    assert [r.action for r in rows] == ["tenant.provisioned"]


def test_provision_default_template(client: Any, ops_headers: dict[str, str]) -> None:
    slug = new_slug()
    body = {"slug": slug, "name": "Default", "base_currency": "USD"}
    r = client.post("/ops/v1/tenants", json=body, headers=ops_headers)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["template"] == "default"


def test_same_slug_same_body_returns_existing_tenant(
    client: Any, ops_headers: dict[str, str], owner_engine: Engine
) -> None:
    slug = new_slug()
    first = client.post("/ops/v1/tenants", json=_body(slug), headers=ops_headers)
    assert first.status_code == 201
    again = client.post("/ops/v1/tenants", json=_body(slug), headers=ops_headers)
    assert again.status_code == 200, again.get_json()
    assert again.get_json() == first.get_json()
    assert _tenant_count(owner_engine, slug) == 1


@pytest.mark.parametrize(
    "change",
    [{"name": "Another name"}, {"base_currency": "USD"}, {"template": "empty"}],
)
def test_same_slug_other_body_conflicts(
    client: Any, ops_headers: dict[str, str], change: dict[str, str]
) -> None:
    slug = new_slug()
    assert client.post("/ops/v1/tenants", json=_body(slug), headers=ops_headers).status_code == 201
    r = client.post("/ops/v1/tenants", json=_body(slug, **change), headers=ops_headers)
    assert_problem(r, 409, "conflict")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"slug": "A-upper"}, "slug"),
        ({"slug": "-leading-dash"}, "slug"),
        ({"slug": "x"}, "slug"),
        ({"slug": "a" * 64}, "slug"),
        ({"slug": "under_score"}, "slug"),
        ({"base_currency": "usd"}, "base_currency"),
        ({"base_currency": "XXX"}, "base_currency"),
        ({"base_currency": 978}, "base_currency"),
        ({"name": ""}, "name"),
        ({"template": "no-such-template"}, "template"),
        ({"template": "../etc/passwd"}, "template"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_invalid_provision_is_422_naming_the_field_and_creates_nothing(
    client: Any,
    ops_headers: dict[str, str],
    owner_engine: Engine,
    change: dict[str, Any],
    field: str,
) -> None:
    slug = new_slug()
    body = _body(slug) | change
    r = client.post("/ops/v1/tenants", json=body, headers=ops_headers)
    problem = assert_problem(r, 422, "validation")
    assert field in problem["errors"], problem
    assert str(TEMPLATES_DIR) not in r.get_data(as_text=True), "no server path leaks"
    assert _tenant_count(owner_engine, str(body["slug"])) == 0


def test_missing_fields_are_each_named(client: Any, ops_headers: dict[str, str]) -> None:
    r = client.post("/ops/v1/tenants", json={}, headers=ops_headers)
    problem = assert_problem(r, 422, "validation")
    assert set(problem["errors"]) == {"slug", "name", "base_currency"}


def test_concurrent_provisions_of_one_slug_create_one_tenant(
    app: ErpFlask, ops_headers: dict[str, str], owner_engine: Engine
) -> None:
    slug = new_slug()
    barrier = threading.Barrier(6)
    results: list[tuple[int, Any]] = []

    def provision() -> None:
        client = app.test_client()
        barrier.wait()
        r = client.post("/ops/v1/tenants", json=_body(slug), headers=ops_headers)
        results.append((r.status_code, r.get_json()))

    threads = [threading.Thread(target=provision) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    statuses = sorted(s for s, _ in results)
    assert statuses == [200] * 5 + [201], results
    assert len({body["id"] for _, body in results}) == 1
    assert _tenant_count(owner_engine, slug) == 1
    events = owner_sql(
        owner_engine,
        "SELECT count(*) FROM platform.audit_events "
        "WHERE tenant_slug = :s AND action = 'tenant.provisioned'",
        {"s": slug},
    )
    assert events[0][0] == 1


# -- listing and reading ------------------------------------------------------------


def test_list_paginates_newest_first_and_filters_by_status(
    client: Any, ops_headers: dict[str, str]
) -> None:
    made = [make_tenant(client, ops_headers) for _ in range(3)]
    suspended = made[1]
    r = client.post(
        f"/ops/v1/tenants/{suspended.id}/suspend", json={"reason": "unpaid"}, headers=ops_headers
    )
    assert r.status_code == 200

    seen: list[str] = []
    cursor: str | None = None
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        r = client.get("/ops/v1/tenants", query_string=query, headers=ops_headers)
        assert r.status_code == 200, r.get_json()
        page = r.get_json()
        assert len(page["items"]) <= 2
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    ours = [i for i in seen if i in {str(t.id) for t in made}]
    assert ours == [str(t.id) for t in reversed(made)], "newest first"

    r = client.get("/ops/v1/tenants?status=suspended&limit=200", headers=ops_headers)
    items = r.get_json()["items"]
    assert str(suspended.id) in {t["id"] for t in items}
    assert {t["status"] for t in items} == {"suspended"}

    r = client.get("/ops/v1/tenants?status=frozen", headers=ops_headers)
    assert "status" in assert_problem(r, 422, "validation")["errors"]


def test_get_tenant_has_status_and_usage_counts_only(
    client: Any, ops_headers: dict[str, str], tenant: TenantHandle
) -> None:
    r = client.post(
        "/api/v1/api-keys",
        json={"name": "second", "scopes": ["ledger:read"]},
        headers=tenant.headers,
    )
    assert r.status_code == 201
    r = client.get(f"/ops/v1/tenants/{tenant.id}", headers=ops_headers)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["id"] == str(tenant.id)
    assert body["status"] == "active"
    assert body["usage"]["api_keys"] == 2
    assert all(isinstance(v, int) for v in body["usage"].values())


def test_unknown_tenant_is_404_and_malformed_id_is_422(
    client: Any, ops_headers: dict[str, str]
) -> None:
    missing = uuid.uuid4()
    for method, path in [
        ("get", f"/ops/v1/tenants/{missing}"),
        ("delete", f"/ops/v1/tenants/{missing}"),
        ("post", f"/ops/v1/tenants/{missing}/reactivate"),
        ("post", f"/ops/v1/tenants/{missing}/restore"),
    ]:
        assert_problem(getattr(client, method)(path, headers=ops_headers), 404, "not-found")
    r = client.post(f"/ops/v1/tenants/{missing}/suspend", json={"reason": "x"}, headers=ops_headers)
    assert_problem(r, 404, "not-found")
    r = client.post(
        f"/ops/v1/tenants/{missing}/api-keys",
        json={"name": "k", "scopes": ["ledger:read"]},
        headers=ops_headers,
    )
    assert_problem(r, 404, "not-found")

    for method, path in [
        ("get", "/ops/v1/tenants/not-a-uuid"),
        ("delete", "/ops/v1/tenants/123"),
        ("post", "/ops/v1/tenants/zzz/restore"),
    ]:
        r = getattr(client, method)(path, headers=ops_headers)
        problem = assert_problem(r, 422, "validation")
        assert "tenant_id" in problem["errors"]


# -- authentication -------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer erpop_aaaaaaaaaaaa_" + "A" * 43,
        "Bearer not-a-token",
    ],
)
def test_ops_without_valid_operator_token_is_401(client: Any, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    r = client.get("/ops/v1/tenants", headers=headers)
    assert_problem(r, 401, "unauthorized")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_tenant_api_key_on_ops_is_401(client: Any, tenant: TenantHandle) -> None:
    for method, path in [("get", "/ops/v1/tenants"), ("get", "/ops/v1/audit-events")]:
        assert_problem(getattr(client, method)(path, headers=tenant.headers), 401, "unauthorized")
    r = client.post("/ops/v1/tenants", json=_body(new_slug()), headers=tenant.headers)
    assert_problem(r, 401, "unauthorized")


def test_operator_token_on_tenant_api_is_401(client: Any, ops_headers: dict[str, str]) -> None:
    assert_problem(client.get("/api/v1/me", headers=ops_headers), 401, "unauthorized")


def test_revoked_operator_token_is_401(
    client: Any, owner_url: str, owner_engine: Engine, app: ErpFlask
) -> None:
    from erp.tenancy.purge import create_operator_as_owner

    email = f"gone-{uuid.uuid4().hex[:8]}@example.com"
    token = create_operator_as_owner(owner_url, email)
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/ops/v1/tenants", headers=headers).status_code == 200
    owner_sql(
        owner_engine,
        "UPDATE platform.operators SET revoked_at = now() WHERE email = :e",
        {"e": email},
    )
    assert_problem(client.get("/ops/v1/tenants", headers=headers), 401, "unauthorized")


# -- keys issued by an operator ---------------------------------------------------------


def test_operator_issues_a_key_shown_once(
    client: Any, ops_headers: dict[str, str], tenant: TenantHandle
) -> None:
    body = {"name": "ops key", "scopes": ["ledger:write"]}
    headers = {**ops_headers, "Idempotency-Key": f"issue-{tenant.id}"}
    r = client.post(f"/ops/v1/tenants/{tenant.id}/api-keys", json=body, headers=headers)
    assert r.status_code == 201, r.get_json()
    created = r.get_json()
    assert created["created_by"].startswith("operator:")
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {created['key']}"})
    assert me.get_json()["scopes"] == ["ledger:write"]
    again = client.post(f"/ops/v1/tenants/{tenant.id}/api-keys", json=body, headers=headers)
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "key" not in again.get_json()
    assert again.get_json()["id"] == created["id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "k", "scopes": ["ledger:own"]}, "scopes"),
        ({"name": "k", "scopes": []}, "scopes"),
        (
            {"name": "k", "scopes": ["ledger:read"], "expires_at": "2000-01-01T00:00:00Z"},
            "expires_at",
        ),
        ({"scopes": ["ledger:read"]}, "name"),
    ],
)
def test_operator_key_validation(
    client: Any, ops_headers: dict[str, str], tenant: TenantHandle, body: Any, field: str
) -> None:
    r = client.post(f"/ops/v1/tenants/{tenant.id}/api-keys", json=body, headers=ops_headers)
    assert field in assert_problem(r, 422, "validation")["errors"]
