"""A pooled connection, reused by tenant after tenant, never carries the last one.

The pool has one connection (max_overflow 0), so every transaction below runs
on the same server session: the tenant can only come from the transaction's
own `set_config(..., true)` (DESIGN.md §2).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, select, text
from sqlalchemy.orm import Session

from erp import create_app
from erp.config import Settings
from erp.db import Database, bind_tenant
from erp.extensions import db, queue
from erp.http import ErpFlask
from erp.tenancy.models import ApiKey, TenantAuditEntry
from tests.rls.conftest import Seeded

ROUNDS = 200


class Boom(Exception):
    """A unit of work that fails after reading."""


def _key_ids(owner_engine: Engine, tenant: uuid.UUID) -> set[uuid.UUID]:
    with owner_engine.connect() as conn:
        return set(
            conn.execute(
                text("SELECT id FROM iam.api_keys WHERE tenant_id = :t"), {"t": tenant}
            ).scalars()
        )


@pytest.fixture
def one_connection_db(settings: Settings) -> Iterator[Database]:
    database = Database()
    database.configure(settings, pool_size=1, max_overflow=0, pool_timeout=5)
    yield database
    database.dispose()


def _observe(s: Session) -> dict[str, Any]:
    keys = s.execute(select(ApiKey.tenant_id, ApiKey.id)).all()
    audit = s.execute(select(TenantAuditEntry.tenant_id)).scalars().all()
    return {
        "pid": s.execute(text("SELECT pg_backend_pid()")).scalar_one(),
        "guc": s.execute(text("SELECT current_setting('app.tenant_id', true)")).scalar_one(),
        "tenants": {t for t, _ in keys} | set(audit),
        "keys": {k for _, k in keys},
    }


def test_one_pooled_connection_alternating_tenants(
    seeded: Seeded, one_connection_db: Database, owner_engine: Engine
) -> None:
    a, b = seeded.a, seeded.b
    expected = {a.id: _key_ids(owner_engine, a.id), b.id: _key_ids(owner_engine, b.id)}
    rng = random.Random(20261125)
    pids = set()
    for i in range(ROUNDS):
        tenant = (a.id, b.id)[i % 2]
        step = rng.choice(["read", "read", "fail", "none", "rebind"])
        if step == "fail":  # a unit of work that dies mid-way leaves nothing behind either

            def fail(s: Session, tenant: uuid.UUID = tenant) -> None:
                assert _observe(s)["tenants"] <= {tenant}
                raise Boom

            with pytest.raises(Boom):
                one_connection_db.unit_of_work(fail, tenant=tenant)
            continue
        if step == "rebind":  # an operator-style switch inside one transaction

            def rebind(s: Session, tenant: uuid.UUID = tenant) -> dict[str, Any]:
                bind_tenant(s, tenant)
                return _observe(s)

            seen = one_connection_db.unit_of_work(rebind, tenant=None)
        else:
            who = None if step == "none" else tenant
            seen = one_connection_db.unit_of_work(_observe, tenant=who)
            if who is None:
                assert seen["tenants"] == set(), f"round {i}"
                assert seen["keys"] == set(), f"round {i}"
                assert seen["guc"] == ""
                pids.add(seen["pid"])
                continue
        pids.add(seen["pid"])
        assert seen["guc"] == str(tenant), f"round {i}"
        assert seen["tenants"] == {tenant}, f"round {i}: saw {seen['tenants']}"
        assert seen["keys"] == expected[tenant], f"round {i}"
    assert len(pids) == 1, "the pool should have reused one server session throughout"


def test_statement_after_a_tenant_transaction_on_the_same_connection(
    seeded: Seeded, one_connection_db: Database
) -> None:
    """The raw connection, back from the pool, is outside any tenant."""
    one_connection_db.unit_of_work(_observe, tenant=seeded.a.id)
    with one_connection_db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM iam.api_keys")).scalar_one() == 0
        assert conn.execute(text("SELECT app.current_tenant_id()")).scalar_one() is None
        conn.rollback()


# -- over HTTP -----------------------------------------------------------------------


@pytest.fixture
def one_connection_app(settings: Settings) -> Iterator[ErpFlask]:
    """A second app whose engine has one connection; the session `app` is untouched."""
    flask_app = create_app(settings.replace(db_pool_size=1, db_max_overflow=0))
    flask_app.config["TESTING"] = True
    yield flask_app
    with flask_app.app_context():
        db.dispose()
        queue.redis.close()


def test_http_requests_alternating_tenants_share_one_connection(
    seeded: Seeded,
    one_connection_app: ErpFlask,
    ops_headers: dict[str, str],
    owner_engine: Engine,
) -> None:
    a, b = seeded.a, seeded.b
    expected = {
        a.id: {str(k) for k in _key_ids(owner_engine, a.id)},
        b.id: {str(k) for k in _key_ids(owner_engine, b.id)},
    }
    with one_connection_app.app_context():
        engine = db.engine
    connects: list[object] = []
    event.listen(engine, "connect", lambda *_: connects.append(1))
    client = one_connection_app.test_client()
    for i in range(60):
        t = (a, b)[i % 2]
        me = client.get("/api/v1/me", headers=t.headers)
        assert me.status_code == 200
        assert me.get_json()["tenant"]["id"] == str(t.id), f"request {i}"
        keys = client.get("/api/v1/api-keys?limit=200", headers=t.headers)
        assert keys.status_code == 200, keys.get_json()
        assert {k["id"] for k in keys.get_json()["items"]} == expected[t.id], f"request {i}"
        if i % 5 == 0:  # operator requests switch the role, transaction-locally only
            assert client.get("/ops/v1/tenants?limit=1", headers=ops_headers).status_code == 200
    assert len(connects) == 1, "one pooled connection served every request"
    assert engine.pool.size() == 1  # type: ignore[attr-defined]
