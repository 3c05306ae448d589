-- Bring one tenant (app.tenant_id set by the caller) to what the `default` template gives
-- since orders landed: used by migration 0014 for tenants that existed before it, run as
-- erp_owner under RLS (FORCE RLS: it sees and writes only that tenant's rows). Safe to run
-- twice. Accounts are found by the default template's codes and must have the expected
-- type and the base currency; a role already held by another account of that currency is
-- left where it is. Nothing is created: an order in a currency without these roles is 422.
CREATE OR REPLACE FUNCTION orders.upgrade_tenant(p_base_currency text) RETURNS void
    LANGUAGE plpgsql
    SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM (VALUES ('1000', 'asset', 'cash'),
                                   ('1100', 'asset', 'accounts_receivable'),
                                   ('2100', 'liability', 'sales_tax_payable'),
                                   ('4000', 'revenue', 'sales_revenue'))
                          AS x(code, type, role)
    LOOP
        UPDATE ledger.accounts a SET role = r.role
         WHERE a.code = r.code AND a.type = r.type AND a.currency = p_base_currency
           AND a.role IS NULL
           AND NOT EXISTS (SELECT 1 FROM ledger.accounts b
                            WHERE b.role = r.role AND b.currency = p_base_currency);
    END LOOP;
END
$$;

REVOKE ALL ON FUNCTION orders.upgrade_tenant(text) FROM PUBLIC;
