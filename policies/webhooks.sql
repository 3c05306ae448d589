-- Outbound webhooks (DESIGN.md §4): the work to claim lives in its own tables, filled
-- in the same transaction as the outbox event, never found by a high-water mark.
--
-- webhooks.fill_dispatch: AFTER INSERT on webhooks.outbox_events, one dispatch row per
-- event. A trigger covers every writer (erp.webhooks.services.emit and the SQL
-- functions that insert events themselves, e.g. ledger.post_transaction). SECURITY
-- INVOKER: it runs as the writer, under RLS, so the row lands in the event's tenant.
CREATE OR REPLACE FUNCTION webhooks.fill_dispatch() RETURNS trigger
    LANGUAGE plpgsql
    SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO webhooks.dispatch (tenant_id, id) VALUES (NEW.tenant_id, NEW.id);
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION webhooks.fill_dispatch() FROM PUBLIC;

CREATE TRIGGER fill_dispatch AFTER INSERT ON webhooks.outbox_events
    FOR EACH ROW EXECUTE FUNCTION webhooks.fill_dispatch();

-- Discovery for the dispatcher (DESIGN.md §3): which *active* tenants have events to
-- fan out or messages due. Ids only, never a row's contents; the dispatcher then works
-- per tenant with that tenant's app.tenant_id set, under RLS. A suspended or deleting
-- tenant is not named, so its deliveries pause (its messages stay pending) until it
-- is reactivated or restored. Owned by erp_auth (BYPASSRLS): FORCE RLS hides every
-- row from erp_owner before a tenant is known.
CREATE OR REPLACE FUNCTION app.tenants_with_due_webhooks(p_limit int)
    RETURNS SETOF uuid
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.id
      FROM platform.tenants t
     WHERE t.status = 'active'
       AND (EXISTS (SELECT 1 FROM webhooks.dispatch d WHERE d.tenant_id = t.id)
            OR EXISTS (SELECT 1 FROM webhooks.messages m
                        WHERE m.tenant_id = t.id AND m.status = 'pending'
                          AND m.next_attempt_at <= now()
                          AND (m.lease_until IS NULL OR m.lease_until < now())))
     LIMIT greatest(p_limit, 0)
$$;
REVOKE ALL ON FUNCTION app.tenants_with_due_webhooks(int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.tenants_with_due_webhooks(int) TO erp_app;
