-- Rows are immutable for erp_app: no UPDATE/DELETE grant, and this trigger as well.
CREATE TRIGGER refuse_update_delete BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION app.refuse_change('owner_may_delete');
CREATE TRIGGER refuse_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION app.refuse_change('never');
