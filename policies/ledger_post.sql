-- Posting a ledger transaction is ONE call (DESIGN.md §4; docs/domains.md, "How to add
-- a fast command"): this function checks what the API promises to check, in the order it
-- promises, takes the locks, and writes the transaction, its entries and its outbox
-- event, in one round trip from the service. A refusal is a named SQLSTATE whose
-- MESSAGE is the problem's detail and whose DETAIL names the field(s) at fault, one
-- `field.path: message` per line (erp.errors maps it to a per-field problem):
--
--   EL001 unbalanced          fewer than two entries; a currency not summing to zero
--   EL002 period-closed       effective_at falls in a closed month
--   EL004 validation          unknown/archived account, currency not the account's,
--                             debits past 64 bits
--   EL005 insufficient-funds  a non_negative account would go below zero
--
-- SECURITY INVOKER: it runs as the caller (erp_app) under RLS, so an account of another
-- tenant reads as unknown and every row it writes lands in the caller's tenant. The
-- triggers of ledger_guards.sql and ledger_balances.sql still judge every row at insert
-- and at commit, whoever writes it: this function is the fast, explanatory path, not the
-- only guard.
--
-- Entries arrive in the client's order (refusals name entries.<index> of the request)
-- and are stored sorted by (account, amount): the order the API lists them in, and the
-- order the service built the event payload in.

CREATE OR REPLACE FUNCTION ledger.post_transaction(
    p_id uuid,
    p_description text,
    p_status text,
    p_kind text,
    p_effective_at timestamptz,
    p_metadata jsonb,
    p_reverses_id uuid,
    p_adjusts_id uuid,
    p_entry_ids uuid[],
    p_accounts uuid[],
    p_amounts bigint[],
    p_currencies text[],
    p_event_id uuid,
    p_event_payload jsonb,
    p_allow_archived boolean
) RETURNS TABLE (created_at timestamptz, posted_at timestamptz)
    LANGUAGE plpgsql
    SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
AS $$
-- The result columns share names with table columns: in a query, a name is the column.
#variable_conflict use_column
DECLARE
    n_entries int := coalesce(cardinality(p_accounts), 0);
    -- The UTC month, as periods.month_of() and the lock key spell it.
    yyyy_mm text := to_char(p_effective_at AT TIME ZONE 'UTC', 'YYYY-MM');
    off_currencies text;
    off_lines text;
    big_lines text;
    bad record;
    field text;
    problem text;
    guarded record;
    available numeric;
BEGIN
    -- The service builds these arrays: unequal lengths are its bug (a 500), not bad input.
    IF coalesce(cardinality(p_entry_ids), 0) <> n_entries
       OR coalesce(cardinality(p_amounts), 0) <> n_entries
       OR coalesce(cardinality(p_currencies), 0) <> n_entries THEN
        RAISE EXCEPTION 'ledger.post_transaction: the entry arrays differ in length';
    END IF;

    -- 1. Balance, from the arguments alone (no lock, no read). Sums are numeric, so a
    --    sum past 64 bits is measured, not overflowed: it is refused by name below.
    IF n_entries < 2 THEN
        RAISE EXCEPTION 'A transaction needs at least two entries.'
            USING ERRCODE = 'EL001', DETAIL = 'entries: At least two entries are required.';
    END IF;
    SELECT string_agg(currency, ', ' ORDER BY currency) FILTER (WHERE total <> 0),
           string_agg(format('entries: %s sums to %s, not 0.', currency, total), E'\n'
                      ORDER BY currency) FILTER (WHERE total <> 0),
           string_agg(format('entries: %s debits exceed 9223372036854775807.', currency), E'\n'
                      ORDER BY currency) FILTER (WHERE debits > 9223372036854775807)
      INTO off_currencies, off_lines, big_lines
      FROM (SELECT e.currency COLLATE "C" AS currency, sum(e.amount) AS total,
                   sum(e.amount) FILTER (WHERE e.amount > 0) AS debits
              FROM unnest(p_currencies, p_amounts) AS e(currency, amount)
             GROUP BY 1) AS per_currency;
    IF off_currencies IS NOT NULL THEN
        RAISE EXCEPTION 'Entries must sum to zero in each currency; they do not in %.',
            off_currencies USING ERRCODE = 'EL001', DETAIL = off_lines;
    END IF;
    IF big_lines IS NOT NULL THEN
        RAISE EXCEPTION 'The entries'' sum would overflow a 64-bit integer.'
            USING ERRCODE = 'EL004', DETAIL = big_lines;
    END IF;

    -- 2. The month, shared: closing it takes this key exclusively (periods.PERIOD_LOCK_KEY),
    --    so a posting and the close of its month never interleave.
    PERFORM pg_advisory_xact_lock_shared(
        hashtextextended(current_setting('app.tenant_id') || ':period:' || yyyy_mm, 0));

    -- 3. The accounts: the first entry at fault, in the client's order, is named.
    SELECT e.i - 1 AS i, a.id IS NULL AS unknown, a.archived AND NOT p_allow_archived AS archived,
           a.currency AS account_currency
      INTO bad
      FROM unnest(p_accounts, p_currencies) WITH ORDINALITY AS e(account_id, currency, i)
      LEFT JOIN ledger.accounts a ON a.id = e.account_id
     WHERE a.id IS NULL OR (a.archived AND NOT p_allow_archived) OR a.currency <> e.currency
     ORDER BY e.i
     LIMIT 1;
    IF FOUND THEN
        IF bad.unknown THEN
            field := format('entries.%s.account_id', bad.i);
            problem := 'Unknown account.';
        ELSIF bad.archived THEN
            field := format('entries.%s.account_id', bad.i);
            problem := 'The account is archived.';
        ELSE
            field := format('entries.%s.currency', bad.i);
            problem := format('The account''s currency is %s.', bad.account_currency);
        END IF;
        RAISE EXCEPTION '%: %', field, problem
            USING ERRCODE = 'EL004', DETAIL = field || ': ' || problem;
    END IF;

    -- 4. The period. This statement's snapshot is taken after the lock above, so it sees a
    --    close that committed while we waited for it.
    IF EXISTS (SELECT 1 FROM ledger.periods p
                WHERE p.period = date_trunc('month', p_effective_at AT TIME ZONE 'UTC')::date) THEN
        RAISE EXCEPTION 'effective_at: The period % is closed.', yyyy_mm
            USING ERRCODE = 'EL002', DETAIL = format('effective_at: The period %s is closed.', yyyy_mm);
    END IF;

    -- 5. Guards: a non_negative account's normal-side balance, less its pending outflows,
    --    stays >= 0. Only entries that reduce it count (an asset or expense credited, any
    --    other account debited); a posting that only adds to it takes no lock. Reducers
    --    serialize on a per-account lock, taken in account order so that two postings
    --    guarding the same accounts never deadlock, and read the balance after the lock:
    --    each statement here has a fresh snapshot, so it includes what the previous
    --    holder committed.
    FOR guarded IN
        SELECT e.account_id, a.type IN ('asset', 'expense') AS debit_normal,
               sum(abs(e.amount::numeric)) AS needs
          FROM unnest(p_accounts, p_amounts) AS e(account_id, amount)
          JOIN ledger.accounts a ON a.id = e.account_id
         WHERE a.guard = 'non_negative'
           AND (a.type IN ('asset', 'expense')) = (e.amount < 0)
         GROUP BY e.account_id, a.type
         ORDER BY e.account_id
    LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended(
            current_setting('app.tenant_id') || ':guard:' || guarded.account_id::text, 0));
        SELECT CASE WHEN guarded.debit_normal
                    THEN coalesce(sum(d.posted), 0) + coalesce(sum(d.pending_cr), 0)
                    ELSE -coalesce(sum(d.posted), 0) - coalesce(sum(d.pending_dr), 0) END
          INTO available
          FROM ledger.balance_deltas d
         WHERE d.account_id = guarded.account_id;
        IF available < guarded.needs THEN
            RAISE EXCEPTION 'Account % has % available; the transaction needs %.',
                guarded.account_id, available, guarded.needs
                USING ERRCODE = 'EL005',
                      DETAIL = format('entries.%s.amount: Insufficient funds.',
                                      array_position(p_accounts, guarded.account_id) - 1);
        END IF;
    END LOOP;

    -- 6. The rows. The transaction's trigger sets created_at and posted_at (now()); the
    --    entries' triggers keep balance_deltas; the event is written only for a posted
    --    transaction, with the posted_at the database gave it.
    INSERT INTO ledger.transactions AS t
           (id, description, status, kind, effective_at, metadata, reverses_id, adjusts_id)
    VALUES (p_id, p_description, p_status, p_kind, p_effective_at, p_metadata, p_reverses_id,
            p_adjusts_id)
    RETURNING t.created_at, t.posted_at
         INTO post_transaction.created_at, post_transaction.posted_at;

    INSERT INTO ledger.entries (id, transaction_id, account_id, amount, currency, effective_at)
    SELECT e.id, p_id, e.account_id, e.amount, e.currency, p_effective_at
      FROM unnest(p_entry_ids, p_accounts, p_amounts, p_currencies)
           WITH ORDINALITY AS e(id, account_id, amount, currency, i)
     ORDER BY e.account_id, e.amount, e.i;

    IF p_status = 'posted' THEN
        INSERT INTO webhooks.outbox_events (id, event_type, payload)
        VALUES (p_event_id, 'ledger.transaction.posted',
                p_event_payload || jsonb_build_object('posted_at', post_transaction.posted_at));
    END IF;
    RETURN NEXT;
END
$$;

REVOKE ALL ON FUNCTION ledger.post_transaction(uuid, text, text, text, timestamptz, jsonb, uuid,
    uuid, uuid[], uuid[], bigint[], text[], uuid, jsonb, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger.post_transaction(uuid, text, text, text, timestamptz, jsonb,
    uuid, uuid, uuid[], uuid[], bigint[], text[], uuid, jsonb, boolean) TO erp_app;
