-- Accepting a shop's message (POST /hooks/v1/channels/{id}/orders; API.md, Sales
-- channels) is ONE call, run with the channel's tenant pinned: orders.accept_inbound
-- stores the raw message only while app.inbound_channel still answers the tenant and
-- the secrets the hook verified the signature with (the hook may have verified it
-- against what its process found for that channel earlier: an archive, a suspension,
-- a rotation or an expiry since then stores nothing and returns NULLs, and the hook
-- looks the channel up again). A webhook id the channel already sent returns the
-- stored message: the conflict on the unique (tenant, channel, webhook id) finds it
-- (a no-op DO UPDATE, which also waits for a concurrent insert of the same id), never
-- a lookup whose index the planner picks.
--
-- plpgsql: its statements' plans are kept for the session, so a message costs the
-- insert, not its planning. SECURITY INVOKER: the row lands in the caller's tenant,
-- under RLS. A body that is not text (p_error) is stored `failed` at once. The id is
-- made here and returned as text, `created` false for a repeat.
CREATE OR REPLACE FUNCTION orders.accept_inbound(
    p_channel_id uuid,
    p_webhook_id text,
    p_topic text,
    p_body text,
    p_error jsonb,
    p_secret text,
    p_previous text,
    OUT message_id text,
    OUT message_status text,
    OUT created boolean
)
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id uuid := gen_random_uuid();
    v_found uuid;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM app.inbound_channel(p_channel_id) c
                    WHERE c.tenant_id = app.current_tenant_id()
                      AND c.secret = p_secret
                      AND c.previous_secret IS NOT DISTINCT FROM p_previous) THEN
        RETURN;
    END IF;
    INSERT INTO orders.inbound_messages AS m
           (id, channel_id, webhook_id, topic, body, status, error, processed_at)
    VALUES (v_id, p_channel_id, p_webhook_id, p_topic, p_body,
            CASE WHEN p_error IS NULL THEN 'received' ELSE 'failed' END, p_error,
            CASE WHEN p_error IS NOT NULL THEN now() END)
    ON CONFLICT (tenant_id, channel_id, webhook_id) DO UPDATE SET status = m.status
    RETURNING m.id, m.status INTO v_found, message_status;
    message_id := v_found::text;  -- the hook answers it as text
    created := v_found = v_id;
END
$$;
REVOKE ALL ON FUNCTION orders.accept_inbound(uuid, text, text, text, jsonb, text, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION orders.accept_inbound(uuid, text, text, text, jsonb, text, text)
    TO erp_app;
