-- Bring one tenant (app.tenant_id set by the caller) to what the `default` template gives
-- since inventory landed: used by migration 0008 for tenants that existed before it, run
-- as erp_owner under RLS (FORCE RLS: it sees and writes only that tenant's rows). Safe
-- to run twice. Accounts are found by the default template's codes and must have the
-- expected type and the base currency; a role already held by another account is left.
CREATE OR REPLACE FUNCTION inventory.upgrade_tenant(p_base_currency text) RETURNS void
    LANGUAGE plpgsql
    SECURITY INVOKER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    INSERT INTO inventory.settings (id, currency)
    SELECT gen_random_uuid(), p_base_currency
     WHERE NOT EXISTS (SELECT 1 FROM inventory.settings);
    INSERT INTO inventory.locations (id, code, name, kind, is_default)
    SELECT gen_random_uuid(), 'MAIN', 'Main warehouse', 'warehouse', true
     WHERE NOT EXISTS (SELECT 1 FROM inventory.locations WHERE is_default)
       AND NOT EXISTS (SELECT 1 FROM inventory.locations WHERE code = 'MAIN');
    IF NOT EXISTS (SELECT 1 FROM ledger.accounts) THEN
        RETURN;  -- no chart at all (a template without a ledger section): nothing to mark
    END IF;
    INSERT INTO ledger.accounts (id, code, name, type, currency)
    SELECT gen_random_uuid(), '5100', 'Inventory adjustments', 'expense', p_base_currency
     WHERE NOT EXISTS (SELECT 1 FROM ledger.accounts WHERE code = '5100')
       AND NOT EXISTS (SELECT 1 FROM ledger.accounts
                        WHERE role = 'inventory_adjustments' AND currency = p_base_currency);
    FOR r IN SELECT * FROM (VALUES ('1200', 'asset', 'inventory'),
                                   ('2000', 'liability', 'accounts_payable'),
                                   ('5000', 'expense', 'cost_of_goods_sold'),
                                   ('5100', 'expense', 'inventory_adjustments'))
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

REVOKE ALL ON FUNCTION inventory.upgrade_tenant(text) FROM PUBLIC;
