-- Applied by migrations 0002 (before ledger_guards.sql creates its trigger) and 0003
-- (which dropped the ledger's own idempotency columns): CREATE OR REPLACE, so both may.

-- Only pending -> posted | voided, and nothing else about the row changes; never in a
-- closed period (closing refuses a month with pending transactions; this holds for
-- every writer, not only for close_period).
CREATE OR REPLACE FUNCTION ledger.before_transaction_update() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF OLD.status <> 'pending' OR NEW.status NOT IN ('posted', 'voided') THEN
        RAISE EXCEPTION 'transaction % is %: it cannot become %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'EL003';
    END IF;
    IF (NEW.tenant_id, NEW.id, NEW.description, NEW.effective_at, NEW.created_at, NEW.metadata,
        NEW.reverses_id, NEW.adjusts_id, NEW.kind)
       IS DISTINCT FROM
       (OLD.tenant_id, OLD.id, OLD.description, OLD.effective_at, OLD.created_at, OLD.metadata,
        OLD.reverses_id, OLD.adjusts_id, OLD.kind) THEN
        RAISE EXCEPTION 'only the status of a transaction changes' USING ERRCODE = 'EL003';
    END IF;
    IF EXISTS (SELECT 1 FROM ledger.periods p
                WHERE p.period = date_trunc('month', OLD.effective_at AT TIME ZONE 'UTC')::date) THEN
        RAISE EXCEPTION 'the period of % is closed', OLD.effective_at USING ERRCODE = 'EL002';
    END IF;
    NEW.posted_at := CASE WHEN NEW.status = 'posted' THEN now() END;
    RETURN NEW;
END
$$;
