from __future__ import annotations

from typing import Any

from tests.conftest import TenantHandle


def test_me_returns_principal_tenant_and_scopes(client: Any, tenant: TenantHandle) -> None:
    r = client.get("/api/v1/me", headers=tenant.headers)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["tenant"]["id"] == str(tenant.id)
    assert body["tenant"]["slug"] == tenant.slug
    assert body["principal"]["kind"] == "api_key"
    assert "ledger:write" in body["scopes"]
