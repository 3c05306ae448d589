-- Inventory's write path (DESIGN.md §4; docs/domains.md, "How to add a fast command").
-- Every function here is SECURITY INVOKER: it runs as erp_app under RLS, so another
-- tenant's item or location reads as unknown and every row lands in the caller's tenant.
--
-- Refusals (registered in erp/inventory/__init__.py):
--   EI001 insufficient-stock (409)  DETAIL `<field>: <available> available.`
--   EI002 validation (422)          DETAIL `<field>: <message>`
--
-- LOCK ORDER (every writer of stock levels follows it, so nothing deadlocks):
--   1. the item rows, FOR NO KEY UPDATE, in item id order (inventory.lock_items for
--      several items; apply_move locks its one item itself);
--   2. the stock_levels rows, in location id order (a transfer's two legs likewise).
--   A caller making several moves in one transaction locks all their items first
--   (inventory.lock_items) and applies the moves in (item_id, location_id) order.
--   The commit-time event trigger then only touches item rows its transaction holds.
--
-- AVAILABLE: `on_hand - reserved >= 0` unless the location allows negative stock. It is
-- not a table CHECK (allow_negative is the location's); each writer enforces it in ONE
-- conditional UPDATE (`... WHERE on_hand - reserved >= q`), so there is no
-- read-then-write window.
--
-- EVENTS: writers call inventory.note_change per level changed; it upserts one row per
-- (transaction, item, location) into inventory.level_changes. A DEFERRABLE INITIALLY
-- DEFERRED constraint trigger on its INSERT fires once per level at commit and writes
-- that level's one stock.changed event (net delta, every source) and, for its item,
-- stock.low once per crossing below the reorder point (re-armed at or above it).

-- RFC 3339 in UTC exactly as Python's datetime.isoformat() writes an aware UTC time
-- (microseconds only when non-zero, "+00:00"): event payloads built here equal the
-- ones the Python views build.
CREATE OR REPLACE FUNCTION inventory.iso_utc(p_at timestamptz) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
        || CASE WHEN date_part('microseconds', p_at AT TIME ZONE 'UTC')::bigint % 1000000 <> 0
                THEN to_char(p_at AT TIME ZONE 'UTC', '.US') ELSE '' END
        || '+00:00'
$$;

-- round_half_up(value * quantity / on_hand) for non-negative value and positive
-- quantity and on_hand, in numeric (no overflow).
CREATE OR REPLACE FUNCTION inventory.share_of_value(p_value bigint, p_quantity bigint,
                                                    p_on_hand numeric) RETURNS numeric
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p_on_hand <= 0 THEN 0::numeric
                ELSE div(2 * p_value::numeric * p_quantity + p_on_hand, 2 * p_on_hand) END
$$;

-- Record that a level changed in this transaction (see EVENTS above). source_type is
-- 'move' or 'reservation'.
CREATE OR REPLACE FUNCTION inventory.note_change(
    p_item_id uuid, p_location_id uuid, p_d_on_hand bigint, p_d_reserved bigint,
    p_source_type text, p_source_id uuid
) RETURNS void
    LANGUAGE sql
    SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO inventory.level_changes AS c
           (id, item_id, location_id, d_on_hand, d_reserved, sources)
    VALUES (gen_random_uuid(), p_item_id, p_location_id, p_d_on_hand, p_d_reserved,
            jsonb_build_array(jsonb_build_object('type', p_source_type, 'id', p_source_id)))
    ON CONFLICT (tenant_id, xact_id, item_id, location_id) DO UPDATE
       SET d_on_hand = c.d_on_hand + excluded.d_on_hand,
           d_reserved = c.d_reserved + excluded.d_reserved,
           sources = CASE WHEN c.sources @> excluded.sources THEN c.sources
                          ELSE c.sources || excluded.sources END
$$;

-- At commit, once per level changed: the stock.changed event (skipped when the net
-- change is zero on both counts), then the item's stock.low state.
CREATE OR REPLACE FUNCTION inventory.level_changed_at_commit() RETURNS trigger
    LANGUAGE plpgsql
    SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ch record;
    lvl record;
    it record;
    avail bigint;
BEGIN
    SELECT c.item_id, c.location_id, c.d_on_hand, c.d_reserved, c.sources
      INTO ch FROM inventory.level_changes c WHERE c.id = NEW.id;
    IF NOT FOUND OR (ch.d_on_hand = 0 AND ch.d_reserved = 0) THEN
        RETURN NULL;
    END IF;
    -- The item first (LOCK ORDER); this transaction already holds it when it moved stock.
    SELECT i.sku, i.reorder_point, i.low INTO it
      FROM inventory.items i WHERE i.id = ch.item_id FOR NO KEY UPDATE;
    SELECT l.on_hand, l.reserved INTO lvl
      FROM inventory.stock_levels l
     WHERE l.item_id = ch.item_id AND l.location_id = ch.location_id;
    INSERT INTO webhooks.outbox_events (id, event_type, payload)
    VALUES (NEW.id, 'stock.changed', jsonb_build_object(
        'item_id', ch.item_id, 'sku', it.sku, 'location_id', ch.location_id,
        'on_hand', lvl.on_hand, 'reserved', lvl.reserved,
        'available', lvl.on_hand - lvl.reserved,
        'delta', jsonb_build_object('on_hand', ch.d_on_hand, 'reserved', ch.d_reserved),
        'sources', ch.sources));
    IF it.reorder_point IS NULL AND NOT it.low THEN
        RETURN NULL;
    END IF;
    SELECT coalesce(sum(l.on_hand - l.reserved), 0) INTO avail
      FROM inventory.stock_levels l WHERE l.item_id = ch.item_id;
    IF it.reorder_point IS NOT NULL AND avail < it.reorder_point AND NOT it.low THEN
        UPDATE inventory.items SET low = true WHERE id = ch.item_id;
        INSERT INTO webhooks.outbox_events (id, event_type, payload)
        VALUES (gen_random_uuid(), 'stock.low', jsonb_build_object(
            'item_id', ch.item_id, 'sku', it.sku, 'reorder_point', it.reorder_point,
            'available', avail));
    ELSIF it.low AND (it.reorder_point IS NULL OR avail >= it.reorder_point) THEN
        UPDATE inventory.items SET low = false WHERE id = ch.item_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER level_changed_at_commit
    AFTER INSERT ON inventory.level_changes
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION inventory.level_changed_at_commit();

-- Lock several items in id order (LOCK ORDER, step 1) before moving or reserving them.
CREATE OR REPLACE FUNCTION inventory.lock_items(p_item_ids uuid[]) RETURNS void
    LANGUAGE sql
    SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT NULL::void FROM (
        SELECT 1 FROM inventory.items i WHERE i.id = ANY (p_item_ids)
         ORDER BY i.id FOR NO KEY UPDATE) AS locked
$$;

-- Take p_quantity out of a level (and p_release of its reserved units with them: a
-- fulfilment consumes its reservation in the same statement). ONE conditional UPDATE;
-- where the location allows negative stock, one upsert.
CREATE OR REPLACE FUNCTION inventory.take_stock(
    p_item_id uuid, p_location_id uuid, p_quantity bigint, p_release bigint,
    p_allow_negative boolean, p_field text
) RETURNS void
    LANGUAGE plpgsql
    SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    avail bigint;
BEGIN
    IF p_allow_negative THEN
        INSERT INTO inventory.stock_levels AS l (id, item_id, location_id, on_hand, reserved)
        VALUES (gen_random_uuid(), p_item_id, p_location_id, -p_quantity, 0)
        ON CONFLICT (tenant_id, item_id, location_id) DO UPDATE
           SET on_hand = l.on_hand - p_quantity, reserved = l.reserved - p_release,
               updated_at = now();
        RETURN;
    END IF;
    UPDATE inventory.stock_levels l
       SET on_hand = l.on_hand - p_quantity, reserved = l.reserved - p_release,
           updated_at = now()
     WHERE l.item_id = p_item_id AND l.location_id = p_location_id
       AND l.reserved >= p_release
       AND l.on_hand - l.reserved >= p_quantity - p_release;
    IF NOT FOUND THEN
        SELECT l.on_hand - l.reserved + least(l.reserved, p_release) INTO avail
          FROM inventory.stock_levels l
         WHERE l.item_id = p_item_id AND l.location_id = p_location_id;
        RAISE EXCEPTION '% available; the move needs %.', coalesce(avail, 0), p_quantity
            USING ERRCODE = 'EI001',
                  DETAIL = format('%s: %s available.', p_field, coalesce(avail, 0));
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION inventory.put_stock(p_item_id uuid, p_location_id uuid,
                                               p_quantity bigint) RETURNS void
    LANGUAGE sql
    SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO inventory.stock_levels AS l (id, item_id, location_id, on_hand)
    VALUES (gen_random_uuid(), p_item_id, p_location_id, p_quantity)
    ON CONFLICT (tenant_id, item_id, location_id) DO UPDATE
       SET on_hand = l.on_hand + p_quantity, updated_at = now()
$$;

-- A refusal of bad input: EI002, MESSAGE "<field>: <problem>", DETAIL the same.
CREATE OR REPLACE FUNCTION inventory.refuse(p_field text, p_problem text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION '%: %', p_field, p_problem
        USING ERRCODE = 'EI002', DETAIL = p_field || ': ' || p_problem;
END
$$;

-- The argument rules of a move (API.md, Moves), from the arguments alone.
CREATE OR REPLACE FUNCTION inventory.check_move_args(
    p_kind text, p_quantity bigint, p_from uuid, p_to uuid, p_unit_cost bigint,
    p_reason_code text, p_reason text, p_reference text, p_prefix text, p_quantity_field text
) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    outward boolean := p_kind = 'issue' OR (p_kind = 'adjustment' AND p_from IS NOT NULL);
BEGIN
    IF p_kind IS NULL OR p_kind NOT IN ('receipt', 'issue', 'transfer', 'adjustment') THEN
        PERFORM inventory.refuse(p_prefix || 'kind',
                                 'Must be one of receipt, issue, transfer, adjustment.');
    END IF;
    IF p_quantity IS NULL OR p_quantity <= 0 THEN
        PERFORM inventory.refuse(p_prefix || p_quantity_field, 'Must be greater than 0.');
    END IF;
    IF p_kind = 'receipt' AND p_from IS NOT NULL THEN
        PERFORM inventory.refuse(p_prefix || 'from_location_id', 'Not allowed for a receipt.');
    ELSIF p_kind IN ('receipt', 'transfer') AND p_to IS NULL THEN
        PERFORM inventory.refuse(p_prefix || 'to_location_id', format('Required for a %s.', p_kind));
    ELSIF p_kind = 'issue' AND p_to IS NOT NULL THEN
        PERFORM inventory.refuse(p_prefix || 'to_location_id', 'Not allowed for an issue.');
    ELSIF p_kind IN ('issue', 'transfer') AND p_from IS NULL THEN
        PERFORM inventory.refuse(p_prefix || 'from_location_id',
                                 format('Required for %s.', CASE p_kind WHEN 'issue'
                                        THEN 'an issue' ELSE 'a transfer' END));
    ELSIF p_kind = 'transfer' AND p_from = p_to THEN
        PERFORM inventory.refuse(p_prefix || 'to_location_id',
                                 'Must differ from from_location_id.');
    ELSIF p_kind = 'adjustment' AND (p_from IS NULL) = (p_to IS NULL) THEN
        PERFORM inventory.refuse(p_prefix || 'to_location_id',
            'An adjustment takes exactly one of from_location_id and to_location_id.');
    END IF;
    IF p_kind = 'receipt' AND p_unit_cost IS NULL THEN
        PERFORM inventory.refuse(p_prefix || 'unit_cost', 'Required for a receipt.');
    ELSIF p_unit_cost IS NOT NULL AND (outward OR p_kind = 'transfer') THEN
        PERFORM inventory.refuse(p_prefix || 'unit_cost',
                                 'Only a receipt or an adjustment in takes a unit cost.');
    ELSIF p_unit_cost < 0 THEN
        PERFORM inventory.refuse(p_prefix || 'unit_cost', 'Must be at least 0.');
    END IF;
    IF p_kind = 'adjustment' AND p_reason_code IS NULL THEN
        PERFORM inventory.refuse(p_prefix || 'reason_code', 'Required for an adjustment.');
    ELSIF p_kind <> 'adjustment' AND p_reason_code IS NOT NULL THEN
        PERFORM inventory.refuse(p_prefix || 'reason_code', 'Only an adjustment takes one.');
    ELSIF p_reason_code NOT IN ('count', 'damaged', 'lost', 'found', 'expired', 'correction',
                                'other') THEN
        PERFORM inventory.refuse(p_prefix || 'reason_code',
            'Must be one of count, damaged, lost, found, expired, correction, other.');
    END IF;
    IF length(p_reason) > 500 THEN
        PERFORM inventory.refuse(p_prefix || 'reason', 'Longer than 500 characters.');
    END IF;
    IF length(p_reference) > 200 THEN
        PERFORM inventory.refuse(p_prefix || 'reference', 'Longer than 200 characters.');
    END IF;
END
$$;

-- One stock move: checks, item lock, the level legs (each one conditional statement),
-- the item's moving-average value, the move row, the level changes. It RETURNS the
-- move's value and posts NOTHING: callers post (inventory.post_value) alone or in one
-- combined transaction (a fulfilment, a PO receipt). p_transaction_id is stored on the
-- move when it moves value (the posting must then follow in this transaction: the
-- foreign key is checked at commit).
--   p_release: reserved units that leave with this move (a fulfilment consuming its
--     reservation): reserved and on_hand both drop, in the same statement.
--   p_prefix / p_quantity_field: how refusals name fields (`lines.3.` / `counted`).
--   Archived items are refused unless an order step (fulfilment, return) moves them.
CREATE OR REPLACE FUNCTION inventory.apply_move(
    p_id uuid,
    p_kind text,
    p_item_id uuid,
    p_quantity bigint,
    p_from uuid,
    p_to uuid,
    p_unit_cost bigint,
    p_reason_code text,
    p_reason text,
    p_reference text,
    p_source_type text DEFAULT NULL,
    p_source_id uuid DEFAULT NULL,
    p_transaction_id uuid DEFAULT NULL,
    p_release bigint DEFAULT 0,
    p_prefix text DEFAULT '',
    p_quantity_field text DEFAULT 'quantity'
) RETURNS TABLE (value bigint, created_at timestamptz)
    LANGUAGE plpgsql
    SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    item record;
    loc_from record;
    loc_to record;
    total numeric;
    moved numeric;
    delta numeric;
    outward boolean := p_kind = 'issue' OR (p_kind = 'adjustment' AND p_from IS NOT NULL);
    qty_field text := p_prefix || p_quantity_field;
BEGIN
    PERFORM inventory.check_move_args(p_kind, p_quantity, p_from, p_to, p_unit_cost,
                                      p_reason_code, p_reason, p_reference, p_prefix,
                                      p_quantity_field);
    IF p_release IS NULL OR p_release < 0 OR p_release > p_quantity THEN
        RAISE EXCEPTION 'inventory.apply_move: p_release % outside 0..quantity', p_release;
    END IF;

    -- The item, locked first (LOCK ORDER); its value is ours until commit.
    SELECT i.value, i.archived INTO item
      FROM inventory.items i WHERE i.id = p_item_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        PERFORM inventory.refuse(p_prefix || 'item_id', 'Unknown item.');
    ELSIF item.archived AND coalesce(p_source_type, '') NOT IN ('fulfilment', 'return') THEN
        PERFORM inventory.refuse(p_prefix || 'item_id', 'The item is archived.');
    END IF;
    IF p_from IS NOT NULL THEN
        SELECT l.archived, l.allow_negative INTO loc_from
          FROM inventory.locations l WHERE l.id = p_from;
        IF NOT FOUND THEN
            PERFORM inventory.refuse(p_prefix || 'from_location_id', 'Unknown location.');
        ELSIF loc_from.archived THEN
            PERFORM inventory.refuse(p_prefix || 'from_location_id', 'The location is archived.');
        END IF;
    END IF;
    IF p_to IS NOT NULL THEN
        SELECT l.archived INTO loc_to FROM inventory.locations l WHERE l.id = p_to;
        IF NOT FOUND THEN
            PERFORM inventory.refuse(p_prefix || 'to_location_id', 'Unknown location.');
        ELSIF loc_to.archived THEN
            PERFORM inventory.refuse(p_prefix || 'to_location_id', 'The location is archived.');
        END IF;
    END IF;

    -- Value (API.md, Valuation): in at quantity x unit_cost; out at the moving average,
    -- all of the value for the last units, 0 when nothing is on hand. Read after the
    -- item lock: every on_hand change of this item has committed or waits behind us.
    IF p_kind <> 'transfer' THEN
        IF p_unit_cost IS NOT NULL THEN
            moved := p_quantity::numeric * p_unit_cost;
        ELSE
            SELECT coalesce(sum(l.on_hand), 0) INTO total
              FROM inventory.stock_levels l WHERE l.item_id = p_item_id;
            IF outward AND p_quantity >= total AND total > 0 THEN
                moved := item.value;
            ELSE
                moved := inventory.share_of_value(item.value, p_quantity, total);
            END IF;
        END IF;
        delta := CASE WHEN outward THEN -moved ELSE moved END;
        IF moved > 9223372036854775807 OR item.value + delta > 9223372036854775807 THEN
            PERFORM inventory.refuse(p_prefix || 'unit_cost',
                                     'The stock value would exceed 9223372036854775807.');
        END IF;
    END IF;

    -- The legs; a transfer's in location id order (LOCK ORDER), so opposite transfers
    -- never wait on each other crosswise.
    IF p_kind = 'transfer' AND p_to < p_from THEN
        PERFORM inventory.put_stock(p_item_id, p_to, p_quantity);
        PERFORM inventory.take_stock(p_item_id, p_from, p_quantity, p_release,
                                     loc_from.allow_negative, qty_field);
    ELSE
        IF p_from IS NOT NULL THEN
            PERFORM inventory.take_stock(p_item_id, p_from, p_quantity, p_release,
                                         loc_from.allow_negative, qty_field);
        END IF;
        IF p_to IS NOT NULL THEN
            PERFORM inventory.put_stock(p_item_id, p_to, p_quantity);
        END IF;
    END IF;

    IF delta <> 0 THEN
        UPDATE inventory.items i SET value = i.value + delta::bigint WHERE i.id = p_item_id;
    END IF;

    INSERT INTO inventory.stock_moves AS m
           (id, kind, item_id, quantity, from_location_id, to_location_id, unit_cost, value,
            reason_code, reason, reference, source_type, source_id, transaction_id)
    VALUES (p_id, p_kind, p_item_id, p_quantity, p_from, p_to, p_unit_cost, moved::bigint,
            p_reason_code, p_reason, p_reference, p_source_type, p_source_id,
            CASE WHEN moved > 0 THEN p_transaction_id END)
    RETURNING m.value, m.created_at INTO apply_move.value, apply_move.created_at;

    IF p_from IS NOT NULL THEN
        PERFORM inventory.note_change(p_item_id, p_from, -p_quantity, -p_release, 'move', p_id);
    END IF;
    IF p_to IS NOT NULL THEN
        PERFORM inventory.note_change(p_item_id, p_to, p_quantity, 0, 'move', p_id);
    END IF;
    RETURN NEXT;
END
$$;

-- The ledger account of a role in the stock currency, or a refusal naming the role.
CREATE OR REPLACE FUNCTION inventory.role_account(p_role text, p_currency text) RETURNS uuid
    LANGUAGE plpgsql STABLE
    SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    found_id uuid;
    is_archived boolean;
BEGIN
    SELECT a.id, a.archived INTO found_id, is_archived
      FROM ledger.accounts a WHERE a.role = p_role AND a.currency = p_currency;
    IF found_id IS NULL THEN
        PERFORM inventory.refuse('role', format(
            'No ledger account has the role %s in %s (docs/inventory.md, Ledger roles).',
            p_role, p_currency));
    ELSIF is_archived THEN
        PERFORM inventory.refuse('role', format(
            'The ledger account with the role %s in %s is archived.', p_role, p_currency));
    END IF;
    RETURN found_id;
END
$$;

-- Post a stock value to the ledger by account ROLE, in one call: Dr p_debit_role,
-- Cr p_credit_role, p_amount (>= 0) in the tenant's stock currency (inventory.settings).
-- p_counter_account replaces the side whose role is not 'inventory'. The event payload
-- is built here as the ledger's TransactionView.event_payload() builds it; the ledger
-- adds posted_at. Amount 0 posts nothing and returns NULL; else the posted_at.
CREATE OR REPLACE FUNCTION inventory.post_value(
    p_tx_id uuid,
    p_event_id uuid,
    p_debit_role text,
    p_credit_role text,
    p_amount bigint,
    p_metadata jsonb,
    p_counter_account uuid DEFAULT NULL,
    p_description text DEFAULT 'Stock value'
) RETURNS timestamptz
    LANGUAGE plpgsql
    SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cur text;
    debit uuid;
    credit uuid;
    counter record;
    at timestamptz := now();
    ids uuid[];
    accts uuid[];
    amounts bigint[];
    payload jsonb;
    posted timestamptz;
BEGIN
    IF p_amount IS NULL OR p_amount < 0 THEN
        RAISE EXCEPTION 'inventory.post_value: amount % must be >= 0', p_amount;
    ELSIF p_amount = 0 THEN
        RETURN NULL;
    END IF;
    SELECT s.currency INTO cur FROM inventory.settings s;
    IF cur IS NULL THEN
        PERFORM inventory.refuse('role', 'Inventory is not set up for this tenant (no stock '
                                 'currency): see docs/inventory.md, Ledger roles.');
    END IF;
    IF p_counter_account IS NOT NULL THEN
        SELECT a.currency, a.archived INTO counter
          FROM ledger.accounts a WHERE a.id = p_counter_account;
        IF NOT FOUND THEN
            PERFORM inventory.refuse('counter_account_id', 'Unknown account.');
        ELSIF counter.archived THEN
            PERFORM inventory.refuse('counter_account_id', 'The account is archived.');
        ELSIF counter.currency <> cur THEN
            PERFORM inventory.refuse('counter_account_id',
                                     format('Must be an account in %s.', cur));
        END IF;
    END IF;
    IF p_counter_account IS NOT NULL AND p_debit_role <> 'inventory' THEN
        debit := p_counter_account;
    ELSE
        debit := inventory.role_account(p_debit_role, cur);
    END IF;
    IF p_counter_account IS NOT NULL AND p_debit_role = 'inventory' THEN
        credit := p_counter_account;
    ELSE
        credit := inventory.role_account(p_credit_role, cur);
    END IF;

    -- Entries as the ledger stores and lists them: by (account, amount).
    SELECT array_agg(e.id ORDER BY e.account_id, e.amount),
           array_agg(e.account_id ORDER BY e.account_id, e.amount),
           array_agg(e.amount ORDER BY e.account_id, e.amount),
           jsonb_agg(jsonb_build_object('id', e.id, 'account_id', e.account_id,
                                        'amount', e.amount, 'currency', cur)
                     ORDER BY e.account_id, e.amount)
      INTO ids, accts, amounts, payload
      FROM (VALUES (gen_random_uuid(), debit, p_amount),
                   (gen_random_uuid(), credit, -p_amount)) AS e(id, account_id, amount);
    payload := jsonb_build_object(
        'id', p_tx_id, 'description', p_description, 'status', 'posted', 'kind', 'standard',
        'effective_at', inventory.iso_utc(at), 'posted_at', NULL,
        'metadata', coalesce(p_metadata, '{}'), 'reverses_id', NULL, 'entries', payload);
    SELECT t.posted_at INTO posted
      FROM ledger.post_transaction(p_tx_id, p_description, 'posted', 'standard', at,
                                   coalesce(p_metadata, '{}'), NULL, NULL, ids, accts, amounts,
                                   ARRAY[cur, cur], p_event_id, payload, false) AS t;
    RETURN posted;
END
$$;

REVOKE ALL ON FUNCTION inventory.iso_utc(timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION inventory.share_of_value(bigint, bigint, numeric) FROM PUBLIC;
REVOKE ALL ON FUNCTION inventory.note_change(uuid, uuid, bigint, bigint, text, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION inventory.level_changed_at_commit() FROM PUBLIC;
REVOKE ALL ON FUNCTION inventory.lock_items(uuid[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION inventory.take_stock(uuid, uuid, bigint, bigint, boolean, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION inventory.put_stock(uuid, uuid, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION inventory.refuse(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION inventory.check_move_args(text, bigint, uuid, uuid, bigint, text, text,
    text, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION inventory.apply_move(uuid, text, uuid, bigint, uuid, uuid, bigint, text,
    text, text, text, uuid, uuid, bigint, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION inventory.role_account(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION inventory.post_value(uuid, uuid, text, text, bigint, jsonb, uuid, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION inventory.iso_utc(timestamptz) TO erp_app;
GRANT EXECUTE ON FUNCTION inventory.share_of_value(bigint, bigint, numeric) TO erp_app;
GRANT EXECUTE ON FUNCTION inventory.note_change(uuid, uuid, bigint, bigint, text, uuid) TO erp_app;
GRANT EXECUTE ON FUNCTION inventory.level_changed_at_commit() TO erp_app;
GRANT EXECUTE ON FUNCTION inventory.lock_items(uuid[]) TO erp_app;
GRANT EXECUTE ON FUNCTION inventory.take_stock(uuid, uuid, bigint, bigint, boolean, text)
    TO erp_app;
GRANT EXECUTE ON FUNCTION inventory.put_stock(uuid, uuid, bigint) TO erp_app;
GRANT EXECUTE ON FUNCTION inventory.refuse(text, text) TO erp_app;
GRANT EXECUTE ON FUNCTION inventory.check_move_args(text, bigint, uuid, uuid, bigint, text, text,
    text, text, text) TO erp_app;
GRANT EXECUTE ON FUNCTION inventory.apply_move(uuid, text, uuid, bigint, uuid, uuid, bigint, text,
    text, text, text, uuid, uuid, bigint, text, text) TO erp_app;
GRANT EXECUTE ON FUNCTION inventory.role_account(text, text) TO erp_app;
GRANT EXECUTE ON FUNCTION inventory.post_value(uuid, uuid, text, text, bigint, jsonb, uuid, text)
    TO erp_app;
