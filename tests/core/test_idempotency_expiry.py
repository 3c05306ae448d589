"""Expired idempotency records are swept: discovered per tenant (ids only), deleted per
tenant under RLS by a scheduled RQ job, operators' records too; fresh ones stay."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from rq import Queue, SimpleWorker
from rq.job import JobStatus
from rq.serializers import JSONSerializer
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from erp.db import sqlstate
from erp.http import ErpFlask
from tests.conftest import TenantHandle, make_tenant
from tests.core.helpers import owner_sql

DISCOVER = "SELECT * FROM app.tenants_with_expired_idempotency_records(:n)"


def _keyed_post(client: Any, headers: dict[str, str], key: str, name: str) -> Any:
    return client.post(
        "/api/v1/api-keys",
        json={"name": name, "scopes": ["ledger:read"]},
        headers={**headers, "Idempotency-Key": key},
    )


def _expire(owner_engine: Engine, table: str, key: str) -> None:
    owner_sql(
        owner_engine,
        f"UPDATE {table} SET expires_at = now() - interval '1 second' WHERE key = :k",
        {"k": key},
    )


def _keys(owner_engine: Engine, table: str, keys: list[str]) -> set[str]:
    rows = owner_sql(owner_engine, f"SELECT key FROM {table} WHERE key = ANY(:k)", {"k": keys})
    return {r.key for r in rows}


def _discover(app_engine: Engine) -> set[uuid.UUID]:
    with app_engine.connect() as conn:  # erp_app, no tenant set
        found = set(conn.execute(text(DISCOVER), {"n": 1000}).scalars())
        conn.rollback()
    return found


def test_the_sweep_deletes_expired_records_of_every_tenant_and_keeps_fresh_ones(
    app: ErpFlask,
    client: Any,
    ops_headers: dict[str, str],
    owner_engine: Engine,
    app_engine: Engine,
    default_queue: Queue,
) -> None:
    a, b, fresh_only = (make_tenant(client, ops_headers) for _ in range(3))
    run = uuid.uuid4().hex[:8]
    old_a, old_b, new_a, new_c = (f"{run}-{n}" for n in ("old-a", "old-b", "new-a", "new-c"))
    for t, key in ((a, old_a), (b, old_b), (a, new_a), (fresh_only, new_c)):
        assert _keyed_post(client, t.headers, key, key).status_code == 201
    old_op, new_op = f"{run}-old-op", f"{run}-new-op"
    for key, action, body in (
        (old_op, "suspend", {"reason": "sweep"}),
        (new_op, "reactivate", None),
    ):
        r = client.post(
            f"/ops/v1/tenants/{a.id}/{action}",
            json=body,
            headers={**ops_headers, "Idempotency-Key": key},
        )
        assert r.status_code == 200, r.get_json()
    tenant_table, op_table = "iam.idempotency_records", "platform.operator_idempotency_records"
    for key in (old_a, old_b):
        _expire(owner_engine, tenant_table, key)
    _expire(owner_engine, op_table, old_op)

    found = _discover(app_engine)
    assert {a.id, b.id} <= found
    assert fresh_only.id not in found  # its only record is fresh

    job = default_queue.enqueue("erp.idempotency.purge_expired")
    SimpleWorker(
        [default_queue], connection=default_queue.connection, serializer=JSONSerializer
    ).work(burst=True)
    job.refresh()
    assert job.get_status() == JobStatus.FINISHED, job.latest_result()
    assert job.return_value() >= 3

    assert _keys(owner_engine, tenant_table, [old_a, old_b, new_a, new_c]) == {new_a, new_c}
    assert _keys(owner_engine, op_table, [old_op, new_op]) == {new_op}
    assert not {a.id, b.id} & _discover(app_engine)


def test_an_expired_key_may_be_used_again_for_another_request(
    client: Any, tenant: TenantHandle, owner_engine: Engine
) -> None:
    key = f"reuse-{uuid.uuid4().hex[:8]}"
    assert _keyed_post(client, tenant.headers, key, "first").status_code == 201
    assert _keyed_post(client, tenant.headers, key, "second").status_code == 409
    _expire(owner_engine, "iam.idempotency_records", key)
    again = _keyed_post(client, tenant.headers, key, "second")
    assert again.status_code == 201
    assert "Idempotent-Replayed" not in again.headers


def test_discovery_returns_ids_only_and_only_to_erp_app(
    owner_engine: Engine, app_engine: Engine
) -> None:
    with app_engine.connect() as conn:
        cols = conn.execute(text(DISCOVER), {"n": 1}).keys()
        conn.rollback()
    assert list(cols) == ["tenants_with_expired_idempotency_records"]
    fn = "app.tenants_with_expired_idempotency_records(integer)"
    with owner_engine.connect() as conn:
        allowed = {
            role: conn.execute(
                text("SELECT has_function_privilege(:r, :f, 'EXECUTE')"), {"r": role, "f": fn}
            ).scalar_one()
            for role in ("erp_app", "erp_ops", "erp_owner")
        }
        probe = f"probe_{uuid.uuid4().hex[:8]}"
        try:
            conn.execute(text(f"CREATE ROLE {probe} NOLOGIN"))
            conn.execute(text(f"GRANT USAGE ON SCHEMA app TO {probe}"))
            conn.execute(text(f"SET LOCAL ROLE {probe}"))
            with pytest.raises(DBAPIError) as caught:
                conn.execute(text(DISCOVER), {"n": 1})
            assert sqlstate(caught.value) == "42501"
        finally:
            conn.rollback()
    assert allowed == {"erp_app": True, "erp_ops": False, "erp_owner": False}


def test_a_negative_limit_finds_nothing(app_engine: Engine) -> None:
    with app_engine.connect() as conn:
        assert list(conn.execute(text(DISCOVER), {"n": -1})) == []
        conn.rollback()
