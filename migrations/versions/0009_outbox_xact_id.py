"""Real-time streams: the outbox records each event's transaction (`xact_id`), the
cursor a stream resumes from (DESIGN.md §4: ids are not commit order; a reader serves
only events whose transaction is older than its snapshot's xmin), an index for that
read (tenant first), and NOTIFY erp_stream at commit (policies/stream_notify.sql).

The column's default is volatile, so PostgreSQL rewrites the table once; rows already
there get this migration's transaction id (they are all older than any new event).
The outbox stays append-only: nothing updates it.

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-02
"""

from erp.migrate import policy_sql, run_sql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql("""
        ALTER TABLE webhooks.outbox_events
            ADD COLUMN xact_id xid8 NOT NULL DEFAULT pg_current_xact_id();
        CREATE INDEX ix_outbox_events_xact
            ON webhooks.outbox_events (tenant_id, xact_id, id);
    """)
    run_sql(policy_sql("stream_notify.sql"))


def downgrade() -> None:
    run_sql("""
        DROP TRIGGER notify_stream ON webhooks.outbox_events;
        DROP FUNCTION webhooks.notify_stream();
        DROP INDEX webhooks.ix_outbox_events_xact;
        ALTER TABLE webhooks.outbox_events DROP COLUMN xact_id;
    """)
