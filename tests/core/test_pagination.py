"""Cursor pagination (API.md, lists): order, bounds, and cursors that must be refused."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine

from erp.db import current_tenant
from erp.http import ErpFlask
from erp.pagination import encode_cursor
from tests.conftest import TenantHandle
from tests.core.helpers import assert_problem, owner_sql

KEYS = "/api/v1/api-keys"


def _make_keys(client: Any, tenant: TenantHandle, n: int) -> list[str]:
    ids = []
    for i in range(n):
        r = client.post(
            KEYS, json={"name": f"k{i}", "scopes": ["ledger:read"]}, headers=tenant.headers
        )
        assert r.status_code == 201
        ids.append(r.get_json()["id"])
    return ids


def _walk(client: Any, path: str, headers: dict[str, str], limit: int) -> list[list[Any]]:
    pages: list[list[Any]] = []
    cursor = None
    while True:
        query: dict[str, Any] = {"limit": limit}
        if cursor:
            query["cursor"] = cursor
        r = client.get(path, query_string=query, headers=headers)
        assert r.status_code == 200, r.get_json()
        body = r.get_json()
        assert set(body) == {"items", "next_cursor"}
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100


def test_pages_are_newest_first_and_the_last_has_no_cursor(
    client: Any, tenant: TenantHandle
) -> None:
    made = _make_keys(client, tenant, 4)  # plus the tenant's first key: 5
    pages = _walk(client, KEYS, tenant.headers, limit=2)
    assert [len(p) for p in pages] == [2, 2, 1]
    ids = [k["id"] for page in pages for k in page]
    assert ids == [*reversed(made), str(tenant.key_id)]
    created = [k["created_at"] for page in pages for k in page]
    assert created == sorted(created, reverse=True)


def test_an_exact_final_page_still_ends_with_null(client: Any, tenant: TenantHandle) -> None:
    _make_keys(client, tenant, 3)
    pages = _walk(client, KEYS, tenant.headers, limit=2)
    assert [len(p) for p in pages] == [2, 2]
    r = client.get(KEYS, query_string={"limit": 4}, headers=tenant.headers)
    assert r.get_json()["next_cursor"] is None


def test_rows_sharing_a_timestamp_are_ordered_by_id_and_never_skipped(
    client: Any, tenant: TenantHandle, owner_engine: Engine
) -> None:
    _make_keys(client, tenant, 6)
    owner_sql(
        owner_engine,
        "UPDATE iam.api_keys SET created_at = '2030-01-01T00:00:00Z'",
        tenant=tenant.id,
    )
    pages = _walk(client, KEYS, tenant.headers, limit=2)
    ids = [k["id"] for page in pages for k in page]
    assert len(ids) == 7
    assert ids == sorted(ids, reverse=True)


def test_default_limit_is_50_and_bounds_are_1_to_200(client: Any, tenant: TenantHandle) -> None:
    assert client.get(f"{KEYS}?limit=1", headers=tenant.headers).status_code == 200
    assert client.get(f"{KEYS}?limit=200", headers=tenant.headers).status_code == 200
    for bad in ("0", "201", "-1", "ten", "1.5"):
        r = client.get(KEYS, query_string={"limit": bad}, headers=tenant.headers)
        assert "limit" in assert_problem(r, 422, "validation")["errors"]


def test_default_limit_is_50(client: Any, ops_headers: dict[str, str]) -> None:
    r = client.get("/ops/v1/audit-events", headers=ops_headers)
    assert r.status_code == 200
    assert len(r.get_json()["items"]) <= 50


def _first_cursor(client: Any, path: str, headers: dict[str, str]) -> str:
    r = client.get(path, query_string={"limit": 1}, headers=headers)
    cursor = r.get_json()["next_cursor"]
    assert cursor
    return str(cursor)


def _tampered(cursor: str) -> list[str]:
    raw, sig = cursor.split(".", 1)
    body = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    body[2] = "2999-01-01T00:00:00+00:00"
    edited = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    return [
        f"{edited}.{sig}",
        f"{raw}.{flipped}",
        raw,
        "",
        ".",
        "not-base64!.x",
        "%%%",
        cursor + "x",
        "é.é",
        base64.urlsafe_b64encode(b"[1,2]").decode() + "." + sig,
    ]


def test_a_tampered_or_malformed_cursor_is_422_and_yields_nothing(
    client: Any, tenant: TenantHandle
) -> None:
    _make_keys(client, tenant, 2)
    for bad in _tampered(_first_cursor(client, KEYS, tenant.headers)):
        r = client.get(KEYS, query_string={"cursor": bad}, headers=tenant.headers)
        if bad == "":
            assert r.status_code == 200  # an empty cursor is the first page
            continue
        problem = assert_problem(r, 422, "validation")
        assert "cursor" in problem["errors"], bad
        assert "items" not in problem


def test_a_cursor_of_another_tenant_is_422(
    client: Any, tenant: TenantHandle, other_tenant: TenantHandle
) -> None:
    _make_keys(client, tenant, 2)
    _make_keys(client, other_tenant, 2)
    theirs = _first_cursor(client, KEYS, other_tenant.headers)
    r = client.get(KEYS, query_string={"cursor": theirs}, headers=tenant.headers)
    assert "cursor" in assert_problem(r, 422, "validation")["errors"]


def test_a_cursor_of_another_list_is_422(
    client: Any, ops_headers: dict[str, str], tenant: TenantHandle
) -> None:
    tenants_cursor = _first_cursor(client, "/ops/v1/tenants", ops_headers)
    r = client.get(
        "/ops/v1/audit-events", query_string={"cursor": tenants_cursor}, headers=ops_headers
    )
    assert_problem(r, 422, "validation")
    # and an operator's cursor means nothing to a tenant
    r = client.get(KEYS, query_string={"cursor": tenants_cursor}, headers=tenant.headers)
    assert_problem(r, 422, "validation")
    audit_cursor = _first_cursor(client, "/ops/v1/audit-events", ops_headers)
    r = client.get("/ops/v1/tenants", query_string={"cursor": audit_cursor}, headers=ops_headers)
    assert_problem(r, 422, "validation")


@pytest.mark.parametrize("row_id", ["not-a-uuid", "", "12"])
def test_a_signed_cursor_with_a_bad_id_is_422(
    app: ErpFlask, client: Any, tenant: TenantHandle, row_id: str
) -> None:
    with app.test_request_context():
        token = current_tenant.set(tenant.id)
        try:
            forged = encode_cursor("iam.api_keys", datetime.now(UTC), row_id)
        finally:
            current_tenant.reset(token)
    r = client.get(KEYS, query_string={"cursor": forged}, headers=tenant.headers)
    assert_problem(r, 422, "validation")
