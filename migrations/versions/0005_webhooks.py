"""Outbound webhooks: endpoints, the dispatch queue, messages and attempts.

`webhooks.dispatch` holds one row per outbox event, written by a trigger on
`webhooks.outbox_events` in the event's own transaction and claimed by the dispatcher
with FOR UPDATE SKIP LOCKED (DESIGN.md §4). `messages` (one per event and endpoint)
carry the delivery state and due time; `attempts` are append-only history. The
discovery function `app.tenants_with_due_webhooks` (erp_auth) names the active tenants
with work. policies/webhooks.sql.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from erp.migrate import policy_sql, run_sql, tenant_table

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql("""
        CREATE TABLE webhooks.endpoints (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            url text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
            description text CHECK (length(description) <= 500),
            event_types text[] CHECK (cardinality(event_types) > 0),
            disabled boolean NOT NULL DEFAULT false,
            disabled_reason text CHECK (disabled_reason IN ('manual', 'gone', 'failing')),
            secret text NOT NULL,
            previous_secret text,
            previous_secret_until timestamptz,
            failing_since timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            deleted_at timestamptz,
            PRIMARY KEY (tenant_id, id),
            CHECK (disabled = (disabled_reason IS NOT NULL)),
            CHECK ((previous_secret IS NULL) = (previous_secret_until IS NULL))
        );
        CREATE INDEX ix_endpoints_created ON webhooks.endpoints (tenant_id, created_at, id);
    """)
    tenant_table("webhooks.endpoints", "SELECT, INSERT, UPDATE")

    run_sql("""
        CREATE TABLE webhooks.dispatch (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, id),
            FOREIGN KEY (tenant_id, id) REFERENCES webhooks.outbox_events (tenant_id, id)
        );
    """)
    # UPDATE on one column only because FOR UPDATE SKIP LOCKED requires it; rows are
    # claimed and deleted, never changed.
    tenant_table("webhooks.dispatch", "SELECT, INSERT, DELETE, UPDATE (created_at)")

    run_sql("""
        CREATE TABLE webhooks.messages (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            endpoint_id uuid NOT NULL,
            event_id uuid NOT NULL,
            event_type text NOT NULL,
            status text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'delivered', 'failed', 'cancelled')),
            attempts int NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            -- the position in the retry schedule (reset by recover)
            schedule_step int NOT NULL DEFAULT 0 CHECK (schedule_step >= 0),
            next_attempt_at timestamptz,
            lease_until timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, id),
            FOREIGN KEY (tenant_id, endpoint_id) REFERENCES webhooks.endpoints (tenant_id, id),
            FOREIGN KEY (tenant_id, event_id) REFERENCES webhooks.outbox_events (tenant_id, id),
            CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL))
        );
        -- one message per event and endpoint (a test ping has its own event)
        CREATE UNIQUE INDEX uq_messages_endpoint_event
            ON webhooks.messages (tenant_id, endpoint_id, event_id);
        CREATE INDEX ix_messages_created
            ON webhooks.messages (tenant_id, endpoint_id, created_at, id);
        CREATE INDEX ix_messages_due ON webhooks.messages (tenant_id, next_attempt_at)
            WHERE status = 'pending';
    """)
    tenant_table("webhooks.messages", "SELECT, INSERT, UPDATE")

    run_sql("""
        CREATE TABLE webhooks.attempts (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            message_id uuid NOT NULL,
            endpoint_id uuid NOT NULL,
            status text NOT NULL CHECK (status IN ('succeeded', 'failed')),
            response_status int,
            response_body text,
            error text CHECK (error IN ('timeout', 'connection', 'refused_address',
                                        'redirect', 'http_status')),
            duration_ms int NOT NULL CHECK (duration_ms >= 0),
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, id),
            FOREIGN KEY (tenant_id, message_id) REFERENCES webhooks.messages (tenant_id, id),
            FOREIGN KEY (tenant_id, endpoint_id) REFERENCES webhooks.endpoints (tenant_id, id)
        );
        CREATE INDEX ix_attempts_created
            ON webhooks.attempts (tenant_id, endpoint_id, created_at, id);
        CREATE INDEX ix_attempts_message ON webhooks.attempts (tenant_id, message_id);
    """)
    tenant_table("webhooks.attempts", append_only=True)

    run_sql(policy_sql("webhooks.sql").split("-- Discovery")[0])
    run_sql("""
        GRANT USAGE ON SCHEMA webhooks TO erp_auth;
        GRANT SELECT ON webhooks.dispatch, webhooks.messages TO erp_auth;
        GRANT CREATE ON SCHEMA app TO erp_auth;
        SET LOCAL ROLE erp_auth;
    """)
    run_sql("-- Discovery" + policy_sql("webhooks.sql").split("-- Discovery", 1)[1])
    run_sql("SET LOCAL ROLE erp_owner; REVOKE CREATE ON SCHEMA app FROM erp_auth")


def downgrade() -> None:
    run_sql("""
        DROP FUNCTION app.tenants_with_due_webhooks(int);
        DROP TRIGGER fill_dispatch ON webhooks.outbox_events;
        DROP FUNCTION webhooks.fill_dispatch();
        DROP TABLE webhooks.attempts, webhooks.messages, webhooks.dispatch, webhooks.endpoints;
        REVOKE USAGE ON SCHEMA webhooks FROM erp_auth;
    """)
