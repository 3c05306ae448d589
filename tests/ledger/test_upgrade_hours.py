"""Migration 0012 (hourly balance deltas) on a ledger that already has entries: the
backfill gives every existing entry's hour, the new triggers keep them from then on, and
a downgrade leaves a ledger that still posts (then upgrades again)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from erp.migrate import downgrade, upgrade
from tests import servers

CHART = [("1000", "Cash", "asset"), ("4000", "Sales", "revenue")]
DAY = datetime(2025, 3, 4, tzinfo=UTC)


@pytest.fixture
def old_db(server_url: str) -> Iterator[str]:
    with servers.database_at(server_url, "0011", "erp_hours") as url:
        yield url


def _post(
    conn: psycopg.Connection, accounts: dict[str, uuid.UUID], amount: int, at: datetime, status: str
) -> None:
    conn.execute(
        "SELECT * FROM ledger.post_transaction(gen_random_uuid(), 'upgrade probe', %s, 'standard',"
        " %s, '{}', NULL, NULL, ARRAY[gen_random_uuid(), gen_random_uuid()], %s, %s,"
        " ARRAY['USD', 'USD'], gen_random_uuid(), '{}', false)",
        (status, at, [accounts["1000"], accounts["4000"]], [amount, -amount]),
    )


def _tenant_with_history(conn: psycopg.Connection) -> tuple[uuid.UUID, dict[str, uuid.UUID]]:
    tid = uuid.uuid4()
    conn.execute(
        "INSERT INTO platform.tenants (id, slug, name, base_currency, template)"
        " VALUES (%s, %s, 'Old', 'USD', 'default')",
        (tid, f"old-{tid.hex[:8]}"),
    )
    conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tid),))
    accounts = {}
    for code, name, type_ in CHART:
        accounts[code] = uuid.uuid4()
        conn.execute(
            "INSERT INTO ledger.accounts (id, code, name, type, currency)"
            " VALUES (%s, %s, %s, %s, 'USD')",
            (accounts[code], code, name, type_),
        )
    for i in range(12):
        status = "pending" if i % 5 == 2 else "posted"
        _post(conn, accounts, 100 + i, DAY + timedelta(minutes=37 * i), status)
    return tid, accounts


def _hours_vs_entries(app_url: str, tid: uuid.UUID) -> tuple[list[tuple], list[tuple]]:
    """(balance_hours summed over slots, the same computed from the entries), as erp_app."""
    with psycopg.connect(app_url) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tid),))
        hours = conn.execute(
            "SELECT account_id, hour, sum(posted), sum(pending_dr), sum(pending_cr)"
            "  FROM ledger.balance_hours GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
        entries = conn.execute(
            "SELECT e.account_id, date_trunc('hour', e.effective_at, 'UTC'),"
            "       sum(e.amount) FILTER (WHERE t.status = 'posted'),"
            "       sum(e.amount) FILTER (WHERE t.status = 'pending' AND e.amount > 0),"
            "       sum(e.amount) FILTER (WHERE t.status = 'pending' AND e.amount < 0)"
            "  FROM ledger.entries e JOIN ledger.transactions t ON t.id = e.transaction_id"
            " GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall()
    return hours, [tuple(0 if v is None else v for v in row) for row in entries]


def test_existing_entries_get_their_hours_and_downgrade_still_posts(old_db: str) -> None:
    with psycopg.connect(old_db) as conn:
        tid, accounts = _tenant_with_history(conn)
        conn.commit()
    upgrade(old_db, "head", app_password=servers.APP_PASSWORD)
    app_url = servers.with_database(
        old_db, old_db.rsplit("/", 1)[1], "erp_app", servers.APP_PASSWORD
    )
    hours, expected = _hours_vs_entries(app_url, tid)
    assert len(expected) >= 2 * 7  # the 12 postings span 7 hours, on both accounts
    assert hours == expected
    with psycopg.connect(app_url) as conn:  # the new triggers add to the backfilled rows
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tid),))
        _post(conn, accounts, 5, DAY + timedelta(minutes=40), "posted")
        conn.commit()
    hours, expected = _hours_vs_entries(app_url, tid)
    assert hours == expected

    downgrade(old_db, "0011")
    with psycopg.connect(old_db) as conn:
        assert conn.execute("SELECT to_regclass('ledger.balance_hours')").fetchone() == (None,)
    with psycopg.connect(app_url) as conn:  # the old triggers: a posting still commits
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tid),))
        _post(conn, accounts, 7, DAY + timedelta(hours=9), "posted")
        conn.commit()
    upgrade(old_db, "head", app_password=servers.APP_PASSWORD)
    hours, expected = _hours_vs_entries(app_url, tid)
    assert hours == expected
