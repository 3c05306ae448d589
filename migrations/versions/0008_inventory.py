"""Inventory: items, locations, stock levels and moves, reservations, counts, suppliers,
purchase orders and their receipts; the stock-event journal (one row per level and
commit). Every table of the domain is here, so later inventory work adds functions and
modules, not tables. Functions: policies/inventory.sql (apply_move, post_value,
note_change and the commit-time event trigger).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from erp.migrate import in_each_tenant, policy_sql, run_sql, tenant_schema, tenant_table

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_CODE = r"'^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'"


def _settings_items_locations() -> None:
    run_sql("""
        CREATE TABLE inventory.settings (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            -- the tenant's base currency, in which stock is valued (API.md, Inventory)
            currency char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id)
        );
    """)
    tenant_table("inventory.settings", "SELECT, INSERT")
    run_sql(f"""
        CREATE TABLE inventory.items (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            sku text NOT NULL CHECK (sku ~ {_CODE}),
            name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
            unit text NOT NULL CHECK (unit ~ '^[a-z][a-z0-9_]{{0,15}}$'),
            reorder_point bigint CHECK (reorder_point >= 0),
            archived boolean NOT NULL DEFAULT false,
            -- moving-average stock value over the item's total on_hand, base currency
            value bigint NOT NULL DEFAULT 0 CHECK (value >= 0),
            -- stock.low state: true once the event for the current crossing is out;
            -- re-armed (false) when available is back at or above reorder_point
            low boolean NOT NULL DEFAULT false,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, sku)
        );
        CREATE INDEX ix_items_created ON inventory.items (tenant_id, created_at, id);
    """)
    tenant_table(
        "inventory.items", "SELECT, INSERT, UPDATE (name, reorder_point, archived, value, low)"
    )
    run_sql(f"""
        CREATE TABLE inventory.locations (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            code text NOT NULL CHECK (code ~ {_CODE}),
            name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
            kind text NOT NULL CHECK (kind IN ('warehouse', 'zone', 'bin')),
            parent_id uuid,
            -- the parent's kind, carried so the tree's shape is a constraint
            parent_kind text,
            allow_negative boolean NOT NULL DEFAULT false,
            is_default boolean NOT NULL DEFAULT false,
            archived boolean NOT NULL DEFAULT false,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, code),
            UNIQUE (tenant_id, id, kind),
            FOREIGN KEY (tenant_id, parent_id, parent_kind)
                REFERENCES inventory.locations (tenant_id, id, kind),
            CHECK ((parent_id IS NULL) = (parent_kind IS NULL)),
            CHECK (CASE kind WHEN 'warehouse' THEN parent_id IS NULL
                             WHEN 'zone' THEN parent_kind = 'warehouse'
                             ELSE parent_kind IN ('warehouse', 'zone') END),
            CHECK (NOT (is_default AND archived))
        );
        -- at most one default per tenant; the service moves the flag, provisioning sets it
        CREATE UNIQUE INDEX uq_locations_default ON inventory.locations (tenant_id)
            WHERE is_default;
        CREATE INDEX ix_locations_created ON inventory.locations (tenant_id, created_at, id);
        CREATE INDEX ix_locations_parent ON inventory.locations (tenant_id, parent_id);
    """)
    tenant_table(
        "inventory.locations", "SELECT, INSERT, UPDATE (name, allow_negative, is_default, archived)"
    )


def _levels_moves_changes() -> None:
    run_sql("""
        CREATE TABLE inventory.stock_levels (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            item_id uuid NOT NULL,
            location_id uuid NOT NULL,
            on_hand bigint NOT NULL DEFAULT 0,
            reserved bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0),
            -- available = on_hand - reserved >= 0 unless the location allows negative:
            -- not a CHECK (allow_negative is the location's), enforced by the one
            -- conditional UPDATE of each writer (inventory.apply_move, reservations)
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, item_id, location_id),
            FOREIGN KEY (tenant_id, item_id) REFERENCES inventory.items (tenant_id, id),
            FOREIGN KEY (tenant_id, location_id) REFERENCES inventory.locations (tenant_id, id)
        ) WITH (fillfactor = 80);
        CREATE INDEX ix_stock_levels_location ON inventory.stock_levels (tenant_id, location_id);
        CREATE INDEX ix_stock_levels_created ON inventory.stock_levels (tenant_id, created_at, id);
    """)
    tenant_table("inventory.stock_levels", "SELECT, INSERT, UPDATE (on_hand, reserved, updated_at)")
    run_sql("""
        CREATE TABLE inventory.stock_moves (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            kind text NOT NULL CHECK (kind IN ('receipt', 'issue', 'transfer', 'adjustment')),
            item_id uuid NOT NULL,
            quantity bigint NOT NULL CHECK (quantity > 0),
            from_location_id uuid,
            to_location_id uuid,
            unit_cost bigint CHECK (unit_cost >= 0),
            -- stock value moved (base currency); null for a transfer
            value bigint CHECK (value >= 0),
            reason_code text CHECK (reason_code IN
                ('count', 'damaged', 'lost', 'found', 'expired', 'correction', 'other')),
            reason text CHECK (length(reason) <= 500),
            reference text CHECK (length(reference) <= 200),
            source_type text CHECK (source_type IN ('receipt', 'fulfilment', 'return', 'count')),
            source_id uuid,
            transaction_id uuid,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, id),
            FOREIGN KEY (tenant_id, item_id) REFERENCES inventory.items (tenant_id, id),
            FOREIGN KEY (tenant_id, from_location_id)
                REFERENCES inventory.locations (tenant_id, id),
            FOREIGN KEY (tenant_id, to_location_id) REFERENCES inventory.locations (tenant_id, id),
            -- the ledger transaction is posted after the move (its amount is the move's
            -- cost), in the same database transaction: checked at commit
            FOREIGN KEY (tenant_id, transaction_id) REFERENCES ledger.transactions (tenant_id, id)
                DEFERRABLE INITIALLY DEFERRED,
            CHECK (CASE kind
                WHEN 'receipt' THEN from_location_id IS NULL AND to_location_id IS NOT NULL
                WHEN 'issue' THEN from_location_id IS NOT NULL AND to_location_id IS NULL
                WHEN 'transfer' THEN from_location_id IS NOT NULL AND to_location_id IS NOT NULL
                                     AND from_location_id <> to_location_id
                ELSE (from_location_id IS NULL) <> (to_location_id IS NULL) END),
            CHECK ((kind = 'adjustment') = (reason_code IS NOT NULL)),
            CHECK (kind IN ('receipt', 'adjustment') OR unit_cost IS NULL),
            CHECK ((kind = 'transfer') = (value IS NULL)),
            CHECK (kind <> 'transfer' OR transaction_id IS NULL),
            CHECK ((source_type IS NULL) = (source_id IS NULL))
        );
        CREATE INDEX ix_stock_moves_created ON inventory.stock_moves (tenant_id, created_at, id);
        CREATE INDEX ix_stock_moves_item
            ON inventory.stock_moves (tenant_id, item_id, created_at, id);
        CREATE INDEX ix_stock_moves_from
            ON inventory.stock_moves (tenant_id, from_location_id, created_at, id)
            WHERE from_location_id IS NOT NULL;
        CREATE INDEX ix_stock_moves_to
            ON inventory.stock_moves (tenant_id, to_location_id, created_at, id)
            WHERE to_location_id IS NOT NULL;
        CREATE INDEX ix_stock_moves_source
            ON inventory.stock_moves (tenant_id, source_type, source_id)
            WHERE source_id IS NOT NULL;
        CREATE INDEX ix_stock_moves_transaction
            ON inventory.stock_moves (tenant_id, transaction_id) WHERE transaction_id IS NOT NULL;
    """)
    tenant_table("inventory.stock_moves", append_only=True)
    run_sql("""
        CREATE TABLE inventory.level_changes (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            -- also the id of the stock.changed event it becomes at commit
            id uuid NOT NULL,
            xact_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
            item_id uuid NOT NULL,
            location_id uuid NOT NULL,
            d_on_hand bigint NOT NULL DEFAULT 0,
            d_reserved bigint NOT NULL DEFAULT 0,
            sources jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(sources) = 'array'),
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, xact_id, item_id, location_id),
            FOREIGN KEY (tenant_id, item_id, location_id)
                REFERENCES inventory.stock_levels (tenant_id, item_id, location_id)
        );
        CREATE INDEX ix_level_changes_created
            ON inventory.level_changes (tenant_id, created_at, id);
    """)
    tenant_table(
        "inventory.level_changes", "SELECT, INSERT, UPDATE (d_on_hand, d_reserved, sources)"
    )


def _reservations_counts() -> None:
    run_sql("""
        CREATE TABLE inventory.reservations (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            item_id uuid NOT NULL,
            location_id uuid NOT NULL,
            quantity bigint NOT NULL CHECK (quantity > 0),
            consumed bigint NOT NULL DEFAULT 0 CHECK (consumed >= 0 AND consumed <= quantity),
            status text NOT NULL DEFAULT 'held'
                CHECK (status IN ('held', 'released', 'consumed')),
            order_id uuid,
            order_line_id uuid,
            reference text CHECK (length(reference) <= 200),
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, id),
            FOREIGN KEY (tenant_id, item_id, location_id)
                REFERENCES inventory.stock_levels (tenant_id, item_id, location_id),
            CHECK (order_line_id IS NULL OR order_id IS NOT NULL),
            CHECK (status <> 'consumed' OR consumed = quantity)
        );
        CREATE INDEX ix_reservations_created ON inventory.reservations (tenant_id, created_at, id);
        CREATE INDEX ix_reservations_item
            ON inventory.reservations (tenant_id, item_id, location_id);
        CREATE INDEX ix_reservations_order ON inventory.reservations (tenant_id, order_id)
            WHERE order_id IS NOT NULL;
        CREATE INDEX ix_reservations_held ON inventory.reservations (tenant_id, status)
            WHERE status = 'held';
    """)
    tenant_table("inventory.reservations", "SELECT, INSERT, UPDATE (consumed, status, updated_at)")
    run_sql("""
        CREATE TABLE inventory.counts (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            location_id uuid NOT NULL,
            reason text CHECK (length(reason) <= 500),
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, id),
            FOREIGN KEY (tenant_id, location_id) REFERENCES inventory.locations (tenant_id, id)
        );
        CREATE INDEX ix_counts_created ON inventory.counts (tenant_id, created_at, id);
        CREATE TABLE inventory.count_lines (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            count_id uuid NOT NULL,
            line_no int NOT NULL CHECK (line_no >= 0),
            item_id uuid NOT NULL,
            expected bigint NOT NULL,
            counted bigint NOT NULL CHECK (counted >= 0),
            difference bigint NOT NULL,
            move_id uuid,
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, count_id, line_no),
            UNIQUE (tenant_id, count_id, item_id),
            FOREIGN KEY (tenant_id, count_id) REFERENCES inventory.counts (tenant_id, id),
            FOREIGN KEY (tenant_id, item_id) REFERENCES inventory.items (tenant_id, id),
            FOREIGN KEY (tenant_id, move_id) REFERENCES inventory.stock_moves (tenant_id, id),
            CHECK (difference = counted - expected),
            CHECK ((difference = 0) = (move_id IS NULL))
        );
    """)
    tenant_table("inventory.counts", append_only=True)
    tenant_table("inventory.count_lines", append_only=True)


def _purchasing() -> None:
    run_sql("""
        CREATE TABLE inventory.suppliers (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
            email text CHECK (length(email) <= 254),
            phone text CHECK (length(phone) <= 50),
            reference text CHECK (length(reference) <= 200),
            archived boolean NOT NULL DEFAULT false,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, id)
        );
        CREATE INDEX ix_suppliers_created ON inventory.suppliers (tenant_id, created_at, id);
    """)
    tenant_table(
        "inventory.suppliers", "SELECT, INSERT, UPDATE (name, email, phone, reference, archived)"
    )
    run_sql("""
        CREATE TABLE inventory.purchase_orders (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            supplier_id uuid NOT NULL,
            status text NOT NULL DEFAULT 'draft' CHECK (status IN
                ('draft', 'sent', 'partially_received', 'received', 'cancelled')),
            currency char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
            location_id uuid NOT NULL,
            reference text CHECK (length(reference) <= 200),
            expected_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, id),
            FOREIGN KEY (tenant_id, supplier_id) REFERENCES inventory.suppliers (tenant_id, id),
            FOREIGN KEY (tenant_id, location_id) REFERENCES inventory.locations (tenant_id, id)
        );
        CREATE INDEX ix_purchase_orders_created
            ON inventory.purchase_orders (tenant_id, created_at, id);
        CREATE INDEX ix_purchase_orders_supplier
            ON inventory.purchase_orders (tenant_id, supplier_id);
        CREATE TABLE inventory.purchase_order_lines (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            purchase_order_id uuid NOT NULL,
            line_no int NOT NULL CHECK (line_no >= 0),
            item_id uuid NOT NULL,
            quantity bigint NOT NULL CHECK (quantity > 0),
            received bigint NOT NULL DEFAULT 0 CHECK (received >= 0),
            unit_cost bigint NOT NULL CHECK (unit_cost >= 0),
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, purchase_order_id, line_no),
            FOREIGN KEY (tenant_id, purchase_order_id)
                REFERENCES inventory.purchase_orders (tenant_id, id),
            FOREIGN KEY (tenant_id, item_id) REFERENCES inventory.items (tenant_id, id)
        );
    """)
    tenant_table(
        "inventory.purchase_orders",
        "SELECT, INSERT, UPDATE (status, location_id, expected_at, reference, updated_at)",
    )
    # DELETE: a draft's PATCH replaces its lines; received lines are referenced by
    # receipt lines, so the foreign key refuses deleting them.
    tenant_table("inventory.purchase_order_lines", "SELECT, INSERT, UPDATE (received), DELETE")
    run_sql("""
        CREATE TABLE inventory.po_receipts (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            purchase_order_id uuid NOT NULL,
            transaction_id uuid,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, id),
            FOREIGN KEY (tenant_id, purchase_order_id)
                REFERENCES inventory.purchase_orders (tenant_id, id),
            FOREIGN KEY (tenant_id, transaction_id) REFERENCES ledger.transactions (tenant_id, id)
                DEFERRABLE INITIALLY DEFERRED
        );
        CREATE INDEX ix_po_receipts_order
            ON inventory.po_receipts (tenant_id, purchase_order_id, created_at, id);
        CREATE TABLE inventory.po_receipt_lines (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            receipt_id uuid NOT NULL,
            line_no int NOT NULL CHECK (line_no >= 0),
            line_id uuid NOT NULL,
            item_id uuid NOT NULL,
            quantity bigint NOT NULL CHECK (quantity > 0),
            location_id uuid NOT NULL,
            unit_cost bigint NOT NULL CHECK (unit_cost >= 0),
            move_id uuid NOT NULL,
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, receipt_id, line_no),
            FOREIGN KEY (tenant_id, receipt_id) REFERENCES inventory.po_receipts (tenant_id, id),
            FOREIGN KEY (tenant_id, line_id)
                REFERENCES inventory.purchase_order_lines (tenant_id, id),
            FOREIGN KEY (tenant_id, item_id) REFERENCES inventory.items (tenant_id, id),
            FOREIGN KEY (tenant_id, location_id) REFERENCES inventory.locations (tenant_id, id),
            FOREIGN KEY (tenant_id, move_id) REFERENCES inventory.stock_moves (tenant_id, id)
        );
        CREATE INDEX ix_po_receipt_lines_line ON inventory.po_receipt_lines (tenant_id, line_id);
    """)
    tenant_table("inventory.po_receipts", append_only=True)
    tenant_table("inventory.po_receipt_lines", append_only=True)


#: The ledger roles inventory postings look for (API.md, Inventory), beside the ledger's own.
ROLES = (
    "retained_earnings",
    "inventory",
    "accounts_payable",
    "cost_of_goods_sold",
    "inventory_adjustments",
)


def _ledger_roles() -> None:
    allowed = ", ".join(f"'{r}'" for r in ROLES)
    run_sql(f"""
        ALTER TABLE ledger.accounts DROP CONSTRAINT accounts_role_check;
        ALTER TABLE ledger.accounts ADD CONSTRAINT accounts_role_check
            CHECK (role IN ({allowed}));
    """)


def _upgrade_existing_tenants() -> None:
    """Tenants provisioned before inventory get what the `default` template now gives:
    the stock currency, the MAIN default warehouse, and the inventory roles marked on
    their chart (the default template's codes when those accounts exist with the right
    type and currency, an "Inventory adjustments" expense account created if missing).
    Each tenant is done with its own app.tenant_id, under RLS (FORCE RLS binds the
    owner too)."""
    run_sql(policy_sql("inventory_upgrade.sql"))
    in_each_tenant("""
        PERFORM inventory.upgrade_tenant(t.base_currency);
    """)


def upgrade() -> None:
    tenant_schema("inventory")
    _settings_items_locations()
    _levels_moves_changes()
    _reservations_counts()
    _purchasing()
    _ledger_roles()
    run_sql(policy_sql("inventory.sql"))
    run_sql(policy_sql("inventory_moves.sql"))
    _upgrade_existing_tenants()


def downgrade() -> None:
    run_sql("DROP SCHEMA inventory CASCADE")
    # per tenant: FORCE RLS shows the owner only the pinned tenant's accounts (one
    # UPDATE without a pin changed nothing, and the CHECK below then failed on them)
    in_each_tenant("""
        UPDATE ledger.accounts SET role = NULL WHERE role <> 'retained_earnings';
    """)
    run_sql("""
        ALTER TABLE ledger.accounts DROP CONSTRAINT accounts_role_check;
        ALTER TABLE ledger.accounts ADD CONSTRAINT accounts_role_check
            CHECK (role IN ('retained_earnings'));
    """)
