"""inventory.level_changes is purged: a row is needed only inside its transaction (the
commit-time trigger makes it the stock.changed event), so `erp scheduler` deletes rows
older than a day, tenant by tenant (discovery: app.tenants_with_old_level_changes,
policies/inventory_retention.sql, owned by erp_auth); erp_app may DELETE them.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03
"""

from erp.migrate import as_erp_auth, policy_sql, run_sql

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql("""
        GRANT DELETE ON inventory.level_changes TO erp_app;
        GRANT USAGE ON SCHEMA inventory TO erp_auth;
        GRANT SELECT ON inventory.level_changes TO erp_auth;
    """)
    as_erp_auth(policy_sql("inventory_retention.sql"))


def downgrade() -> None:
    run_sql("""
        DROP FUNCTION app.tenants_with_old_level_changes(timestamptz, int);
        REVOKE SELECT ON inventory.level_changes FROM erp_auth;
        REVOKE USAGE ON SCHEMA inventory FROM erp_auth;
        REVOKE DELETE ON inventory.level_changes FROM erp_app;
    """)
