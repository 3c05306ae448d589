"""The sign-in definers (policies/auth_definers.sql), attacked one by one as erp_app:
each answers only what its step needs, runs for erp_app only, with a pinned
search_path (the catalog audit checks the pin and the grants for all of them)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from erp.auth import services
from erp.db import sqlstate
from tests.conftest import TenantHandle

DEFINERS = [
    "app.sign_in_identity(text,text,text,text)",
    "app.sign_in_tenant(text,text)",
    "app.identity_memberships(uuid)",
    "app.lookup_session(text)",
    "app.record_sign_in_failure(text,uuid,jsonb)",
]


def _rows(engine: Engine, sql: str, **params: Any) -> list[Any]:
    with engine.connect() as conn:
        rows = list(conn.execute(text(sql), params))
        conn.rollback()
    return rows


@pytest.mark.parametrize("fn", DEFINERS)
def test_only_erp_app_executes_it(owner_engine: Engine, fn: str) -> None:
    with owner_engine.connect() as conn:
        assert conn.execute(
            text("SELECT has_function_privilege('erp_app', :f, 'EXECUTE')"), {"f": fn}
        ).scalar()
        assert not conn.execute(
            text("SELECT has_function_privilege('erp_ops', :f, 'EXECUTE')"), {"f": fn}
        ).scalar()
        owner, secdef = conn.execute(
            text(
                "SELECT pg_get_userbyid(proowner), prosecdef FROM pg_proc "
                "WHERE oid = CAST(:f AS regprocedure)"
            ),
            {"f": fn},
        ).one()
    assert (owner, secdef) == ("erp_auth", True)


def test_sign_in_tenant_by_slug_and_by_domain_only_when_unambiguous(
    app_engine: Engine, client: Any, tenant: TenantHandle, other_tenant: TenantHandle
) -> None:
    row = _rows(app_engine, "SELECT * FROM app.sign_in_tenant(:s, NULL)", s=tenant.slug)
    assert [(r.tenant_id, r.connection_id) for r in row] == [(tenant.id, None)]
    domain = f"{uuid.uuid4().hex[:8]}.example"
    body = {"issuer": "https://i.example", "client_id": "c", "client_secret": "s"}
    for t in (tenant, other_tenant):
        r = client.put(
            "/api/v1/sso-connection", json={**body, "allowed_domains": [domain]}, headers=t.headers
        )
        assert r.status_code == 200
    # two tenants claim the domain: no answer rather than a guess
    assert _rows(app_engine, "SELECT * FROM app.sign_in_tenant(NULL, :d)", d=domain) == []
    client.delete("/api/v1/sso-connection", headers=other_tenant.headers)
    rows = _rows(app_engine, "SELECT * FROM app.sign_in_tenant(NULL, :d)", d=domain.upper())
    assert [r.tenant_id for r in rows] == [tenant.id]
    assert rows[0].connection_id is not None
    assert _rows(app_engine, "SELECT * FROM app.sign_in_tenant(NULL, 'nope.example')") == []
    assert _rows(app_engine, "SELECT * FROM app.sign_in_tenant('no-such', NULL)") == []


def test_lookup_session_answers_a_matching_hash_only(
    app: Any, app_engine: Engine, tenant: TenantHandle
) -> None:
    from erp.extensions import db

    with app.app_context():
        identity = services.sign_in_identity("https://d.example", "sub", "d@d.example", "")

        def start(s: Any) -> str:
            member = services.add_member(s, identity, "d@d.example", "", "viewer")
            return services.start_session(s, member, "https://d.example", None)[1]

        token = db.unit_of_work(start, tenant=tenant.id)
    rows = _rows(app_engine, "SELECT * FROM app.lookup_session(:h)", h=services.token_hash(token))
    assert [(r.tenant_id, r.role, r.identity_id) for r in rows] == [(tenant.id, "viewer", identity)]
    for other in (services.token_hash(token + "x"), "", "%", None):
        assert _rows(app_engine, "SELECT * FROM app.lookup_session(:h)", h=other) == []
    # the same identity, found again (email follows the provider), lists its memberships
    with app.app_context():
        again = services.sign_in_identity("https://d.example", "sub", "D2@d.example", "D")
    assert again == identity
    rows = _rows(app_engine, "SELECT * FROM app.identity_memberships(:i)", i=identity)
    assert [(r.tenant_id, r.role) for r in rows] == [(tenant.id, "viewer")]
    assert _rows(app_engine, "SELECT * FROM app.identity_memberships(:i)", i=uuid.uuid4()) == []


def test_erp_app_cannot_read_or_write_identities_directly(app_engine: Engine) -> None:
    for sql in (
        "SELECT * FROM platform.identities",
        "INSERT INTO platform.identities (id, issuer, subject, email) "
        "VALUES (gen_random_uuid(), 'i', 's', 'e@x.example')",
    ):
        with app_engine.connect() as conn, pytest.raises(DBAPIError) as caught:
            conn.execute(text(sql))
        assert sqlstate(caught.value) == "42501"


def test_record_sign_in_failure_writes_one_operator_audit_event(
    app_engine: Engine, owner_engine: Engine, tenant: TenantHandle
) -> None:
    marker = uuid.uuid4().hex
    with app_engine.begin() as conn:
        conn.execute(
            text("SELECT app.record_sign_in_failure('state', :t, CAST(:d AS jsonb))"),
            {"t": tenant.id, "d": f'{{"marker": "{marker}"}}'},
        )
    rows = _rows(
        owner_engine,
        "SELECT actor, action, tenant_slug, details FROM platform.audit_events "
        "WHERE details->>'marker' = :m",
        m=marker,
    )
    assert [(r.actor, r.action, r.tenant_slug, r.details["reason"]) for r in rows] == [
        ("anonymous:sign-in", "auth.sign_in_failed", tenant.slug, "state")
    ]
