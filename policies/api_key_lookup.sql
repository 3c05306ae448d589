-- Runs as erp_auth (BYPASSRLS) because no tenant is known yet. It answers only
-- for a matching (public id, secret hash) pair, so it cannot enumerate keys.
CREATE OR REPLACE FUNCTION app.lookup_api_key(p_public_id text, p_secret_hash text)
    RETURNS TABLE (
        key_id uuid, tenant_id uuid, name text, scopes text[],
        expires_at timestamptz, revoked_at timestamptz, last_used_at timestamptz,
        tenant_slug text, tenant_name text, tenant_status text
    )
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT k.id, k.tenant_id, k.name, k.scopes, k.expires_at, k.revoked_at, k.last_used_at,
           t.slug, t.name, t.status
      FROM iam.api_keys k
      JOIN platform.tenants t ON t.id = k.tenant_id
     WHERE k.public_id = p_public_id
       AND k.secret_hash = p_secret_hash
$$;
REVOKE ALL ON FUNCTION app.lookup_api_key(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.lookup_api_key(text, text) TO erp_app;
