"""The API's shapes for operators, tenants, /me and API keys."""

from __future__ import annotations

import marshmallow as ma

from erp.fields import AwareDateTime, Currency
from erp.pagination import ListArgs, page_schema
from erp.scopes import ALL_SCOPES

SLUG_RE = r"^[a-z0-9][a-z0-9-]{1,62}$"


class TenantIn(ma.Schema):
    slug = ma.fields.String(
        required=True, validate=[ma.validate.Length(max=63), ma.validate.Regexp(SLUG_RE)]
    )
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=200))
    base_currency = Currency(required=True)
    template = ma.fields.String(load_default="default", validate=ma.validate.Length(min=1, max=63))


class TenantOut(ma.Schema):
    id = ma.fields.UUID()
    slug = ma.fields.String()
    name = ma.fields.String()
    status = ma.fields.String()
    base_currency = ma.fields.String()
    template = ma.fields.String()
    created_at = ma.fields.DateTime()
    delete_after = ma.fields.DateTime(allow_none=True)


class TenantDetailOut(TenantOut):
    status_reason = ma.fields.String(allow_none=True)
    usage = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer())


class TenantListArgs(ListArgs):
    status = ma.fields.String(validate=ma.validate.OneOf(["active", "suspended", "deleting"]))


TenantPage = page_schema(TenantOut, "TenantPage")


class SuspendIn(ma.Schema):
    reason = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=500))


class AuditEventOut(ma.Schema):
    id = ma.fields.Integer()
    occurred_at = ma.fields.DateTime()
    actor = ma.fields.String()
    action = ma.fields.String()
    tenant_id = ma.fields.UUID(allow_none=True)
    tenant_slug = ma.fields.String(allow_none=True)
    details = ma.fields.Dict()
    request_id = ma.fields.String(allow_none=True)


class AuditEventArgs(ListArgs):
    tenant_id = ma.fields.UUID()


AuditEventPage = page_schema(AuditEventOut, "AuditEventPage")


class ApiKeyIn(ma.Schema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=200))
    scopes = ma.fields.List(
        # Unknown scopes are refused by the service (naming `scopes`); the enum documents them.
        ma.fields.String(
            validate=ma.validate.Length(max=64), metadata={"enum": sorted(ALL_SCOPES)}
        ),
        required=True,
        validate=ma.validate.Length(min=1, max=50),
    )
    expires_at = AwareDateTime(load_default=None, allow_none=True)


class ApiKeyOut(ma.Schema):
    id = ma.fields.UUID()
    name = ma.fields.String()
    prefix = ma.fields.String()
    scopes = ma.fields.List(ma.fields.String())
    created_by = ma.fields.String()
    created_at = ma.fields.DateTime()
    expires_at = ma.fields.DateTime(allow_none=True)
    revoked_at = ma.fields.DateTime(allow_none=True)
    last_used_at = ma.fields.DateTime(allow_none=True)


class ApiKeyCreatedOut(ApiKeyOut):
    key = ma.fields.String(metadata={"description": "Shown once; store it now."})


ApiKeyPage = page_schema(ApiKeyOut, "ApiKeyPage")


class PrincipalOut(ma.Schema):
    kind = ma.fields.String()
    id = ma.fields.UUID()
    name = ma.fields.String(attribute="label")


class TenantRefOut(ma.Schema):
    id = ma.fields.UUID()
    slug = ma.fields.String()
    name = ma.fields.String()


class MeOut(ma.Schema):
    principal = ma.fields.Nested(PrincipalOut)
    tenant = ma.fields.Nested(TenantRefOut)
    scopes = ma.fields.List(ma.fields.String())
    csrf_token = ma.fields.String(
        metadata={"description": "Sessions only: send it as X-CSRF-Token on every non-GET."}
    )
