"""Members, invitations and the SSO connection through /api/v1 (API.md, Sign-in and
members), as an API key with every scope and as members of each role."""

from __future__ import annotations

import uuid
from typing import Any

import requests
from sqlalchemy import Engine, text

from tests.auth.conftest import Site, member, sign_in
from tests.auth.test_signin import _reason
from tests.conftest import TenantHandle


def test_list_change_and_remove_members(client: Any, tenant_a: TenantHandle, site: Site) -> None:
    owner = member(site, tenant_a.id, f"o-{uuid.uuid4().hex[:6]}@a.example", "owner")
    viewer = member(site, tenant_a.id, f"v-{uuid.uuid4().hex[:6]}@a.example", "viewer")
    r = client.get("/api/v1/members", headers=tenant_a.headers)
    assert r.status_code == 200
    items = r.get_json()["items"]
    assert {i["id"] for i in items} == {str(owner), str(viewer)}
    assert set(items[0]) == {"id", "email", "name", "role", "created_at", "last_seen_at"}
    r = client.patch(f"/api/v1/members/{viewer}", json={"role": "sales"}, headers=tenant_a.headers)
    assert r.status_code == 200
    assert r.get_json()["role"] == "sales"
    r = client.patch(f"/api/v1/members/{viewer}", json={"role": "boss"}, headers=tenant_a.headers)
    assert r.status_code == 422
    assert "role" in r.get_json()["errors"]
    r = client.patch(
        f"/api/v1/members/{uuid.uuid4()}", json={"role": "sales"}, headers=tenant_a.headers
    )
    assert r.status_code == 404
    r = client.patch("/api/v1/members/nope", json={"role": "sales"}, headers=tenant_a.headers)
    assert r.status_code == 422
    assert "member_id" in r.get_json()["errors"]
    # only an owner changes owners: an API key (no role) cannot
    r = client.patch(f"/api/v1/members/{owner}", json={"role": "admin"}, headers=tenant_a.headers)
    assert r.status_code == 403
    r = client.patch(f"/api/v1/members/{viewer}", json={"role": "owner"}, headers=tenant_a.headers)
    assert r.status_code == 403
    r = client.delete(f"/api/v1/members/{viewer}", headers=tenant_a.headers)
    assert r.status_code == 204
    assert client.delete(f"/api/v1/members/{viewer}", headers=tenant_a.headers).status_code == 404


def test_owner_rules_for_a_signed_in_owner_and_admin(
    site: Site, tenant_a: TenantHandle, http: requests.Session
) -> None:
    email = f"own-{uuid.uuid4().hex[:6]}@a.example"
    me = member(site, tenant_a.id, email, "owner")
    admin_email = f"adm-{uuid.uuid4().hex[:6]}@a.example"
    admin = member(site, tenant_a.id, admin_email, "admin")
    sign_in(site, http, f"tenant={tenant_a.slug}", email)
    csrf = {"X-CSRF-Token": http.get(f"{site.base}/api/v1/me").json()["csrf_token"]}
    # the last owner is neither demoted nor removed
    r = http.patch(f"{site.base}/api/v1/members/{me}", json={"role": "admin"}, headers=csrf)
    assert r.status_code == 409
    assert r.json()["type"].endswith("conflict")
    assert http.delete(f"{site.base}/api/v1/members/{me}", headers=csrf).status_code == 409
    # an owner makes another owner; then stepping down is fine
    r = http.patch(f"{site.base}/api/v1/members/{admin}", json={"role": "owner"}, headers=csrf)
    assert r.status_code == 200
    r = http.patch(f"{site.base}/api/v1/members/{me}", json={"role": "admin"}, headers=csrf)
    assert r.status_code == 200
    # now an admin: owners are out of reach, inviting an owner too
    r = http.patch(f"{site.base}/api/v1/members/{admin}", json={"role": "viewer"}, headers=csrf)
    assert r.status_code == 403
    r = http.post(
        f"{site.base}/api/v1/invitations",
        json={"email": "x@a.example", "role": "owner"},
        headers=csrf,
    )
    assert r.status_code == 403


def test_invitation_accepted_at_first_sign_in_once(
    site: Site, tenant_a: TenantHandle, client: Any, owner_engine: Engine
) -> None:
    email = f"new-{uuid.uuid4().hex[:6]}@a.example"
    r = client.post(
        "/api/v1/invitations",
        json={"email": email, "role": "sales"},
        headers={**tenant_a.headers, "Idempotency-Key": f"inv-{email}"},
    )
    assert r.status_code == 201, r.get_json()
    inv = r.get_json()
    assert set(inv) == {
        "id",
        "email",
        "role",
        "expires_at",
        "created_at",
        "url",
        "accepted_at",
        "created_by",
    }
    assert inv["url"].startswith("http://localhost/auth/accept?tenant=")
    # the url is shown once: a replay returns the body without it
    again = client.post(
        "/api/v1/invitations",
        json={"email": email, "role": "sales"},
        headers={**tenant_a.headers, "Idempotency-Key": f"inv-{email}"},
    )
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert "url" not in again.get_json()
    listed = client.get("/api/v1/invitations", headers=tenant_a.headers).get_json()["items"]
    assert [i["id"] for i in listed] == [inv["id"]]
    assert "url" not in listed[0]
    accept = inv["url"].replace("http://localhost", site.base)
    with requests.Session() as http:
        page = http.get(accept)
        assert page.status_code == 200
        assert "Sign in and accept" in page.text
        r = sign_in(site, http, accept.split("?", 1)[1].replace("token=", "invitation="), email)
        assert r.url == f"{site.base}/app/", r.text[:300]
        me = http.get(f"{site.base}/api/v1/me").json()
        assert me["tenant"]["id"] == str(tenant_a.id)
        assert "orders:write" in me["scopes"]
    # single use: another person with the same link gets a page, no membership
    with requests.Session() as http:
        query = accept.split("?", 1)[1].replace("token=", "invitation=")
        r = sign_in(site, http, query, email.replace("new-", "other-"))
        assert r.status_code == 400
        assert _reason(r) == "invitation-used"
        assert "erp_session" not in http.cookies
    # an expired invitation, and one for another email address
    late = client.post(
        "/api/v1/invitations",
        json={"email": "late@a.example", "role": "viewer"},
        headers=tenant_a.headers,
    ).get_json()
    with owner_engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE iam.invitations SET expires_at = now() - interval '1 second' WHERE id = :i"
            ),
            {"i": late["id"]},
        )
    with requests.Session() as http:
        query = late["url"].split("?", 1)[1].replace("token=", "invitation=")
        r = sign_in(site, http, query, "late@a.example")
        assert r.status_code == 400
        assert _reason(r) == "invitation-expired"
    wrong = client.post(
        "/api/v1/invitations",
        json={"email": "right@a.example", "role": "viewer"},
        headers=tenant_a.headers,
    ).get_json()
    with requests.Session() as http:
        query = wrong["url"].split("?", 1)[1].replace("token=", "invitation=")
        r = sign_in(site, http, query, "wrong@a.example")
        assert r.status_code == 403
        assert _reason(r) == "invitation-email"
    # revoked
    r = client.delete(f"/api/v1/invitations/{wrong['id']}", headers=tenant_a.headers)
    assert r.status_code == 204
    assert (
        client.delete(f"/api/v1/invitations/{wrong['id']}", headers=tenant_a.headers).status_code
        == 404
    )


def test_sso_connection_secret_is_encrypted_and_never_shown(
    client: Any, tenant_a: TenantHandle, owner_engine: Engine
) -> None:
    assert client.get("/api/v1/sso-connection", headers=tenant_a.headers).status_code == 404
    body = {
        "issuer": "https://idp.example.com/",
        "client_id": "erp",
        "client_secret": "s3cret-value",
        "allowed_domains": ["Example.COM", "example.org"],
    }
    r = client.put("/api/v1/sso-connection", json=body, headers=tenant_a.headers)
    assert r.status_code == 200
    assert r.get_json() == {
        "issuer": "https://idp.example.com",
        "client_id": "erp",
        "allowed_domains": ["example.com", "example.org"],
    }
    with owner_engine.connect() as conn:
        stored = conn.execute(
            text("SELECT client_secret FROM iam.sso_connections WHERE tenant_id = :t"),
            {"t": tenant_a.id},
        ).scalar_one()
    assert "s3cret" not in stored
    assert stored.startswith("gAAAA")
    assert (
        "client_secret"
        not in client.get("/api/v1/sso-connection", headers=tenant_a.headers).get_json()
    )
    bad = {**body, "allowed_domains": ["not a domain"]}
    r = client.put("/api/v1/sso-connection", json=bad, headers=tenant_a.headers)
    assert r.status_code == 422
    assert "allowed_domains.0" in r.get_json()["errors"]
    r = client.put(
        "/api/v1/sso-connection", json={**body, "issuer": "ftp://x"}, headers=tenant_a.headers
    )
    assert r.status_code == 422
    assert "issuer" in r.get_json()["errors"]
    assert client.delete("/api/v1/sso-connection", headers=tenant_a.headers).status_code == 204
    assert client.get("/api/v1/sso-connection", headers=tenant_a.headers).status_code == 404
    assert client.delete("/api/v1/sso-connection", headers=tenant_a.headers).status_code == 404


def test_members_scopes_are_required(client: Any, ops_headers: dict[str, str]) -> None:
    from tests.conftest import make_tenant

    t = make_tenant(client, ops_headers, scopes=["ledger:read"])
    assert client.get("/api/v1/members", headers=t.headers).status_code == 403
    assert client.get("/api/v1/sso-connection", headers=t.headers).status_code == 403
    r = client.post(
        "/api/v1/invitations", json={"email": "a@b.example", "role": "viewer"}, headers=t.headers
    )
    assert r.status_code == 403
