"""Outbound webhooks' push path: NOTIFY erp_webhooks (payload: the tenant id) on each
dispatch row, delivered at commit, for the listener (`erp webhooks listen`).
policies/webhooks_notify.sql.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from erp.migrate import policy_sql, run_sql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(policy_sql("webhooks_notify.sql"))


def downgrade() -> None:
    run_sql("""
        DROP TRIGGER notify_dispatch ON webhooks.dispatch;
        DROP FUNCTION webhooks.notify_dispatch();
    """)
