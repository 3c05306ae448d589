-- Discovery for the expiry sweep (DESIGN.md §3): which tenants hold idempotency records
-- past their expiry. Ids only, never a row's contents; the sweep then deletes per
-- tenant, with that tenant's app.tenant_id set, under RLS like any request.
-- Owned by erp_auth (BYPASSRLS): FORCE RLS hides every row from erp_owner before a
-- tenant is known.
CREATE OR REPLACE FUNCTION app.tenants_with_expired_idempotency_records(p_limit int)
    RETURNS SETOF uuid
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT DISTINCT r.tenant_id
      FROM iam.idempotency_records r
     WHERE r.expires_at <= now()
     LIMIT greatest(p_limit, 0)
$$;
REVOKE ALL ON FUNCTION app.tenants_with_expired_idempotency_records(int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.tenants_with_expired_idempotency_records(int) TO erp_app;
