"""Migration 0014 on tenants provisioned before orders: the order roles are marked on
their chart by the default template's codes (type and base currency must match; a role
another account holds stays there), and a downgrade removes the schema and the roles."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from erp.migrate import downgrade, upgrade
from tests import servers

OLD_CHART = [  # the default template before orders: no order roles
    ("1000", "Cash", "asset"),
    ("1100", "Accounts receivable", "asset"),
    ("2100", "Sales tax payable", "liability"),
    ("4000", "Sales revenue", "revenue"),
]
ORDER_ROLES = {
    "cash": "1000",
    "accounts_receivable": "1100",
    "sales_tax_payable": "2100",
    "sales_revenue": "4000",
}


@pytest.fixture
def old_db(server_url: str) -> Iterator[str]:
    with servers.database_at(server_url, "0013", "erp_orders_up") as url:
        yield url


def _tenant(
    conn: psycopg.Connection, currency: str, chart: list[tuple[str, str, str]]
) -> uuid.UUID:
    tid = uuid.uuid4()
    conn.execute(
        "INSERT INTO platform.tenants (id, slug, name, base_currency, template)"
        " VALUES (%s, %s, 'Old', %s, 'default')",
        (tid, f"old-{tid.hex[:8]}", currency),
    )
    conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tid),))
    for code, name, type_ in chart:
        conn.execute(
            "INSERT INTO ledger.accounts (id, code, name, type, currency)"
            " VALUES (gen_random_uuid(), %s, %s, %s, %s)",
            (code, name, type_, currency),
        )
    return tid


def _roles(url: str, tid: uuid.UUID) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tid),))
        rows = conn.execute(
            "SELECT role, code FROM ledger.accounts WHERE role IS NOT NULL"
        ).fetchall()
    return dict(rows)


def test_existing_tenants_get_the_order_roles_and_downgrade_removes_them(old_db: str) -> None:
    with psycopg.connect(old_db) as conn:
        usd = _tenant(conn, "USD", OLD_CHART)
        eur = _tenant(conn, "EUR", OLD_CHART)
        # 4000 is an expense here: the wrong type is not marked
        odd = _tenant(conn, "USD", [("1000", "Cash", "asset"), ("4000", "Misc", "expense")])
        conn.commit()
    upgrade(old_db, "head", app_password=servers.APP_PASSWORD)
    app_url = servers.with_database(
        old_db, old_db.rsplit("/", 1)[1], "erp_app", servers.APP_PASSWORD
    )
    for tid in (usd, eur):
        assert _roles(app_url, tid) == ORDER_ROLES
    assert _roles(app_url, odd) == {"cash": "1000"}

    downgrade(old_db, "0013")
    with psycopg.connect(old_db) as conn:
        assert conn.execute("SELECT to_regnamespace('orders')").fetchone() == (None,)
    assert _roles(app_url, usd) == {}

    upgrade(old_db, "head", app_password=servers.APP_PASSWORD)  # and back up again
    assert _roles(app_url, eur) == ORDER_ROLES
