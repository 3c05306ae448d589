-- Outbound webhooks' push path: each dispatch row wakes the listener
-- (`erp webhooks listen`, erp/webhooks/listener.py) with NOTIFY erp_webhooks, payload
-- the tenant id. PostgreSQL delivers a notification only when its transaction commits
-- (never for a rolled-back posting) and folds identical ones of one transaction, so a
-- posting of many events wakes the listener once. This is a database-side hook on
-- purpose: postings that take the one-flight path (erp.db.one_flight_scope) commit
-- without SQLAlchemy's after-commit hooks. The payload is a tenant id only, never a
-- row's contents. SECURITY INVOKER: it runs as the writer (pg_notify is PUBLIC).
CREATE OR REPLACE FUNCTION webhooks.notify_dispatch() RETURNS trigger
    LANGUAGE plpgsql
    SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_notify('erp_webhooks', NEW.tenant_id::text);
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION webhooks.notify_dispatch() FROM PUBLIC;

CREATE TRIGGER notify_dispatch AFTER INSERT ON webhooks.dispatch
    FOR EACH ROW EXECUTE FUNCTION webhooks.notify_dispatch();
