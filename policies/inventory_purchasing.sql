-- Purchase-order receipts and cycle counts (API.md, Inventory: Purchase orders, Counts):
-- each is ONE call (docs/domains.md, "How to add a fast command") built on the stock
-- functions of policies/inventory.sql (apply_move, lock_items, post_value, refuse), and
-- follows their LOCK ORDER: the purchase order row first (receipts only), then the
-- items in id order (inventory.lock_items), then the levels through apply_move, moves
-- applied in (item_id, location_id) order.
--
-- Refusals (registered in erp/inventory/__init__.py):
--   EP001 not-found (404)            the purchase order does not exist (or is another
--                                    tenant's: RLS hides it)
--   EI001 insufficient-stock (409)   a count below what is reserved (`lines.N.counted`)
--   EI002 validation (422)           DETAIL `<field>: <message>`, one line per fault
--   EI003 conflict (409)             the order's status does not allow a receipt
--
-- SECURITY INVOKER, as every command: erp_app under RLS.

-- The purchase order as GET /inventory/purchase-orders/{id} answers it (and as
-- erp.inventory.purchasing.PurchaseOrderView.to_json builds it), for event payloads.
CREATE OR REPLACE FUNCTION inventory.purchase_order_json(p_id uuid) RETURNS jsonb
    LANGUAGE sql STABLE
    SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object(
        'id', o.id, 'supplier_id', o.supplier_id, 'status', o.status,
        'currency', o.currency, 'location_id', o.location_id, 'reference', o.reference,
        'expected_at', inventory.iso_utc(o.expected_at),
        'lines', coalesce(l.lines, '[]'::jsonb), 'total', coalesce(l.total, 0),
        'created_at', inventory.iso_utc(o.created_at))
      FROM inventory.purchase_orders o
      LEFT JOIN LATERAL (
          SELECT jsonb_agg(jsonb_build_object(
                     'id', pl.id, 'item_id', pl.item_id, 'quantity', pl.quantity,
                     'received', pl.received, 'unit_cost', pl.unit_cost) ORDER BY pl.line_no)
                     AS lines,
                 sum(pl.quantity::numeric * pl.unit_cost) AS total
            FROM inventory.purchase_order_lines pl
           WHERE pl.purchase_order_id = o.id) AS l ON true
     WHERE o.id = p_id
$$;

-- Refuse with every fault at once: EI002, MESSAGE the first fault, DETAIL all of them
-- (`field: message` per line), or do nothing when there is none.
CREATE OR REPLACE FUNCTION inventory.refuse_all(p_faults text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_faults IS NOT NULL THEN
        RAISE EXCEPTION '%', split_part(p_faults, E'\n', 1)
            USING ERRCODE = 'EI002', DETAIL = p_faults;
    END IF;
END
$$;

-- Post one transaction of several entries, each on the account of a ROLE in the stock
-- currency (inventory.post_value posts two; a count's gains and losses need four, so
-- that the transaction is posted whenever any move carried value, even when they net
-- to zero). Zero amounts are left out; nothing to post returns NULL.
CREATE OR REPLACE FUNCTION inventory.post_roles(
    p_tx_id uuid,
    p_event_id uuid,
    p_roles text[],
    p_amounts bigint[],
    p_metadata jsonb,
    p_description text
) RETURNS timestamptz
    LANGUAGE plpgsql
    SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cur text;
    at timestamptz := now();
    ids uuid[];
    accts uuid[];
    amounts bigint[];
    currencies text[];
    payload jsonb;
    posted timestamptz;
BEGIN
    IF coalesce(cardinality(p_roles), 0) <> coalesce(cardinality(p_amounts), 0) THEN
        RAISE EXCEPTION 'inventory.post_roles: the arrays differ in length';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM unnest(p_amounts) AS a(amount) WHERE a.amount <> 0) THEN
        RETURN NULL;
    END IF;
    SELECT s.currency INTO cur FROM inventory.settings s;
    IF cur IS NULL THEN
        PERFORM inventory.refuse('role', 'Inventory is not set up for this tenant (no stock '
                                 'currency); run erp tenants apply-template.');
    END IF;
    -- Entries as the ledger stores and lists them: by (account, amount).
    SELECT array_agg(e.id ORDER BY e.account_id, e.amount),
           array_agg(e.account_id ORDER BY e.account_id, e.amount),
           array_agg(e.amount ORDER BY e.account_id, e.amount),
           array_agg(cur ORDER BY e.account_id, e.amount),
           jsonb_agg(jsonb_build_object('id', e.id, 'account_id', e.account_id,
                                        'amount', e.amount, 'currency', cur)
                     ORDER BY e.account_id, e.amount)
      INTO ids, accts, amounts, currencies, payload
      FROM (SELECT gen_random_uuid() AS id, inventory.role_account(r.role, cur) AS account_id,
                   r.amount
              FROM unnest(p_roles, p_amounts) AS r(role, amount)
             WHERE r.amount <> 0) AS e;
    payload := jsonb_build_object(
        'id', p_tx_id, 'description', p_description, 'status', 'posted', 'kind', 'standard',
        'effective_at', inventory.iso_utc(at), 'posted_at', NULL,
        'metadata', coalesce(p_metadata, '{}'), 'reverses_id', NULL, 'entries', payload);
    SELECT t.posted_at INTO posted
      FROM ledger.post_transaction(p_tx_id, p_description, 'posted', 'standard', at,
                                   coalesce(p_metadata, '{}'), NULL, NULL, ids, accts, amounts,
                                   currencies, p_event_id, payload, false) AS t;
    RETURN posted;
END
$$;

-- Receive lines of a sent or partially received purchase order (API.md, Purchase
-- orders): one receipt move per line at the line's unit cost (apply_move), the lines'
-- received counters, the order's status, the receipt and its lines, ONE ledger
-- transaction for the receipt's value (Dr inventory, Cr accounts_payable; none when the
-- value is 0) and the purchase_order.received event (the order as GET answers it, plus
-- `receipt`). Returns the receipt as the API answers it.
--
-- The order row is locked first (FOR NO KEY UPDATE): receipts, sends, cancels and
-- edits of one order run one at a time, and the received counters are read after the
-- lock (a fresh statement snapshot in READ COMMITTED), so two racing receipts can never
-- receive a line past its quantity between them.
CREATE OR REPLACE FUNCTION inventory.receive_purchase_order(
    p_po_id uuid,
    p_receipt_id uuid,
    p_line_ids uuid[],
    p_quantities bigint[],
    p_locations uuid[],
    p_move_ids uuid[],
    p_receipt_line_ids uuid[],
    p_over_receipt boolean,
    p_tx_id uuid,
    p_tx_event_id uuid,
    p_event_id uuid
) RETURNS jsonb
    LANGUAGE plpgsql
    SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    n int := coalesce(cardinality(p_line_ids), 0);
    po record;
    faults text;
    r record;
    moved bigint;
    total numeric := 0;
    created timestamptz;
    receipt jsonb;
BEGIN
    IF coalesce(cardinality(p_quantities), 0) <> n OR coalesce(cardinality(p_locations), 0) <> n
       OR coalesce(cardinality(p_move_ids), 0) <> n
       OR coalesce(cardinality(p_receipt_line_ids), 0) <> n THEN
        RAISE EXCEPTION 'inventory.receive_purchase_order: the line arrays differ in length';
    END IF;

    -- 1. The arguments alone.
    IF n < 1 OR n > 500 THEN
        PERFORM inventory.refuse('lines', 'Between 1 and 500 lines.');
    END IF;
    SELECT string_agg(format('lines.%s.quantity: Must be greater than 0.', q.i - 1), E'\n'
                      ORDER BY q.i)
      INTO faults
      FROM unnest(p_quantities) WITH ORDINALITY AS q(quantity, i)
     WHERE q.quantity IS NULL OR q.quantity <= 0;
    PERFORM inventory.refuse_all(faults);

    -- 2. The order, locked; then its state.
    SELECT o.status, o.location_id, o.reference INTO po
      FROM inventory.purchase_orders o WHERE o.id = p_po_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'Not found' USING ERRCODE = 'EP001';
    END IF;
    IF po.status NOT IN ('sent', 'partially_received') THEN
        RAISE EXCEPTION 'The purchase order is %; only a sent or partially received order '
                        'is received.', po.status
            USING ERRCODE = 'EI003',
                  DETAIL = format('status: The purchase order is %s.', po.status);
    END IF;

    -- 3. Each line, in the request's order: a line of this order, its item in use, the
    --    location in use, and no more than is left to receive (the same line listed
    --    twice adds up), all read after the lock.
    WITH req AS (
        SELECT q.i, q.line_id, q.quantity, q.location_id,
               sum(q.quantity::numeric) OVER (PARTITION BY q.line_id ORDER BY q.i) AS running
          FROM unnest(p_line_ids, p_quantities, p_locations)
               WITH ORDINALITY AS q(line_id, quantity, location_id, i)
    ), j AS (
        SELECT req.*, pl.id AS known, pl.quantity AS ordered, pl.received, pl.unit_cost,
               it.archived AS item_archived, loc.id AS loc_known, loc.archived AS loc_archived
          FROM req
          LEFT JOIN inventory.purchase_order_lines pl
                 ON pl.id = req.line_id AND pl.purchase_order_id = p_po_id
          LEFT JOIN inventory.items it ON it.id = pl.item_id
          LEFT JOIN inventory.locations loc ON loc.id = coalesce(req.location_id, po.location_id)
    )
    SELECT string_agg(f.msg, E'\n' ORDER BY f.i, f.k) INTO faults
      FROM (
        SELECT i, 1 AS k, format('lines.%s.line_id: Not a line of this purchase order.', i - 1)
               AS msg
          FROM j WHERE known IS NULL
        UNION ALL
        SELECT i, 2, format('lines.%s.line_id: The line''s item is archived.', i - 1)
          FROM j WHERE item_archived
        UNION ALL
        SELECT i, 3, format('lines.%s.location_id: %s', i - 1,
                            CASE WHEN loc_known IS NULL THEN 'Unknown location.'
                                 WHEN location_id IS NULL
                                 THEN 'The order''s location is archived; name another.'
                                 ELSE 'The location is archived.' END)
          FROM j WHERE loc_known IS NULL OR loc_archived
        UNION ALL
        SELECT i, 4, format('lines.%s.quantity: %s left to receive on this line.', i - 1,
                            greatest(ordered - received - (running - quantity), 0))
          FROM j
         WHERE known IS NOT NULL AND NOT p_over_receipt AND received + running > ordered
        UNION ALL
        SELECT i, 5, format('lines.%s.quantity: Too large: the received quantity or its value '
                            'would exceed 9223372036854775807.', i - 1)
          FROM j
         WHERE known IS NOT NULL
           AND (received + running > 9223372036854775807
                OR quantity::numeric * unit_cost > 9223372036854775807)
      ) AS f;
    PERFORM inventory.refuse_all(faults);
    SELECT sum(q.quantity::numeric * pl.unit_cost) INTO total
      FROM unnest(p_line_ids, p_quantities) AS q(line_id, quantity)
      JOIN inventory.purchase_order_lines pl ON pl.id = q.line_id;
    IF total > 9223372036854775807 THEN
        PERFORM inventory.refuse('lines', 'The receipt''s value would exceed '
                                 '9223372036854775807.');
    END IF;
    total := 0;

    -- 4. The moves: items locked in id order, then one receipt move per line in
    --    (item_id, location_id) order (LOCK ORDER, policies/inventory.sql).
    PERFORM inventory.lock_items(ARRAY(
        SELECT DISTINCT pl.item_id FROM inventory.purchase_order_lines pl
         WHERE pl.id = ANY (p_line_ids)));
    FOR r IN
        SELECT q.i, q.move_id, pl.item_id, q.quantity, pl.unit_cost,
               coalesce(q.location_id, po.location_id) AS location_id
          FROM unnest(p_line_ids, p_quantities, p_locations, p_move_ids)
               WITH ORDINALITY AS q(line_id, quantity, location_id, move_id, i)
          JOIN inventory.purchase_order_lines pl ON pl.id = q.line_id
         ORDER BY pl.item_id, 6, q.i
    LOOP
        SELECT m.value INTO moved
          FROM inventory.apply_move(r.move_id, 'receipt', r.item_id, r.quantity, NULL,
                                    r.location_id, r.unit_cost, NULL, NULL, po.reference,
                                    'receipt', p_receipt_id, p_tx_id, 0,
                                    format('lines.%s.', r.i - 1), 'quantity') AS m;
        total := total + moved;
    END LOOP;

    -- 5. The counters and the status.
    UPDATE inventory.purchase_order_lines pl SET received = pl.received + q.quantity
      FROM (SELECT u.line_id, sum(u.quantity) AS quantity
              FROM unnest(p_line_ids, p_quantities) AS u(line_id, quantity)
             GROUP BY u.line_id) AS q
     WHERE pl.id = q.line_id;
    UPDATE inventory.purchase_orders o
       SET status = CASE WHEN EXISTS (
                             SELECT 1 FROM inventory.purchase_order_lines pl
                              WHERE pl.purchase_order_id = p_po_id AND pl.received < pl.quantity)
                         THEN 'partially_received' ELSE 'received' END,
           updated_at = now()
     WHERE o.id = p_po_id;

    -- 6. The receipt, its lines, its one posting, its event.
    INSERT INTO inventory.po_receipts AS rc (id, purchase_order_id, transaction_id)
    VALUES (p_receipt_id, p_po_id, CASE WHEN total > 0 THEN p_tx_id END)
    RETURNING rc.created_at INTO created;
    INSERT INTO inventory.po_receipt_lines
           (id, receipt_id, line_no, line_id, item_id, quantity, location_id, unit_cost, move_id)
    SELECT q.id, p_receipt_id, q.i - 1, q.line_id, pl.item_id, q.quantity,
           coalesce(q.location_id, po.location_id), pl.unit_cost, q.move_id
      FROM unnest(p_receipt_line_ids, p_line_ids, p_quantities, p_locations, p_move_ids)
           WITH ORDINALITY AS q(id, line_id, quantity, location_id, move_id, i)
      JOIN inventory.purchase_order_lines pl ON pl.id = q.line_id;
    IF total > 0 THEN
        PERFORM inventory.post_value(
            p_tx_id, p_tx_event_id, 'inventory', 'accounts_payable', total::bigint,
            jsonb_build_object('receipt_id', p_receipt_id, 'purchase_order_id', p_po_id),
            NULL, left('Receipt of purchase order ' || coalesce(po.reference, p_po_id::text),
                       500));
    END IF;
    SELECT jsonb_build_object(
               'id', p_receipt_id, 'purchase_order_id', p_po_id,
               'lines', jsonb_agg(jsonb_build_object(
                   'line_id', rl.line_id, 'item_id', rl.item_id, 'quantity', rl.quantity,
                   'location_id', rl.location_id, 'unit_cost', rl.unit_cost,
                   'move_id', rl.move_id) ORDER BY rl.line_no),
               'transaction_id', CASE WHEN total > 0 THEN p_tx_id END,
               'created_at', inventory.iso_utc(created))
      INTO receipt
      FROM inventory.po_receipt_lines rl WHERE rl.receipt_id = p_receipt_id;
    INSERT INTO webhooks.outbox_events (id, event_type, payload)
    VALUES (p_event_id, 'purchase_order.received',
            inventory.purchase_order_json(p_po_id) || jsonb_build_object('receipt', receipt));
    RETURN receipt;
END
$$;

-- A cycle count at one location (API.md, Counts): for each line, what was on hand
-- (`expected`, read after the items' locks, so no move or reservation of these items
-- slips in between) and what was counted; each non-zero difference an `adjustment`
-- move (reason_code `count`, the count as its source), valued as apply_move values
-- adjustments; ONE ledger transaction for their value (gains Dr inventory / Cr
-- inventory_adjustments, losses the reverse; none when nothing carried value). A count
-- below what is reserved there is refused (EI001, `lines.N.counted`). Returns the count
-- as the API answers it.
CREATE OR REPLACE FUNCTION inventory.count_stock(
    p_count_id uuid,
    p_location_id uuid,
    p_reason text,
    p_items uuid[],
    p_counted bigint[],
    p_move_ids uuid[],
    p_line_ids uuid[],
    p_tx_id uuid,
    p_tx_event_id uuid
) RETURNS jsonb
    LANGUAGE plpgsql
    SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    n int := coalesce(cardinality(p_items), 0);
    faults text;
    loc record;
    r record;
    moved bigint;
    gains numeric := 0;
    losses numeric := 0;
    created timestamptz;
    on_hands bigint[];
    result jsonb;
BEGIN
    IF coalesce(cardinality(p_counted), 0) <> n OR coalesce(cardinality(p_move_ids), 0) <> n
       OR coalesce(cardinality(p_line_ids), 0) <> n THEN
        RAISE EXCEPTION 'inventory.count_stock: the line arrays differ in length';
    END IF;

    -- 1. The arguments alone.
    IF n < 1 OR n > 500 THEN
        PERFORM inventory.refuse('lines', 'Between 1 and 500 lines.');
    END IF;
    IF length(p_reason) > 500 THEN
        PERFORM inventory.refuse('reason', 'Longer than 500 characters.');
    END IF;
    SELECT string_agg(f.msg, E'\n' ORDER BY f.i) INTO faults
      FROM (
        SELECT q.i, format('lines.%s.counted: Must be at least 0.', q.i - 1) AS msg
          FROM unnest(p_counted) WITH ORDINALITY AS q(counted, i)
         WHERE q.counted IS NULL OR q.counted < 0
        UNION ALL
        SELECT q.i, format('lines.%s.item_id: Listed twice (also lines.%s).', q.i - 1, q.first - 1)
          FROM (SELECT u.i, min(u.i) OVER (PARTITION BY u.item_id) AS first
                  FROM unnest(p_items) WITH ORDINALITY AS u(item_id, i)) AS q
         WHERE q.i > q.first
      ) AS f;
    PERFORM inventory.refuse_all(faults);

    -- 2. The location and the items, in use.
    SELECT l.archived INTO loc FROM inventory.locations l WHERE l.id = p_location_id;
    IF NOT FOUND THEN
        PERFORM inventory.refuse('location_id', 'Unknown location.');
    ELSIF loc.archived THEN
        PERFORM inventory.refuse('location_id', 'The location is archived.');
    END IF;
    SELECT string_agg(format('lines.%s.item_id: %s', u.i - 1,
                             CASE WHEN it.id IS NULL THEN 'Unknown item.'
                                  ELSE 'The item is archived.' END), E'\n' ORDER BY u.i)
      INTO faults
      FROM unnest(p_items) WITH ORDINALITY AS u(item_id, i)
      LEFT JOIN inventory.items it ON it.id = u.item_id
     WHERE it.id IS NULL OR it.archived;
    PERFORM inventory.refuse_all(faults);

    -- 3. Lock the items (LOCK ORDER), then read their levels here: every writer of these
    --    levels locks the item first, so what is read stays true until commit.
    PERFORM inventory.lock_items(p_items);
    SELECT string_agg(format('lines.%s.counted: %s reserved here.', u.i - 1, lv.reserved),
                      E'\n' ORDER BY u.i)
      INTO faults
      FROM unnest(p_items, p_counted) WITH ORDINALITY AS u(item_id, counted, i)
      JOIN inventory.stock_levels lv ON lv.item_id = u.item_id AND lv.location_id = p_location_id
     WHERE u.counted < lv.reserved;
    IF faults IS NOT NULL THEN
        RAISE EXCEPTION 'A count cannot be below what is reserved: %', split_part(faults, E'\n', 1)
            USING ERRCODE = 'EI001', DETAIL = faults;
    END IF;

    INSERT INTO inventory.counts AS c (id, location_id, reason)
    VALUES (p_count_id, p_location_id, p_reason)
    RETURNING c.created_at INTO created;

    -- 4. What is on hand, then the adjustments in item order (one location for all).
    SELECT array_agg(coalesce(lv.on_hand, 0) ORDER BY u.i) INTO on_hands
      FROM unnest(p_items) WITH ORDINALITY AS u(item_id, i)
      LEFT JOIN inventory.stock_levels lv
             ON lv.item_id = u.item_id AND lv.location_id = p_location_id;
    FOR r IN
        SELECT u.i, u.item_id, u.counted, u.expected, u.move_id
          FROM unnest(p_items, p_counted, on_hands, p_move_ids)
               WITH ORDINALITY AS u(item_id, counted, expected, move_id, i)
         WHERE u.counted <> u.expected
         ORDER BY u.item_id
    LOOP
        SELECT m.value INTO moved
          FROM inventory.apply_move(
              r.move_id, 'adjustment', r.item_id, abs(r.counted - r.expected),
              CASE WHEN r.counted < r.expected THEN p_location_id END,
              CASE WHEN r.counted > r.expected THEN p_location_id END,
              NULL, 'count', p_reason, NULL, 'count', p_count_id, p_tx_id, 0,
              format('lines.%s.', r.i - 1), 'counted') AS m;
        IF r.counted > r.expected THEN
            gains := gains + moved;
        ELSE
            losses := losses + moved;
        END IF;
    END LOOP;

    INSERT INTO inventory.count_lines
           (id, count_id, line_no, item_id, expected, counted, difference, move_id)
    SELECT u.line_id, p_count_id, u.i - 1, u.item_id, u.expected, u.counted,
           u.counted - u.expected, CASE WHEN u.counted <> u.expected THEN u.move_id END
      FROM unnest(p_line_ids, p_items, p_counted, on_hands, p_move_ids)
           WITH ORDINALITY AS u(line_id, item_id, counted, expected, move_id, i);

    -- 5. One posting for the count's value.
    IF gains > 9223372036854775807 OR losses > 9223372036854775807 THEN
        PERFORM inventory.refuse('lines', 'The count''s value would exceed 9223372036854775807.');
    END IF;
    PERFORM inventory.post_roles(
        p_tx_id, p_tx_event_id,
        ARRAY['inventory', 'inventory_adjustments', 'inventory_adjustments', 'inventory'],
        ARRAY[gains, -gains, losses, -losses]::bigint[],
        jsonb_build_object('count_id', p_count_id),
        'Cycle count ' || p_count_id::text);

    SELECT jsonb_build_object(
               'id', p_count_id, 'location_id', p_location_id, 'reason', p_reason,
               'lines', jsonb_agg(jsonb_build_object(
                   'item_id', u.item_id, 'expected', u.expected, 'counted', u.counted,
                   'difference', u.counted - u.expected,
                   'move_id', CASE WHEN u.counted <> u.expected THEN u.move_id END)
                   ORDER BY u.i),
               'created_at', inventory.iso_utc(created))
      INTO result
      FROM unnest(p_items, p_counted, on_hands, p_move_ids)
           WITH ORDINALITY AS u(item_id, counted, expected, move_id, i);
    RETURN result;
END
$$;

REVOKE ALL ON FUNCTION inventory.purchase_order_json(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION inventory.refuse_all(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION inventory.post_roles(uuid, uuid, text[], bigint[], jsonb, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION inventory.receive_purchase_order(uuid, uuid, uuid[], bigint[], uuid[],
    uuid[], uuid[], boolean, uuid, uuid, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION inventory.count_stock(uuid, uuid, text, uuid[], bigint[], uuid[], uuid[],
    uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION inventory.purchase_order_json(uuid) TO erp_app;
GRANT EXECUTE ON FUNCTION inventory.refuse_all(text) TO erp_app;
GRANT EXECUTE ON FUNCTION inventory.post_roles(uuid, uuid, text[], bigint[], jsonb, text)
    TO erp_app;
GRANT EXECUTE ON FUNCTION inventory.receive_purchase_order(uuid, uuid, uuid[], bigint[], uuid[],
    uuid[], uuid[], boolean, uuid, uuid, uuid) TO erp_app;
GRANT EXECUTE ON FUNCTION inventory.count_stock(uuid, uuid, text, uuid[], bigint[], uuid[],
    uuid[], uuid, uuid) TO erp_app;
