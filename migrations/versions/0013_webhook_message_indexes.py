"""A per-endpoint index on pending webhook messages: a delivery job's claim, the test
"is a job busy on this endpoint" and the push path's "which endpoints have due
messages" read one endpoint's pending rows, in due order, not every pending message of
the tenant. Before it, a slow endpoint's backlog (thousands of pending messages) was
read again by every claim and every dispatch for the other endpoints.

Partial (pending messages only), so it stays as small as the backlog; it indexes no
column a claim changes (`lease_until`, `updated_at`), so claims stay HOT updates.
Building it locks webhooks.messages against writes for one pass over its pending rows.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from erp.migrate import run_sql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql("""
        CREATE INDEX ix_messages_endpoint_due
            ON webhooks.messages (tenant_id, endpoint_id, next_attempt_at, id)
            WHERE status = 'pending';
    """)


def downgrade() -> None:
    run_sql("DROP INDEX webhooks.ix_messages_endpoint_due")
