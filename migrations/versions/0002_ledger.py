"""The double-entry ledger: accounts, transactions, entries, balance deltas, periods.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from erp.migrate import policy_sql, run_sql, tenant_schema, tenant_table

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    tenant_schema("ledger")
    run_sql("""
        CREATE TABLE ledger.accounts (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            code text NOT NULL CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
            name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
            type text NOT NULL
                CHECK (type IN ('asset', 'liability', 'equity', 'revenue', 'expense')),
            currency char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
            parent_id uuid,
            archived boolean NOT NULL DEFAULT false,
            guard text NOT NULL DEFAULT 'none' CHECK (guard IN ('none', 'non_negative')),
            role text CHECK (role IN ('retained_earnings')),
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, code),
            UNIQUE (tenant_id, id, currency),
            FOREIGN KEY (tenant_id, parent_id) REFERENCES ledger.accounts (tenant_id, id)
        );
        CREATE UNIQUE INDEX uq_accounts_role ON ledger.accounts (tenant_id, role, currency)
            WHERE role IS NOT NULL;
        CREATE INDEX ix_accounts_created ON ledger.accounts (tenant_id, created_at, id);
        CREATE INDEX ix_accounts_parent ON ledger.accounts (tenant_id, parent_id);
    """)
    tenant_table("ledger.accounts", "SELECT, INSERT, UPDATE (name, archived)")

    run_sql("""
        CREATE TABLE ledger.transactions (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            description text NOT NULL CHECK (length(description) <= 500),
            status text NOT NULL CHECK (status IN ('pending', 'posted', 'voided')),
            kind text NOT NULL DEFAULT 'standard'
                CHECK (kind IN ('standard', 'reversal', 'adjustment', 'closing')),
            effective_at timestamptz NOT NULL,
            posted_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            metadata jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
            reverses_id uuid,
            adjusts_id uuid,
            idempotency_key text,
            request_hash text,
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, id, effective_at),
            UNIQUE (tenant_id, reverses_id),
            UNIQUE (tenant_id, adjusts_id),
            UNIQUE (tenant_id, idempotency_key),
            FOREIGN KEY (tenant_id, reverses_id) REFERENCES ledger.transactions (tenant_id, id),
            FOREIGN KEY (tenant_id, adjusts_id) REFERENCES ledger.transactions (tenant_id, id),
            CHECK ((status = 'posted') = (posted_at IS NOT NULL)),
            CHECK ((kind = 'reversal') = (reverses_id IS NOT NULL)),
            CHECK ((kind = 'adjustment') = (adjusts_id IS NOT NULL)),
            CHECK ((idempotency_key IS NULL) = (request_hash IS NULL))
        );
        CREATE INDEX ix_transactions_effective ON ledger.transactions (tenant_id, effective_at, id);
        CREATE INDEX ix_transactions_unposted ON ledger.transactions (tenant_id, effective_at)
            WHERE status <> 'posted';
        CREATE INDEX ix_transactions_metadata ON ledger.transactions
            USING gin (metadata jsonb_path_ops);
    """)
    tenant_table("ledger.transactions", "SELECT, INSERT, UPDATE (status, posted_at)")
    run_sql("""
        CREATE TRIGGER refuse_delete BEFORE DELETE ON ledger.transactions
            FOR EACH ROW EXECUTE FUNCTION app.refuse_change('owner_may_delete');
        CREATE TRIGGER refuse_truncate BEFORE TRUNCATE ON ledger.transactions
            FOR EACH STATEMENT EXECUTE FUNCTION app.refuse_change('never');
    """)

    run_sql("""
        CREATE TABLE ledger.entries (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            transaction_id uuid NOT NULL,
            account_id uuid NOT NULL,
            amount bigint NOT NULL CHECK (amount <> 0),
            currency char(3) NOT NULL,
            effective_at timestamptz NOT NULL,
            PRIMARY KEY (tenant_id, id),
            -- the entry's date is its transaction's, and its currency its account's
            FOREIGN KEY (tenant_id, transaction_id, effective_at)
                REFERENCES ledger.transactions (tenant_id, id, effective_at),
            FOREIGN KEY (tenant_id, account_id, currency)
                REFERENCES ledger.accounts (tenant_id, id, currency)
        );
        CREATE INDEX ix_entries_transaction ON ledger.entries (tenant_id, transaction_id);
        CREATE INDEX ix_entries_account ON ledger.entries (tenant_id, account_id, effective_at, id)
            INCLUDE (amount);
    """)
    tenant_table("ledger.entries", append_only=True)

    run_sql("""
        CREATE TABLE ledger.balance_deltas (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            account_id uuid NOT NULL,
            day date NOT NULL,
            slot smallint NOT NULL,
            posted bigint NOT NULL DEFAULT 0,
            pending_dr bigint NOT NULL DEFAULT 0,
            pending_cr bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, account_id, day, slot),
            FOREIGN KEY (tenant_id, account_id) REFERENCES ledger.accounts (tenant_id, id)
        ) WITH (fillfactor = 70);
    """)
    tenant_table("ledger.balance_deltas", "SELECT")

    run_sql("""
        CREATE TABLE ledger.periods (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            period date NOT NULL CHECK (extract(day FROM period) = 1),
            closed_at timestamptz NOT NULL DEFAULT now(),
            closed_by text NOT NULL,
            closing_transaction_id uuid,
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, period),
            FOREIGN KEY (tenant_id, closing_transaction_id)
                REFERENCES ledger.transactions (tenant_id, id)
        );
    """)
    tenant_table("ledger.periods", append_only=True)

    run_sql(policy_sql("ledger_transaction_update.sql"))
    run_sql(policy_sql("ledger_guards.sql"))
    run_sql(
        policy_sql(
            "ledger_balances.sql",
            table="balance_deltas",
            bucket="day",
            bucket_of="(e.effective_at AT TIME ZONE 'UTC')::date",
            before_day="before_day",
            suffix="",
        )
    )


def downgrade() -> None:
    run_sql("DROP SCHEMA ledger CASCADE")
