"""Sign-in settings are checked at start-up; the session cookie's flags; the
development-only sign-in exists only in development."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from erp import create_app
from erp.auth import authn
from erp.config import Settings, SettingsError
from tests.conftest import AppFactory, TenantHandle

OIDC = {
    "OIDC_ISSUER": "https://idp.example.com",
    "OIDC_CLIENT_ID": "erp",
    "OIDC_CLIENT_SECRET": "s",
}


def test_the_default_connection_is_all_three_or_none() -> None:
    assert Settings.from_env(OIDC).oidc_client_id == "erp"
    assert Settings.from_env({}).oidc_issuer is None
    with pytest.raises(SettingsError, match="OIDC_CLIENT_SECRET: required"):
        Settings.from_env({k: v for k, v in OIDC.items() if k != "OIDC_CLIENT_SECRET"})
    with pytest.raises(SettingsError, match="OIDC_ISSUER: expected an https:// URL"):
        Settings.from_env({**OIDC, "OIDC_ISSUER": "http://idp.example.com"})
    dev = Settings.from_env(
        {**OIDC, "OIDC_ISSUER": "http://127.0.0.1:9", "ENVIRONMENT": "development"}
    )
    assert dev.development
    with pytest.raises(SettingsError, match="OIDC_ISSUER: expected a URL"):
        Settings.from_env({**OIDC, "OIDC_ISSUER": "idp.example.com"})
    with pytest.raises(SettingsError, match="ENVIRONMENT: expected one of"):
        Settings.from_env({"ENVIRONMENT": "staging"})
    with pytest.raises(SettingsError, match="SMTP_URL: expected a URL"):
        Settings.from_env({"SMTP_URL": "http://mail"})
    assert Settings.from_env({"SMTP_URL": "smtps://u:p@mail:465"}).smtp_url


def test_the_dev_sign_in_refuses_production_settings(settings: Settings) -> None:
    with pytest.raises(SettingsError, match="DEV_SIGN_IN"):
        Settings.from_env({"DEV_SIGN_IN": "true"})
    with pytest.raises(SettingsError, match="DEV_SIGN_IN"):
        create_app(settings.replace(dev_sign_in=True))  # built in code: refused all the same


def test_the_cookie_is_secure_outside_development(make_app: AppFactory) -> None:
    from flask import Response

    for environment, secure in (("production", True), ("development", False)):
        app = make_app(environment=environment)
        with app.test_request_context():
            response = Response()
            authn.set_cookie(response, "token")
            cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=Lax" in cookie
        assert ("Secure" in cookie) is secure
        assert "Path=/" in cookie


def test_dev_sign_in_is_absent_in_production(client: Any) -> None:
    r = client.get("/auth/dev-login?tenant=demo&go=1")
    assert r.status_code == 404


def test_dev_sign_in_in_development(make_app: AppFactory, tenant: TenantHandle) -> None:
    app = make_app(environment="development", dev_sign_in=True)
    c = app.test_client()
    assert "Development" in c.get("/auth/dev-login").get_data(as_text=True)
    email = f"dev-{uuid.uuid4().hex[:6]}@example.com"
    r = c.get(f"/auth/dev-login?tenant={tenant.slug}&email={email}&go=1")
    assert r.status_code == 302
    assert r.headers["Location"].endswith("/app/")
    home = c.get("/app/")
    assert email in home.get_data(as_text=True)
    me = c.get("/api/v1/me").get_json()
    assert me["tenant"]["slug"] == tenant.slug
    assert "members:write" in me["scopes"]
    # sign-out without the provider: the session ends, back to the signed-out page
    r = c.post("/auth/logout", data={"csrf_token": me["csrf_token"]})
    assert r.status_code == 303
    assert r.headers["Location"].endswith("/auth/signed-out")
    assert c.get("/api/v1/me").status_code == 401


def test_pages_without_a_session(client: Any) -> None:
    r = client.get("/app/")
    assert r.status_code == 302
    assert r.headers["Location"].endswith("/auth/login")
    choice = client.get("/auth/login")
    assert choice.status_code == 200
    assert 'name="tenant"' in choice.get_data(as_text=True)
    assert choice.headers["Cache-Control"] == "no-store"
    assert client.post("/auth/switch", json={"tenant": "x"}).status_code == 401
    r = client.post("/auth/logout", data={})
    assert r.status_code == 303
    assert client.get("/auth/signed-out").status_code == 200
    r = client.get("/auth/accept?tenant=no-such-tenant&token=abc")
    assert r.status_code == 400
    # a tenant with no connection at all (the session app has no default one)
    assert client.get("/auth/login?email=a@nowhere.example").status_code == 404
    r = client.get("/auth/callback?code=x&state=y")
    assert r.status_code == 400
    assert 'data-reason="flow-missing"' in r.get_data(as_text=True)


def test_no_default_connection_is_a_clear_page(client: Any, tenant: TenantHandle) -> None:
    r = client.get(f"/auth/login?tenant={tenant.slug}")
    assert r.status_code == 503
    assert 'data-reason="no-connection"' in r.get_data(as_text=True)


def test_a_bad_session_cookie_is_401_on_the_api(client: Any, tenant: TenantHandle) -> None:
    client.set_cookie("erp_session", "not-a-session")
    r = client.get("/api/v1/me")
    assert r.status_code == 401
    client.set_cookie("erp_session", "x" * 500)
    assert client.get("/api/v1/me").status_code == 401
    # a bearer credential wins over any cookie
    assert client.get("/api/v1/me", headers=tenant.headers).status_code == 200
