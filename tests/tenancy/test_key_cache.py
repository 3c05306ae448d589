"""Verified API keys served from memory (erp/tenancy/keycache.py), and every way a
change reaches the other processes: the auth epoch in Redis, the entry's age, and
no caching at all while Redis is unreachable."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from erp.tenancy.keycache import EPOCH_EVERY_S
from tests.conftest import AppFactory, TenantHandle
from tests.core.helpers import assert_problem, forget_cached_keys, owner_sql

ME = "/api/v1/me"


def _new_key(client: Any, tenant: TenantHandle) -> tuple[str, dict[str, str]]:
    r = client.post(
        "/api/v1/api-keys", json={"name": "k", "scopes": ["ledger:read"]}, headers=tenant.headers
    )
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"], {"Authorization": f"Bearer {r.get_json()['key']}"}


def _revoke_by_sql(owner_engine: Engine, tenant: TenantHandle, key_id: str) -> None:
    """A change behind the API's back: no epoch bump."""
    owner_sql(
        owner_engine,
        "UPDATE iam.api_keys SET revoked_at = now() WHERE id = :id",
        {"id": key_id},
        tenant=tenant.id,
    )


def _eventually(check: Callable[[], bool], within_s: float) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < within_s, f"not within {within_s} s"
        time.sleep(0.02)
    return time.monotonic() - started


def test_a_verified_key_is_served_from_memory_until_the_epoch_moves(
    app: Any, client: Any, tenant: TenantHandle, owner_engine: Engine
) -> None:
    key_id, headers = _new_key(client, tenant)
    assert client.get(ME, headers=headers).status_code == 200
    _revoke_by_sql(owner_engine, tenant, key_id)
    # Served from memory: the lookup that would see the revocation does not run.
    assert client.get(ME, headers=headers).status_code == 200
    forget_cached_keys(app)
    assert_problem(client.get(ME, headers=headers), 401, "unauthorized")


def test_a_revocation_in_one_process_reaches_another_within_the_epoch_interval(
    make_app: AppFactory, tenant: TenantHandle
) -> None:
    serving, revoking = make_app().test_client(), make_app().test_client()
    key_id, headers = _new_key(serving, tenant)
    assert serving.get(ME, headers=headers).status_code == 200  # cached there
    assert revoking.delete(f"/api/v1/api-keys/{key_id}", headers=tenant.headers).status_code == 204
    took = _eventually(lambda: serving.get(ME, headers=headers).status_code == 401, 5)
    assert took <= EPOCH_EVERY_S + 0.5


def test_a_suspension_in_one_process_reaches_another(
    make_app: AppFactory, tenant: TenantHandle, ops_headers: dict[str, str]
) -> None:
    serving, operating = make_app().test_client(), make_app().test_client()
    assert serving.get(ME, headers=tenant.headers).status_code == 200
    r = operating.post(
        f"/ops/v1/tenants/{tenant.id}/suspend", json={"reason": "x"}, headers=ops_headers
    )
    assert r.status_code == 200
    _eventually(lambda: serving.get(ME, headers=tenant.headers).status_code == 403, 5)
    operating.post(f"/ops/v1/tenants/{tenant.id}/reactivate", headers=ops_headers)
    _eventually(lambda: serving.get(ME, headers=tenant.headers).status_code == 200, 5)


def test_an_entry_is_never_older_than_auth_cache_seconds(
    make_app: AppFactory, tenant: TenantHandle, owner_engine: Engine
) -> None:
    client = make_app(auth_cache_seconds=1).test_client()
    key_id, headers = _new_key(client, tenant)
    assert client.get(ME, headers=headers).status_code == 200
    _revoke_by_sql(owner_engine, tenant, key_id)
    assert client.get(ME, headers=headers).status_code == 200
    # Refused once the entry is a second old (the bound allows for a loaded machine).
    assert _eventually(lambda: client.get(ME, headers=headers).status_code == 401, 5) <= 3


def test_no_cache_when_turned_off_or_when_redis_is_unreachable(
    make_app: AppFactory, tenant: TenantHandle, owner_engine: Engine
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{s.getsockname()[1]}/0"  # nothing listens once closed
    for changes in ({"auth_cache_seconds": 0}, {"redis_url": dead}):
        client = make_app(**changes).test_client()
        key_id, headers = _new_key(client, tenant)
        assert client.get(ME, headers=headers).status_code == 200
        _revoke_by_sql(owner_engine, tenant, key_id)
        assert_problem(client.get(ME, headers=headers), 401, "unauthorized")
