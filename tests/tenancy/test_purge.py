"""Purging a deleted tenant removes every row it owns, in every schema, and nothing else."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import Engine, text

from erp.tenancy.purge import purge_due
from tests.conftest import TenantHandle
from tests.core.helpers import owner_sql

#: Tables allowed to name a purged tenant: the operators' audit trail.
KEPT = {"platform.audit_events"}


def tenant_row_counts(owner_engine: Engine, tenant_id: uuid.UUID) -> dict[str, int]:
    """Rows naming `tenant_id` in every table of every schema that has a tenant_id column."""
    with owner_engine.connect() as conn:  # a superuser: RLS does not hide anything
        tables = conn.execute(
            text(
                """SELECT format('%I.%I', n.nspname, c.relname)
                     FROM pg_attribute a
                     JOIN pg_class c ON c.oid = a.attrelid
                     JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE a.attname = 'tenant_id' AND NOT a.attisdropped
                      AND c.relkind IN ('r', 'p')
                      AND n.nspname NOT IN ('pg_catalog', 'information_schema')"""
            )
        ).scalars()
        return {
            table: int(
                conn.execute(
                    text(f"SELECT count(*) FROM {table} WHERE tenant_id = :t"), {"t": tenant_id}
                ).scalar_one()
            )
            for table in tables
        }


def _fill(client: Any, tenant: TenantHandle, owner_engine: Engine) -> None:
    """Rows in as many tables as the tenant can reach: keys, audit, idempotency, ledger."""
    accounts = client.get("/api/v1/ledger/accounts?limit=200", headers=tenant.headers)
    assert accounts.status_code == 200, accounts.get_json()
    ids = {a["code"]: a["id"] for a in accounts.get_json()["items"]}
    r = client.post(
        "/api/v1/ledger/transactions",
        json={
            "description": "to be purged",
            "entries": [
                {"account_id": ids["1000"], "amount": 2500, "currency": "USD"},
                {"account_id": ids["4000"], "amount": -2500, "currency": "USD"},
            ],
        },
        headers=tenant.headers,
    )
    assert r.status_code == 201, r.get_json()
    r = client.post(
        f"/api/v1/ledger/transactions/{r.get_json()['id']}/reverse", json={}, headers=tenant.headers
    )
    assert r.status_code == 201, r.get_json()
    r = client.post(
        "/api/v1/api-keys",
        json={"name": "more", "scopes": ["ledger:read"]},
        headers={**tenant.headers, "Idempotency-Key": "purge-me"},
    )
    assert r.status_code == 201
    owner_sql(
        owner_engine,
        "INSERT INTO webhooks.outbox_events (id, event_type, payload) "
        "VALUES (gen_random_uuid(), 'test.event', '{}')",
        tenant=tenant.id,
    )


def test_purge_removes_every_row_of_the_tenant_and_keeps_the_audit_trail(
    client: Any,
    ops_headers: dict[str, str],
    tenant: TenantHandle,
    other_tenant: TenantHandle,
    owner_url: str,
    owner_engine: Engine,
) -> None:
    _fill(client, tenant, owner_engine)
    _fill(client, other_tenant, owner_engine)
    before = tenant_row_counts(owner_engine, tenant.id)
    for table in (
        "iam.api_keys",
        "iam.audit_log",
        "iam.idempotency_records",
        "ledger.accounts",
        "ledger.transactions",
        "ledger.entries",
    ):
        assert before[table] >= 1, table
    assert before["webhooks.outbox_events"] >= 1
    others_before = tenant_row_counts(owner_engine, other_tenant.id)

    assert client.delete(f"/ops/v1/tenants/{tenant.id}", headers=ops_headers).status_code == 202
    purged = list(purge_due(owner_url, only=str(tenant.id)))
    assert [(tid, slug) for tid, slug, _ in purged] == [(tenant.id, tenant.slug)]
    assert purged[0][2] == sum(n for t, n in before.items() if t not in KEPT)

    after = tenant_row_counts(owner_engine, tenant.id)
    assert {t: n for t, n in after.items() if n and t not in KEPT} == {}
    assert (
        owner_sql(owner_engine, "SELECT 1 FROM platform.tenants WHERE id = :t", {"t": tenant.id})
        == []
    )
    actions = [
        r.action
        for r in owner_sql(
            owner_engine,
            "SELECT action, details FROM platform.audit_events WHERE tenant_id = :t ORDER BY id",
            {"t": tenant.id},
        )
    ]
    assert actions[0] == "tenant.provisioned"
    assert actions[-2:] == ["tenant.deleted", "tenant.purged"]

    assert tenant_row_counts(owner_engine, other_tenant.id) == others_before
    assert client.get("/api/v1/me", headers=other_tenant.headers).status_code == 200
    assert client.get("/api/v1/me", headers=tenant.headers).status_code == 401
    r = client.get(f"/ops/v1/tenants/{tenant.id}", headers=ops_headers)
    assert r.status_code == 404


def test_purged_event_records_the_row_count(
    client: Any,
    ops_headers: dict[str, str],
    tenant: TenantHandle,
    owner_url: str,
    owner_engine: Engine,
) -> None:
    client.delete(f"/ops/v1/tenants/{tenant.id}", headers=ops_headers)
    ((_, _, rows),) = purge_due(owner_url, only=tenant.slug)
    (event,) = owner_sql(
        owner_engine,
        "SELECT actor, tenant_slug, details FROM platform.audit_events "
        "WHERE tenant_id = :t AND action = 'tenant.purged'",
        {"t": tenant.id},
    )
    assert event.actor == "system:purge"
    assert event.tenant_slug == tenant.slug
    details = event.details if isinstance(event.details, dict) else json.loads(event.details)
    assert details == {"rows": rows}
    assert rows >= 2


def test_a_tenant_not_deleting_is_never_purged(
    client: Any,
    ops_headers: dict[str, str],
    tenant: TenantHandle,
    owner_url: str,
    owner_engine: Engine,
) -> None:
    def counts() -> dict[str, int]:
        return {
            t: n for t, n in tenant_row_counts(owner_engine, tenant.id).items() if t not in KEPT
        }

    before = counts()
    assert list(purge_due(owner_url, only=str(tenant.id))) == []
    client.post(f"/ops/v1/tenants/{tenant.id}/suspend", json={"reason": "x"}, headers=ops_headers)
    assert list(purge_due(owner_url, only=tenant.slug)) == []
    assert counts() == before


def test_only_purges_just_that_tenant(
    client: Any,
    ops_headers: dict[str, str],
    tenant: TenantHandle,
    other_tenant: TenantHandle,
    owner_url: str,
    owner_engine: Engine,
) -> None:
    for t in (tenant, other_tenant):
        assert client.delete(f"/ops/v1/tenants/{t.id}", headers=ops_headers).status_code == 202
    # the other tenant's grace is over too, but `only` names one tenant
    owner_sql(
        owner_engine,
        "UPDATE platform.tenants SET delete_after = now() - interval '1 day' WHERE id = :t",
        {"t": other_tenant.id},
    )
    purged = [tid for tid, _, _ in purge_due(owner_url, only=str(tenant.id))]
    assert purged == [tenant.id]
    assert tenant_row_counts(owner_engine, other_tenant.id)["iam.api_keys"] == 1
    # without `only`, every tenant whose grace is over goes, and only those
    purged = [tid for tid, _, _ in purge_due(owner_url)]
    assert other_tenant.id in purged
    assert tenant_row_counts(owner_engine, other_tenant.id)["iam.api_keys"] == 0


def test_a_tenant_within_its_grace_is_not_purged_without_only(
    client: Any, ops_headers: dict[str, str], tenant: TenantHandle, owner_url: str
) -> None:
    client.delete(f"/ops/v1/tenants/{tenant.id}", headers=ops_headers)
    assert tenant.id not in [tid for tid, _, _ in purge_due(owner_url)]
    r = client.post(f"/ops/v1/tenants/{tenant.id}/restore", headers=ops_headers)
    assert r.status_code == 200
    assert client.get("/api/v1/me", headers=tenant.headers).status_code == 200
