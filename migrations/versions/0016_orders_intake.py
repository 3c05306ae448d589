"""Intake from shops: the channel lookup a webhook is verified by before its tenant is
known (`app.inbound_channel`) and the sweeper's discovery
(`app.tenants_with_inbound_to_sweep`), both SECURITY DEFINER owned by erp_auth
(policies/orders_intake.sql); an index to find a channel by its id alone.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""

from erp.migrate import as_erp_auth, policy_sql, run_sql

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql("""
        -- the hook's lookup by channel id alone (the definer; tenant not yet known)
        CREATE INDEX ix_channels_id ON orders.channels (id);
        GRANT USAGE ON SCHEMA orders TO erp_auth;
        GRANT SELECT ON orders.channels, orders.inbound_messages TO erp_auth;
    """)
    as_erp_auth(policy_sql("orders_intake.sql"))


def downgrade() -> None:
    run_sql("""
        DROP FUNCTION app.tenants_with_inbound_to_sweep(interval, int);
        DROP FUNCTION app.inbound_channel(uuid);
        REVOKE SELECT ON orders.channels, orders.inbound_messages FROM erp_auth;
        REVOKE USAGE ON SCHEMA orders FROM erp_auth;
        DROP INDEX orders.ix_channels_id;
    """)
