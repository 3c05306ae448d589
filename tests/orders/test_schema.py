"""What migration 0014's constraints hold, as erp_app in one tenant: external_id is
unique per channel with channel-less orders in one namespace, a line's amounts and
counters agree with its quantity, a line's tax code and rate are the rate table's, a
payment is in its order's currency, and the step tables are append-only."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from tests.conftest import TenantHandle
from tests.inventory.conftest import pinned

ORDER = """INSERT INTO orders.orders (id, channel_id, external_id, customer_id, currency,
               location_id, request_hash)
           VALUES (%s, %s, %s, %s, %s, %s, CASE WHEN %s::text IS NULL THEN NULL ELSE 'h' END)"""


@pytest.fixture
def shop(app_url: str, tenant: TenantHandle) -> dict[str, Any]:
    ids = {k: uuid.uuid4() for k in ("customer", "channel", "other_channel", "item", "order")}
    with pinned(app_url, tenant.id, commit=True) as conn:
        ids["main"] = conn.execute(
            "SELECT id FROM inventory.locations WHERE is_default"
        ).fetchone()[0]  # type: ignore[index]
        conn.execute(
            "INSERT INTO orders.customers (id, name, email) VALUES (%s, 'Ada', 'a@x.io')",
            (ids["customer"],),
        )
        for ch in ("channel", "other_channel"):
            conn.execute(
                "INSERT INTO orders.channels (id, name, kind, secret)"
                " VALUES (%s, 'S', 'generic', 'x')",
                (ids[ch],),
            )
        conn.execute(
            "INSERT INTO inventory.items (id, sku, name, unit) VALUES (%s, 'MUG', 'Mug', 'each')",
            (ids["item"],),
        )
        conn.execute(
            "INSERT INTO orders.tax_rates (id, code, name, rate_ppm)"
            " VALUES (%s, 'VAT', 'V', 200000)",
            (uuid.uuid4(),),
        )
        conn.execute(ORDER, (ids["order"], None, None, ids["customer"], "USD", ids["main"], None))
    return ids


def _state(conn: psycopg.Connection[Any], sql: str, params: Any) -> str | None:
    try:
        with conn.transaction():
            conn.execute(sql, params)
    except psycopg.Error as exc:
        return exc.sqlstate
    return None


def _order(conn: Any, shop: dict[str, Any], channel: str | None, external: str | None) -> Any:
    ch = shop[channel] if channel else None
    params = (uuid.uuid4(), ch, external, shop["customer"], "USD", shop["main"], external)
    return _state(conn, ORDER, params)


def test_external_id_is_unique_per_channel_and_channel_less_orders_share_one(
    app_url: str, tenant: TenantHandle, shop: dict[str, Any]
) -> None:
    with pinned(app_url, tenant.id) as conn:
        assert _order(conn, shop, None, "1001") is None
        assert _order(conn, shop, None, "1001") == "23505"
        assert _order(conn, shop, "channel", "1001") is None
        assert _order(conn, shop, "channel", "1001") == "23505"
        assert _order(conn, shop, "other_channel", "1001") is None
        # orders without an external_id never collide
        assert _order(conn, shop, None, None) is None
        assert _order(conn, shop, "channel", None) is None
        assert _order(conn, shop, None, "") == "23514"
        assert _order(conn, shop, None, "x" * 256) == "23514"


LINE = """INSERT INTO orders.order_lines (id, order_id, line_no, item_id, sku, quantity,
              unit_price, discount, tax_code, tax_rate_ppm, subtotal, tax, total, fulfilled,
              cancelled, returned, backordered)
          VALUES (gen_random_uuid(), %(order)s, %(no)s, %(item)s, 'MUG', %(q)s, %(p)s, %(d)s,
                  %(code)s, %(rate)s, %(sub)s, %(tax)s, %(total)s, %(f)s, %(c)s, %(r)s, %(b)s)"""


@pytest.mark.parametrize(
    ("changes", "state"),
    [
        ({}, None),
        ({"code": "VAT", "rate": 200000}, None),
        ({"code": "VAT", "rate": 100000}, "23503"),  # not the rate's own
        ({"code": "NOPE", "rate": 200000}, "23503"),
        ({"code": "VAT"}, "23514"),  # a code without its rate
        ({"q": 0, "sub": 0, "total": 0}, "23514"),
        ({"d": 3001, "sub": -1, "total": -1}, "23514"),  # discount above the price
        ({"sub": 2999, "total": 2999}, "23514"),  # subtotal != price x quantity - discount
        ({"total": 3001}, "23514"),
        ({"f": 1, "c": 2}, "23514"),  # fulfilled + cancelled above quantity
        ({"f": 1, "r": 2}, "23514"),  # returned above fulfilled
        ({"b": 3}, "23514"),
        ({"p": 2**62, "sub": 2**63 - 1, "total": 2**63 - 1}, "23514"),  # no overflow: numeric
    ],
)
def test_a_lines_amounts_and_counters_agree(
    app_url: str,
    tenant: TenantHandle,
    shop: dict[str, Any],
    changes: dict[str, Any],
    state: str | None,
) -> None:
    row = {
        "order": shop["order"],
        "no": 0,
        "item": shop["item"],
        "q": 2,
        "p": 1500,
        "d": 0,
        "code": None,
        "rate": None,
        "sub": 3000,
        "tax": 0,
        "total": 3000,
        "f": 0,
        "c": 0,
        "r": 0,
        "b": 0,
        **changes,
    }
    with pinned(app_url, tenant.id) as conn:
        assert _state(conn, LINE, row) == state


def test_a_payment_is_in_its_orders_currency_and_steps_are_append_only(
    app_url: str, tenant: TenantHandle, shop: dict[str, Any]
) -> None:
    with pinned(app_url, tenant.id) as conn:
        eur = conn.execute(
            "INSERT INTO ledger.accounts (id, code, name, type, currency)"
            " VALUES (gen_random_uuid(), 'EUR-CASH', 'Cash', 'asset', 'EUR') RETURNING id"
        ).fetchone()[0]  # type: ignore[index]
        usd = conn.execute("SELECT id FROM ledger.accounts WHERE role = 'cash'").fetchone()[0]  # type: ignore[index]
        pay = """INSERT INTO orders.payments (id, order_id, amount, currency, method,
                     account_id, transaction_id)
                 VALUES (%s, %s, %s, %s, 'card', %s, gen_random_uuid())"""
        conn.execute("SET CONSTRAINTS ALL DEFERRED")
        assert _state(conn, pay, (uuid.uuid4(), shop["order"], 100, "EUR", eur)) == "23503"
        assert _state(conn, pay, (uuid.uuid4(), shop["order"], 100, "USD", eur)) == "23503"
        assert _state(conn, pay, (uuid.uuid4(), shop["order"], 0, "USD", usd)) == "23514"
        paid = uuid.uuid4()
        assert _state(conn, pay, (paid, shop["order"], -100, "USD", usd)) is None
        assert (
            _state(conn, "UPDATE orders.payments SET amount = 5 WHERE id = %s", (paid,)) == "42501"
        )
        assert _state(conn, "DELETE FROM orders.payments WHERE id = %s", (paid,)) == "42501"
