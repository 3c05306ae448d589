"""Hourly balance deltas: `ledger.balance_hours`, per account, UTC hour of effective_at
and writer slot, kept by triggers made from the same template as the daily `balance_deltas`
(policies/ledger_balances.sql, applied here for hours). A balance as of a past moment then
sums the days before it, that day's hours before it and at most half an hour of entries,
instead of up to half a day of entries.

Online upgrade: adding the triggers locks `ledger.entries` and `ledger.transactions`
against writes until this migration commits, so the backfill (every existing entry
grouped by tenant, account and hour, into slot 0, tenant by tenant under RLS) and the
new triggers see the same rows: no posting is counted twice or missed. The backfill
reads every entry once, and postings wait for it: on a large ledger, plan the upgrade's
window for it (docs/operations.md, Upgrades).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from erp.migrate import in_each_tenant, policy_sql, run_sql, tenant_table

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql("""
        CREATE TABLE ledger.balance_hours (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            account_id uuid NOT NULL,
            hour timestamptz NOT NULL CHECK (date_trunc('hour', hour, 'UTC') = hour),
            slot smallint NOT NULL,
            posted bigint NOT NULL DEFAULT 0,
            pending_dr bigint NOT NULL DEFAULT 0,
            pending_cr bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, account_id, hour, slot),
            FOREIGN KEY (tenant_id, account_id) REFERENCES ledger.accounts (tenant_id, id)
        ) WITH (fillfactor = 70);
    """)
    tenant_table("ledger.balance_hours", "SELECT")
    run_sql(
        policy_sql(
            "ledger_balances.sql",
            table="balance_hours",
            bucket="hour",
            bucket_of="date_trunc('hour', e.effective_at, 'UTC')",
            before_day="(before_day::timestamp AT TIME ZONE 'UTC')",
            suffix="_hours",
        )
    )
    in_each_tenant("""
        INSERT INTO ledger.balance_hours
               (tenant_id, id, account_id, hour, slot, posted, pending_dr, pending_cr)
        SELECT e.tenant_id, gen_random_uuid(), e.account_id,
               date_trunc('hour', e.effective_at, 'UTC'), 0,
               coalesce(sum(e.amount) FILTER (WHERE x.status = 'posted'), 0),
               coalesce(sum(e.amount)
                        FILTER (WHERE x.status = 'pending' AND e.amount > 0), 0),
               coalesce(sum(e.amount)
                        FILTER (WHERE x.status = 'pending' AND e.amount < 0), 0)
          FROM ledger.entries e
          JOIN ledger.transactions x
            ON x.tenant_id = e.tenant_id AND x.id = e.transaction_id
         GROUP BY 1, 3, 4;
    """)


def downgrade() -> None:
    run_sql("""
        DROP TRIGGER after_insert_hours ON ledger.entries;
        DROP TRIGGER after_settled_hours ON ledger.transactions;
        DROP FUNCTION ledger.after_entries_insert_hours();
        DROP FUNCTION ledger.after_transaction_settled_hours();
        DROP FUNCTION ledger.compact_balance_hours(date);
        DROP TABLE ledger.balance_hours;
    """)
