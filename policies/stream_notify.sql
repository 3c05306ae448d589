-- Real-time streams (DESIGN.md §4, API.md "Real time"): each outbox event a stream
-- serves wakes the streams of its tenant with NOTIFY erp_stream, payload the tenant id
-- only (never a row's contents: a woken stream reads its own events under RLS). It is
-- delivered at commit only, so rolled-back work never wakes anyone, and identical
-- notifications of one transaction are folded: a commit of many stock events sends
-- one. A database-side hook on purpose, as policies/webhooks_notify.sql: writers that
-- insert events from SQL functions or commit on the one-flight path are covered too.
-- SECURITY INVOKER: it runs as the writer (pg_notify is PUBLIC).
--
-- The WHEN clause names the event types some stream serves (erp/inventory/stream.py):
-- other events (a ledger posting, say) never notify the streams' channel.
CREATE OR REPLACE FUNCTION webhooks.notify_stream() RETURNS trigger
    LANGUAGE plpgsql
    SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_notify('erp_stream', NEW.tenant_id::text);
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION webhooks.notify_stream() FROM PUBLIC;

CREATE TRIGGER notify_stream AFTER INSERT ON webhooks.outbox_events
    FOR EACH ROW
    WHEN (NEW.event_type IN ('stock.changed', 'stock.low'))
    EXECUTE FUNCTION webhooks.notify_stream();
