"""The API's shapes for members, invitations and the SSO connection (API.md)."""

from __future__ import annotations

import marshmallow as ma

from erp.auth.roles import ROLES
from erp.pagination import page_schema

_EMAIL = [ma.validate.Length(min=3, max=320), ma.validate.Email()]


class MemberOut(ma.Schema):
    id = ma.fields.UUID()
    email = ma.fields.String()
    name = ma.fields.String()
    role = ma.fields.String()
    created_at = ma.fields.DateTime()
    last_seen_at = ma.fields.DateTime(allow_none=True)


MemberPage = page_schema(MemberOut, "MemberPage")


class MemberPatch(ma.Schema):
    role = ma.fields.String(required=True, validate=ma.validate.OneOf(ROLES))


class InvitationIn(ma.Schema):
    email = ma.fields.String(required=True, validate=_EMAIL)
    role = ma.fields.String(required=True, validate=ma.validate.OneOf(ROLES))


class InvitationOut(ma.Schema):
    id = ma.fields.UUID()
    email = ma.fields.String()
    role = ma.fields.String()
    expires_at = ma.fields.DateTime()
    created_at = ma.fields.DateTime()
    accepted_at = ma.fields.DateTime(allow_none=True)
    created_by = ma.fields.String()


class InvitationCreatedOut(InvitationOut):
    url = ma.fields.String(metadata={"description": "Single-use link, shown once."})


InvitationPage = page_schema(InvitationOut, "InvitationPage")


class SsoConnectionIn(ma.Schema):
    issuer = ma.fields.Url(
        required=True,
        schemes={"https", "http"},
        require_tld=False,
        validate=ma.validate.Length(max=500),
    )
    client_id = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=255))
    client_secret = ma.fields.String(
        required=True, load_only=True, validate=ma.validate.Length(min=1, max=500)
    )
    allowed_domains = ma.fields.List(
        ma.fields.String(validate=ma.validate.Length(min=1, max=253)),
        required=True,
        validate=ma.validate.Length(max=50),
    )


class SsoConnectionOut(ma.Schema):
    issuer = ma.fields.String()
    client_id = ma.fields.String()
    allowed_domains = ma.fields.List(ma.fields.String())
