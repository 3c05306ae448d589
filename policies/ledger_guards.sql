-- The ledger's rules, enforced by PostgreSQL whatever the client (DESIGN.md §3).
-- Custom SQLSTATEs (class EL) are mapped to problem+json by erp.errors:
--   EL001 unbalanced, EL002 period-closed, EL003 immutable / bad transition.

-- A new transaction: created now, posted_at only when posted, never born voided,
-- never dated in a closed period.
CREATE FUNCTION ledger.before_transaction_insert() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    NEW.created_at := now();
    IF NEW.status = 'voided' THEN
        RAISE EXCEPTION 'a transaction cannot be created voided' USING ERRCODE = 'EL003';
    END IF;
    NEW.posted_at := CASE WHEN NEW.status = 'posted' THEN now() END;
    IF EXISTS (SELECT 1 FROM ledger.periods p
                WHERE p.period = date_trunc('month', NEW.effective_at AT TIME ZONE 'UTC')::date) THEN
        RAISE EXCEPTION 'the period of % is closed', NEW.effective_at USING ERRCODE = 'EL002';
    END IF;
    RETURN NEW;
END
$$;

-- ledger.before_transaction_update(): policies/ledger_transaction_update.sql

-- At commit: at least two entries, and each currency sums to zero. It runs for the
-- new transaction and again for every new entry: `SET CONSTRAINTS ... IMMEDIATE` can
-- run the transaction's check early, and an entry added after it must not escape.
CREATE FUNCTION ledger.check_transaction_balanced() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tx_id uuid;
    n_entries bigint;
    n_unbalanced bigint;
BEGIN
    IF TG_TABLE_NAME = 'entries' THEN
        tx_id := NEW.transaction_id;
    ELSE
        tx_id := NEW.id;
    END IF;
    SELECT coalesce(sum(n), 0), count(*) FILTER (WHERE total <> 0)
      INTO n_entries, n_unbalanced
      FROM (SELECT currency, sum(amount) AS total, count(*) AS n
              FROM ledger.entries
             WHERE tenant_id = NEW.tenant_id AND transaction_id = tx_id
             GROUP BY currency) s;
    IF n_entries < 2 THEN
        RAISE EXCEPTION 'transaction % has % entries; at least two are needed', tx_id, n_entries
            USING ERRCODE = 'EL001';
    END IF;
    IF n_unbalanced > 0 THEN
        RAISE EXCEPTION 'transaction % does not sum to zero in every currency', tx_id
            USING ERRCODE = 'EL001';
    END IF;
    RETURN NULL;
END
$$;

REVOKE ALL ON FUNCTION ledger.before_transaction_insert() FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger.before_transaction_update() FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger.check_transaction_balanced() FROM PUBLIC;

CREATE TRIGGER before_insert BEFORE INSERT ON ledger.transactions
    FOR EACH ROW EXECUTE FUNCTION ledger.before_transaction_insert();
CREATE TRIGGER before_update BEFORE UPDATE ON ledger.transactions
    FOR EACH ROW EXECUTE FUNCTION ledger.before_transaction_update();
CREATE CONSTRAINT TRIGGER balanced AFTER INSERT ON ledger.transactions
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger.check_transaction_balanced();
CREATE CONSTRAINT TRIGGER balanced AFTER INSERT ON ledger.entries
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger.check_transaction_balanced();
