-- Placing an order is ONE call (DESIGN.md §4; docs/domains.md, "How to add a fast
-- command"; API.md, Orders: Placing): orders.place_order deduplicates by (channel,
-- external_id), checks the channel, location, currency accounts, items, SKUs and tax
-- codes, prices every line in integer minor units, finds or creates the customer,
-- writes the order and its lines, reserves every line through inventory.reserve (all or
-- none; or, on a `backorder` channel, what is available with the rest backordered),
-- and writes the `order.created` outbox event, in one round trip from the service.
-- orders.order_json is the order as the API answers it (GET /orders/{id}, the reply to
-- the placing call, the event's data): one definition for all three.
--
-- SECURITY INVOKER: it runs as erp_app under RLS, so another tenant's channel, item,
-- location or tax rate reads as unknown, and every row lands in the caller's tenant.
--
-- Refusals (registered in erp/orders/__init__.py):
--   EO101 validation (422)          DETAIL one `field.path: message` per fault
--   EO102 conflict (409)            DETAIL `external_id: ...`: the external_id has an order
--                                   placed with another body
--   EI001 insufficient-stock (409)  raised by inventory.reserve: `lines.<i>.quantity: <n>
--                                   requested, <m> available.` per short line
--
-- LOCK ORDER: the (channel, external_id) advisory lock, then the customer's email (the
-- unique index, when the customer is new), then the items (inventory.lock_items, id
-- order) and the levels (inventory.reserve). Every placement takes them in this order,
-- so two placements never deadlock.
--
-- PRICING (docs/orders.md): per line `subtotal = unit_price × quantity − discount`;
-- `tax = round_half_up(subtotal × rate_ppm / 1000000)` for a tax code (numeric
-- arithmetic, no float: round() of a non-negative numeric rounds .5 up), or the explicit
-- `tax`, else 0; `total = subtotal + tax`. Shipping is priced as a line of quantity 1.
-- The order's subtotal and tax are the sums of its lines' and its shipping's.

CREATE OR REPLACE FUNCTION orders.refuse(p_faults text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION '%', CASE WHEN position(E'\n' IN p_faults) = 0 THEN p_faults
                              ELSE 'The order failed validation.' END
        USING ERRCODE = 'EO101', DETAIL = p_faults;
END
$$;

-- round_half_up(amount × rate_ppm / 1000000) for a non-negative amount.
CREATE OR REPLACE FUNCTION orders.tax_of(p_amount numeric, p_rate_ppm integer) RETURNS numeric
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT round(p_amount * p_rate_ppm / 1000000)
$$;

-- The order as GET /orders/{id} answers it (API.md, Orders); json (not jsonb) keeps the
-- documented key order. NULL when the order is absent (or another tenant's).
CREATE OR REPLACE FUNCTION orders.order_json(p_id uuid) RETURNS json
    LANGUAGE sql STABLE
    SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT json_build_object(
        'id', o.id,
        'status', o.status,
        'external_id', o.external_id,
        'channel_id', o.channel_id,
        'currency', o.currency,
        'customer', json_build_object('id', c.id, 'name', c.name, 'email', c.email),
        'location_id', o.location_id,
        'lines', (SELECT json_agg(json_build_object(
                             'id', l.id, 'item_id', l.item_id, 'sku', l.sku,
                             'quantity', l.quantity, 'unit_price', l.unit_price,
                             'tax_code', l.tax_code,
                             'subtotal', l.subtotal, 'tax', l.tax, 'total', l.total,
                             'backordered', l.backordered, 'fulfilled', l.fulfilled,
                             'cancelled', l.cancelled, 'returned', l.returned)
                         ORDER BY l.line_no)
                    FROM orders.order_lines l WHERE l.order_id = o.id),
        'shipping', CASE WHEN o.shipping_subtotal <> 0 OR o.shipping_tax <> 0
                              OR o.shipping_tax_code IS NOT NULL
                         THEN json_build_object(
                             'amount', o.shipping_subtotal, 'tax_code', o.shipping_tax_code,
                             'tax', o.shipping_tax,
                             'total', o.shipping_subtotal + o.shipping_tax) END,
        'subtotal', o.subtotal,
        'tax', o.tax,
        'total', o.total,
        'paid', o.paid,
        'credited', o.credited,
        'balance_due', o.total - o.credited - o.paid,
        'metadata', o.metadata,
        'created_at', inventory.iso_utc(o.created_at))
      FROM orders.orders o
      JOIN orders.customers c ON c.id = o.customer_id
     WHERE o.id = p_id
$$;

CREATE OR REPLACE FUNCTION orders.place_order(
    p_id uuid,
    p_line_ids uuid[],
    p_reservation_ids uuid[],
    p_event_id uuid,
    p_customer_name text,
    p_customer_email text,
    p_currency text,
    p_channel_id uuid,
    p_external_id text,
    p_request_hash text,
    p_location_id uuid,
    p_metadata jsonb,
    p_items uuid[],
    p_skus text[],
    p_quantities bigint[],
    p_unit_prices bigint[],
    p_discounts bigint[],
    p_tax_codes text[],
    p_taxes bigint[],
    p_shipping bigint,
    p_shipping_tax_code text,
    p_shipping_tax bigint
) RETURNS TABLE (created boolean, body text)
    LANGUAGE plpgsql
    SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    n int := coalesce(cardinality(p_line_ids), 0);
    max_amount constant numeric := 9223372036854775807;
    existing record;
    chan record;
    loc record;
    v_location uuid;
    srate record;
    shortage text := 'reject';
    faults text[] := '{}';
    missing text[];
    ln record;
    v_items uuid[];
    v_skus text[];
    v_rates int[];
    v_codes text[];
    v_subtotals numeric[];
    v_taxes numeric[];
    ship_rate int;
    ship_tax numeric := 0;
    sum_subtotal numeric;
    sum_tax numeric;
    customer uuid;
    reserve_qty bigint[];
    reserve_idx int[];
BEGIN
    -- The service builds these arrays: unequal lengths are its bug (a 500), not bad input.
    IF coalesce(cardinality(p_reservation_ids), 0) <> n
       OR coalesce(cardinality(p_items), 0) <> n OR coalesce(cardinality(p_skus), 0) <> n
       OR coalesce(cardinality(p_quantities), 0) <> n
       OR coalesce(cardinality(p_unit_prices), 0) <> n
       OR coalesce(cardinality(p_discounts), 0) <> n
       OR coalesce(cardinality(p_tax_codes), 0) <> n OR coalesce(cardinality(p_taxes), 0) <> n
       OR n = 0 THEN
        RAISE EXCEPTION 'orders.place_order: the line arrays differ in length';
    END IF;

    -- 1. Deduplicate by (channel, external_id): one placement at a time per key; the
    --    statement after the lock sees an order the previous holder committed.
    IF p_external_id IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtextextended(
            current_setting('app.tenant_id') || ':order-external:'
            || coalesce(p_channel_id::text, '-') || ':' || p_external_id, 0));
        SELECT o.id, o.request_hash INTO existing
          FROM orders.orders o
         WHERE o.channel_id IS NOT DISTINCT FROM p_channel_id
           AND o.external_id = p_external_id;
        IF FOUND THEN
            IF existing.request_hash IS DISTINCT FROM p_request_hash THEN
                RAISE EXCEPTION 'Order % has external_id % with another body.',
                    existing.id, p_external_id
                    USING ERRCODE = 'EO102',
                          DETAIL = 'external_id: Already used by another order.';
            END IF;
            created := false;
            body := orders.order_json(existing.id)::text;
            RETURN NEXT;
            RETURN;
        END IF;
    END IF;

    -- 2. The channel, the location (given, else the channel's, else the default), the
    --    currency's accounts by role.
    IF p_channel_id IS NOT NULL THEN
        SELECT c.on_shortage, c.location_id, c.archived INTO chan
          FROM orders.channels c WHERE c.id = p_channel_id;
        IF NOT FOUND THEN
            faults := faults || 'channel_id: Unknown channel.'::text;
        ELSIF chan.archived THEN
            faults := faults || 'channel_id: The channel is archived.'::text;
        ELSE
            shortage := chan.on_shortage;
            v_location := chan.location_id;
        END IF;
    END IF;
    IF p_location_id IS NOT NULL THEN
        v_location := p_location_id;
    END IF;
    IF v_location IS NULL THEN
        SELECT l.id INTO v_location FROM inventory.locations l WHERE l.is_default;
    END IF;
    SELECT l.id, l.archived INTO loc FROM inventory.locations l WHERE l.id = v_location;
    IF loc.id IS NULL THEN
        faults := faults || CASE WHEN p_location_id IS NULL
                                 THEN 'location_id: No default location.'
                                 ELSE 'location_id: Unknown location.' END;
    ELSIF loc.archived THEN
        faults := faults || 'location_id: The location is archived.'::text;
    END IF;
    SELECT array_agg(r.role ORDER BY r.role) INTO missing
      FROM unnest(ARRAY['accounts_receivable', 'sales_revenue']) AS r(role)
     WHERE NOT EXISTS (SELECT 1 FROM ledger.accounts a
                        WHERE a.role = r.role AND a.currency = p_currency AND NOT a.archived);
    IF missing IS NOT NULL THEN
        faults := faults || format('currency: No %s account in %s.',
                                   array_to_string(missing, ' or '), p_currency);
    END IF;

    -- 3. The lines: each item (by id or SKU) and tax code, and the prices.
    FOR ln IN
        SELECT l.i - 1 AS i, l.item_id, l.sku, l.quantity, l.unit_price, l.discount, l.tax_code,
               l.tax, coalesce(a.id, b.id) AS found_id, coalesce(a.sku, b.sku) AS found_sku,
               coalesce(a.archived, b.archived) AS archived, t.id AS rate_id,
               t.rate_ppm, t.archived AS rate_archived
          FROM unnest(p_items, p_skus, p_quantities, p_unit_prices, p_discounts, p_tax_codes,
                      p_taxes) WITH ORDINALITY
               AS l(item_id, sku, quantity, unit_price, discount, tax_code, tax, i)
          LEFT JOIN inventory.items a ON a.id = l.item_id
          LEFT JOIN inventory.items b ON l.item_id IS NULL AND b.sku = l.sku
          LEFT JOIN orders.tax_rates t ON t.code = l.tax_code
         ORDER BY l.i
    LOOP
        IF ln.found_id IS NULL THEN
            faults := faults || CASE WHEN ln.item_id IS NOT NULL
                                     THEN format('lines.%s.item_id: Unknown item.', ln.i)
                                     ELSE format('lines.%s.sku: Unknown SKU.', ln.i) END;
        ELSIF ln.archived THEN
            faults := faults || format('lines.%s.%s: The item is archived.', ln.i,
                                       CASE WHEN ln.item_id IS NOT NULL THEN 'item_id'
                                            ELSE 'sku' END);
        END IF;
        IF ln.tax_code IS NOT NULL AND ln.rate_id IS NULL THEN
            faults := faults || format('lines.%s.tax_code: Unknown tax code.', ln.i);
        ELSIF ln.rate_archived THEN
            faults := faults || format('lines.%s.tax_code: The tax rate is archived.', ln.i);
        END IF;
        v_items := v_items || ln.found_id;
        v_skus := v_skus || ln.found_sku;
        v_codes := v_codes || ln.tax_code;
        v_rates := v_rates || ln.rate_ppm;
        v_subtotals := v_subtotals || (ln.unit_price::numeric * ln.quantity - ln.discount);
        v_taxes := v_taxes || coalesce(ln.tax::numeric,
                                       orders.tax_of(v_subtotals[ln.i + 1], ln.rate_ppm), 0);
        IF v_subtotals[ln.i + 1] < 0 THEN
            faults := faults || format('lines.%s.discount: Must not exceed unit_price × '
                                       'quantity.', ln.i);
        ELSIF v_subtotals[ln.i + 1] + v_taxes[ln.i + 1] > max_amount THEN
            faults := faults || format('lines.%s.unit_price: The line''s total exceeds %s.',
                                       ln.i, max_amount);
        END IF;
    END LOOP;
    IF p_shipping_tax_code IS NOT NULL THEN
        SELECT t.rate_ppm, t.archived INTO srate FROM orders.tax_rates t
         WHERE t.code = p_shipping_tax_code;
        IF NOT FOUND THEN
            faults := faults || 'shipping.tax_code: Unknown tax code.'::text;
        ELSIF srate.archived THEN
            faults := faults || 'shipping.tax_code: The tax rate is archived.'::text;
        ELSE
            ship_rate := srate.rate_ppm;
        END IF;
    END IF;
    ship_tax := coalesce(p_shipping_tax::numeric, orders.tax_of(coalesce(p_shipping, 0), ship_rate),
                         0);
    sum_subtotal := (SELECT sum(x) FROM unnest(v_subtotals) AS x) + coalesce(p_shipping, 0);
    sum_tax := (SELECT sum(x) FROM unnest(v_taxes) AS x) + ship_tax;
    IF cardinality(faults) = 0 AND sum_subtotal + sum_tax > max_amount THEN
        faults := faults || format('lines: The order''s total exceeds %s.', max_amount);
    END IF;
    IF cardinality(faults) = 0 AND sum_tax > 0 AND NOT EXISTS (
            SELECT 1 FROM ledger.accounts a
             WHERE a.role = 'sales_tax_payable' AND a.currency = p_currency AND NOT a.archived)
    THEN
        faults := faults || format('currency: No sales_tax_payable account in %s.', p_currency);
    END IF;
    IF cardinality(faults) > 0 THEN
        PERFORM orders.refuse(array_to_string(faults, E'\n'));
    END IF;

    -- 4. The customer, matched by email (case-insensitive); a concurrent first order of
    --    the same email waits on the unique index and then finds the winner's row. The
    --    same rule as erp.orders.services.customer_for, here so that the placement stays
    --    one call.
    INSERT INTO orders.customers AS c (id, name, email)
    VALUES (gen_random_uuid(), p_customer_name, p_customer_email)
    ON CONFLICT (tenant_id, lower(email)) DO NOTHING
    RETURNING c.id INTO customer;
    IF customer IS NULL THEN
        SELECT c.id INTO customer FROM orders.customers c
         WHERE lower(c.email) = lower(p_customer_email);
    END IF;

    -- 5. How much of each line to reserve: all of it (a shortage refuses the order in
    --    inventory.reserve, naming every short line), or on a `backorder` channel what
    --    the level has, in line order, read after the items' locks (LOCK ORDER).
    IF shortage = 'backorder' THEN
        PERFORM inventory.lock_items(v_items);
        SELECT array_agg(CASE WHEN lo.allow_negative THEN x.quantity
                              ELSE least(x.quantity, greatest(coalesce(s.on_hand - s.reserved, 0)
                                                              - x.before, 0)) END
                         ORDER BY x.i)
          INTO reserve_qty
          FROM (SELECT l.i, l.item_id, l.quantity,
                       coalesce(sum(l.quantity) OVER (PARTITION BY l.item_id ORDER BY l.i
                                ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before
                  FROM unnest(v_items, p_quantities) WITH ORDINALITY AS l(item_id, quantity, i))
               AS x
          JOIN inventory.locations lo ON lo.id = v_location
          LEFT JOIN inventory.stock_levels s
                 ON s.item_id = x.item_id AND s.location_id = v_location;
    ELSE
        reserve_qty := p_quantities;
    END IF;
    SELECT array_agg(k ORDER BY k) INTO reserve_idx
      FROM generate_subscripts(reserve_qty, 1) AS k WHERE reserve_qty[k] > 0;

    -- 6. The rows: the order, its lines (each naming its reservation, checked at commit),
    --    the reservations, the event.
    INSERT INTO orders.orders AS o
           (id, channel_id, external_id, request_hash, customer_id, currency, location_id,
            subtotal, tax, total, shipping_subtotal, shipping_tax, shipping_tax_code,
            shipping_tax_rate_ppm, metadata)
    VALUES (p_id, p_channel_id, p_external_id,
            CASE WHEN p_external_id IS NOT NULL THEN p_request_hash END, customer, p_currency,
            v_location, sum_subtotal, sum_tax, sum_subtotal + sum_tax, coalesce(p_shipping, 0),
            ship_tax, CASE WHEN ship_rate IS NOT NULL THEN p_shipping_tax_code END, ship_rate,
            coalesce(p_metadata, '{}'));
    INSERT INTO orders.order_lines
           (id, order_id, line_no, item_id, sku, quantity, unit_price, discount, tax_code,
            tax_rate_ppm, subtotal, tax, total, backordered, reservation_id)
    SELECT l.id, p_id, l.i - 1, l.item_id, l.sku, l.quantity, l.unit_price, l.discount,
           CASE WHEN l.rate IS NOT NULL THEN l.tax_code END, l.rate, l.subtotal, l.tax,
           l.subtotal + l.tax, l.quantity - l.reserved,
           CASE WHEN l.reserved > 0 THEN l.reservation_id END
      FROM unnest(p_line_ids, v_items, v_skus, p_quantities, p_unit_prices, p_discounts, v_codes,
                  v_rates, v_subtotals, v_taxes, reserve_qty, p_reservation_ids)
           WITH ORDINALITY AS l(id, item_id, sku, quantity, unit_price, discount, tax_code, rate,
                                subtotal, tax, reserved, reservation_id, i);
    IF reserve_idx IS NOT NULL THEN
        PERFORM inventory.reserve(
            ARRAY(SELECT p_reservation_ids[k] FROM unnest(reserve_idx) AS k),
            ARRAY(SELECT v_items[k] FROM unnest(reserve_idx) AS k),
            array_fill(v_location, ARRAY[cardinality(reserve_idx)]),
            ARRAY(SELECT reserve_qty[k] FROM unnest(reserve_idx) AS k),
            p_id,
            ARRAY(SELECT p_line_ids[k] FROM unnest(reserve_idx) AS k),
            NULL,
            false);
    END IF;

    created := true;
    body := orders.order_json(p_id)::text;
    INSERT INTO webhooks.outbox_events (id, event_type, payload)
    VALUES (p_event_id, 'order.created', body::jsonb);
    RETURN NEXT;
END
$$;

REVOKE ALL ON FUNCTION orders.refuse(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION orders.tax_of(numeric, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION orders.order_json(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION orders.place_order(uuid, uuid[], uuid[], uuid, text, text, text, uuid, text,
    text, uuid, jsonb, uuid[], text[], bigint[], bigint[], bigint[], text[], bigint[], bigint, text,
    bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION orders.refuse(text) TO erp_app;
GRANT EXECUTE ON FUNCTION orders.tax_of(numeric, integer) TO erp_app;
GRANT EXECUTE ON FUNCTION orders.order_json(uuid) TO erp_app;
GRANT EXECUTE ON FUNCTION orders.place_order(uuid, uuid[], uuid[], uuid, text, text, text, uuid,
    text, text, uuid, jsonb, uuid[], text[], bigint[], bigint[], bigint[], text[], bigint[], bigint,
    text, bigint) TO erp_app;
