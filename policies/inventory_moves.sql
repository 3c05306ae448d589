-- POST /inventory/moves is ONE call (docs/domains.md, "How to add a fast command"):
-- inventory.record_move applies the move (inventory.apply_move) and posts its value by
-- the roles of API.md's table (inventory.post_value), in one round trip. Transfers post
-- nothing; a value of 0 posts nothing (transaction_id null).
--
--   receipt          Dr inventory              Cr accounts_payable
--   issue            Dr cost_of_goods_sold     Cr inventory
--   adjustment in    Dr inventory              Cr inventory_adjustments
--   adjustment out   Dr inventory_adjustments  Cr inventory
--
-- p_counter_account replaces the side that is not `inventory`.
CREATE OR REPLACE FUNCTION inventory.record_move(
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
    p_counter_account uuid,
    p_tx_id uuid,
    p_event_id uuid
) RETURNS TABLE (value bigint, transaction_id uuid, currency text, created_at timestamptz)
    LANGUAGE plpgsql
    SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    moved bigint;
    at timestamptz;
    inward boolean := p_kind = 'receipt' OR (p_kind = 'adjustment' AND p_to IS NOT NULL);
    dr text;
    cr text;
BEGIN
    IF p_kind = 'transfer' AND p_counter_account IS NOT NULL THEN
        PERFORM inventory.refuse('counter_account_id', 'A transfer posts nothing.');
    END IF;
    SELECT m.value, m.created_at INTO moved, at
      FROM inventory.apply_move(p_id, p_kind, p_item_id, p_quantity, p_from, p_to, p_unit_cost,
                                p_reason_code, p_reason, p_reference, NULL, NULL, p_tx_id) AS m;
    SELECT s.currency INTO record_move.currency FROM inventory.settings s;
    record_move.value := moved;
    record_move.created_at := at;
    IF coalesce(moved, 0) > 0 THEN
        IF p_kind = 'receipt' THEN
            dr := 'inventory'; cr := 'accounts_payable';
        ELSIF p_kind = 'issue' THEN
            dr := 'cost_of_goods_sold'; cr := 'inventory';
        ELSIF inward THEN
            dr := 'inventory'; cr := 'inventory_adjustments';
        ELSE
            dr := 'inventory_adjustments'; cr := 'inventory';
        END IF;
        PERFORM inventory.post_value(p_tx_id, p_event_id, dr, cr, moved,
                                     jsonb_build_object('move_id', p_id), p_counter_account,
                                     'Stock ' || p_kind || ' ' || p_id::text);
        record_move.transaction_id := p_tx_id;
    END IF;
    RETURN NEXT;
END
$$;

REVOKE ALL ON FUNCTION inventory.record_move(uuid, text, uuid, bigint, uuid, uuid, bigint, text,
    text, text, uuid, uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION inventory.record_move(uuid, text, uuid, bigint, uuid, uuid, bigint, text,
    text, text, uuid, uuid, uuid) TO erp_app;
