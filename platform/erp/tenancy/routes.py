"""Operator endpoints (/ops/v1) and the tenant's own /api/v1/me and /api/v1/api-keys."""

from __future__ import annotations

from typing import Any

from flask import current_app, g
from flask.views import MethodView

from erp.audit import AuditEvent
from erp.extensions import Blueprint, db
from erp.fields import parse_uuid
from erp.idempotency import idempotent
from erp.pagination import ListArgs, Page
from erp.principals import current_principal, requires_operator, requires_scope
from erp.tenancy import queries, schemas, services
from erp.tenancy.models import ApiKey, Tenant

ops = Blueprint("ops", __name__, url_prefix="/ops/v1", description="Platform operators")
tenant_api = Blueprint("iam", __name__, url_prefix="/api/v1", description="Identity and keys")


@ops.route("/tenants")
class Tenants(MethodView):
    @requires_operator
    @ops.arguments(schemas.TenantListArgs, location="query")
    @ops.response(200, schemas.TenantPage)
    def get(self, args: dict[str, Any]) -> Page[Tenant]:
        """List tenants (status only, never their contents); each call is audited."""
        page = queries.tenants_page(db.session, args.get("status"), args["cursor"], args["limit"])
        services.tenants_listed(db.session, args.get("status"), len(page.items))
        return page

    @requires_operator
    @idempotent
    @ops.arguments(schemas.TenantIn)
    @ops.response(201, schemas.TenantOut)
    @ops.alt_response(200, schema=schemas.TenantOut, description="Already provisioned, same body")
    def post(self, body: dict[str, Any]) -> tuple[Tenant, int]:
        """Provision a tenant from a template (idempotent on slug)."""
        tenant, created = services.provision_tenant(db.session, services.ProvisionTenant(**body))
        return tenant, 201 if created else 200


@ops.route("/tenants/<tenant_id>")
class TenantById(MethodView):
    @requires_operator
    @ops.response(200, schemas.TenantDetailOut)
    def get(self, tenant_id: str) -> dict[str, Any]:
        """A tenant with its status and usage counts (audited as `tenant.read`)."""
        tenant, usage = services.read_tenant(db.session, parse_uuid(tenant_id, "tenant_id"))
        return {**_as_dict(tenant), "usage": usage}

    @requires_operator
    @ops.response(202, schemas.TenantOut)
    def delete(self, tenant_id: str) -> Tenant:
        """Schedule the tenant's purge after the grace period; its credentials stop now."""
        grace = current_app.config["ERP_SETTINGS"].tenant_purge_grace
        return services.delete_tenant(db.session, parse_uuid(tenant_id, "tenant_id"), grace)


def _as_dict(tenant: Tenant) -> dict[str, Any]:
    return {c.key: getattr(tenant, c.key) for c in Tenant.__table__.columns}


@ops.route("/tenants/<tenant_id>/suspend", methods=["POST"])
@requires_operator
@idempotent
@ops.arguments(schemas.SuspendIn)
@ops.response(200, schemas.TenantOut)
def suspend(body: dict[str, Any], tenant_id: str) -> Tenant:
    """Suspend: every key and session of the tenant stops working at once."""
    return services.suspend_tenant(db.session, parse_uuid(tenant_id, "tenant_id"), body["reason"])


@ops.route("/tenants/<tenant_id>/reactivate", methods=["POST"])
@requires_operator
@idempotent
@ops.response(200, schemas.TenantOut)
def reactivate(tenant_id: str) -> Tenant:
    return services.reactivate_tenant(db.session, parse_uuid(tenant_id, "tenant_id"))


@ops.route("/tenants/<tenant_id>/restore", methods=["POST"])
@requires_operator
@idempotent
@ops.response(200, schemas.TenantOut)
def restore(tenant_id: str) -> Tenant:
    """Undo a delete within the grace period."""
    return services.restore_tenant(db.session, parse_uuid(tenant_id, "tenant_id"))


@ops.route("/tenants/<tenant_id>/api-keys", methods=["POST"])
@requires_operator
@idempotent(shown_once=("key",))
@ops.arguments(schemas.ApiKeyIn)
@ops.response(201, schemas.ApiKeyCreatedOut)
def issue_key(body: dict[str, Any], tenant_id: str) -> dict[str, Any]:
    """Issue an API key in a tenant (e.g. its first); the key is shown only here."""
    key, raw = services.issue_tenant_key(
        db.session, parse_uuid(tenant_id, "tenant_id"), services.CreateApiKey(**body), _env()
    )
    return _key_out(key, raw)


@ops.route("/audit-events")
@requires_operator
@ops.arguments(schemas.AuditEventArgs, location="query")
@ops.response(200, schemas.AuditEventPage)
def audit_events(args: dict[str, Any]) -> Page[AuditEvent]:
    """Who did what to which tenant; append-only."""
    return queries.audit_events_page(
        db.session, args.get("tenant_id"), args["cursor"], args["limit"]
    )


# -- tenant side -----------------------------------------------------------------


def _env() -> str:
    return str(current_app.config["ERP_SETTINGS"].api_key_env)


def _key_out(key: ApiKey, raw: str) -> dict[str, Any]:
    out = {c: getattr(key, c) for c in schemas.ApiKeyOut._declared_fields}
    return {**out, "key": raw}


@tenant_api.route("/me")
@tenant_api.response(200, schemas.MeOut)
def me() -> dict[str, Any]:
    """Who this credential is, its tenant and scopes (no scope needed)."""
    principal = current_principal()
    out = {"principal": principal, "tenant": principal.tenant, "scopes": sorted(principal.scopes)}
    if (csrf := g.get("csrf_token")) is not None:  # a console session (erp.auth)
        out["csrf_token"] = csrf
    return out


@tenant_api.route("/api-keys")
class ApiKeys(MethodView):
    @requires_scope("api_keys:read")
    @tenant_api.arguments(ListArgs, location="query")
    @tenant_api.response(200, schemas.ApiKeyPage)
    def get(self, args: dict[str, Any]) -> Page[ApiKey]:
        return queries.api_keys_page(db.session, args["cursor"], args["limit"])

    @requires_scope("api_keys:write")
    @idempotent(shown_once=("key",))
    @tenant_api.arguments(schemas.ApiKeyIn)
    @tenant_api.response(201, schemas.ApiKeyCreatedOut)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a key; it may grant only scopes the caller holds."""
        key, raw = services.create_api_key(
            db.session, services.CreateApiKey(**body), _env(), current_principal().scopes
        )
        return _key_out(key, raw)


@tenant_api.route("/api-keys/<key_id>")
class ApiKeyById(MethodView):
    @requires_scope("api_keys:read")
    @tenant_api.response(200, schemas.ApiKeyOut)
    def get(self, key_id: str) -> ApiKey:
        return queries.get_api_key(db.session, parse_uuid(key_id, "key_id"))

    @requires_scope("api_keys:write")
    @tenant_api.response(204)
    def delete(self, key_id: str) -> None:
        """Revoke; the key fails from its next request on."""
        services.revoke_api_key(db.session, parse_uuid(key_id, "key_id"))
