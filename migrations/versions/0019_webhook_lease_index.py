"""Webhooks: "does a job hold leases on this endpoint" reads only the leased rows.

The probe (the sweep's `_DUE`, a claim's `busy`, `has_claimable`) walked the
endpoint's pending rows in due order until it met a leased one: for an endpoint with
a backlog and no job on it (one that is failing, its messages waiting for their next
attempt) that was the whole backlog, on every sweep and claim. This partial index
holds only pending rows with a lease, and the probe asks for the latest lease
(`ORDER BY lease_until DESC LIMIT 1`), which only this index can answer in order, so
the planner keeps to it whatever the statistics say.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03
"""

from erp.migrate import run_sql

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql("""
        CREATE INDEX ix_messages_endpoint_leased
            ON webhooks.messages (tenant_id, endpoint_id, lease_until)
            WHERE status = 'pending' AND lease_until IS NOT NULL;
    """)


def downgrade() -> None:
    run_sql("DROP INDEX webhooks.ix_messages_endpoint_leased")
