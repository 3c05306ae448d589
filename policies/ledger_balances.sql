-- Balances are derived from entries into per-bucket sums, written by the triggers below
-- and by nothing else: per account, per bucket of effective_at, per slot
-- (txid_current() % 64; transactions running at the same time have near-consecutive
-- ids), so concurrent writers to one hot account update different rows. erp_app may only
-- read the sums: these SECURITY DEFINER trigger functions (owner erp_owner, RLS still
-- applies through FORCE) are the only writers.
--
-- A template, applied once per bucket (erp.migrate.policy_sql fills the braces):
--   migration 0002: {{table}} = balance_deltas, {{bucket}} = day (UTC date), no suffix;
--   migration 0012: {{table}} = balance_hours, {{bucket}} = hour (UTC hour start),
--                   suffix _hours (a balance as of a past moment then adds at most half
--                   an hour of entries to the sums: erp/ledger/queries.py).
-- Each bucket has its own triggers, so each migration adds or drops its own.

-- New entries: refuse entries for a transaction made in an earlier database
-- transaction (its entries are final), then add them to the deltas.
CREATE FUNCTION ledger.after_entries_insert{suffix}() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_entries e
                 JOIN ledger.transactions t ON t.tenant_id = e.tenant_id AND t.id = e.transaction_id
                WHERE t.created_at <> now() OR t.status = 'voided') THEN
        RAISE EXCEPTION 'entries are added only with their transaction' USING ERRCODE = 'EL003';
    END IF;
    INSERT INTO ledger.{table} AS d
           (tenant_id, id, account_id, {bucket}, slot, posted, pending_dr, pending_cr)
    SELECT e.tenant_id, gen_random_uuid(), e.account_id, {bucket_of},
           (txid_current() % 64)::smallint,
           coalesce(sum(e.amount) FILTER (WHERE t.status = 'posted'), 0),
           coalesce(sum(e.amount) FILTER (WHERE t.status = 'pending' AND e.amount > 0), 0),
           coalesce(sum(e.amount) FILTER (WHERE t.status = 'pending' AND e.amount < 0), 0)
      FROM new_entries e
      JOIN ledger.transactions t ON t.tenant_id = e.tenant_id AND t.id = e.transaction_id
     GROUP BY 1, 3, 4
     ORDER BY 3, 4
    ON CONFLICT (tenant_id, account_id, {bucket}, slot) DO UPDATE
       SET posted = d.posted + EXCLUDED.posted,
           pending_dr = d.pending_dr + EXCLUDED.pending_dr,
           pending_cr = d.pending_cr + EXCLUDED.pending_cr;
    RETURN NULL;
END
$$;

-- pending -> posted | voided: move the entries' amounts out of pending.
CREATE FUNCTION ledger.after_transaction_settled{suffix}() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO ledger.{table} AS d
           (tenant_id, id, account_id, {bucket}, slot, posted, pending_dr, pending_cr)
    SELECT e.tenant_id, gen_random_uuid(), e.account_id, {bucket_of},
           (txid_current() % 64)::smallint,
           CASE WHEN NEW.status = 'posted' THEN sum(e.amount) ELSE 0 END,
           -coalesce(sum(e.amount) FILTER (WHERE e.amount > 0), 0),
           -coalesce(sum(e.amount) FILTER (WHERE e.amount < 0), 0)
      FROM ledger.entries e
     WHERE e.tenant_id = NEW.tenant_id AND e.transaction_id = NEW.id
     GROUP BY 1, 3, 4
     ORDER BY 3, 4
    ON CONFLICT (tenant_id, account_id, {bucket}, slot) DO UPDATE
       SET posted = d.posted + EXCLUDED.posted,
           pending_dr = d.pending_dr + EXCLUDED.pending_dr,
           pending_cr = d.pending_cr + EXCLUDED.pending_cr;
    RETURN NULL;
END
$$;

-- Merge the slots of buckets before `before_day` into slot 0 (derived data only).
CREATE FUNCTION ledger.compact_{table}(before_day date) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    merged bigint;
BEGIN
    WITH moved AS (
        DELETE FROM ledger.{table}
         WHERE {bucket} < {before_day} AND slot <> 0
        RETURNING tenant_id, account_id, {bucket}, posted, pending_dr, pending_cr
    ), summed AS (
        SELECT tenant_id, account_id, {bucket}, sum(posted) AS posted,
               sum(pending_dr) AS pending_dr, sum(pending_cr) AS pending_cr, count(*) AS n
          FROM moved GROUP BY 1, 2, 3
    ), upserted AS (
        INSERT INTO ledger.{table} AS d
               (tenant_id, id, account_id, {bucket}, slot, posted, pending_dr, pending_cr)
        SELECT tenant_id, gen_random_uuid(), account_id, {bucket}, 0, posted, pending_dr, pending_cr
          FROM summed ORDER BY account_id, {bucket}
        ON CONFLICT (tenant_id, account_id, {bucket}, slot) DO UPDATE
           SET posted = d.posted + EXCLUDED.posted,
               pending_dr = d.pending_dr + EXCLUDED.pending_dr,
               pending_cr = d.pending_cr + EXCLUDED.pending_cr
    )
    SELECT coalesce(sum(n), 0) INTO merged FROM summed;
    RETURN merged;
END
$$;

REVOKE ALL ON FUNCTION ledger.after_entries_insert{suffix}() FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger.after_transaction_settled{suffix}() FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger.compact_{table}(date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger.compact_{table}(date) TO erp_app;

CREATE TRIGGER after_insert{suffix} AFTER INSERT ON ledger.entries
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.after_entries_insert{suffix}();
CREATE TRIGGER after_settled{suffix} AFTER UPDATE OF status ON ledger.transactions
    FOR EACH ROW WHEN (OLD.status = 'pending' AND NEW.status <> 'pending')
    EXECUTE FUNCTION ledger.after_transaction_settled{suffix}();
