"""The few server-rendered pages of sign-in: the choice, the OIDC redirect and callback,
switch, sign-out, the home page at /app/, accepting an invitation, and the
development-only sign-in. Failures are HTML pages and audit events, never a session."""

from __future__ import annotations

import hmac
import uuid
from typing import Any

from flask import Blueprint, current_app, g, redirect, render_template_string, request, url_for
from werkzeug.wrappers import Response

from erp.auth import authn, oidc, services
from erp.auth.models import Membership, SignInSession
from erp.auth.roles import scopes_for
from erp.errors import Problem
from erp.extensions import db

pages = Blueprint("auth_pages", __name__)

DEV_ISSUER = "urn:erp:dev-sign-in"
_SLUG_MAX = 63

_LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }} · ERP</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main>
<h1>{{ title }}</h1>
{% block body %}{% endblock %}
</main></body></html>"""

_CHOICE = """{% extends layout %}{% block body %}
<p>Sign in to your company's workspace.</p>
<form method="get" action="{{ url_for('auth_pages.login') }}">
  <label>Workspace <input name="tenant" maxlength="63" placeholder="acme"></label>
  <button type="submit">Continue</button>
</form>
<p>or</p>
<form method="get" action="{{ url_for('auth_pages.login') }}">
  <label>Work email <input name="email" type="email" maxlength="320"></label>
  <button type="submit">Continue</button>
</form>
{% if dev %}
<p><a href="{{ url_for('auth_pages.dev_login') }}">Development sign-in</a></p>
{% endif %}
{% endblock %}"""

_ERROR = """{% extends layout %}{% block body %}
<p id="reason" data-reason="{{ reason }}">{{ detail }}</p>
<p><a href="{{ url_for('auth_pages.login') }}">Sign in again</a></p>
{% endblock %}"""

_HOME = """{% extends layout %}{% block body %}
<dl>
  <dt>Signed in as</dt><dd id="email">{{ s.email }}</dd>
  <dt>Workspace</dt><dd id="tenant">{{ s.tenant_name }} ({{ s.tenant_slug }})</dd>
  <dt>Role</dt><dd id="role">{{ s.role }}</dd>
  <dt>Scopes</dt><dd>{{ scopes|join(", ") }}</dd>
</dl>
{% if others %}<h2>Switch workspace</h2>
{% for m in others %}
<form method="post" action="{{ url_for('auth_pages.switch') }}">
  <input type="hidden" name="csrf_token" value="{{ csrf }}">
  <input type="hidden" name="tenant" value="{{ m.slug }}">
  <button type="submit">{{ m.name }} ({{ m.slug }}, {{ m.role }})</button>
</form>
{% endfor %}{% endif %}
<form method="post" action="{{ url_for('auth_pages.logout') }}">
  <input type="hidden" name="csrf_token" value="{{ csrf }}">
  <button type="submit">Sign out</button>
</form>
{% endblock %}"""

_ACCEPT = """{% extends layout %}{% block body %}
<p>You were invited to <strong>{{ tenant.name }}</strong>. Sign in to accept.</p>
<p><a id="accept" href="{{ url_for('auth_pages.login', tenant=tenant.slug, invitation=token) }}">
Sign in and accept</a></p>
{% endblock %}"""

_SIGNED_OUT = """{% extends layout %}{% block body %}
<p>You are signed out.</p><p><a href="{{ url_for('auth_pages.login') }}">Sign in</a></p>
{% endblock %}"""

_DEV = """{% extends layout %}{% block body %}
<p>Development only: sign in without an identity provider.</p>
<form method="get" action="{{ url_for('auth_pages.dev_login') }}">
  <label>Workspace <input name="tenant" value="{{ tenant }}" maxlength="63"></label>
  <label>Email <input name="email" value="{{ email }}" maxlength="320"></label>
  <input type="hidden" name="go" value="1">
  <button type="submit">Sign in</button>
</form>
{% endblock %}"""


def _page(body: str, title: str, status: int = 200, **ctx: Any) -> Response:
    html = render_template_string(
        body, layout=current_app.jinja_env.from_string(_LAYOUT), title=title, **ctx
    )
    response = Response(html, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = "default-src 'none'; form-action *"
    response.headers["X-Frame-Options"] = "DENY"
    return response


def _settings() -> Any:
    return current_app.config["ERP_SETTINGS"]


def _secure() -> bool:
    return not _settings().development


_FAILURES = {
    "tenant-unknown": (404, "No workspace matches what you entered."),
    "tenant-suspended": (403, "This workspace is suspended."),
    "no-connection": (503, "Sign-in is not configured for this workspace."),
    "provider-unavailable": (502, "The identity provider could not be reached."),
    "not-a-member": (
        403,
        "You are not a member of this workspace. Ask an admin for an invitation.",
    ),
    "invitation-unknown": (400, "This invitation link is not valid."),
    "invitation-expired": (400, "This invitation has expired. Ask for a new one."),
    "invitation-used": (400, "This invitation has already been used."),
    "invitation-email": (403, "This invitation was sent to another email address."),
    "email-domain": (403, "Your email address is not allowed for this workspace."),
}


def _fail(reason: str, tenant_id: uuid.UUID | None, detail: str = "", **audit: Any) -> Response:
    """A sign-in refused: an audit event for operators, a clear page, no session."""
    status, default = _FAILURES.get(reason, (400, "The sign-in could not be completed."))
    services.record_failure(reason, tenant_id, request_id=g.get("request_id"), **audit)
    response = _page(_ERROR, "Sign-in failed", status, reason=reason, detail=detail or default)
    response.delete_cookie(oidc.FLOW_COOKIE, path="/auth/", secure=_secure(), httponly=True)
    return response


def _platform_connection() -> services.ConnectionConfig | None:
    st = _settings()
    if not (st.oidc_issuer and st.oidc_client_id and st.oidc_client_secret):
        return None
    return services.ConnectionConfig(
        None, st.oidc_issuer.rstrip("/"), st.oidc_client_id, st.oidc_client_secret
    )


def _connection(tenant_id: uuid.UUID) -> services.ConnectionConfig | None:
    """The tenant's own connection (read in the tenant), else the platform's default."""
    own = db.unit_of_work(services.connection_config, tenant=tenant_id)
    return own or _platform_connection()


def _arg(name: str, limit: int) -> str | None:
    value = request.args.get(name, "").strip()
    return value[:limit] if value else None


@pages.get("/auth/login")
def login() -> Response:
    slug, email = _arg("tenant", _SLUG_MAX + 1), _arg("email", 321)
    invitation = _arg("invitation", 100)
    if not slug and not email:
        return _page(_CHOICE, "Sign in", dev=_settings().dev_sign_in)
    choice = services.find_tenant(slug, email)
    if choice is None:
        return _fail("tenant-unknown", None, slug=slug, email_domain=email and email[-100:])
    if choice.status != "active":
        return _fail("tenant-suspended", choice.id)
    conn = _connection(choice.id)
    if conn is None:
        return _fail("no-connection", choice.id)
    try:
        url, flow = oidc.begin(
            conn, str(choice.id), url_for(".callback", _external=True), invitation
        )
    except (*oidc.PROVIDER_ERRORS, oidc.SignInError) as exc:
        return _fail("provider-unavailable", choice.id, error=type(exc).__name__)
    response = redirect(url, 302)
    response.set_cookie(
        oidc.FLOW_COOKIE,
        flow,
        max_age=oidc.FLOW_TTL_SECONDS,
        httponly=True,
        samesite="Lax",
        secure=_secure(),
        path="/auth/",
    )
    return response


@pages.get("/auth/callback")
def callback() -> Response:
    tenant_id: uuid.UUID | None = None
    try:
        flow = oidc.read_flow(request.cookies.get(oidc.FLOW_COOKIE))
        tenant_id = uuid.UUID(flow.tenant_id)
        if request.args.get("error"):
            raise oidc.SignInError("provider-error", "The identity provider refused the sign-in.")
        state = request.args.get("state", "")
        if not hmac.compare_digest(state.encode(), flow.state.encode()):
            raise oidc.SignInError("state", "The sign-in state does not match; start again.")
        code = request.args.get("code", "")
        if not code or len(code) > 2000:
            raise oidc.SignInError("code", "The provider sent no sign-in code.")
        conn = _connection(tenant_id)
        if conn is None or (str(conn.id) if conn.id else "platform") != flow.connection:
            raise oidc.SignInError("connection-changed", "The workspace's sign-in changed.")
        iss = request.args.get("iss")  # RFC 9207: which provider answered (mix-up defence)
        if iss is not None and iss.rstrip("/") != conn.issuer.rstrip("/"):
            raise oidc.SignInError("issuer", "Another identity provider answered.")
        who = oidc.finish(conn, flow, code)
        if conn.allowed_domains and services.email_domain(who.email) not in conn.allowed_domains:
            raise oidc.SignInError("email-domain", "")
        identity = services.sign_in_identity(conn.issuer, who.subject, who.email, who.name)
        entered = db.unit_of_work(
            lambda s: _enter(s, identity, who, flow.invitation, conn.issuer), tenant=tenant_id
        )
        ok, token = entered
        if not ok:
            raise oidc.SignInError(token, "")
    except oidc.SignInError as exc:
        return _fail(exc.reason, tenant_id, exc.detail)
    _end_previous_session()
    response = redirect(url_for(".home"), 302)
    response.delete_cookie(oidc.FLOW_COOKIE, path="/auth/", secure=_secure(), httponly=True)
    authn.set_cookie(response, token)
    return response


def _enter(
    s: Any, identity: uuid.UUID, who: oidc.SignedIn, invitation: str | None, issuer: str
) -> tuple[bool, str]:
    """(True, the new session's token), or (False, the reason there is none)."""
    member = services.member_by_identity(s, identity)
    if invitation and member is None:
        accepted = services.accept_invitation(s, invitation, identity, who.email, who.name)
        if isinstance(accepted, str):
            return False, accepted
        member = accepted
    if member is None:
        return False, "not-a-member"
    member.email, member.name = who.email, who.name
    _, token = services.start_session(s, member, issuer, who.id_token)
    return True, token


def _end_previous_session() -> None:
    """Rotation: a sign-in replaces whatever session the browser had."""
    current = authn.current_session()
    if current is None:
        token = request.cookies.get(authn.COOKIE)
        row = services.lookup_session(token) if token and len(token) <= 100 else None
        if row is None:
            return
        tenant, session_id = row.tenant_id, row.session_id
    else:
        tenant, session_id = current.row.tenant_id, current.row.session_id
    db.unit_of_work(lambda s: services.end_session(s, session_id), tenant=tenant)


@pages.get("/app/")
def home() -> Response:
    current = authn.current_session()
    if current is None:
        refused = g.get("auth_refused")
        if refused:
            return _page(
                _ERROR,
                "Workspace unavailable",
                403,
                reason="tenant-suspended",
                detail=f"This workspace is {refused}; its sessions do not work.",
            )
        return redirect(url_for(".login"), 302)
    others = [
        m
        for m in services.memberships_of(current.row.identity_id)
        if m.tenant_id != current.row.tenant_id and m.status == "active"
    ]
    return _page(
        _HOME,
        "Home",
        s=current.row,
        scopes=sorted(scopes_for(current.row.role)),
        others=others,
        csrf=current.csrf_token,
    )


def _form_or_json(name: str) -> str:
    if request.mimetype == "application/x-www-form-urlencoded":
        value = request.form.get(name, "")
    else:
        from erp.inputs import json_body

        body = json_body() if request.get_data(cache=True) else {}
        value = body.get(name, "") if isinstance(body, dict) else ""
    if not isinstance(value, str) or not value or len(value) > _SLUG_MAX:
        raise Problem("validation", errors={name: ["Missing or not a workspace slug."]})
    return value


@pages.post("/auth/switch")
def switch() -> Response:
    current = authn.current_session()
    if current is None:
        raise Problem("unauthorized", "Sign in first.")
    slug = _form_or_json("tenant")
    choice = services.find_tenant(slug)
    memberships = services.memberships_of(current.row.identity_id)
    target = next((m for m in memberships if choice and m.tenant_id == choice.id), None)
    if choice is None or target is None:
        raise Problem("forbidden", "You are not a member of that workspace.")
    if choice.status != "active":
        raise Problem("tenant-suspended", f"The tenant is {choice.status}.")
    old = db.session.get(SignInSession, current.row.session_id)
    platform = _platform_connection()
    if (
        choice.connection_id is not None
        or old is None
        or platform is None
        or (platform.issuer != old.issuer)
    ):
        # That workspace signs in through its own connection: its sign-in first.
        return redirect(url_for(".login", tenant=choice.slug), 302)
    issuer, id_token = old.issuer, old.id_token

    def enter(s: Any) -> str:
        member = s.get(Membership, target.member_id)
        if member is None:
            raise Problem("forbidden", "You are not a member of that workspace.")
        return services.start_session(s, member, issuer, id_token)[1]

    token = db.unit_of_work(enter, tenant=choice.id)
    services.end_session(db.session, current.row.session_id)
    response = redirect(url_for(".home"), 303)
    authn.set_cookie(response, token)
    return response


@pages.post("/auth/logout")
def logout() -> Response:
    current = authn.current_session()
    target = url_for(".signed_out", _external=True)
    if current is not None:
        row = services.end_session(db.session, current.row.session_id)
        conn = services.connection_config(db.session) or _platform_connection()
        if row is not None and conn is not None and conn.issuer == row.issuer:
            target = oidc.logout_url(conn, row.id_token, target) or target
    response = redirect(target, 303)
    authn.clear_cookie(response)
    return response


@pages.get("/auth/signed-out")
def signed_out() -> Response:
    return _page(_SIGNED_OUT, "Signed out")


@pages.get("/auth/accept")
def accept() -> Response:
    slug, token = _arg("tenant", _SLUG_MAX + 1), _arg("token", 100)
    choice = services.find_tenant(slug) if slug else None
    if choice is None or not token:
        return _fail("invitation-unknown", None)
    return _page(_ACCEPT, "Invitation", tenant=choice, token=token)


@pages.get("/auth/dev-login")
def dev_login() -> Response:
    """Development only (DEV_SIGN_IN, refused outside ENVIRONMENT=development): sign in
    to a workspace as an owner, without an identity provider."""
    if not _settings().dev_sign_in:
        raise Problem("not-found")
    slug = _arg("tenant", _SLUG_MAX + 1) or "demo"
    email = (_arg("email", 320) or "dev@example.com").lower()
    if not request.args.get("go"):
        return _page(_DEV, "Development sign-in", tenant=slug, email=email)
    choice = services.find_tenant(slug)
    if choice is None or choice.status != "active" or "@" not in email:
        return _fail("tenant-unknown", None, slug=slug)
    identity = services.sign_in_identity(DEV_ISSUER, email, email, email.partition("@")[0])

    def enter(s: Any) -> str:
        member = services.add_member(s, identity, email, email.partition("@")[0], "owner")
        return services.start_session(s, member, DEV_ISSUER, None)[1]

    token = db.unit_of_work(enter, tenant=choice.id)
    _end_previous_session()
    response = redirect(url_for(".home"), 302)
    authn.set_cookie(response, token)
    return response
