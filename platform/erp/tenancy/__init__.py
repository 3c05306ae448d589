"""Tenants, operators, API keys and the audit trails: the tenancy core's domain."""

from __future__ import annotations

from erp.registry import Registry


def register(r: Registry) -> None:
    from erp.tenancy import authn, routes

    r.authenticator(authn.authenticate_request)
    r.blueprint(routes.ops, routes.tenant_api)
    r.usage_count("api_keys", "SELECT count(*) FROM iam.api_keys WHERE revoked_at IS NULL")
    r.catalog(
        append_only=["iam.audit_log", "platform.audit_events"],
        # policies/api_key_lookup.sql: the one lookup before a tenant is known
        definers={
            "app.lookup_api_key(text,text)": "erp_auth",
            # policies/idempotency_discovery.sql: tenant ids for the expiry sweep
            "app.tenants_with_expired_idempotency_records(integer)": "erp_auth",
        },
    )
