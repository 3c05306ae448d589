"""Sign-in against a real OpenID provider (oidc-provider on 127.0.0.1), driven by a
requests session through the provider's real login and consent forms."""

from __future__ import annotations

import re
import uuid
from typing import Any

import requests
from sqlalchemy import Engine, text

from tests.auth.conftest import Site, member, sign_in, through_provider
from tests.conftest import TenantHandle

_REASON = re.compile(r'data-reason="([\w-]+)"')


def _reason(r: requests.Response) -> str | None:
    m = _REASON.search(r.text)
    return m.group(1) if m else None


def _me(site: Site, http: requests.Session) -> requests.Response:
    return http.get(f"{site.base}/api/v1/me")


def _failures(owner_engine: Engine, tenant: uuid.UUID | None = None) -> list[str]:
    with owner_engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT details->>'reason' FROM platform.audit_events "
                "WHERE action = 'auth.sign_in_failed' AND (CAST(:t AS uuid) IS NULL "
                "OR tenant_id = CAST(:t AS uuid)) ORDER BY id"
            ),
            {"t": tenant},
        ).scalars()
        return list(rows)


def test_sign_in_lands_in_the_tenant_with_a_session_for_the_api(
    site: Site, http: requests.Session, tenant_a: TenantHandle
) -> None:
    email = f"alice-{uuid.uuid4().hex[:6]}@a.example"
    member_id = member(site, tenant_a.id, email, "accountant")
    r = sign_in(site, http, f"tenant={tenant_a.slug}", email)
    assert r.status_code == 200, r.text[:300]
    assert r.url == f"{site.base}/app/"
    assert email in r.text
    assert tenant_a.slug in r.text
    cookie = next(c for c in r.history if "erp_session=" in c.headers.get("Set-Cookie", ""))
    flags = cookie.headers["Set-Cookie"]
    assert "HttpOnly" in flags
    assert "SameSite=Lax" in flags
    assert "Secure" not in flags
    me = _me(site, http).json()
    assert me["principal"] == {"kind": "user", "id": str(member_id), "name": email}
    assert me["tenant"]["slug"] == tenant_a.slug
    assert "ledger:write" in me["scopes"]
    assert "members:read" not in me["scopes"]
    assert len(me["csrf_token"]) == 64
    accounts = http.get(f"{site.base}/api/v1/ledger/accounts")
    assert accounts.status_code == 200
    assert accounts.json()["items"]


def test_csrf_is_required_on_every_state_changing_call(
    site: Site, http: requests.Session, tenant_a: TenantHandle
) -> None:
    email = f"owner-{uuid.uuid4().hex[:6]}@a.example"
    member_id = member(site, tenant_a.id, email, "owner")
    sign_in(site, http, f"tenant={tenant_a.slug}", email)
    csrf = _me(site, http).json()["csrf_token"]
    body = {"name": "from the console", "scopes": ["ledger:read"]}
    url = f"{site.base}/api/v1/api-keys"
    for headers in (
        {},
        {"X-CSRF-Token": "forged"},
        {"X-CSRF-Token": csrf[:-1] + ("1" if csrf.endswith("0") else "0")},
    ):
        r = http.post(url, json=body, headers=headers)
        assert r.status_code == 403, r.text
        assert r.json()["type"].endswith("forbidden")
    r = http.post(url, json=body, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201, r.text
    # API keys belong to the tenant and say who created them
    assert r.json()["created_by"] == f"user:{member_id}"
    # a sign-out form without its token is refused too
    r = http.post(f"{site.base}/auth/logout", data={"csrf_token": "nope"}, allow_redirects=False)
    assert r.status_code == 403
    assert _me(site, http).status_code == 200


def test_a_viewer_cannot_post(site: Site, http: requests.Session, tenant_a: TenantHandle) -> None:
    email = f"viewer-{uuid.uuid4().hex[:6]}@a.example"
    member(site, tenant_a.id, email, "viewer")
    sign_in(site, http, f"tenant={tenant_a.slug}", email)
    csrf = _me(site, http).json()["csrf_token"]
    assert http.get(f"{site.base}/api/v1/ledger/accounts").status_code == 200
    r = http.post(
        f"{site.base}/api/v1/ledger/accounts",
        json={"code": "9999", "name": "x", "type": "asset", "currency": "USD"},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 403
    assert r.json()["type"].endswith("forbidden")


def test_role_change_applies_next_request_and_removal_ends_sessions(
    site: Site, http: requests.Session, tenant_a: TenantHandle, client: Any
) -> None:
    email = f"bob-{uuid.uuid4().hex[:6]}@a.example"
    member_id = member(site, tenant_a.id, email, "viewer")
    sign_in(site, http, f"tenant={tenant_a.slug}", email)
    assert "ledger:write" not in _me(site, http).json()["scopes"]
    r = client.patch(
        f"/api/v1/members/{member_id}", json={"role": "accountant"}, headers=tenant_a.headers
    )
    assert r.status_code == 200
    assert r.get_json()["role"] == "accountant"
    assert "ledger:write" in _me(site, http).json()["scopes"]
    r = client.delete(f"/api/v1/members/{member_id}", headers=tenant_a.headers)
    assert r.status_code == 204
    r = _me(site, http)
    assert r.status_code == 401
    assert r.json()["type"].endswith("unauthorized")
    # the home page offers the sign-in again
    r = http.get(f"{site.base}/app/", allow_redirects=False)
    assert r.status_code == 302
    assert r.headers["Location"].endswith("/auth/login")


def test_suspending_the_tenant_ends_its_sessions(
    site: Site,
    http: requests.Session,
    tenant_a: TenantHandle,
    client: Any,
    ops_headers: dict[str, str],
) -> None:
    email = f"sue-{uuid.uuid4().hex[:6]}@a.example"
    member(site, tenant_a.id, email, "owner")
    sign_in(site, http, f"tenant={tenant_a.slug}", email)
    assert _me(site, http).status_code == 200
    r = client.post(
        f"/ops/v1/tenants/{tenant_a.id}/suspend", json={"reason": "test"}, headers=ops_headers
    )
    assert r.status_code == 200
    r = _me(site, http)
    assert r.status_code == 403
    assert r.json()["type"].endswith("tenant-suspended")
    assert http.get(f"{site.base}/app/").status_code == 403


def test_switch_between_tenants_of_one_person(
    site: Site,
    http: requests.Session,
    tenant_a: TenantHandle,
    tenant_b: TenantHandle,
    client: Any,
    ops_headers: dict[str, str],
) -> None:
    from tests.conftest import make_tenant

    tenant_c = make_tenant(client, ops_headers)
    stranger = make_tenant(client, ops_headers)
    email = f"multi-{uuid.uuid4().hex[:6]}@a.example"
    member(site, tenant_a.id, email, "owner")
    member(site, tenant_c.id, email, "viewer")
    member(site, tenant_b.id, email, "viewer")
    home = sign_in(site, http, f"tenant={tenant_a.slug}", email)
    assert tenant_c.slug in home.text  # offered on the home page
    old_cookie = http.cookies.get("erp_session")
    csrf = _me(site, http).json()["csrf_token"]
    r = http.post(f"{site.base}/auth/switch", data={"tenant": tenant_c.slug, "csrf_token": csrf})
    assert r.status_code == 200
    assert r.url == f"{site.base}/app/"
    me = _me(site, http).json()
    assert me["tenant"]["slug"] == tenant_c.slug
    assert "ledger:write" not in me["scopes"]
    assert http.cookies.get("erp_session") != old_cookie  # a new session
    stale = requests.get(
        f"{site.base}/api/v1/me", cookies={"erp_session": old_cookie or ""}, timeout=10
    )
    assert stale.status_code == 401
    csrf = me["csrf_token"]
    r = http.post(
        f"{site.base}/auth/switch", json={"tenant": stranger.slug}, headers={"X-CSRF-Token": csrf}
    )
    assert r.status_code == 403
    # a tenant with its own SSO connection: through that provider's sign-in first
    r = http.post(
        f"{site.base}/auth/switch",
        json={"tenant": tenant_b.slug},
        headers={"X-CSRF-Token": csrf},
        allow_redirects=False,
    )
    assert r.status_code == 302
    assert r.headers["Location"].endswith(f"/auth/login?tenant={tenant_b.slug}")


def test_tenant_sso_connection_by_email_domain_and_its_domains(
    site: Site, http: requests.Session, tenant_b: TenantHandle, owner_engine: Engine
) -> None:
    email = f"carol@{tenant_b.slug}.example"
    member(site, tenant_b.id, email, "sales")
    r = http.get(f"{site.base}/auth/login?email={email}", allow_redirects=False)
    assert "client_id=tenant-b" in r.headers["Location"]
    assert "code_challenge_method=S256" in r.headers["Location"]
    assert "nonce=" in r.headers["Location"]
    assert "state=" in r.headers["Location"]
    r = through_provider(http, http.get(r.headers["Location"]), email)
    assert r.url == f"{site.base}/app/"
    assert email in r.text
    assert _me(site, http).json()["tenant"]["slug"] == tenant_b.slug
    # an address outside the connection's domains: a page, no session, an audit event
    with requests.Session() as other:
        outsider = f"dave-{uuid.uuid4().hex[:6]}@elsewhere.example"
        member(site, tenant_b.id, outsider, "sales")
        r = sign_in(site, other, f"tenant={tenant_b.slug}", outsider)
        assert r.status_code == 403
        assert _reason(r) == "email-domain"
        assert "erp_session" not in other.cookies
        assert _me(site, other).status_code == 401
    assert "email-domain" in _failures(owner_engine, tenant_b.id)


def test_not_a_member_unknown_tenant_and_tampered_state(
    site: Site, http: requests.Session, tenant_a: TenantHandle, owner_engine: Engine
) -> None:
    r = sign_in(site, http, f"tenant={tenant_a.slug}", f"nobody-{uuid.uuid4().hex[:6]}@x.example")
    assert r.status_code == 403
    assert _reason(r) == "not-a-member"
    assert "erp_session" not in http.cookies
    r = http.get(f"{site.base}/auth/login?tenant=no-such-tenant-{uuid.uuid4().hex[:6]}")
    assert r.status_code == 404
    assert _reason(r) == "tenant-unknown"
    # tampered state: stop at the callback and change it
    email = f"eve-{uuid.uuid4().hex[:6]}@a.example"
    member(site, tenant_a.id, email, "owner")
    with requests.Session() as s:
        r = s.get(f"{site.base}/auth/login?tenant={tenant_a.slug}")
        back = _to_callback(s, r, email)
        tampered = re.sub(r"state=[^&]+", "state=tampered", back)
        r = s.get(tampered)
        assert r.status_code == 400
        assert _reason(r) == "state"
    # another provider's answer (RFC 9207 `iss`)
    with requests.Session() as s:
        back = _to_callback(s, s.get(f"{site.base}/auth/login?tenant={tenant_a.slug}"), email)
        r = s.get(re.sub(r"iss=[^&]+", "iss=https%3A%2F%2Fevil.example", back))
        assert r.status_code == 400
        assert _reason(r) == "issuer"
        assert "erp_session" not in s.cookies
    # a replayed code: the first use signs in, the second is refused by the provider
    with requests.Session() as s:
        back = _to_callback(s, s.get(f"{site.base}/auth/login?tenant={tenant_a.slug}"), email)
        flow = s.cookies.get("erp_auth_flow", path="/auth/")
        assert s.get(back).url == f"{site.base}/app/"
        s.cookies.set("erp_auth_flow", flow, path="/auth/")
        s.cookies.clear(domain="127.0.0.1", path="/", name="erp_session")
        r = s.get(back)
        assert r.status_code == 400
        assert _reason(r) == "code"
        assert "erp_session" not in s.cookies
    # no flow cookie at all (a callback this browser never started)
    r = requests.get(back, timeout=10)
    assert r.status_code == 400
    assert _reason(r) == "flow-missing"
    reasons = _failures(owner_engine, tenant_a.id)
    assert {"not-a-member", "state", "code"} <= set(reasons)


def _to_callback(s: requests.Session, r: requests.Response, login: str) -> str:
    """Go through the provider's forms but stop at the redirect back to /auth/callback."""
    from tests.auth.conftest import _FORM, _PROMPT

    for _ in range(5):
        form, prompt = _FORM.search(r.text), _PROMPT.search(r.text)
        assert form is not None, r.text[:500]
        assert prompt is not None, r.text[:500]
        data = {"prompt": prompt.group(1)}
        if data["prompt"] == "login":
            data.update(login=login, password="pw")
        from html import unescape
        from urllib.parse import urljoin

        r = s.post(urljoin(r.url, unescape(form.group(1))), data=data, allow_redirects=False)
        while r.is_redirect:
            location = urljoin(r.url, r.headers["Location"])
            if "/auth/callback" in location:
                return location
            r = s.get(location, allow_redirects=False)
    raise AssertionError("the provider never sent the browser back")


def test_sign_out_ends_the_session_and_the_providers(
    site: Site, http: requests.Session, tenant_a: TenantHandle
) -> None:
    email = f"frank-{uuid.uuid4().hex[:6]}@a.example"
    member(site, tenant_a.id, email, "owner")
    sign_in(site, http, f"tenant={tenant_a.slug}", email)
    csrf = _me(site, http).json()["csrf_token"]
    r = http.post(f"{site.base}/auth/logout", data={"csrf_token": csrf}, allow_redirects=False)
    assert r.status_code == 303
    assert r.headers["Location"].startswith(f"{site.idp.issuer}/session/end")
    assert "id_token_hint=" in r.headers["Location"]
    assert _me(site, http).status_code == 401
    # the provider asks to confirm; confirm, and it sends us to our signed-out page
    page = http.get(r.headers["Location"])
    form = re.search(r'<form[^>]*action="([^"]+)"', page.text)
    assert form is not None, page.text[:300]
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page.text))
    from urllib.parse import urljoin

    done = http.post(urljoin(page.url, form.group(1)), data={**fields, "logout": "yes"})
    assert done.url.startswith(f"{site.base}/auth/signed-out?state="), done.url
    # the provider's session ended too: the next sign-in shows its login form again
    r = http.get(f"{site.base}/auth/login?tenant={tenant_a.slug}")
    assert 'name="login"' in r.text
