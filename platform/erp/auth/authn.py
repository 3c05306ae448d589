"""The session cookie as a credential: resolved before the request's transaction, like
API keys (DESIGN.md §2), through the `app.lookup_session` definer; CSRF checked on
every state-changing request a session makes."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import current_app, g, request
from werkzeug.wrappers import Response

from erp.auth import services
from erp.auth.roles import scopes_for
from erp.errors import Problem
from erp.principals import Principal, TenantRef

COOKIE = "erp_session"
CSRF_HEADER = "X-CSRF-Token"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
_PATHS = ("/api/v1/", "/app/", "/auth/")


@dataclass(frozen=True)
class CurrentSession:
    row: services.SessionRow
    csrf_token: str


def current_session() -> CurrentSession | None:
    found: CurrentSession | None = g.get("auth_session")
    return found


def acting_role() -> str | None:
    """The caller's role when a member's session calls (None for API keys)."""
    found = current_session()
    return found.row.role if found else None


def _secret_key() -> str:
    return str(current_app.config["ERP_SETTINGS"].secret_key)


def authenticate_request(path: str, authorization: str | None) -> Principal | None:
    """The member behind the session cookie, or None (no cookie, a bearer credential, a
    path sessions do not serve). On /api/v1 an ended session is 401 and a suspended
    tenant 403; a page instead sees no principal and offers the sign-in again."""
    if authorization or not path.startswith(_PATHS):
        return None
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 100:
        return None
    api = path.startswith("/api/")
    row = services.lookup_session(token)
    if row is None or row.expires_at <= datetime.now(UTC):
        if api:
            raise Problem("unauthorized", "The session has ended; sign in again.")
        return None
    if row.tenant_status != "active":
        g.auth_refused = row.tenant_status
        if api:
            raise Problem(
                "tenant-suspended", f"The tenant is {row.tenant_status}; its sessions do not work."
            )
        return None
    csrf = services.csrf_token(_secret_key(), row.session_id)
    if request.method not in _SAFE:
        sent = request.headers.get(CSRF_HEADER)
        if sent is None and request.mimetype == "application/x-www-form-urlencoded":
            sent = request.form.get("csrf_token")
        if not sent or not hmac.compare_digest(sent.encode(), csrf.encode()):
            raise Problem("forbidden", f"A valid {CSRF_HEADER} is required with a session.")
    g.auth_session = CurrentSession(row, csrf)
    g.csrf_token = csrf
    return Principal(
        kind="user",
        id=row.member_id,
        label=row.email,
        tenant=TenantRef(row.tenant_id, row.tenant_slug, row.tenant_name),
        scopes=scopes_for(row.role),
    )


def set_cookie(response: Response, token: str) -> None:
    settings = current_app.config["ERP_SETTINGS"]
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(services.SESSION_TTL.total_seconds()),
        httponly=True,
        samesite="Lax",
        secure=not settings.development,
        path="/",
    )


def clear_cookie(response: Response) -> None:
    settings = current_app.config["ERP_SETTINGS"]
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="Lax", secure=not settings.development
    )
