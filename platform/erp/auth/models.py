"""Tables of sign-in: memberships, sessions, invitations and SSO connections are `iam`
tenant rows; identities (issuer, subject) are global in `platform` and reached only
through the definers of policies/auth_definers.sql. The DDL is migration 0005's."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ARRAY, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from erp.model_base import Base, TenantScoped, created_at_column


class Membership(TenantScoped, Base):
    __tablename__ = "memberships"
    __table_args__ = {"schema": "iam"}

    identity_id: Mapped[uuid.UUID] = mapped_column()
    email: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text, default="")
    role: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    last_seen_at: Mapped[datetime | None] = mapped_column()


class SignInSession(TenantScoped, Base):
    __tablename__ = "sessions"
    __table_args__ = {"schema": "iam"}

    token_hash: Mapped[str] = mapped_column(Text)
    member_id: Mapped[uuid.UUID] = mapped_column()
    issuer: Mapped[str] = mapped_column(Text)
    id_token: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    expires_at: Mapped[datetime] = mapped_column()


class Invitation(TenantScoped, Base):
    __tablename__ = "invitations"
    __table_args__ = {"schema": "iam"}

    email: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    token_hash: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    expires_at: Mapped[datetime] = mapped_column()
    accepted_at: Mapped[datetime | None] = mapped_column()
    accepted_by: Mapped[uuid.UUID | None] = mapped_column()


class SsoConnection(TenantScoped, Base):
    __tablename__ = "sso_connections"
    __table_args__ = {"schema": "iam"}

    issuer: Mapped[str] = mapped_column(Text)
    client_id: Mapped[str] = mapped_column(Text)
    #: A SecretBox token (erp/secretbox.py), never the secret itself.
    client_secret: Mapped[str] = mapped_column(Text)
    allowed_domains: Mapped[list[str]] = mapped_column(ARRAY(Text))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
