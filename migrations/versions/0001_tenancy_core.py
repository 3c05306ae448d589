"""Tenancy core: schemas, app functions, platform tables, iam, the outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from erp.migrate import policy_sql, run_sql, tenant_schema, tenant_table

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql("""
        ALTER DEFAULT PRIVILEGES FOR ROLE erp_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
        CREATE SCHEMA app;
        GRANT USAGE ON SCHEMA app TO erp_app, erp_ops, erp_auth;
        CREATE SCHEMA platform;
        GRANT USAGE ON SCHEMA platform TO erp_ops, erp_auth;
    """)
    run_sql(policy_sql("app_functions.sql"))

    run_sql("""
        CREATE TABLE platform.tenants (
            id uuid PRIMARY KEY,
            slug text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
            name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
            status text NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'suspended', 'deleting')),
            status_reason text,
            base_currency char(3) NOT NULL CHECK (base_currency ~ '^[A-Z]{3}$'),
            template text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            delete_after timestamptz,
            status_before_delete text CHECK (status_before_delete IN ('active', 'suspended')),
            CHECK ((status = 'deleting') = (delete_after IS NOT NULL)),
            CHECK ((status = 'deleting') = (status_before_delete IS NOT NULL))
        );
        GRANT SELECT, INSERT, UPDATE ON platform.tenants TO erp_ops;
        GRANT SELECT ON platform.tenants TO erp_auth;

        CREATE TABLE platform.operators (
            id uuid PRIMARY KEY,
            email text NOT NULL UNIQUE,
            public_id text NOT NULL UNIQUE,
            token_hash text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            revoked_at timestamptz
        );
        GRANT SELECT ON platform.operators TO erp_ops;

        CREATE TABLE platform.audit_events (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            occurred_at timestamptz NOT NULL DEFAULT now(),
            actor text NOT NULL,
            action text NOT NULL,
            tenant_id uuid,
            tenant_slug text,
            details jsonb NOT NULL DEFAULT '{}',
            request_id text
        );
        CREATE INDEX ix_audit_events_tenant ON platform.audit_events (tenant_id, occurred_at);
        GRANT SELECT, INSERT ON platform.audit_events TO erp_ops;

        CREATE TABLE platform.operator_idempotency_records (
            operator_id uuid NOT NULL,
            key text NOT NULL,
            fingerprint text NOT NULL,
            status_code int NOT NULL,
            body jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            PRIMARY KEY (operator_id, key)
        );
        GRANT SELECT, INSERT, UPDATE, DELETE ON platform.operator_idempotency_records TO erp_ops;
    """)
    run_sql(policy_sql("append_only_forever.sql", table="platform.audit_events"))

    tenant_schema("iam")
    run_sql("""
        CREATE TABLE iam.api_keys (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
            env text NOT NULL CHECK (env IN ('live', 'test')),
            public_id text NOT NULL CHECK (public_id ~ '^[a-z0-9]{12}$'),
            secret_hash text NOT NULL,
            scopes text[] NOT NULL,
            created_by text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz,
            revoked_at timestamptz,
            last_used_at timestamptz,
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, public_id)
        );
        -- The lookup before a tenant is known is by public id alone.
        CREATE INDEX ix_api_keys_public_id ON iam.api_keys (public_id);
        CREATE INDEX ix_api_keys_created ON iam.api_keys (tenant_id, created_at, id);
    """)
    tenant_table("iam.api_keys", "SELECT, INSERT, UPDATE (revoked_at, last_used_at)")
    run_sql("GRANT USAGE ON SCHEMA iam TO erp_auth; GRANT SELECT ON iam.api_keys TO erp_auth")

    run_sql("""
        CREATE TABLE iam.audit_log (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            occurred_at timestamptz NOT NULL DEFAULT now(),
            actor text NOT NULL,
            action text NOT NULL,
            subject_type text,
            subject_id text,
            details jsonb NOT NULL DEFAULT '{}',
            request_id text,
            PRIMARY KEY (tenant_id, id)
        );
        CREATE INDEX ix_audit_log_occurred ON iam.audit_log (tenant_id, occurred_at, id);
    """)
    tenant_table("iam.audit_log", append_only=True)

    run_sql("""
        CREATE TABLE iam.idempotency_records (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL DEFAULT gen_random_uuid(),
            key text NOT NULL,
            fingerprint text NOT NULL,
            status_code int NOT NULL,
            body jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, key)
        );
    """)
    tenant_table("iam.idempotency_records", "SELECT, INSERT, UPDATE, DELETE")

    # The lookup is owned by erp_auth (BYPASSRLS); erp_owner may not own it, since
    # FORCE RLS would hide every key from the owner before a tenant is known.
    run_sql("GRANT CREATE ON SCHEMA app TO erp_auth; SET LOCAL ROLE erp_auth")
    run_sql(policy_sql("api_key_lookup.sql"))
    run_sql("SET LOCAL ROLE erp_owner; REVOKE CREATE ON SCHEMA app FROM erp_auth")

    tenant_schema("webhooks")
    run_sql("""
        CREATE TABLE webhooks.outbox_events (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            event_type text NOT NULL,
            payload jsonb NOT NULL,
            occurred_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, id)
        );
        CREATE INDEX ix_outbox_events_occurred
            ON webhooks.outbox_events (tenant_id, occurred_at, id);
    """)
    tenant_table("webhooks.outbox_events", append_only=True)


def downgrade() -> None:
    run_sql("""
        DROP SCHEMA webhooks CASCADE;
        DROP SCHEMA iam CASCADE;
        DROP SCHEMA platform CASCADE;
        DROP SCHEMA app CASCADE;
    """)
