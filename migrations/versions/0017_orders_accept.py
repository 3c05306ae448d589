"""Accepting a shop's message in one call: orders.accept_inbound (policies/
orders_accept.sql) stores it only while the channel still answers the tenant and
secrets it was verified with; app.inbound_channel becomes plpgsql (its plan kept for
the session instead of planned on every message).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03
"""

from erp.migrate import as_erp_auth, policy_sql, run_sql

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

#: app.inbound_channel as 0016 made it, for the downgrade
_SQL_LOOKUP = """
CREATE OR REPLACE FUNCTION app.inbound_channel(p_channel_id uuid)
    RETURNS TABLE (tenant_id uuid, kind text, secret text, previous_secret text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.tenant_id, c.kind, c.secret,
           CASE WHEN c.previous_secret_expires_at > now() THEN c.previous_secret END
      FROM orders.channels c
      JOIN platform.tenants t ON t.id = c.tenant_id
     WHERE c.id = p_channel_id
       AND NOT c.archived
       AND t.status = 'active'
     LIMIT 1
$$;
"""


def upgrade() -> None:
    as_erp_auth(policy_sql("orders_intake.sql"))
    run_sql(policy_sql("orders_accept.sql"))


def downgrade() -> None:
    run_sql("DROP FUNCTION orders.accept_inbound(uuid, text, text, text, jsonb, text, text)")
    as_erp_auth(_SQL_LOOKUP)
