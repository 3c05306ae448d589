"""Purchase-order receipts and cycle counts, each one call.

policies/inventory_purchasing.sql: inventory.receive_purchase_order (one receipt move
per line at the line's unit cost, the received counters, the status, the receipt, ONE
ledger posting and the purchase_order.received event) and inventory.count_stock (an
`adjustment` move per non-zero difference, a count below what is reserved refused, one
posting), with their helpers (purchase_order_json, refuse_all, post_roles). The tables
are 0008's.

Revision ID: 0011
Revises: 0008
Create Date: 2026-12-02
"""

from erp.migrate import policy_sql, run_sql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(policy_sql("inventory_purchasing.sql"))


def downgrade() -> None:
    run_sql("""
        DROP FUNCTION inventory.count_stock(uuid, uuid, text, uuid[], bigint[], uuid[], uuid[],
            uuid, uuid);
        DROP FUNCTION inventory.receive_purchase_order(uuid, uuid, uuid[], bigint[], uuid[],
            uuid[], uuid[], boolean, uuid, uuid, uuid);
        DROP FUNCTION inventory.post_roles(uuid, uuid, text[], bigint[], jsonb, text);
        DROP FUNCTION inventory.refuse_all(text);
        DROP FUNCTION inventory.purchase_order_json(uuid);
    """)
