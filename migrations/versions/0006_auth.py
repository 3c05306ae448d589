"""Sign-in: global identities, and memberships, sessions, invitations and SSO
connections as iam tenant rows; the sign-in definers (policies/auth_definers.sql).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from erp.migrate import policy_sql, run_sql, tenant_table

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ROLES = "('owner', 'admin', 'accountant', 'warehouse', 'sales', 'viewer')"


def upgrade() -> None:
    run_sql("""
        CREATE TABLE platform.identities (
            id uuid PRIMARY KEY,
            issuer text NOT NULL CHECK (length(issuer) BETWEEN 1 AND 500),
            subject text NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
            email text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
            name text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
            created_at timestamptz NOT NULL DEFAULT now(),
            last_sign_in_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (issuer, subject)
        );
        GRANT SELECT ON platform.identities TO erp_ops;
        GRANT SELECT, INSERT, UPDATE (email, name, last_sign_in_at)
            ON platform.identities TO erp_auth;
        GRANT INSERT ON platform.audit_events TO erp_auth;
    """)
    run_sql(f"""
        CREATE TABLE iam.memberships (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            identity_id uuid NOT NULL,
            email text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
            name text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
            role text NOT NULL CHECK (role IN {ROLES}),
            created_at timestamptz NOT NULL DEFAULT now(),
            last_seen_at timestamptz,
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, identity_id)
        );
        CREATE INDEX ix_memberships_created ON iam.memberships (tenant_id, created_at, id);
        -- Discovery (app.identity_memberships) is by identity alone.
        CREATE INDEX ix_memberships_identity ON iam.memberships (identity_id);
    """)
    tenant_table(
        "iam.memberships", "SELECT, INSERT, UPDATE (role, email, name, last_seen_at), DELETE"
    )
    run_sql("""
        CREATE TABLE iam.sessions (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            token_hash text NOT NULL CHECK (token_hash ~ '^[0-9a-f]{64}$'),
            member_id uuid NOT NULL,
            issuer text NOT NULL,
            id_token text,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, token_hash),
            FOREIGN KEY (tenant_id, member_id) REFERENCES iam.memberships (tenant_id, id)
                ON DELETE CASCADE
        );
        -- The lookup before a tenant is known is by the token's hash alone.
        CREATE INDEX ix_sessions_token_hash ON iam.sessions (token_hash);
        CREATE INDEX ix_sessions_member ON iam.sessions (tenant_id, member_id);
    """)
    tenant_table("iam.sessions", "SELECT, INSERT, DELETE")
    run_sql(f"""
        CREATE TABLE iam.invitations (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            email text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
            role text NOT NULL CHECK (role IN {ROLES}),
            token_hash text NOT NULL CHECK (token_hash ~ '^[0-9a-f]{{64}}$'),
            created_by text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            accepted_at timestamptz,
            accepted_by uuid,
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, token_hash),
            FOREIGN KEY (tenant_id, accepted_by) REFERENCES iam.memberships (tenant_id, id)
                ON DELETE SET NULL (accepted_by)
        );
        CREATE INDEX ix_invitations_created ON iam.invitations (tenant_id, created_at, id);
    """)
    tenant_table("iam.invitations", "SELECT, INSERT, UPDATE (accepted_at, accepted_by), DELETE")
    run_sql("""
        CREATE TABLE iam.sso_connections (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            issuer text NOT NULL CHECK (issuer ~ '^https?://' AND length(issuer) <= 500),
            client_id text NOT NULL CHECK (length(client_id) BETWEEN 1 AND 255),
            client_secret text NOT NULL,
            allowed_domains text[] NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id)
        );
        -- The email-domain lookup before a tenant is known.
        CREATE INDEX ix_sso_connections_domains ON iam.sso_connections
            USING gin (allowed_domains);
    """)
    tenant_table(
        "iam.sso_connections",
        "SELECT, INSERT, UPDATE (issuer, client_id, client_secret, allowed_domains, updated_at),"
        " DELETE",
    )
    run_sql("""
        GRANT SELECT ON iam.memberships, iam.sessions, iam.sso_connections TO erp_auth;
        GRANT CREATE ON SCHEMA app TO erp_auth;
        SET LOCAL ROLE erp_auth;
    """)
    run_sql(policy_sql("auth_definers.sql"))
    run_sql("SET LOCAL ROLE erp_owner; REVOKE CREATE ON SCHEMA app FROM erp_auth")


def downgrade() -> None:
    run_sql("""
        DROP FUNCTION app.sign_in_identity(text, text, text, text);
        DROP FUNCTION app.sign_in_tenant(text, text);
        DROP FUNCTION app.identity_memberships(uuid);
        DROP FUNCTION app.lookup_session(text);
        DROP FUNCTION app.record_sign_in_failure(text, uuid, jsonb);
        DROP TABLE iam.sso_connections, iam.invitations, iam.sessions, iam.memberships;
        REVOKE INSERT ON platform.audit_events FROM erp_auth;
        DROP TABLE platform.identities;
    """)
