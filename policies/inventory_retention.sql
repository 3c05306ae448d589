-- Discovery for the level_changes purge (DESIGN.md §3): which tenants (whatever
-- their status) hold inventory.level_changes rows older than p_before. Ids only; the purge
-- then deletes per tenant, with that tenant's app.tenant_id set, under RLS.
-- A level_changes row is needed only inside its own transaction (note_change upserts
-- it, the commit-time trigger turns it into the stock.changed event): after that it is
-- a journal nothing reads, one row per level and commit. Owned by erp_auth
-- (BYPASSRLS): FORCE RLS hides every row from erp_owner before a tenant is known.
CREATE OR REPLACE FUNCTION app.tenants_with_old_level_changes(p_before timestamptz, p_limit int)
    RETURNS SETOF uuid
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.id
      FROM platform.tenants t
     WHERE EXISTS (SELECT 1 FROM inventory.level_changes c
                    WHERE c.tenant_id = t.id AND c.created_at < p_before)
     LIMIT greatest(p_limit, 0)
$$;
REVOKE ALL ON FUNCTION app.tenants_with_old_level_changes(timestamptz, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.tenants_with_old_level_changes(timestamptz, int) TO erp_app;
