"""Orders: tax rates, customers, sales channels, orders and their lines, fulfilments,
payments, returns, and the inbound shop messages. Every table of the domain is here, so
later order work (placement, steps, intake) adds functions and modules, not tables.

Also the ledger roles orders post by (API.md, Orders): `accounts_receivable`,
`sales_revenue`, `sales_tax_payable`, `cash`, marked on tenants that existed before
(policies/orders_upgrade.sql), as the `default` template now marks them.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from erp.migrate import in_each_tenant, policy_sql, run_sql, tenant_schema, tenant_table

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_CODE = r"'^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'"
_AMOUNT = "bigint NOT NULL DEFAULT 0"


def _tax_rates_customers_channels() -> None:
    run_sql(f"""
        CREATE TABLE orders.tax_rates (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            code text NOT NULL CHECK (code ~ {_CODE}),
            name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
            rate_ppm integer NOT NULL CHECK (rate_ppm BETWEEN 0 AND 1000000),
            archived boolean NOT NULL DEFAULT false,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, code),
            -- a rate never changes (API.md): lines carry (code, rate) checked against it
            UNIQUE (tenant_id, code, rate_ppm)
        );
        CREATE INDEX ix_tax_rates_created ON orders.tax_rates (tenant_id, created_at, id);
    """)
    tenant_table("orders.tax_rates", "SELECT, INSERT, UPDATE (name, archived)")
    run_sql("""
        CREATE TABLE orders.customers (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
            email text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, id)
        );
        -- matched by email, case-insensitive (API.md); the find-or-create's conflict target
        CREATE UNIQUE INDEX uq_customers_email ON orders.customers (tenant_id, lower(email));
        CREATE INDEX ix_customers_created ON orders.customers (tenant_id, created_at, id);
    """)
    tenant_table("orders.customers", "SELECT, INSERT")
    run_sql("""
        CREATE TABLE orders.channels (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
            kind text NOT NULL CHECK (kind IN ('generic', 'shopify')),
            on_shortage text NOT NULL DEFAULT 'reject'
                CHECK (on_shortage IN ('reject', 'backorder')),
            location_id uuid,
            archived boolean NOT NULL DEFAULT false,
            -- SecretBox tokens (erp/secretbox.py); the previous one is accepted until
            -- previous_secret_expires_at (a generic channel's rotation)
            secret text NOT NULL,
            previous_secret text,
            previous_secret_expires_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, id),
            FOREIGN KEY (tenant_id, location_id) REFERENCES inventory.locations (tenant_id, id),
            CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL)),
            CHECK (kind = 'generic' OR previous_secret IS NULL)
        );
        CREATE INDEX ix_channels_created ON orders.channels (tenant_id, created_at, id);
    """)
    tenant_table(
        "orders.channels",
        "SELECT, INSERT, UPDATE (name, on_shortage, location_id, archived, secret,"
        " previous_secret, previous_secret_expires_at, updated_at)",
    )


def _orders_lines() -> None:
    run_sql(f"""
        CREATE TABLE orders.orders (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            channel_id uuid,
            external_id text CHECK (length(external_id) BETWEEN 1 AND 255),
            -- the placing body's fingerprint: same external_id and body -> 200, else 409
            request_hash text CHECK (length(request_hash) <= 128),
            customer_id uuid NOT NULL,
            currency char(3) NOT NULL CHECK (currency ~ '^[A-Z]{{3}}$'),
            location_id uuid NOT NULL,
            status text NOT NULL DEFAULT 'confirmed' CHECK (status IN
                ('confirmed', 'partially_fulfilled', 'fulfilled', 'cancelled')),
            -- running totals (API.md): the non-cancelled share of every line and shipping
            subtotal {_AMOUNT} CHECK (subtotal >= 0),
            tax {_AMOUNT} CHECK (tax >= 0),
            total {_AMOUNT},
            -- signed: refunds lower it
            paid {_AMOUNT},
            credited {_AMOUNT} CHECK (credited >= 0),
            -- shipping: a non-stock charge priced like a line of quantity 1, booked with
            -- the first fulfilment (shipping_booked)
            shipping_subtotal {_AMOUNT} CHECK (shipping_subtotal >= 0),
            shipping_tax {_AMOUNT} CHECK (shipping_tax >= 0),
            shipping_tax_code text,
            shipping_tax_rate_ppm integer,
            shipping_booked boolean NOT NULL DEFAULT false,
            cancel_reason text CHECK (length(cancel_reason) <= 500),
            metadata jsonb NOT NULL DEFAULT '{{}}' CHECK (jsonb_typeof(metadata) = 'object'),
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, id, currency),
            FOREIGN KEY (tenant_id, channel_id) REFERENCES orders.channels (tenant_id, id),
            FOREIGN KEY (tenant_id, customer_id) REFERENCES orders.customers (tenant_id, id),
            FOREIGN KEY (tenant_id, location_id) REFERENCES inventory.locations (tenant_id, id),
            FOREIGN KEY (tenant_id, shipping_tax_code, shipping_tax_rate_ppm)
                REFERENCES orders.tax_rates (tenant_id, code, rate_ppm),
            CHECK (total = subtotal + tax),
            CHECK ((shipping_tax_code IS NULL) = (shipping_tax_rate_ppm IS NULL)),
            CHECK (external_id IS NOT NULL OR request_hash IS NULL)
        );
        -- external_id is unique per channel; orders without a channel share one namespace
        CREATE UNIQUE INDEX uq_orders_external ON orders.orders
            (tenant_id, channel_id, external_id) NULLS NOT DISTINCT
            WHERE external_id IS NOT NULL;
        CREATE INDEX ix_orders_created ON orders.orders (tenant_id, created_at, id);
        CREATE INDEX ix_orders_customer ON orders.orders (tenant_id, customer_id, created_at, id);
        CREATE INDEX ix_orders_channel ON orders.orders (tenant_id, channel_id, created_at, id)
            WHERE channel_id IS NOT NULL;
        CREATE INDEX ix_orders_status ON orders.orders (tenant_id, status, created_at, id);
    """)
    tenant_table(
        "orders.orders",
        "SELECT, INSERT, UPDATE (status, subtotal, tax, total, paid, credited,"
        " shipping_booked, cancel_reason, updated_at)",
    )
    run_sql(f"""
        CREATE TABLE orders.order_lines (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            order_id uuid NOT NULL,
            line_no integer NOT NULL CHECK (line_no >= 0),
            item_id uuid NOT NULL,
            sku text NOT NULL,
            quantity bigint NOT NULL CHECK (quantity > 0),
            unit_price bigint NOT NULL CHECK (unit_price >= 0),
            discount {_AMOUNT} CHECK (discount >= 0),
            -- a tax_code's rate at placing; both null for an explicit tax amount
            tax_code text,
            tax_rate_ppm integer,
            -- of the line's whole quantity (API.md)
            subtotal bigint NOT NULL CHECK (subtotal >= 0),
            tax bigint NOT NULL CHECK (tax >= 0),
            total bigint NOT NULL,
            backordered {_AMOUNT} CHECK (backordered >= 0),
            fulfilled {_AMOUNT} CHECK (fulfilled >= 0),
            cancelled {_AMOUNT} CHECK (cancelled >= 0),
            returned {_AMOUNT} CHECK (returned >= 0),
            -- the line's one reservation (inventory.reserve makes one per line), null when
            -- nothing was reserved (the whole line backordered)
            reservation_id uuid,
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, order_id, line_no),
            UNIQUE (tenant_id, order_id, id),
            FOREIGN KEY (tenant_id, order_id) REFERENCES orders.orders (tenant_id, id),
            FOREIGN KEY (tenant_id, item_id) REFERENCES inventory.items (tenant_id, id),
            FOREIGN KEY (tenant_id, tax_code, tax_rate_ppm)
                REFERENCES orders.tax_rates (tenant_id, code, rate_ppm),
            FOREIGN KEY (tenant_id, reservation_id)
                REFERENCES inventory.reservations (tenant_id, id) DEFERRABLE INITIALLY DEFERRED,
            CHECK ((tax_code IS NULL) = (tax_rate_ppm IS NULL)),
            CHECK (discount::numeric <= unit_price::numeric * quantity),
            CHECK (subtotal::numeric = unit_price::numeric * quantity - discount),
            CHECK (total = subtotal + tax),
            CHECK (backordered <= quantity),
            CHECK (fulfilled + cancelled <= quantity),
            CHECK (returned <= fulfilled)
        );
        CREATE INDEX ix_order_lines_item ON orders.order_lines (tenant_id, item_id);
        CREATE INDEX ix_order_lines_reservation ON orders.order_lines (tenant_id, reservation_id)
            WHERE reservation_id IS NOT NULL;
    """)
    tenant_table(
        "orders.order_lines",
        "SELECT, INSERT, UPDATE (backordered, fulfilled, cancelled, returned, reservation_id)",
    )


def _fulfilments_payments_returns() -> None:
    run_sql(f"""
        CREATE TABLE orders.fulfilments (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            order_id uuid NOT NULL,
            -- what this step booked (order currency; shipping included when it is the
            -- first fulfilment) and the units' cost (base currency)
            subtotal {_AMOUNT} CHECK (subtotal >= 0),
            tax {_AMOUNT} CHECK (tax >= 0),
            shipping_subtotal {_AMOUNT} CHECK (shipping_subtotal >= 0),
            shipping_tax {_AMOUNT} CHECK (shipping_tax >= 0),
            cost {_AMOUNT} CHECK (cost >= 0),
            transaction_id uuid,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, order_id, id),
            FOREIGN KEY (tenant_id, order_id) REFERENCES orders.orders (tenant_id, id),
            FOREIGN KEY (tenant_id, transaction_id) REFERENCES ledger.transactions (tenant_id, id)
                DEFERRABLE INITIALLY DEFERRED
        );
        CREATE INDEX ix_fulfilments_order
            ON orders.fulfilments (tenant_id, order_id, created_at, id);
        CREATE TABLE orders.fulfilment_lines (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            fulfilment_id uuid NOT NULL,
            order_id uuid NOT NULL,
            line_no integer NOT NULL CHECK (line_no >= 0),
            line_id uuid NOT NULL,
            item_id uuid NOT NULL,
            quantity bigint NOT NULL CHECK (quantity > 0),
            cost bigint NOT NULL CHECK (cost >= 0),
            subtotal {_AMOUNT} CHECK (subtotal >= 0),
            tax {_AMOUNT} CHECK (tax >= 0),
            move_id uuid NOT NULL,
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, fulfilment_id, line_no),
            -- the line is one of the fulfilment's own order's lines
            FOREIGN KEY (tenant_id, order_id, fulfilment_id)
                REFERENCES orders.fulfilments (tenant_id, order_id, id),
            FOREIGN KEY (tenant_id, order_id, line_id)
                REFERENCES orders.order_lines (tenant_id, order_id, id),
            FOREIGN KEY (tenant_id, item_id) REFERENCES inventory.items (tenant_id, id),
            FOREIGN KEY (tenant_id, move_id) REFERENCES inventory.stock_moves (tenant_id, id)
                DEFERRABLE INITIALLY DEFERRED
        );
        CREATE INDEX ix_fulfilment_lines_line ON orders.fulfilment_lines (tenant_id, line_id);
    """)
    tenant_table("orders.fulfilments", append_only=True)
    tenant_table("orders.fulfilment_lines", append_only=True)
    run_sql("""
        CREATE TABLE orders.payments (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            order_id uuid NOT NULL,
            -- signed: a negative amount is a refund (API.md)
            amount bigint NOT NULL CHECK (amount <> 0),
            currency char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
            method text NOT NULL CHECK (method IN ('card', 'cash', 'bank_transfer', 'other')),
            account_id uuid NOT NULL,
            reference text CHECK (length(reference) <= 200),
            transaction_id uuid NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, id),
            -- in the order's currency, to an account of that currency
            FOREIGN KEY (tenant_id, order_id, currency)
                REFERENCES orders.orders (tenant_id, id, currency),
            FOREIGN KEY (tenant_id, account_id, currency)
                REFERENCES ledger.accounts (tenant_id, id, currency),
            FOREIGN KEY (tenant_id, transaction_id) REFERENCES ledger.transactions (tenant_id, id)
                DEFERRABLE INITIALLY DEFERRED
        );
        CREATE INDEX ix_payments_order ON orders.payments (tenant_id, order_id, created_at, id);
    """)
    tenant_table("orders.payments", append_only=True)
    run_sql(f"""
        CREATE TABLE orders.returns (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            order_id uuid NOT NULL,
            restock boolean NOT NULL,
            location_id uuid,
            reason text CHECK (length(reason) <= 500),
            -- the credit note (order currency) and the restocked units' cost (base)
            subtotal {_AMOUNT} CHECK (subtotal >= 0),
            tax {_AMOUNT} CHECK (tax >= 0),
            cost {_AMOUNT} CHECK (cost >= 0),
            transaction_id uuid,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, order_id, id),
            FOREIGN KEY (tenant_id, order_id) REFERENCES orders.orders (tenant_id, id),
            FOREIGN KEY (tenant_id, location_id) REFERENCES inventory.locations (tenant_id, id),
            FOREIGN KEY (tenant_id, transaction_id) REFERENCES ledger.transactions (tenant_id, id)
                DEFERRABLE INITIALLY DEFERRED,
            CHECK (NOT restock OR location_id IS NOT NULL)
        );
        CREATE INDEX ix_returns_order ON orders.returns (tenant_id, order_id, created_at, id);
        CREATE TABLE orders.return_lines (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            return_id uuid NOT NULL,
            order_id uuid NOT NULL,
            line_no integer NOT NULL CHECK (line_no >= 0),
            line_id uuid NOT NULL,
            item_id uuid NOT NULL,
            quantity bigint NOT NULL CHECK (quantity > 0),
            cost bigint NOT NULL CHECK (cost >= 0),
            subtotal {_AMOUNT} CHECK (subtotal >= 0),
            tax {_AMOUNT} CHECK (tax >= 0),
            -- the receipt move when restocked
            move_id uuid,
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, return_id, line_no),
            FOREIGN KEY (tenant_id, order_id, return_id)
                REFERENCES orders.returns (tenant_id, order_id, id),
            FOREIGN KEY (tenant_id, order_id, line_id)
                REFERENCES orders.order_lines (tenant_id, order_id, id),
            FOREIGN KEY (tenant_id, item_id) REFERENCES inventory.items (tenant_id, id),
            FOREIGN KEY (tenant_id, move_id) REFERENCES inventory.stock_moves (tenant_id, id)
                DEFERRABLE INITIALLY DEFERRED
        );
        CREATE INDEX ix_return_lines_line ON orders.return_lines (tenant_id, line_id);
    """)
    tenant_table("orders.returns", append_only=True)
    tenant_table("orders.return_lines", append_only=True)


def _inbound_messages() -> None:
    run_sql("""
        CREATE TABLE orders.inbound_messages (
            tenant_id uuid NOT NULL DEFAULT app.current_tenant_id(),
            id uuid NOT NULL,
            channel_id uuid NOT NULL,
            -- webhook-id (generic) or X-Shopify-Webhook-Id: the per-channel dedup key
            webhook_id text NOT NULL CHECK (length(webhook_id) BETWEEN 1 AND 255),
            topic text CHECK (length(topic) <= 255),
            -- the raw text received
            body text NOT NULL,
            status text NOT NULL DEFAULT 'received' CHECK (status IN
                ('received', 'processed', 'duplicate', 'failed', 'ignored')),
            order_id uuid,
            -- a problem object {type, title, detail, errors?} when failed
            error jsonb CHECK (jsonb_typeof(error) = 'object'),
            attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            created_at timestamptz NOT NULL DEFAULT now(),
            processed_at timestamptz,
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, channel_id, webhook_id),
            FOREIGN KEY (tenant_id, channel_id) REFERENCES orders.channels (tenant_id, id),
            FOREIGN KEY (tenant_id, order_id) REFERENCES orders.orders (tenant_id, id),
            CHECK (status <> 'failed' OR error IS NOT NULL),
            CHECK (status NOT IN ('processed', 'duplicate') OR order_id IS NOT NULL)
        );
        CREATE INDEX ix_inbound_messages_channel
            ON orders.inbound_messages (tenant_id, channel_id, created_at, id);
        -- the sweeper's: received messages no job has turned into an order yet, oldest first
        CREATE INDEX ix_inbound_messages_received
            ON orders.inbound_messages (tenant_id, created_at, id) WHERE status = 'received';
    """)
    tenant_table(
        "orders.inbound_messages",
        "SELECT, INSERT, UPDATE (status, order_id, error, attempts, processed_at)",
    )


#: The ledger's account roles after this migration: before it (0008), and orders' own.
_ROLES_BEFORE = (
    "retained_earnings",
    "inventory",
    "accounts_payable",
    "cost_of_goods_sold",
    "inventory_adjustments",
)
ROLES = (*_ROLES_BEFORE, "accounts_receivable", "sales_revenue", "sales_tax_payable", "cash")


def _role_check(roles: tuple[str, ...]) -> str:
    allowed = ", ".join(f"'{r}'" for r in roles)
    return f"""
        ALTER TABLE ledger.accounts DROP CONSTRAINT accounts_role_check;
        ALTER TABLE ledger.accounts ADD CONSTRAINT accounts_role_check
            CHECK (role IN ({allowed}));
    """


def _upgrade_existing_tenants() -> None:
    """Tenants provisioned before orders get the order roles marked on their chart (the
    default template's codes, when those accounts exist with the right type and base
    currency), each with its own app.tenant_id, under RLS."""
    run_sql(policy_sql("orders_upgrade.sql"))
    in_each_tenant("""
        PERFORM orders.upgrade_tenant(t.base_currency);
    """)


def upgrade() -> None:
    tenant_schema("orders")
    _tax_rates_customers_channels()
    _orders_lines()
    _fulfilments_payments_returns()
    _inbound_messages()
    run_sql(_role_check(ROLES))
    _upgrade_existing_tenants()


def downgrade() -> None:
    run_sql("DROP SCHEMA orders CASCADE")
    kept = ", ".join(f"'{r}'" for r in _ROLES_BEFORE)
    # per tenant: FORCE RLS shows the owner only the pinned tenant's accounts
    in_each_tenant(f"""
        UPDATE ledger.accounts SET role = NULL WHERE role NOT IN ({kept});
    """)
    run_sql(_role_check(_ROLES_BEFORE))
