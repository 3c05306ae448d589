"""/healthz, /readyz, the OpenAPI document and the self-hosted docs UI."""

from __future__ import annotations

import re
from typing import Any

from tests.conftest import TenantHandle
from tests.core.conftest import AppFactory


def test_healthz(client: Any) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.get_json() == {"status": "ok"}


def test_readyz_with_both_checks_ok(client: Any) -> None:
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.get_json() == {"status": "ok", "checks": {"postgres": "ok", "redis": "ok"}}


def test_readyz_is_200_degraded_when_redis_is_unreachable(make_app: AppFactory) -> None:
    """Redis down degrades the API (rate limits in memory, jobs wait) but leaves it serving."""
    app = make_app(redis_url="redis://127.0.0.1:1/0")
    r = app.test_client().get("/readyz")
    assert r.status_code == 200
    assert r.mimetype == "application/json"
    body = r.get_json()
    assert body["status"] == "degraded"
    assert body["checks"]["postgres"] == "ok"
    assert body["checks"]["redis"].startswith("error")
    assert "redis://" not in r.get_data(as_text=True)


def test_readyz_is_503_when_postgres_is_unreachable(make_app: AppFactory) -> None:
    app = make_app(database_url="postgresql://erp_app:x@127.0.0.1:1/nowhere")
    r = app.test_client().get("/readyz")
    assert r.status_code == 503
    body = r.get_json()
    assert body["checks"] == {"postgres": body["checks"]["postgres"], "redis": "ok"}
    assert body["checks"]["postgres"].startswith("error")
    assert "127.0.0.1:1" not in r.get_data(as_text=True)


def test_a_second_app_leaves_the_first_alone(make_app: AppFactory, client: Any) -> None:
    make_app(redis_url="redis://127.0.0.1:1/0")
    assert client.get("/readyz").status_code == 200


def test_the_api_answers_reads_without_redis(make_app: AppFactory, tenant: TenantHandle) -> None:
    app = make_app(redis_url="redis://127.0.0.1:1/0")
    assert app.test_client().get("/api/v1/me", headers=tenant.headers).status_code == 200


def test_openapi_document_is_3_1_and_lists_the_paths(client: Any) -> None:
    r = client.get("/api/v1/openapi.json")
    assert r.status_code == 200
    spec = r.get_json()
    assert spec["openapi"].startswith("3.1")
    assert spec["info"]["title"]
    for path in (
        "/ops/v1/tenants",
        "/ops/v1/tenants/{tenant_id}",
        "/ops/v1/tenants/{tenant_id}/suspend",
        "/ops/v1/tenants/{tenant_id}/reactivate",
        "/ops/v1/tenants/{tenant_id}/restore",
        "/ops/v1/tenants/{tenant_id}/api-keys",
        "/ops/v1/audit-events",
        "/api/v1/me",
        "/api/v1/api-keys",
        "/api/v1/api-keys/{key_id}",
    ):
        assert path in spec["paths"], path
    assert set(spec["paths"]["/ops/v1/tenants/{tenant_id}"]) >= {"get", "delete"}
    assert {"apiKey", "operatorToken"} <= set(spec["components"]["securitySchemes"])


def test_docs_ui_is_served_with_its_own_assets(client: Any) -> None:
    r = client.get("/api/docs")
    assert r.status_code == 200
    assert r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    assert "/api/v1/openapi.json" in html
    assert "//cdn" not in html
    assert "https://" not in html
    assets = re.findall(r'(?:src|href)="(/api/docs/assets/[^"]+)"', html)
    assert any(a.endswith(".js") for a in assets)
    assert any(a.endswith(".css") for a in assets)
    for asset in assets:
        a = client.get(asset)
        assert a.status_code == 200, asset
        assert len(a.get_data()) > 100
        a.close()
    r = client.get("/api/docs/assets/../../../etc/passwd")
    assert r.status_code == 404
    r = client.get("/api/docs/assets/index.html")
    assert r.status_code == 404
    assert r.mimetype == "application/problem+json"
