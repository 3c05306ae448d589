-- Kept after a tenant's purge: no role, not even the owner, rewrites history.
CREATE TRIGGER refuse_update_delete BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION app.refuse_change('never');
CREATE TRIGGER refuse_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION app.refuse_change('never');
