-- Reservations (API.md, Inventory: Reservations; Orders: reserve every line or none,
-- consume on fulfilment, release on cancel). Each command is ONE call from the service
-- (docs/domains.md, "How to add a fast command"), SECURITY INVOKER: it runs as erp_app
-- under RLS, so another tenant's item, location or reservation reads as unknown and
-- every row lands in the caller's tenant.
--
--   inventory.reserve               several lines, all or none
--   inventory.release_reservations  frees quantity - consumed of held reservations
--   inventory.consume_reservations  a fulfilment: reserved and on_hand drop together, by
--                                   the issue move of inventory.apply_move (its value is
--                                   RETURNED, nothing is posted: the order step posts one
--                                   combined transaction)
--
-- Refusals (registered in erp/inventory/__init__.py):
--   EI001 insufficient-stock (409)  DETAIL one line per short line:
--                                   `lines.<i>.quantity: <n> requested, <m> available.`
--   EI002 validation (422)          DETAIL `<field>: <message>`, one line per fault
--   EI003 conflict (409)            a reservation not held; an order's reservation
--                                   released directly (cancel the order instead)
--   EI010 not-found (404)           an unknown reservation (another tenant's included)
--
-- LOCK ORDER (policies/inventory.sql): the items (inventory.lock_items, id order), then
-- the reservations' rows, then the levels in (item, location) order. The commit-time
-- event trigger locks the item rows again: already ours.
--
-- NO OVERSELL: each level is changed by ONE conditional UPDATE
-- (`... WHERE on_hand - reserved >= wanted`), never read first and written after. The
-- item lock taken before it is the domain's lock order (so that a move and a reservation
-- never deadlock), not what keeps available >= 0: the UPDATE's condition is, re-checked
-- by PostgreSQL on the newest row version after any wait.

-- A line's field name as the caller's API names it: `lines.<i>.<field>`, or `<field>`
-- alone for the one-line endpoint (POST /inventory/reservations).
CREATE OR REPLACE FUNCTION inventory.line_field(p_single boolean, p_i bigint, p_field text)
    RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p_single THEN p_field ELSE format('lines.%s.%s', p_i, p_field) END
$$;

CREATE OR REPLACE FUNCTION inventory.reserve(
    p_ids uuid[],
    p_items uuid[],
    p_locations uuid[],
    p_quantities bigint[],
    p_order_id uuid,
    p_order_line_ids uuid[],
    p_references text[],
    p_single boolean
) RETURNS timestamptz
    LANGUAGE plpgsql
    SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n int := coalesce(cardinality(p_ids), 0);
    faults text;
    lvl record;
    avail bigint;
    short_detail text[] := '{}';
    short_lines int[] := '{}';
BEGIN
    -- The service builds these arrays: unequal lengths are its bug (a 500), not bad input.
    IF coalesce(cardinality(p_items), 0) <> n OR coalesce(cardinality(p_locations), 0) <> n
       OR coalesce(cardinality(p_quantities), 0) <> n
       OR coalesce(cardinality(p_order_line_ids), n) <> n
       OR coalesce(cardinality(p_references), n) <> n
       OR (p_single AND n <> 1) THEN
        RAISE EXCEPTION 'inventory.reserve: the line arrays differ in length';
    END IF;
    IF n = 0 THEN
        PERFORM inventory.refuse('lines', 'At least one line is required.');
    END IF;

    -- 1. From the arguments alone: quantities > 0, references <= 200 characters.
    SELECT string_agg(f.line, E'\n' ORDER BY f.i, f.k)
      INTO faults
      FROM (SELECT l.i, 1 AS k, inventory.line_field(p_single, l.i - 1, 'quantity')
                                || ': Must be greater than 0.' AS line
              FROM unnest(p_quantities) WITH ORDINALITY AS l(quantity, i)
             WHERE l.quantity IS NULL OR l.quantity <= 0
            UNION ALL
            SELECT l.i, 2, inventory.line_field(p_single, l.i - 1, 'reference')
                           || ': Longer than 200 characters.'
              FROM unnest(p_references) WITH ORDINALITY AS l(reference, i)
             WHERE length(l.reference) > 200) AS f;
    IF faults IS NOT NULL THEN
        RAISE EXCEPTION '%', CASE WHEN position(E'\n' IN faults) = 0 THEN faults
                                  ELSE 'Several lines failed validation.' END
            USING ERRCODE = 'EI002', DETAIL = faults;
    END IF;

    -- 2. The items and locations: unknown (another tenant's reads as unknown) or archived.
    SELECT string_agg(f.line, E'\n' ORDER BY f.i, f.k)
      INTO faults
      FROM (SELECT l.i, 1 AS k, inventory.line_field(p_single, l.i - 1, 'item_id') || ': '
                   || CASE WHEN it.id IS NULL THEN 'Unknown item.'
                           ELSE 'The item is archived.' END AS line
              FROM unnest(p_items) WITH ORDINALITY AS l(item_id, i)
              LEFT JOIN inventory.items it ON it.id = l.item_id
             WHERE it.id IS NULL OR it.archived
            UNION ALL
            SELECT l.i, 2, inventory.line_field(p_single, l.i - 1, 'location_id') || ': '
                   || CASE WHEN lo.id IS NULL THEN 'Unknown location.'
                           ELSE 'The location is archived.' END
              FROM unnest(p_locations) WITH ORDINALITY AS l(location_id, i)
              LEFT JOIN inventory.locations lo ON lo.id = l.location_id
             WHERE lo.id IS NULL OR lo.archived) AS f;
    IF faults IS NOT NULL THEN
        RAISE EXCEPTION '%', CASE WHEN position(E'\n' IN faults) = 0 THEN faults
                                  ELSE 'Several lines failed validation.' END
            USING ERRCODE = 'EI002', DETAIL = faults;
    END IF;

    -- 3. The items, locked in id order (LOCK ORDER).
    PERFORM inventory.lock_items(p_items);

    -- 4. Each level, ONE conditional statement, in (item, location) order. Lines naming
    --    the same level are reserved together. Once a level is short the reservation is
    --    refused whatever follows: the other levels are only read (no lock, no write), so
    --    that every short line is named.
    FOR lvl IN
        SELECT l.item_id, l.location_id, lo.allow_negative,
               sum(l.quantity) AS wanted,
               array_agg(l.i - 1 ORDER BY l.i) AS lines,
               array_agg(l.quantity ORDER BY l.i) AS quantities
          FROM unnest(p_items, p_locations, p_quantities) WITH ORDINALITY
               AS l(item_id, location_id, quantity, i)
          JOIN inventory.locations lo ON lo.id = l.location_id
         GROUP BY l.item_id, l.location_id, lo.allow_negative
         ORDER BY l.item_id, l.location_id
    LOOP
        IF lvl.allow_negative THEN
            -- available may go below zero here: the level is made if the item was never
            -- at this location (a sum past 64 bits fails as 22003, a 422).
            IF cardinality(short_lines) = 0 THEN
                INSERT INTO inventory.stock_levels AS s (id, item_id, location_id, reserved)
                VALUES (gen_random_uuid(), lvl.item_id, lvl.location_id, lvl.wanted)
                ON CONFLICT (tenant_id, item_id, location_id) DO UPDATE
                   SET reserved = s.reserved + excluded.reserved, updated_at = now();
            END IF;
            CONTINUE;
        END IF;
        IF cardinality(short_lines) = 0 AND lvl.wanted <= 9223372036854775807 THEN
            UPDATE inventory.stock_levels s
               SET reserved = s.reserved + lvl.wanted::bigint, updated_at = now()
             WHERE s.item_id = lvl.item_id AND s.location_id = lvl.location_id
               AND s.on_hand - s.reserved >= lvl.wanted;
            IF FOUND THEN
                CONTINUE;
            END IF;
        END IF;
        SELECT s.on_hand - s.reserved INTO avail
          FROM inventory.stock_levels s
         WHERE s.item_id = lvl.item_id AND s.location_id = lvl.location_id;
        avail := coalesce(avail, 0);
        IF avail >= lvl.wanted THEN
            CONTINUE;  -- read only, after an earlier short level: it would have fitted
        END IF;
        FOR k IN 1 .. cardinality(lvl.lines) LOOP
            short_lines := short_lines || lvl.lines[k];
            short_detail := short_detail || (
                inventory.line_field(p_single, lvl.lines[k], 'quantity') || ': '
                || CASE WHEN cardinality(lvl.lines) = 1
                        THEN format('%s requested, %s available.', lvl.quantities[k], avail)
                        ELSE format('%s requested (%s with lines %s at this location), '
                                    '%s available.', lvl.quantities[k], lvl.wanted,
                                    array_to_string(lvl.lines, ', '), avail) END);
        END LOOP;
    END LOOP;
    IF cardinality(short_lines) > 0 THEN
        SELECT array_agg(d ORDER BY ln), array_agg(ln ORDER BY ln)
          INTO short_detail, short_lines
          FROM unnest(short_detail, short_lines) AS x(d, ln);
        RAISE EXCEPTION '%', CASE WHEN p_single THEN 'Not enough stock: '
                                       || split_part(short_detail[1], ': ', 2)
                                  ELSE format('Not enough stock for line%s %s; nothing was '
                                              'reserved.',
                                              CASE WHEN cardinality(short_lines) > 1
                                                   THEN 's' ELSE '' END,
                                              array_to_string(short_lines, ', ')) END
            USING ERRCODE = 'EI001', DETAIL = array_to_string(short_detail, E'\n');
    END IF;

    -- 5. The reservations, and one change per level for its stock.changed at commit.
    INSERT INTO inventory.reservations AS r
           (id, item_id, location_id, quantity, order_id, order_line_id, reference)
    SELECT l.id, l.item_id, l.location_id, l.quantity, p_order_id, l.order_line_id,
           l.reference
      FROM unnest(p_ids, p_items, p_locations, p_quantities,
                  coalesce(p_order_line_ids, array_fill(NULL::uuid, ARRAY[n])),
                  coalesce(p_references, array_fill(NULL::text, ARRAY[n])))
           AS l(id, item_id, location_id, quantity, order_line_id, reference);
    PERFORM inventory.note_change(l.item_id, l.location_id, 0, l.quantity, 'reservation', l.id)
       FROM unnest(p_ids, p_items, p_locations, p_quantities) WITH ORDINALITY
            AS l(id, item_id, location_id, quantity, i)
      ORDER BY l.item_id, l.location_id, l.i;
    RETURN now();  -- every row's created_at (the transaction's start)
END
$$;

-- Release held reservations: each frees quantity - consumed. p_order_id NULL is a direct
-- release (POST /inventory/reservations/{id}/release), which refuses an order's
-- reservation (cancel the order); else every reservation must be that order's. Returns
-- the released rows.
CREATE OR REPLACE FUNCTION inventory.release_reservations(p_ids uuid[], p_order_id uuid)
    RETURNS TABLE (id uuid, item_id uuid, location_id uuid, quantity bigint, consumed bigint,
                   status text, order_id uuid, order_line_id uuid, reference text,
                   created_at timestamptz)
    LANGUAGE plpgsql
    SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    wanted uuid[] := ARRAY(SELECT DISTINCT x FROM unnest(p_ids) AS x WHERE x IS NOT NULL);
    items uuid[];
    found_n int;
    bad record;
    lvl record;
BEGIN
    IF coalesce(cardinality(wanted), 0) = 0 THEN
        RAISE EXCEPTION 'inventory.release_reservations: no reservation ids';
    END IF;
    -- The items, read unlocked (a reservation's item never changes), then locked (LOCK
    -- ORDER): every writer of a reservation holds its item first, so what is read
    -- below, after the lock, is what this transaction changes.
    SELECT array_agg(DISTINCT r.item_id), count(*) INTO items, found_n
      FROM inventory.reservations r
     WHERE r.id = ANY (wanted) AND (p_order_id IS NULL OR r.order_id = p_order_id);
    IF found_n < cardinality(wanted) THEN
        RAISE EXCEPTION 'Not found' USING ERRCODE = 'EI010';
    END IF;
    PERFORM inventory.lock_items(items);

    SELECT r.status, r.order_id INTO bad
      FROM inventory.reservations r
     WHERE r.id = ANY (wanted)
       AND (r.status <> 'held' OR (p_order_id IS NULL AND r.order_id IS NOT NULL))
     ORDER BY r.id
     LIMIT 1;
    IF FOUND AND bad.status <> 'held' THEN
        RAISE EXCEPTION 'The reservation is %, not held.', bad.status
            USING ERRCODE = 'EI003', DETAIL = format('status: The reservation is %s.', bad.status);
    ELSIF FOUND THEN
        RAISE EXCEPTION 'The reservation holds stock for order %: cancel the order to '
                        'release it.', bad.order_id
            USING ERRCODE = 'EI003',
                  DETAIL = 'order_id: Reserved for an order: cancel the order to release it.';
    END IF;

    RETURN QUERY
    UPDATE inventory.reservations r SET status = 'released', updated_at = now()
     WHERE r.id = ANY (wanted)
    RETURNING r.id, r.item_id, r.location_id, r.quantity, r.consumed, r.status, r.order_id,
              r.order_line_id, r.reference, r.created_at;

    FOR lvl IN
        SELECT r.item_id, r.location_id, sum(r.quantity - r.consumed) AS freed
          FROM inventory.reservations r
         WHERE r.id = ANY (wanted)
         GROUP BY r.item_id, r.location_id
         ORDER BY r.item_id, r.location_id
    LOOP
        UPDATE inventory.stock_levels s
           SET reserved = s.reserved - lvl.freed::bigint, updated_at = now()
         WHERE s.item_id = lvl.item_id AND s.location_id = lvl.location_id;
    END LOOP;
    PERFORM inventory.note_change(r.item_id, r.location_id, 0, -(r.quantity - r.consumed),
                                  'reservation', r.id)
       FROM inventory.reservations r
      WHERE r.id = ANY (wanted)
      ORDER BY r.item_id, r.location_id, r.id;
END
$$;

-- Consume reserved units on shipment (an order's fulfilment): per line, the reservation's
-- consumed grows (status `consumed` once all of it is) and inventory.apply_move makes the
-- `issue` move that takes the units from on_hand and from reserved in ONE statement.
-- The moves' value is RETURNED and nothing is posted: the caller posts one combined
-- ledger transaction, p_transaction_id, in this database transaction (the moves name
-- it; its foreign key is checked at commit). Refusals name `lines.<i>.<field>`.
CREATE OR REPLACE FUNCTION inventory.consume_reservations(
    p_reservation_ids uuid[],
    p_quantities bigint[],
    p_move_ids uuid[],
    p_source_type text,
    p_source_id uuid,
    p_transaction_id uuid
) RETURNS TABLE (line int, move_id uuid, item_id uuid, location_id uuid, value bigint,
                 created_at timestamptz)
    LANGUAGE plpgsql
    SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    n int := coalesce(cardinality(p_reservation_ids), 0);
    faults text;
    items uuid[];
    ln record;
    res record;
    moved record;
BEGIN
    IF coalesce(cardinality(p_quantities), 0) <> n OR coalesce(cardinality(p_move_ids), 0) <> n
       OR n = 0 THEN
        RAISE EXCEPTION 'inventory.consume_reservations: the line arrays differ in length';
    END IF;
    SELECT string_agg(format('lines.%s.quantity: Must be greater than 0.', l.i - 1), E'\n'
                      ORDER BY l.i)
      INTO faults
      FROM unnest(p_quantities) WITH ORDINALITY AS l(quantity, i)
     WHERE l.quantity IS NULL OR l.quantity <= 0;
    IF faults IS NULL THEN
        SELECT string_agg(format('lines.%s.reservation_id: Unknown reservation.', l.i - 1),
                          E'\n' ORDER BY l.i)
          INTO faults
          FROM unnest(p_reservation_ids) WITH ORDINALITY AS l(id, i)
         WHERE NOT EXISTS (SELECT 1 FROM inventory.reservations r WHERE r.id = l.id);
    END IF;
    IF faults IS NOT NULL THEN
        RAISE EXCEPTION '%', CASE WHEN position(E'\n' IN faults) = 0 THEN faults
                                  ELSE 'Several lines failed validation.' END
            USING ERRCODE = 'EI002', DETAIL = faults;
    END IF;

    SELECT array_agg(DISTINCT r.item_id) INTO items
      FROM inventory.reservations r WHERE r.id = ANY (p_reservation_ids);
    PERFORM inventory.lock_items(items);

    FOR ln IN
        SELECT l.i - 1 AS i, l.id, l.quantity, l.move_id, r.item_id, r.location_id
          FROM unnest(p_reservation_ids, p_quantities, p_move_ids) WITH ORDINALITY
               AS l(id, quantity, move_id, i)
          JOIN inventory.reservations r ON r.id = l.id
         ORDER BY r.item_id, r.location_id, l.i
    LOOP
        UPDATE inventory.reservations r
           SET consumed = r.consumed + ln.quantity,
               status = CASE WHEN r.consumed + ln.quantity = r.quantity THEN 'consumed'
                             ELSE r.status END,
               updated_at = now()
         WHERE r.id = ln.id AND r.status = 'held' AND r.quantity - r.consumed >= ln.quantity;
        IF NOT FOUND THEN
            SELECT r.status, r.quantity - r.consumed AS open_n INTO res
              FROM inventory.reservations r WHERE r.id = ln.id;
            IF res.status <> 'held' THEN
                RAISE EXCEPTION 'lines.%.reservation_id: The reservation is %, not held.',
                    ln.i, res.status
                    USING ERRCODE = 'EI003',
                          DETAIL = format('lines.%s.reservation_id: The reservation is %s, '
                                          'not held.', ln.i, res.status);
            END IF;
            PERFORM inventory.refuse(format('lines.%s.quantity', ln.i),
                format('%s requested, %s reserved and not yet consumed.', ln.quantity,
                       res.open_n));
        END IF;
        SELECT m.value, m.created_at INTO moved
          FROM inventory.apply_move(ln.move_id, 'issue', ln.item_id, ln.quantity,
                                    ln.location_id, NULL, NULL, NULL, NULL, NULL,
                                    CASE WHEN p_source_id IS NOT NULL THEN p_source_type END,
                                    p_source_id, p_transaction_id,
                                    ln.quantity, format('lines.%s.', ln.i), 'quantity') AS m;
        line := ln.i;
        move_id := ln.move_id;
        item_id := ln.item_id;
        location_id := ln.location_id;
        value := moved.value;
        created_at := moved.created_at;
        RETURN NEXT;
    END LOOP;
END
$$;

REVOKE ALL ON FUNCTION inventory.line_field(boolean, bigint, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION inventory.reserve(uuid[], uuid[], uuid[], bigint[], uuid, uuid[], text[],
    boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION inventory.release_reservations(uuid[], uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION inventory.consume_reservations(uuid[], bigint[], uuid[], text, uuid, uuid)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION inventory.line_field(boolean, bigint, text) TO erp_app;
GRANT EXECUTE ON FUNCTION inventory.reserve(uuid[], uuid[], uuid[], bigint[], uuid, uuid[],
    text[], boolean) TO erp_app;
GRANT EXECUTE ON FUNCTION inventory.release_reservations(uuid[], uuid) TO erp_app;
GRANT EXECUTE ON FUNCTION inventory.consume_reservations(uuid[], bigint[], uuid[], text, uuid,
    uuid) TO erp_app;
