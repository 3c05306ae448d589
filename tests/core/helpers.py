"""Assertions and small helpers shared by the core and tenancy tests."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine, text

PROBLEM = "application/problem+json"


def assert_problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    """The response is RFC 9457 problem+json of `status` whose type ends in `slug`."""
    body = response.get_json(force=True)
    assert response.status_code == status, body
    assert response.mimetype == PROBLEM, response.headers
    assert body["type"].endswith("/" + slug), body
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["request_id"], body
    assert response.headers["X-Request-Id"] == body["request_id"]
    return dict(body)


def owner_sql(
    engine: Engine, sql: str, params: dict[str, Any] | None = None, tenant: Any = None
) -> list[Any]:
    """Run `sql` as the superuser and commit; with `tenant`, as erp_owner in that tenant.

    erp_owner is subject to FORCE ROW LEVEL SECURITY, so a tenant's statement sees
    that tenant's rows only; the superuser alone sees every tenant.
    """
    with engine.begin() as conn:
        if tenant is not None:
            conn.execute(text("SET LOCAL ROLE erp_owner"))
            conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant)})
        result = conn.execute(text(sql), params or {})
        return list(result) if result.returns_rows else []


def new_slug(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def forget_cached_keys(app: Any) -> None:
    """After changing keys or tenants behind the API's back (SQL), as an operator would
    have to: every process forgets the API keys it verified (erp/tenancy/keycache.py)."""
    from erp.tenancy.keycache import bump_now

    with app.app_context():
        bump_now()
