-- Intake from shops (API.md, Sales channels): the two functions that run before a
-- tenant is known, owned by erp_auth (BYPASSRLS: FORCE RLS hides every row from
-- erp_owner before a tenant is known), EXECUTE for erp_app only.
--
-- app.inbound_channel: what verifying a message to /hooks/v1/channels/{id}/orders
-- needs, and nothing more: the channel's tenant, its kind and its secrets (SecretBox
-- tokens; the previous one only while it is still valid). No row for an unknown or
-- archived channel, nor for one of a tenant that is not active, so each is answered
-- alike (401). The message itself is then stored under RLS with that tenant pinned.
CREATE OR REPLACE FUNCTION app.inbound_channel(p_channel_id uuid)
    RETURNS TABLE (tenant_id uuid, kind text, secret text, previous_secret text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- plpgsql, not sql: its plan is kept for the session (an SQL function that cannot
    -- be inlined, as a definer cannot, is planned again on every call), and it runs
    -- for every message a shop sends (the lookup, and the insert's check).
    RETURN QUERY
    SELECT c.tenant_id, c.kind, c.secret,
           CASE WHEN c.previous_secret_expires_at > now() THEN c.previous_secret END
      FROM orders.channels c
      JOIN platform.tenants t ON t.id = c.tenant_id
     WHERE c.id = p_channel_id
       AND NOT c.archived
       AND t.status = 'active'
     LIMIT 1;
END
$$;
REVOKE ALL ON FUNCTION app.inbound_channel(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.inbound_channel(uuid) TO erp_app;

-- Discovery for the intake sweeper (DESIGN.md §3): which active tenants hold inbound
-- messages still `received` after `p_older_than` (Redis was down when they came, or
-- their job was lost). Ids only; the sweeper then reads and enqueues per tenant,
-- under RLS.
CREATE OR REPLACE FUNCTION app.tenants_with_inbound_to_sweep(p_older_than interval, p_limit int)
    RETURNS SETOF uuid
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.id
      FROM platform.tenants t
     WHERE t.status = 'active'
       AND EXISTS (SELECT 1 FROM orders.inbound_messages m
                    WHERE m.tenant_id = t.id AND m.status = 'received'
                      AND m.created_at < now() - p_older_than)
     LIMIT greatest(p_limit, 0)
$$;
REVOKE ALL ON FUNCTION app.tenants_with_inbound_to_sweep(interval, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.tenants_with_inbound_to_sweep(interval, int) TO erp_app;
