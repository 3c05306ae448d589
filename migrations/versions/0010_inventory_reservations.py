"""Reservations are one call each: reserve (all lines or none), release, consume.

policies/inventory_reservations.sql: `inventory.reserve` checks the lines, locks the
items (the inventory lock order) and changes each level by one conditional UPDATE that
cannot oversell, refusing with EI001 naming every short line; `release_reservations`
frees quantity - consumed of held reservations; `consume_reservations` makes the issue
moves of a fulfilment through `inventory.apply_move` (on_hand and reserved drop in one
statement) and returns their value without posting. The tables are 0008's.

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-02
"""

from erp.migrate import policy_sql, run_sql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(policy_sql("inventory_reservations.sql"))


def downgrade() -> None:
    run_sql(
        "DROP FUNCTION inventory.consume_reservations(uuid[], bigint[], uuid[], text, uuid, uuid);"
        "DROP FUNCTION inventory.release_reservations(uuid[], uuid);"
        "DROP FUNCTION inventory.reserve(uuid[], uuid[], uuid[], bigint[], uuid, uuid[], text[],"
        " boolean);"
        "DROP FUNCTION inventory.line_field(boolean, bigint, text);"
    )
