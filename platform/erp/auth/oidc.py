"""OpenID Connect with Authlib's Flask client: discovery, the authorization code flow
with PKCE (S256), state and nonce, ID-token validation, userinfo, RP-initiated logout.

The flow's secrets (state, nonce, PKCE verifier) wait between the redirect and the
callback in a short-lived cookie encrypted with the SecretBox (Fernet: authenticated),
never in a server-side store, so sign-in needs neither Redis nor a pre-tenant table.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.flask_client import FlaskIntegration, FlaskOAuth2App
from joserfc.errors import JoseError

from erp.auth.services import ConnectionConfig
from erp.secretbox import SecretBoxError, current_box

FLOW_COOKIE = "erp_auth_flow"
FLOW_TTL_SECONDS = 600
HTTP_TIMEOUT = 10
_lock = threading.Lock()
_clients: dict[tuple[str, str, str], FlaskOAuth2App] = {}


class SignInError(Exception):
    """The provider's answer did not hold; `reason` names why (audited, shown)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


#: What a provider, the network or a token can raise while we talk to it.
PROVIDER_ERRORS = (AuthlibBaseError, JoseError, requests.RequestException, ValueError, KeyError)


def client(conn: ConnectionConfig) -> FlaskOAuth2App:
    """One Authlib client per (issuer, client id, secret), its discovery cached."""
    secret_digest = hashlib.sha256(conn.client_secret.encode()).hexdigest()
    key = (conn.issuer, conn.client_id, secret_digest)
    with _lock:
        found = _clients.get(key)
        if found is None:
            name = f"oidc-{hashlib.sha256(repr(key).encode()).hexdigest()[:16]}"
            found = FlaskOAuth2App(
                FlaskIntegration(name),
                name=name,
                client_id=conn.client_id,
                client_secret=conn.client_secret,
                server_metadata_url=conn.issuer.rstrip("/") + "/.well-known/openid-configuration",
                client_kwargs={
                    "scope": "openid email profile",
                    "code_challenge_method": "S256",
                    "timeout": HTTP_TIMEOUT,
                },
            )
            _clients[key] = found
    return found


def metadata(conn: ConnectionConfig) -> dict[str, Any]:
    """The provider's discovery document; its `issuer` must be the configured one."""
    meta: dict[str, Any] = client(conn).load_server_metadata()
    if str(meta.get("issuer", "")).rstrip("/") != conn.issuer.rstrip("/"):
        raise SignInError("discovery", "The provider's metadata names another issuer.")
    return meta


@dataclass(frozen=True)
class Flow:
    state: str
    nonce: str
    verifier: str
    tenant_id: str
    connection: str  # the tenant connection's id, or "platform"
    redirect_uri: str
    invitation: str | None
    expires: float


def begin(
    conn: ConnectionConfig, tenant_id: str, redirect_uri: str, invitation: str | None
) -> tuple[str, str]:
    """(the provider's authorization URL, the flow cookie's value)."""
    metadata(conn)
    rv = client(conn).create_authorization_url(redirect_uri)
    flow = Flow(
        state=rv["state"],
        nonce=rv["nonce"],
        verifier=rv["code_verifier"],
        tenant_id=tenant_id,
        connection=str(conn.id) if conn.id else "platform",
        redirect_uri=redirect_uri,
        invitation=invitation,
        expires=time.time() + FLOW_TTL_SECONDS,
    )
    return str(rv["url"]), current_box().encrypt(json.dumps(flow.__dict__))


def read_flow(cookie: str | None) -> Flow:
    if not cookie or len(cookie) > 4000:
        raise SignInError("flow-missing", "The sign-in was not started here, or took too long.")
    try:
        flow = Flow(**json.loads(current_box().decrypt(cookie)))
    except (SecretBoxError, ValueError, TypeError) as exc:
        raise SignInError("flow-invalid", "The sign-in state is not valid.") from exc
    if flow.expires < time.time():
        raise SignInError("flow-expired", "The sign-in took too long; start again.")
    return flow


@dataclass(frozen=True)
class SignedIn:
    subject: str
    email: str
    name: str
    id_token: str


def finish(conn: ConnectionConfig, flow: Flow, code: str) -> SignedIn:
    """Exchange the code (with the PKCE verifier), validate the ID token (signature,
    issuer, audience, expiry, nonce) and read the email from userinfo."""
    app = client(conn)
    try:
        token = app.fetch_access_token(
            redirect_uri=flow.redirect_uri, code=code, code_verifier=flow.verifier
        )
    except PROVIDER_ERRORS as exc:
        raise SignInError("code", "The provider refused the sign-in code.") from exc
    if "id_token" not in token:
        raise SignInError("id-token", "The provider returned no ID token.")
    claims = validate_id_token(conn, token, flow.nonce)
    try:
        info = app.userinfo(token=token)
    except PROVIDER_ERRORS as exc:
        raise SignInError("userinfo", "The provider's userinfo could not be read.") from exc
    subject = str(claims.get("sub") or "")
    if not subject or str(info.get("sub", "")) != subject:
        raise SignInError("userinfo", "The userinfo answer is for another subject.")
    email = str(info.get("email") or "").strip().lower()
    if not email or "@" not in email or len(email) > 320:
        raise SignInError("email", "The provider gave no email address.")
    if info.get("email_verified") is False:
        raise SignInError("email", "The provider has not verified this email address.")
    name = str(info.get("name") or claims.get("name") or "")[:200]
    return SignedIn(subject, email, name, str(token["id_token"]))


def validate_id_token(conn: ConnectionConfig, token: dict[str, Any], nonce: str) -> Any:
    """The ID token's claims, once its signature (the provider's JWKS), issuer,
    audience (our client id), expiry and nonce hold; else SignInError("id-token")."""
    try:
        return client(conn).parse_id_token(token, nonce=nonce, leeway=60)
    except PROVIDER_ERRORS as exc:
        raise SignInError("id-token", "The ID token is not valid for this sign-in.") from exc


def logout_url(conn: ConnectionConfig, id_token: str | None, post_logout: str) -> str | None:
    """The provider's end-session URL (RP-initiated logout), None if it has none."""
    try:
        meta = metadata(conn)
        if not meta.get("end_session_endpoint"):
            return None
        rv = client(conn).create_logout_url(
            post_logout_redirect_uri=post_logout, id_token_hint=id_token, client_id=conn.client_id
        )
    except (*PROVIDER_ERRORS, SignInError, RuntimeError):
        return None
    return str(rv["url"])
