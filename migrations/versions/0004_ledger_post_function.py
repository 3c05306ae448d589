"""A posting is one call: ledger.post_transaction checks, locks and writes in one round trip.

policies/ledger_post.sql: the checks the service made in Python and in three more
statements (balance, accounts, the month's lock and closed flag, guards) move into one
SECURITY INVOKER function that also inserts the transaction, its entries and its
outbox event; refusals are named SQLSTATEs (EL001, EL002, EL004, EL005). The
triggers stay: PostgreSQL still judges every writer.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-09
"""

from erp.migrate import policy_sql, run_sql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(policy_sql("ledger_post.sql"))


def downgrade() -> None:
    run_sql(
        "DROP FUNCTION ledger.post_transaction(uuid, text, text, text, timestamptz, jsonb, "
        "uuid, uuid, uuid[], uuid[], bigint[], text[], uuid, jsonb, boolean)"
    )
