-- The tenant of the current transaction, or NULL (then every policy fails closed).
CREATE OR REPLACE FUNCTION app.current_tenant_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid $$;

-- Guard for append-only tables. TG_ARGV[0] = 'owner_may_delete' lets erp_owner
-- (the purge of a deleted tenant, never the API) DELETE; nothing else passes.
-- The check is on current_user, never on a GUC: any role can set a custom GUC.
CREATE OR REPLACE FUNCTION app.refuse_change() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'DELETE' AND TG_ARGV[0] = 'owner_may_delete' AND current_user = 'erp_owner' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '% on %.% is not allowed: rows are immutable', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

REVOKE ALL ON FUNCTION app.current_tenant_id() FROM PUBLIC;
REVOKE ALL ON FUNCTION app.refuse_change() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.current_tenant_id() TO erp_app, erp_ops, erp_auth;
