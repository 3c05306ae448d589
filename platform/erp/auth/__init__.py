"""Sign-in with OpenID Connect: sessions, memberships, roles, invitations, SSO."""

from __future__ import annotations

from erp.registry import Registry


def register(r: Registry) -> None:
    from erp.auth import authn, demo, pages, routes

    # Before the API-key authenticator: a request without a bearer credential may
    # carry a session cookie.
    r.authenticator(authn.authenticate_request)
    r.blueprint(routes.blp)
    r.pages(pages.pages)
    r.demo(demo.seed)
    r.usage_count("members", "SELECT count(*) FROM iam.memberships")
    r.encrypted("iam.sso_connections", "client_secret")
    # policies/auth_definers.sql: sign-in before a tenant is known
    r.catalog(
        definers={
            "app.sign_in_identity(text,text,text,text)": "erp_auth",
            "app.sign_in_tenant(text,text)": "erp_auth",
            "app.identity_memberships(uuid)": "erp_auth",
            "app.lookup_session(text)": "erp_auth",
            "app.record_sign_in_failure(text,uuid,jsonb)": "erp_auth",
        }
    )
