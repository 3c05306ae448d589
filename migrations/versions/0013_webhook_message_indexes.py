"""A per-endpoint index on pending webhook messages, for the three per-endpoint reads of
delivery: a job's claim (`delivery._CLAIM`: is a job busy here, which are due), "would
a job claim something" (`delivery._CLAIMABLE`) and the push path's "which endpoints have
a due message no job holds" (`dispatcher._DUE_ENDPOINTS`). Each is written in due order
with LIMIT, so the planner keeps to this index even with statistics taken while the
table was small. Before it they read every pending message of the tenant: a slow
endpoint's backlog (4,000 messages in webhooks_latency's slow variant) was read again by
every claim and dispatch for the other endpoints (EXPLAIN: 2.6 ms per claim, 10 ms per
dispatch with that backlog; now 0.19 and 0.06 ms).

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
