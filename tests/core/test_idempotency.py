"""Idempotency-Key (API.md): replay, mismatch, in-flight, scope, and what is stored."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any
from urllib import error, request

import pytest
from sqlalchemy import Engine
from werkzeug.serving import BaseWSGIServer, make_server

from erp.http import ErpFlask
from tests.conftest import TenantHandle
from tests.core.helpers import assert_problem, owner_sql

KEYS = "/api/v1/api-keys"


def _post(client: Any, tenant: TenantHandle, key: str, body: dict[str, Any]) -> Any:
    return client.post(KEYS, json=body, headers={**tenant.headers, "Idempotency-Key": key})


def _count_named(owner_engine: Engine, tenant: TenantHandle, name: str) -> int:
    rows = owner_sql(
        owner_engine,
        "SELECT count(*) FROM iam.api_keys WHERE name = :n AND tenant_id = :t",
        {"n": name, "t": tenant.id},
        tenant=tenant.id,
    )
    return int(rows[0][0])


def test_same_key_and_body_replays_the_stored_response(
    client: Any, tenant: TenantHandle, owner_engine: Engine
) -> None:
    body = {"name": "replayed", "scopes": ["ledger:read"]}
    first = _post(client, tenant, "k-1", body)
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    again = _post(client, tenant, "k-1", body)
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.mimetype == "application/json"
    created, replayed = first.get_json(), again.get_json()
    # the secret is shown once: a replay returns the same key record without it
    assert "key" not in replayed
    assert replayed == {k: v for k, v in created.items() if k != "key"}
    assert _count_named(owner_engine, tenant, "replayed") == 1


def test_replay_ignores_json_key_order_and_whitespace(client: Any, tenant: TenantHandle) -> None:
    headers = {**tenant.headers, "Idempotency-Key": "order"}
    a = client.post(
        KEYS,
        data='{"name": "o", "scopes": ["ledger:read"]}',
        content_type="application/json",
        headers=headers,
    )
    b = client.post(
        KEYS,
        data='{ "scopes":["ledger:read"],"name":"o" }',
        content_type="application/json",
        headers=headers,
    )
    assert (a.status_code, b.status_code) == (201, 201)
    assert b.headers["Idempotent-Replayed"] == "true"


def test_same_key_other_body_or_path_is_a_mismatch(
    client: Any, tenant: TenantHandle, ops_headers: dict[str, str]
) -> None:
    assert _post(client, tenant, "k-2", {"name": "a", "scopes": ["ledger:read"]}).status_code == 201
    r = _post(client, tenant, "k-2", {"name": "b", "scopes": ["ledger:read"]})
    assert_problem(r, 409, "idempotency-mismatch")
    r = client.post(
        "/api/v1/ledger/accounts",
        json={"code": "1000", "name": "Cash", "type": "asset", "currency": "USD"},
        headers={**tenant.headers, "Idempotency-Key": "k-2"},
    )
    assert_problem(r, 409, "idempotency-mismatch")


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "caf\u00e9", "nul\x7f"])
def test_invalid_keys_are_422(client: Any, tenant: TenantHandle, key: str) -> None:
    r = _post(client, tenant, key, {"name": "bad-key", "scopes": ["ledger:read"]})
    problem = assert_problem(r, 422, "validation")
    assert "Idempotency-Key" in problem["errors"]


@pytest.mark.parametrize("key", ["x" * 255, "a", "with space", "~!@#$%^&*()_+{}|:<>?"])
def test_valid_keys_are_accepted(client: Any, tenant: TenantHandle, key: str) -> None:
    r = _post(client, tenant, key, {"name": "good-key", "scopes": ["ledger:read"]})
    assert r.status_code == 201, r.get_json()


def test_keys_are_scoped_per_tenant(
    client: Any, tenant: TenantHandle, other_tenant: TenantHandle, owner_engine: Engine
) -> None:
    body = {"name": "shared-key", "scopes": ["ledger:read"]}
    a = _post(client, tenant, "same-key", body)
    b = _post(client, other_tenant, "same-key", body)
    assert (a.status_code, b.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in b.headers
    assert a.get_json()["id"] != b.get_json()["id"]
    # and a different body under the same key in the other tenant is not a mismatch
    c = _post(client, other_tenant, "other-key", {"name": "x", "scopes": ["ledger:read"]})
    d = _post(client, tenant, "other-key", {"name": "y", "scopes": ["ledger:read"]})
    assert (c.status_code, d.status_code) == (201, 201)
    assert _count_named(owner_engine, tenant, "shared-key") == 1
    assert _count_named(owner_engine, other_tenant, "shared-key") == 1


def test_failures_are_not_stored(client: Any, ops_headers: dict[str, str]) -> None:
    from tests.conftest import make_tenant

    narrow = make_tenant(client, ops_headers, scopes=["api_keys:write"])
    r = _post(client, narrow, "retry-me", {"name": "n", "scopes": ["ledger:read"]})
    assert_problem(r, 403, "forbidden")
    r = _post(client, narrow, "retry-me", {"name": "n", "scopes": ["api_keys:read"]})
    assert r.status_code == 201
    assert "Idempotent-Replayed" not in r.headers
    r = _post(client, narrow, "retry-422", {"name": "", "scopes": ["api_keys:read"]})
    assert r.status_code == 422
    r = _post(client, narrow, "retry-422", {"name": "ok", "scopes": ["api_keys:read"]})
    assert r.status_code == 201


def test_the_stored_record_holds_no_secret(
    client: Any, tenant: TenantHandle, owner_engine: Engine
) -> None:
    created = _post(client, tenant, "secret", {"name": "s", "scopes": ["ledger:read"]}).get_json()
    rows = owner_sql(
        owner_engine,
        "SELECT key, fingerprint, status_code, body FROM iam.idempotency_records "
        "WHERE key = 'secret'",
        tenant=tenant.id,
    )
    assert len(rows) == 1
    assert rows[0].status_code == 201
    assert created["key"] not in json.dumps(rows[0].body)
    assert created["key"].rsplit("_", 1)[1] not in json.dumps(rows[0].body)


def test_operator_provisioning_replays(
    client: Any, ops_headers: dict[str, str], owner_engine: Engine
) -> None:
    slug = f"idem-{uuid.uuid4().hex[:8]}"
    body = {"slug": slug, "name": "Idem", "base_currency": "USD", "template": "empty"}
    headers = {**ops_headers, "Idempotency-Key": f"prov-{slug}"}
    first = client.post("/ops/v1/tenants", json=body, headers=headers)
    again = client.post("/ops/v1/tenants", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    r = client.post("/ops/v1/tenants", json={**body, "name": "Other"}, headers=headers)
    assert_problem(r, 409, "idempotency-mismatch")


# -- concurrency, through a real threaded HTTP server --------------------------------------


@pytest.fixture
def live_url(app: ErpFlask) -> Iterator[str]:
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _http_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    req = request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with request.urlopen(req, timeout=30) as resp:  # noqa: S310 (a local test server)
            return resp.status, json.loads(resp.read())
    except error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def test_concurrent_requests_with_one_key_create_one_resource(
    live_url: str, tenant: TenantHandle, owner_engine: Engine
) -> None:
    body = json.dumps({"name": "raced", "scopes": ["ledger:read"]}).encode()
    headers = {
        **tenant.headers,
        "Content-Type": "application/json",
        "Idempotency-Key": "race-" + uuid.uuid4().hex,
    }
    barrier = threading.Barrier(20)
    results: list[tuple[int, dict[str, Any]]] = []
    lock = threading.Lock()

    def fire() -> None:
        barrier.wait()
        result = _http_post(live_url + KEYS, body, headers)
        with lock:
            results.append(result)

    threads = [threading.Thread(target=fire) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 20
    created = [b for s, b in results if s == 201]
    conflicts = [b for s, b in results if s == 409]
    assert len(created) + len(conflicts) == 20, [s for s, _ in results]
    assert created, "one request must have won"
    assert all(b["type"].endswith("/idempotency-in-flight") for b in conflicts), conflicts
    assert len({b["id"] for b in created}) == 1
    shapes = {
        json.dumps({k: v for k, v in b.items() if k != "key"}, sort_keys=True) for b in created
    }
    assert len(shapes) == 1, shapes
    assert sum("key" in b for b in created) == 1, "the secret is shown once"
    assert _count_named(owner_engine, tenant, "raced") == 1
