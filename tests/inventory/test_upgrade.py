"""Tenants that exist before inventory lands get what the default template now gives
(migration 0008, policies/inventory_upgrade.sql): the stock currency, the MAIN default
warehouse, and the inventory roles on their chart, so they can receive stock at once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from erp.migrate import upgrade
from tests import servers

OLD_CHART = [  # the default template before inventory (no inventory roles, no 5100)
    ("1000", "Cash", "asset", None),
    ("1200", "Inventory", "asset", None),
    ("2000", "Accounts payable", "liability", None),
    ("3100", "Retained earnings", "equity", "retained_earnings"),
    ("5000", "Cost of goods sold", "expense", None),
]


@pytest.fixture
def old_db(server_url: str) -> Iterator[str]:
    with servers.database_at(server_url, "0007", "erp_upgrade") as url:
        yield url


def _tenant(conn: psycopg.Connection, currency: str, chart: bool) -> uuid.UUID:
    tid = uuid.uuid4()
    conn.execute(
        "INSERT INTO platform.tenants (id, slug, name, base_currency, template)"
        " VALUES (%s, %s, 'Old', %s, 'default')",
        (tid, f"old-{tid.hex[:8]}", currency),
    )
    conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tid),))
    for code, name, type_, role in OLD_CHART if chart else []:
        conn.execute(
            "INSERT INTO ledger.accounts (id, code, name, type, currency, role)"
            " VALUES (gen_random_uuid(), %s, %s, %s, %s, %s)",
            (code, name, type_, currency, role),
        )
    return tid


def test_existing_tenants_are_upgraded(old_db: str) -> None:
    with psycopg.connect(old_db) as conn:
        usd = _tenant(conn, "USD", chart=True)
        eur = _tenant(conn, "EUR", chart=True)
        bare = _tenant(conn, "USD", chart=False)
        conn.commit()
    upgrade(old_db, "head", app_password=servers.APP_PASSWORD)
    app_url = servers.with_database(
        old_db, old_db.rsplit("/", 1)[1], "erp_app", servers.APP_PASSWORD
    )
    for tid, currency in ((usd, "USD"), (eur, "EUR")):
        with psycopg.connect(app_url) as conn:
            conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tid),))
            assert conn.execute("SELECT currency FROM inventory.settings").fetchall() == [
                (currency,)
            ]
            main = conn.execute(
                "SELECT id, code, kind FROM inventory.locations WHERE is_default"
            ).fetchall()
            assert [(c, k) for _, c, k in main] == [("MAIN", "warehouse")]
            roles = dict(
                conn.execute(
                    "SELECT role, code FROM ledger.accounts WHERE role IS NOT NULL"
                ).fetchall()
            )
            assert roles == {
                "retained_earnings": "3100",
                "inventory": "1200",
                "accounts_payable": "2000",
                "cost_of_goods_sold": "5000",
                "inventory_adjustments": "5100",
                # migration 0014 marks the order roles whose default codes the chart has
                "cash": "1000",
            }
            # and it can receive stock at once: a move that posts
            item = uuid.uuid4()
            conn.execute(
                "INSERT INTO inventory.items (id, sku, name, unit) VALUES (%s, 'A', 'A', 'each')",
                (item,),
            )
            row = conn.execute(
                "SELECT value, transaction_id FROM inventory.record_move(gen_random_uuid(),"
                " 'receipt', %s, 2, NULL, %s, 50, NULL, NULL, NULL, NULL, gen_random_uuid(),"
                " gen_random_uuid())",
                (item, main[0][0]),
            ).fetchone()
            assert row is not None
            assert row[0] == 100
            assert row[1] is not None
            conn.commit()
    with psycopg.connect(app_url) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(bare),))
        assert conn.execute("SELECT count(*) FROM inventory.locations").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM ledger.accounts").fetchone() == (0,)


def test_a_downgrade_below_inventory_clears_its_roles_in_every_tenant(old_db: str) -> None:
    """Under FORCE RLS the owner sees only a pinned tenant's accounts: the downgrade
    clears the roles tenant by tenant (unpinned, it cleared none and its CHECK then
    failed on them)."""
    from erp.migrate import downgrade

    with psycopg.connect(old_db) as conn:
        tenants = [_tenant(conn, "USD", chart=True), _tenant(conn, "EUR", chart=True)]
        conn.commit()
    upgrade(old_db, "head", app_password=servers.APP_PASSWORD)
    downgrade(old_db, "0007")
    with psycopg.connect(old_db) as conn:
        for tid in tenants:
            roles = conn.execute(
                "SELECT role, code FROM ledger.accounts WHERE role IS NOT NULL AND tenant_id = %s",
                (tid,),
            ).fetchall()
            assert roles == [("retained_earnings", "3100")]
        assert conn.execute("SELECT to_regnamespace('inventory')").fetchone() == (None,)
