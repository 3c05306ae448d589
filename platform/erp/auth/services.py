"""The rules of sign-in and membership: sessions, members, invitations, SSO connections.

No Flask here. What runs before a tenant is known goes through the narrow definers of
policies/auth_definers.sql (`autocommit_row`, one round trip, no tenant pinned);
everything else runs in the caller's transaction, under RLS in the pinned tenant.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from erp.audit import tenant_event
from erp.auth.models import Invitation, Membership, SignInSession, SsoConnection
from erp.auth.roles import ROLES
from erp.context import current_actor
from erp.db import autocommit_row, call_one, db
from erp.errors import Problem, field_problem
from erp.secretbox import current_box

SESSION_TTL = timedelta(hours=12)
INVITATION_TTL = timedelta(days=7)
DOMAIN_RE = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$"
)


def new_token() -> str:
    """An opaque secret (256 bits) for a session cookie or an invitation link."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(secret_key: str, session_id: uuid.UUID) -> str:
    """The session's CSRF token: an HMAC of its id, so nothing more is stored."""
    return hmac.new(secret_key.encode(), f"csrf:{session_id}".encode(), "sha256").hexdigest()


def email_domain(email: str) -> str:
    return email.rpartition("@")[2].lower()


# -- before a tenant is known: the definers -----------------------------------------------


@dataclass(frozen=True)
class TenantChoice:
    id: uuid.UUID
    slug: str
    name: str
    status: str
    connection_id: uuid.UUID | None


def find_tenant(slug: str | None = None, email: str | None = None) -> TenantChoice | None:
    """The tenant a sign-in is for: by slug, else by the email's domain (one tenant's
    SSO connection must allow it)."""
    domain = email_domain(email) if email and not slug else None
    row = autocommit_row(
        db.engine,
        "SELECT * FROM app.sign_in_tenant(%(slug)s, %(domain)s)",
        {"slug": slug, "domain": domain},
    )
    if row is None:
        return None
    return TenantChoice(row.tenant_id, row.slug, row.name, row.status, row.connection_id)


def sign_in_identity(
    issuer: str, subject: str, email: str, name: str, *, session: Session | None = None
) -> uuid.UUID:
    """The global identity (issuer, subject), made on first sight. Its own round trip,
    or a statement of `session`'s transaction (the demo seeder's)."""
    sql = "SELECT app.sign_in_identity(%(i)s, %(s)s, %(e)s, %(n)s) AS id"
    params = {"i": issuer, "s": subject, "e": email, "n": name[:200]}
    row = call_one(session, sql, params) if session else autocommit_row(db.engine, sql, params)
    assert row is not None
    return uuid.UUID(str(row[0]))


@dataclass(frozen=True)
class MembershipRef:
    tenant_id: uuid.UUID
    slug: str
    name: str
    status: str
    member_id: uuid.UUID
    role: str


def memberships_of(identity_id: uuid.UUID) -> list[MembershipRef]:
    """Every tenant the identity belongs to (the switch list)."""
    with db.engine.connect() as conn:
        dbapi: Any = conn.connection.dbapi_connection
        rows = dbapi.execute(
            "SELECT * FROM app.identity_memberships(%(i)s)", {"i": identity_id}
        ).fetchall()
        conn.rollback()
    return [MembershipRef(*row) for row in rows]


@dataclass(frozen=True)
class SessionRow:
    session_id: uuid.UUID
    tenant_id: uuid.UUID
    member_id: uuid.UUID
    identity_id: uuid.UUID
    role: str
    email: str
    name: str
    expires_at: datetime
    tenant_slug: str
    tenant_name: str
    tenant_status: str


def lookup_session(token: str) -> SessionRow | None:
    row = autocommit_row(
        db.engine, "SELECT * FROM app.lookup_session(%(h)s)", {"h": token_hash(token)}
    )
    return None if row is None else SessionRow(*row)


def record_failure(reason: str, tenant_id: uuid.UUID | None, **details: Any) -> None:
    """A refused sign-in, in the operators' audit (`auth.sign_in_failed`)."""
    autocommit_row(
        db.engine,
        "SELECT app.record_sign_in_failure(%(r)s, %(t)s, %(d)s::jsonb)",
        {"r": reason, "t": tenant_id, "d": json.dumps(details, default=str)},
    )


# -- sessions (in the pinned tenant) ----------------------------------------------------


def start_session(
    s: Session, member: Membership, issuer: str, id_token: str | None
) -> tuple[SignInSession, str]:
    """A new session for `member` and its cookie token (shown only here)."""
    # the member's ended sessions go now (nothing else sweeps them; they are few)
    s.execute(
        delete(SignInSession).where(
            SignInSession.member_id == member.id, SignInSession.expires_at < func.now()
        )
    )
    token = new_token()
    row = SignInSession(
        id=uuid.uuid4(),
        token_hash=token_hash(token),
        member_id=member.id,
        issuer=issuer,
        id_token=id_token,
        expires_at=datetime.now(UTC) + SESSION_TTL,
    )
    s.add(row)
    member.last_seen_at = datetime.now(UTC)
    tenant_event(s, "auth.signed_in", "member", member.id, issuer=issuer)
    return row, token


def end_session(s: Session, session_id: uuid.UUID) -> SignInSession | None:
    row = s.get(SignInSession, session_id)
    if row is not None:
        s.delete(row)
        tenant_event(s, "auth.signed_out", "member", row.member_id)
    return row


def member_by_identity(s: Session, identity_id: uuid.UUID) -> Membership | None:
    return s.scalars(select(Membership).where(Membership.identity_id == identity_id)).one_or_none()


def accept_invitation(
    s: Session, token: str, identity_id: uuid.UUID, email: str, name: str
) -> Membership | str:
    """The membership an invitation makes at first sign-in, or why it cannot
    ("invitation-unknown", "invitation-expired", "invitation-used", "invitation-email")."""
    inv = s.scalars(
        select(Invitation).where(Invitation.token_hash == token_hash(token)).with_for_update()
    ).one_or_none()
    if inv is None:
        return "invitation-unknown"
    if inv.accepted_at is not None:
        return "invitation-used"
    if inv.expires_at <= datetime.now(UTC):
        return "invitation-expired"
    if inv.email.lower() != email.lower():
        return "invitation-email"
    member = member_by_identity(s, identity_id)
    if member is None:
        member = Membership(
            id=uuid.uuid4(), identity_id=identity_id, email=email.lower(), name=name, role=inv.role
        )
        s.add(member)
        s.flush()
        tenant_event(s, "member.joined", "member", member.id, role=inv.role, invitation=str(inv.id))
    inv.accepted_at, inv.accepted_by = datetime.now(UTC), member.id
    return member


# -- members -------------------------------------------------------------------------------


def _owners_locked(s: Session) -> int:
    """How many owners there are, with their rows locked (a concurrent demotion waits)."""
    owners = s.scalars(
        select(Membership.id).where(Membership.role == "owner").with_for_update()
    ).all()
    return len(owners)


def _get_member(s: Session, member_id: uuid.UUID) -> Membership:
    member = s.get(Membership, member_id)
    if member is None:
        raise Problem("not-found")
    return member


def _check_owner_rule(acting_role: str | None, *roles: str) -> None:
    if "owner" in roles and acting_role != "owner":
        raise Problem("forbidden", "Only an owner changes owners.")


def change_role(s: Session, member_id: uuid.UUID, role: str, acting_role: str | None) -> Membership:
    member = _get_member(s, member_id)
    _check_owner_rule(acting_role, member.role, role)
    if member.role == "owner" and role != "owner" and _owners_locked(s) <= 1:
        raise Problem("conflict", "A tenant keeps at least one owner; make another first.")
    if member.role != role:
        tenant_event(s, "member.role_changed", "member", member.id, old=member.role, new=role)
        member.role = role
    return member


def remove_member(s: Session, member_id: uuid.UUID, acting_role: str | None) -> None:
    """Remove a member; their sessions end with the membership (ON DELETE CASCADE)."""
    member = _get_member(s, member_id)
    _check_owner_rule(acting_role, member.role)
    if member.role == "owner" and _owners_locked(s) <= 1:
        raise Problem("conflict", "A tenant keeps at least one owner; make another first.")
    s.execute(delete(SignInSession).where(SignInSession.member_id == member.id))
    s.delete(member)
    tenant_event(s, "member.removed", "member", member.id, email=member.email)


def add_member(s: Session, identity_id: uuid.UUID, email: str, name: str, role: str) -> Membership:
    """A membership made directly (the demo tenant's owner, tests); idempotent."""
    member = member_by_identity(s, identity_id)
    if member is None:
        member = Membership(
            id=uuid.uuid4(), identity_id=identity_id, email=email.lower(), name=name, role=role
        )
        s.add(member)
        s.flush()
        tenant_event(s, "member.added", "member", member.id, role=role)
    return member


# -- invitations ---------------------------------------------------------------------------


def invite(s: Session, email: str, role: str, acting_role: str | None) -> tuple[Invitation, str]:
    """An invitation and its single-use token (shown once, valid INVITATION_TTL)."""
    if role not in ROLES:
        raise field_problem("validation", "role", "Not a role.")
    _check_owner_rule(acting_role, role)
    token = new_token()
    inv = Invitation(
        id=uuid.uuid4(),
        email=email.lower(),
        role=role,
        token_hash=token_hash(token),
        created_by=current_actor.get(),
        expires_at=datetime.now(UTC) + INVITATION_TTL,
    )
    s.add(inv)
    s.flush()
    tenant_event(s, "invitation.created", "invitation", inv.id, email=inv.email, role=role)
    return inv, token


def revoke_invitation(s: Session, invitation_id: uuid.UUID) -> None:
    inv = s.get(Invitation, invitation_id)
    if inv is None:
        raise Problem("not-found")
    s.delete(inv)
    tenant_event(s, "invitation.deleted", "invitation", inv.id)


# -- the SSO connection ------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionConfig:
    """An OIDC connection: the platform's default (`id` None) or a tenant's own."""

    id: uuid.UUID | None
    issuer: str
    client_id: str
    client_secret: str
    allowed_domains: tuple[str, ...] = ()


def sso_connection(s: Session) -> SsoConnection | None:
    return s.scalars(select(SsoConnection)).one_or_none()


def connection_config(s: Session) -> ConnectionConfig | None:
    """The pinned tenant's own connection, its secret decrypted."""
    row = sso_connection(s)
    if row is None:
        return None
    return ConnectionConfig(
        row.id,
        row.issuer,
        row.client_id,
        current_box().decrypt(row.client_secret),
        tuple(row.allowed_domains),
    )


def put_sso_connection(
    s: Session, issuer: str, client_id: str, client_secret: str, allowed_domains: list[str]
) -> SsoConnection:
    domains = sorted({d.strip().lower() for d in allowed_domains})
    for i, d in enumerate(domains):
        if not DOMAIN_RE.match(d):
            raise field_problem("validation", f"allowed_domains.{i}", "Not a domain name.")
    secret = current_box().encrypt(client_secret)
    row = sso_connection(s)
    if row is None:
        row = SsoConnection(id=uuid.uuid4())
        s.add(row)
    row.issuer, row.client_id, row.client_secret = issuer.rstrip("/"), client_id, secret
    row.allowed_domains, row.updated_at = domains, datetime.now(UTC)
    s.flush()  # two first PUTs at once: the second is 409 (UNIQUE (tenant_id))
    tenant_event(s, "sso_connection.saved", "sso_connection", row.id, issuer=row.issuer)
    return row


def delete_sso_connection(s: Session) -> None:
    row = sso_connection(s)
    if row is None:
        raise Problem("not-found")
    s.delete(row)
    tenant_event(s, "sso_connection.deleted", "sso_connection", row.id)


def count_members(s: Session) -> int:
    return int(s.scalar(select(func.count()).select_from(Membership)) or 0)
