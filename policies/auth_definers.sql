-- Sign-in before a tenant is known (DESIGN.md §3). Each runs as erp_auth (BYPASSRLS:
-- FORCE RLS would hide every row from the table owner before a tenant is set), with
-- search_path pinned, EXECUTE for erp_app only, and each answers as narrowly as the
-- sign-in step needs: ids, a role, a tenant's slug and status; never a row's contents.

-- Find or create the global identity (issuer, subject); its email and name follow the
-- provider's latest answer.
CREATE OR REPLACE FUNCTION app.sign_in_identity(
    p_issuer text, p_subject text, p_email text, p_name text
)
    RETURNS uuid
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO platform.identities AS i (id, issuer, subject, email, name)
    VALUES (gen_random_uuid(), p_issuer, p_subject, lower(p_email), coalesce(p_name, ''))
    ON CONFLICT (issuer, subject) DO UPDATE
        SET email = excluded.email, name = excluded.name, last_sign_in_at = now()
    RETURNING i.id
$$;
REVOKE ALL ON FUNCTION app.sign_in_identity(text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.sign_in_identity(text, text, text, text) TO erp_app;

-- A tenant by slug, or else by an email domain one tenant's SSO connection allows
-- (none, or several tenants claiming it: no row). Its own connection's id, if any.
CREATE OR REPLACE FUNCTION app.sign_in_tenant(p_slug text, p_email_domain text)
    RETURNS TABLE (tenant_id uuid, slug text, name text, status text, connection_id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH by_slug AS (
        SELECT t.id FROM platform.tenants t WHERE p_slug IS NOT NULL AND t.slug = p_slug
    ), by_domain AS (
        SELECT c.tenant_id AS id FROM iam.sso_connections c
         WHERE p_slug IS NULL AND p_email_domain IS NOT NULL
           AND c.allowed_domains @> ARRAY[lower(p_email_domain)]
    ), picked AS (
        SELECT id FROM by_slug
        UNION ALL
        SELECT id FROM by_domain WHERE (SELECT count(*) FROM by_domain) = 1
    )
    SELECT t.id, t.slug, t.name, t.status, c.id
      FROM picked p
      JOIN platform.tenants t ON t.id = p.id
      LEFT JOIN iam.sso_connections c ON c.tenant_id = t.id
$$;
REVOKE ALL ON FUNCTION app.sign_in_tenant(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.sign_in_tenant(text, text) TO erp_app;

-- Which tenants an identity belongs to, with its role there (for the switch).
CREATE OR REPLACE FUNCTION app.identity_memberships(p_identity uuid)
    RETURNS TABLE (tenant_id uuid, slug text, name text, status text, member_id uuid, role text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.id, t.slug, t.name, t.status, m.id, m.role
      FROM iam.memberships m
      JOIN platform.tenants t ON t.id = m.tenant_id
     WHERE m.identity_id = p_identity
     ORDER BY t.slug
$$;
REVOKE ALL ON FUNCTION app.identity_memberships(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.identity_memberships(uuid) TO erp_app;

-- The session a cookie's token (by its SHA-256) names, with the member's current
-- role: a removed member has no row (their sessions went with the membership), and a
-- role change shows on the next request. Answers only for a matching hash.
CREATE OR REPLACE FUNCTION app.lookup_session(p_token_hash text)
    RETURNS TABLE (
        session_id uuid, tenant_id uuid, member_id uuid, identity_id uuid, role text,
        email text, name text, expires_at timestamptz,
        tenant_slug text, tenant_name text, tenant_status text
    )
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.id, s.tenant_id, m.id, m.identity_id, m.role, m.email, m.name, s.expires_at,
           t.slug, t.name, t.status
      FROM iam.sessions s
      JOIN iam.memberships m ON m.tenant_id = s.tenant_id AND m.id = s.member_id
      JOIN platform.tenants t ON t.id = s.tenant_id
     WHERE s.token_hash = p_token_hash
$$;
REVOKE ALL ON FUNCTION app.lookup_session(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.lookup_session(text) TO erp_app;

-- A refused sign-in, in the operator-visible audit (append-only).
CREATE OR REPLACE FUNCTION app.record_sign_in_failure(
    p_reason text, p_tenant uuid, p_details jsonb
)
    RETURNS void
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO platform.audit_events (actor, action, tenant_id, tenant_slug, details)
    SELECT 'anonymous:sign-in', 'auth.sign_in_failed', p_tenant,
           (SELECT t.slug FROM platform.tenants t WHERE t.id = p_tenant),
           jsonb_build_object('reason', left(p_reason, 100)) || coalesce(p_details, '{}')
$$;
REVOKE ALL ON FUNCTION app.record_sign_in_failure(text, uuid, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.record_sign_in_failure(text, uuid, jsonb) TO erp_app;
