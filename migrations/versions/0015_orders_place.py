"""Placing an order is one call: orders.place_order deduplicates, checks, prices, finds
or creates the customer, writes the order and its lines, reserves every line through
inventory.reserve and writes the order.created event in one round trip
(policies/orders_place.sql); orders.order_json is the order as the API answers it.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from erp.migrate import policy_sql, run_sql

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(policy_sql("orders_place.sql"))


def downgrade() -> None:
    run_sql("""
        DROP FUNCTION orders.place_order(uuid, uuid[], uuid[], uuid, text, text, text, uuid,
            text, text, uuid, jsonb, uuid[], text[], bigint[], bigint[], bigint[], text[],
            bigint[], bigint, text, bigint);
        DROP FUNCTION orders.order_json(uuid);
        DROP FUNCTION orders.tax_of(numeric, integer);
        DROP FUNCTION orders.refuse(text);
    """)
