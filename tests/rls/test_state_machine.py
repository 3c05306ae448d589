"""Hypothesis: three tenants doing random work through the services never see each other.

The three tenants are seeded like the suite's (tests/rls/seeds.py), so every tenant
table holds rows of each: a raw read must find exactly its own tenant, never nothing.
Creates, revokes, gets and lists go through `erp.tenancy.services` in
`db.unit_of_work(fn, tenant=...)`, as requests and jobs do; raw reads and updates
go straight to erp_app connections. The model is every key ever made and its
tenant: the database outlives each example, so the model does too.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    multiple,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from erp.errors import Problem
from erp.extensions import db
from erp.http import ErpFlask
from erp.tenancy import services
from erp.tenancy.models import ApiKey
from tests.conftest import make_tenant
from tests.rls.conftest import in_tenant, seed_tenants, tenant_tables

TENANTS = 3
SETTINGS = settings(
    max_examples=25,
    stateful_step_count=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz -", min_size=1, max_size=20)


def test_random_work_in_three_tenants_never_observes_a_foreign_row(
    app: ErpFlask, ops_headers: dict[str, str], app_engine: Engine, owner_engine: Engine
) -> None:
    client = app.test_client()
    handles = [make_tenant(client, ops_headers) for _ in range(TENANTS)]
    seed_tenants(client, owner_engine, handles)
    tenants = [h.id for h in handles]
    with owner_engine.connect() as conn:
        keys = conn.execute(
            text("SELECT id, tenant_id, revoked_at FROM iam.api_keys WHERE tenant_id = ANY(:t)"),
            {"t": tenants},
        ).all()
        tables = tenant_tables(conn)
    owner_of: dict[uuid.UUID, uuid.UUID] = {k.id: k.tenant_id for k in keys}
    revoked: set[uuid.UUID] = {k.id for k in keys if k.revoked_at is not None}
    assert revoked, "the seeds revoke a key in each tenant"
    seeded_keys = sorted(owner_of)  # fixed: the model grows, the first bundle must not

    def mine(tenant: uuid.UUID) -> set[uuid.UUID]:
        return {k for k, t in owner_of.items() if t == tenant}

    class TenantWork(RuleBasedStateMachine):
        keys = Bundle("keys")

        @initialize(target=keys)
        def start_keys(self) -> Any:
            return multiple(*seeded_keys)

        @rule(target=keys, who=st.sampled_from(tenants), name=NAMES)
        def create(self, who: uuid.UUID, name: str) -> uuid.UUID:
            def work(s: Session) -> uuid.UUID:
                cmd = services.CreateApiKey(name=name, scopes=["api_keys:read"])
                key, _raw = services.create_api_key(s, cmd, "test", grantor_scopes=None)
                return key.id

            key_id = db.unit_of_work(work, tenant=who)
            owner_of[key_id] = who
            return key_id

        @rule(who=st.sampled_from(tenants), key=keys)
        def revoke(self, who: uuid.UUID, key: uuid.UUID) -> None:
            def work(s: Session) -> bool:
                return services.revoke_api_key(s, key).revoked_at is not None

            if owner_of[key] == who:
                assert db.unit_of_work(work, tenant=who)
                revoked.add(key)
            else:
                with pytest.raises(Problem) as caught:
                    db.unit_of_work(work, tenant=who)
                assert caught.value.slug == "not-found"

        @rule(who=st.sampled_from(tenants), key=keys)
        def get(self, who: uuid.UUID, key: uuid.UUID) -> None:
            row = db.unit_of_work(lambda s: s.get(ApiKey, key), tenant=who)
            if owner_of[key] != who:
                assert row is None
            else:
                assert row is not None
                assert row.tenant_id == who
                assert (row.revoked_at is not None) == (key in revoked)

        @rule(who=st.sampled_from(tenants))
        def list_keys(self, who: uuid.UUID) -> None:
            rows = db.unit_of_work(lambda s: s.scalars(select(ApiKey)).all(), tenant=who)
            assert {r.tenant_id for r in rows} == {who}
            assert {r.id for r in rows} == mine(who)
            assert {r.id for r in rows if r.revoked_at is not None} == mine(who) & revoked

        @rule()
        def list_without_tenant(self) -> None:
            assert db.unit_of_work(lambda s: s.scalars(select(ApiKey)).all(), tenant=None) == []

        @rule(who=st.sampled_from(tenants), table=st.sampled_from(tables))
        def raw_read(self, who: uuid.UUID, table: str) -> None:
            with in_tenant(app_engine, who) as conn:
                seen = set(conn.execute(text(f"SELECT DISTINCT tenant_id FROM {table}")).scalars())
            assert seen == {who}, f"{table}: {seen}"

        @rule(who=st.sampled_from(tenants), key=keys)
        def raw_touch(self, who: uuid.UUID, key: uuid.UUID) -> None:
            with in_tenant(app_engine, who, commit=True) as conn:
                n = conn.execute(
                    text("UPDATE iam.api_keys SET last_used_at = now() WHERE id = :k"), {"k": key}
                ).rowcount
            assert n == (1 if owner_of[key] == who else 0)

    with app.app_context():
        run_state_machine_as_test(TenantWork, settings=SETTINGS)
    assert len(owner_of) > TENANTS, "the machine created keys"
