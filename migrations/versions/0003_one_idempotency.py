"""One idempotency: the ledger's own key columns go; expired records are swept.

`erp/idempotency.py` is the only mechanism (API.md, Idempotency). The ledger's
`idempotency_key` / `request_hash` columns (and their unique constraint) are
dropped; the transaction guard stops comparing them. Expired records get an index
and a discovery function for the scheduled sweep.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from erp.migrate import policy_sql, run_sql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(policy_sql("ledger_transaction_update.sql"))
    run_sql("""
        ALTER TABLE ledger.transactions DROP COLUMN idempotency_key, DROP COLUMN request_hash;
        CREATE INDEX ix_idempotency_records_expiry ON iam.idempotency_records (expires_at);
        CREATE INDEX ix_operator_idempotency_records_expiry
            ON platform.operator_idempotency_records (expires_at);
        GRANT SELECT ON iam.idempotency_records TO erp_auth;
    """)
    # Owned by erp_auth, as app.lookup_api_key is (migration 0001).
    run_sql("GRANT CREATE ON SCHEMA app TO erp_auth; SET LOCAL ROLE erp_auth")
    run_sql(policy_sql("idempotency_discovery.sql"))
    run_sql("SET LOCAL ROLE erp_owner; REVOKE CREATE ON SCHEMA app FROM erp_auth")


def downgrade() -> None:
    run_sql("""
        DROP FUNCTION app.tenants_with_expired_idempotency_records(int);
        REVOKE SELECT ON iam.idempotency_records FROM erp_auth;
        DROP INDEX platform.ix_operator_idempotency_records_expiry;
        DROP INDEX iam.ix_idempotency_records_expiry;
        ALTER TABLE ledger.transactions ADD COLUMN idempotency_key text,
            ADD COLUMN request_hash text,
            ADD UNIQUE (tenant_id, idempotency_key),
            ADD CHECK ((idempotency_key IS NULL) = (request_hash IS NULL));
    """)
