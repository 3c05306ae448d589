-- Balances are derived from entries into ledger.balance_deltas: per account, per
-- UTC day of effective_at, per slot (txid_current() % 64; transactions running at
-- the same time have near-consecutive ids), so concurrent writers to one hot
-- account update different rows. erp_app may only read the
-- deltas: these SECURITY DEFINER trigger functions (owner erp_owner, RLS still
-- applies through FORCE) are the only writers.

-- New entries: refuse entries for a transaction made in an earlier database
-- transaction (its entries are final), then add them to the deltas.
CREATE FUNCTION ledger.after_entries_insert() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_entries e
                 JOIN ledger.transactions t ON t.tenant_id = e.tenant_id AND t.id = e.transaction_id
                WHERE t.created_at <> now() OR t.status = 'voided') THEN
        RAISE EXCEPTION 'entries are added only with their transaction' USING ERRCODE = 'EL003';
    END IF;
    INSERT INTO ledger.balance_deltas AS d
           (tenant_id, id, account_id, day, slot, posted, pending_dr, pending_cr)
    SELECT e.tenant_id, gen_random_uuid(), e.account_id, (e.effective_at AT TIME ZONE 'UTC')::date,
           (txid_current() % 64)::smallint,
           coalesce(sum(e.amount) FILTER (WHERE t.status = 'posted'), 0),
           coalesce(sum(e.amount) FILTER (WHERE t.status = 'pending' AND e.amount > 0), 0),
           coalesce(sum(e.amount) FILTER (WHERE t.status = 'pending' AND e.amount < 0), 0)
      FROM new_entries e
      JOIN ledger.transactions t ON t.tenant_id = e.tenant_id AND t.id = e.transaction_id
     GROUP BY 1, 3, 4
     ORDER BY 3, 4
    ON CONFLICT (tenant_id, account_id, day, slot) DO UPDATE
       SET posted = d.posted + EXCLUDED.posted,
           pending_dr = d.pending_dr + EXCLUDED.pending_dr,
           pending_cr = d.pending_cr + EXCLUDED.pending_cr;
    RETURN NULL;
END
$$;

-- pending -> posted | voided: move the entries' amounts out of pending.
CREATE FUNCTION ledger.after_transaction_settled() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO ledger.balance_deltas AS d
           (tenant_id, id, account_id, day, slot, posted, pending_dr, pending_cr)
    SELECT e.tenant_id, gen_random_uuid(), e.account_id, (e.effective_at AT TIME ZONE 'UTC')::date,
           (txid_current() % 64)::smallint,
           CASE WHEN NEW.status = 'posted' THEN sum(e.amount) ELSE 0 END,
           -coalesce(sum(e.amount) FILTER (WHERE e.amount > 0), 0),
           -coalesce(sum(e.amount) FILTER (WHERE e.amount < 0), 0)
      FROM ledger.entries e
     WHERE e.tenant_id = NEW.tenant_id AND e.transaction_id = NEW.id
     GROUP BY 1, 3, 4
     ORDER BY 3, 4
    ON CONFLICT (tenant_id, account_id, day, slot) DO UPDATE
       SET posted = d.posted + EXCLUDED.posted,
           pending_dr = d.pending_dr + EXCLUDED.pending_dr,
           pending_cr = d.pending_cr + EXCLUDED.pending_cr;
    RETURN NULL;
END
$$;

-- Merge the slots of days before `before_day` into slot 0 (derived data only).
CREATE FUNCTION ledger.compact_balance_deltas(before_day date) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    merged bigint;
BEGIN
    WITH moved AS (
        DELETE FROM ledger.balance_deltas
         WHERE day < before_day AND slot <> 0
        RETURNING tenant_id, account_id, day, posted, pending_dr, pending_cr
    ), summed AS (
        SELECT tenant_id, account_id, day, sum(posted) AS posted,
               sum(pending_dr) AS pending_dr, sum(pending_cr) AS pending_cr, count(*) AS n
          FROM moved GROUP BY 1, 2, 3
    ), upserted AS (
        INSERT INTO ledger.balance_deltas AS d
               (tenant_id, id, account_id, day, slot, posted, pending_dr, pending_cr)
        SELECT tenant_id, gen_random_uuid(), account_id, day, 0, posted, pending_dr, pending_cr
          FROM summed ORDER BY account_id, day
        ON CONFLICT (tenant_id, account_id, day, slot) DO UPDATE
           SET posted = d.posted + EXCLUDED.posted,
               pending_dr = d.pending_dr + EXCLUDED.pending_dr,
               pending_cr = d.pending_cr + EXCLUDED.pending_cr
    )
    SELECT coalesce(sum(n), 0) INTO merged FROM summed;
    RETURN merged;
END
$$;

REVOKE ALL ON FUNCTION ledger.after_entries_insert() FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger.after_transaction_settled() FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger.compact_balance_deltas(date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger.compact_balance_deltas(date) TO erp_app;

CREATE TRIGGER after_insert AFTER INSERT ON ledger.entries
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.after_entries_insert();
CREATE TRIGGER after_settled AFTER UPDATE OF status ON ledger.transactions
    FOR EACH ROW WHEN (OLD.status = 'pending' AND NEW.status <> 'pending')
    EXECUTE FUNCTION ledger.after_transaction_settled();
