"""Ledger history is immutable in PostgreSQL itself, whatever SQL the runtime login sends.

Every attack connects as erp_app (the API's own login) with `app.tenant_id` set the
way the app sets it, so row-level security lets the statement reach the tenant's
rows and only the grants and the policies/ledger_*.sql triggers stand in the way.
erp_owner (the purge path) may DELETE but never UPDATE.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.ledger.conftest import Books

INSUFFICIENT_PRIVILEGE = "42501"
FOREIGN_KEY_VIOLATION = "23503"
UNBALANCED, PERIOD_CLOSED, IMMUTABLE = "EL001", "EL002", "EL003"


@contextmanager
def connect(url: str, tenant: uuid.UUID, role: str | None = None) -> Iterator[psycopg.Connection]:
    """One transaction (rolled back unless committed) with the tenant GUC, optionally a role."""
    with psycopg.connect(url) as conn:
        if role is not None:
            conn.execute(f"SET ROLE {role}")
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        try:
            yield conn
        finally:
            conn.rollback()


def refused(
    url: str, tenant: uuid.UUID, sql: str, params: Any = None, *, role: str | None = None
) -> str:
    """Run `sql`; it must fail. Returns the SQLSTATE."""
    with connect(url, tenant, role) as conn, pytest.raises(psycopg.Error) as caught:
        conn.execute(sql, params)
    state = caught.value.sqlstate
    assert state is not None
    return state


def refused_at_commit(url: str, tenant: uuid.UUID, *statements: tuple[str, Any]) -> str:
    """Every statement succeeds; COMMIT fails. Returns the SQLSTATE of the failure."""
    with psycopg.connect(url) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        for sql, params in statements:
            conn.execute(sql, params)
        with pytest.raises(psycopg.Error) as caught:
            conn.commit()
    state = caught.value.sqlstate
    assert state is not None
    return state


def new_tx(status: str = "posted", when: datetime | None = None) -> tuple[str, dict[str, Any]]:
    params = {
        "id": uuid.uuid4(),
        "status": status,
        "at": when or datetime.now(UTC),
    }
    sql = (
        "INSERT INTO ledger.transactions (id, description, status, effective_at) "
        "VALUES (%(id)s, 'raw', %(status)s, %(at)s)"
    )
    return sql, params


def new_entry(
    tx: dict[str, Any], account: str, amount: int, currency: str = "USD"
) -> tuple[str, dict[str, Any]]:
    params = {
        "id": uuid.uuid4(),
        "tx": tx["id"],
        "account": account,
        "amount": amount,
        "currency": currency,
        "at": tx["at"],
    }
    sql = (
        "INSERT INTO ledger.entries (id, transaction_id, account_id, amount, currency, "
        "effective_at) VALUES (%(id)s, %(tx)s, %(account)s, %(amount)s, %(currency)s, %(at)s)"
    )
    return sql, params


@pytest.fixture
def ledger(books: Books) -> dict[str, Any]:
    """A posted, a pending and a voided transaction, through the API."""
    posted = books.post([("1000", 5000), ("3000", -5000)])
    pending = books.post([("6000", 700), ("1000", -700)], status="pending")
    voided = books.post([("6000", 300), ("1000", -300)], status="pending")
    r = books.call("POST", f"/transactions/{voided['id']}/void", json={})
    assert r.status_code == 200, r.get_json()
    return {"posted": posted, "pending": pending, "voided": voided, "books": books}


def _count(url: str, tenant: uuid.UUID, sql: str, params: Any = None) -> int:
    with connect(url, tenant) as conn:
        row = conn.execute(sql, params).fetchone()
        assert row is not None
        return int(row[0])


# -- erp_app: entries, transactions, balance deltas ------------------------------------


def test_entries_cannot_be_updated_or_deleted(app_url: str, ledger: dict[str, Any]) -> None:
    tenant = ledger["books"].tenant.id
    tx = ledger["posted"]["id"]
    for sql in (
        "UPDATE ledger.entries SET amount = amount * 2 WHERE transaction_id = %s",
        "UPDATE ledger.entries SET effective_at = effective_at - interval '1 day' "
        "WHERE transaction_id = %s",
        "DELETE FROM ledger.entries WHERE transaction_id = %s",
    ):
        assert refused(app_url, tenant, sql, (tx,)) == INSUFFICIENT_PRIVILEGE, sql
    assert (
        _count(
            app_url, tenant, "SELECT count(*) FROM ledger.entries WHERE transaction_id = %s", (tx,)
        )
        == 2
    )


def test_transactions_cannot_be_deleted(app_url: str, ledger: dict[str, Any]) -> None:
    tenant = ledger["books"].tenant.id
    for name in ("posted", "pending", "voided"):
        sql = "DELETE FROM ledger.transactions WHERE id = %s"
        assert refused(app_url, tenant, sql, (ledger[name]["id"],)) == INSUFFICIENT_PRIVILEGE


@pytest.mark.parametrize(
    ("sql", "state"),
    [
        ("UPDATE ledger.transactions SET status = 'voided' WHERE id = %s", IMMUTABLE),
        ("UPDATE ledger.transactions SET status = 'pending' WHERE id = %s", IMMUTABLE),
        ("UPDATE ledger.transactions SET status = 'posted' WHERE id = %s", IMMUTABLE),
        (
            "UPDATE ledger.transactions SET posted_at = now() - interval '1 year' WHERE id = %s",
            IMMUTABLE,
        ),
        (
            "UPDATE ledger.transactions SET description = 'edited' WHERE id = %s",
            INSUFFICIENT_PRIVILEGE,
        ),
        (
            "UPDATE ledger.transactions SET effective_at = now() WHERE id = %s",
            INSUFFICIENT_PRIVILEGE,
        ),
        (
            "UPDATE ledger.transactions SET metadata = '{\"x\": 1}' WHERE id = %s",
            INSUFFICIENT_PRIVILEGE,
        ),
        ("UPDATE ledger.entries SET amount = 1 WHERE transaction_id = %s", INSUFFICIENT_PRIVILEGE),
    ],
)
def test_a_posted_transaction_never_changes(
    app_url: str, ledger: dict[str, Any], sql: str, state: str
) -> None:
    assert refused(app_url, ledger["books"].tenant.id, sql, (ledger["posted"]["id"],)) == state


def test_a_voided_transaction_stays_voided(app_url: str, ledger: dict[str, Any]) -> None:
    tenant, tx = ledger["books"].tenant.id, ledger["voided"]["id"]
    for status in ("pending", "posted"):
        sql = "UPDATE ledger.transactions SET status = %s WHERE id = %s"
        assert refused(app_url, tenant, sql, (status, tx)) == IMMUTABLE


def test_a_pending_transaction_changes_only_its_status(
    app_url: str, ledger: dict[str, Any]
) -> None:
    tenant, tx = ledger["books"].tenant.id, ledger["pending"]["id"]
    sql = "UPDATE ledger.transactions SET status = 'posted', description = 'x' WHERE id = %s"
    assert refused(app_url, tenant, sql, (tx,)) == INSUFFICIENT_PRIVILEGE
    sql = "UPDATE ledger.transactions SET status = 'pending' WHERE id = %s"
    assert refused(app_url, tenant, sql, (tx,)) == IMMUTABLE


@pytest.mark.parametrize(
    "table",
    [
        "ledger.entries",
        "ledger.transactions",
        "ledger.balance_deltas",
        "ledger.balance_hours",
        "ledger.periods",
    ],
)
def test_no_truncate(app_url: str, ledger: dict[str, Any], table: str) -> None:
    state = refused(app_url, ledger["books"].tenant.id, f"TRUNCATE {table} CASCADE")
    assert state == INSUFFICIENT_PRIVILEGE


@pytest.mark.parametrize(
    ("table", "bucket"),
    [
        ("ledger.balance_deltas", ("day", "current_date")),
        ("ledger.balance_hours", ("hour", "now()")),
    ],
)
def test_balance_deltas_are_read_only(
    app_url: str, ledger: dict[str, Any], table: str, bucket: tuple[str, str]
) -> None:
    books = ledger["books"]
    tenant, cash = books.tenant.id, books.accounts["1000"]
    column, value = bucket
    assert _count(app_url, tenant, f"SELECT count(*) FROM {table}") > 0
    for sql, params in (
        (f"UPDATE {table} SET posted = posted + 1000000", None),
        (f"DELETE FROM {table}", None),
        (
            f"INSERT INTO {table} (id, account_id, {column}, slot, posted) "
            f"VALUES (gen_random_uuid(), %s, date_trunc('hour', {value}), 99, 1000000)",
            (cash,),
        ),
    ):
        assert refused(app_url, tenant, sql, params) == INSUFFICIENT_PRIVILEGE, sql
    assert books.balance("1000")["posted"] == 5000


# -- erp_app: writing transactions around the service layer ------------------------------


def test_entries_cannot_join_an_earlier_transaction(app_url: str, ledger: dict[str, Any]) -> None:
    books = ledger["books"]
    for name in ("posted", "pending", "voided"):
        tx = ledger[name]
        at = datetime.fromisoformat(tx["effective_at"])
        debit = new_entry({"id": tx["id"], "at": at}, books.accounts["1000"], 100)
        credit = new_entry({"id": tx["id"], "at": at}, books.accounts["3000"], -100)
        with connect(app_url, books.tenant.id) as conn, pytest.raises(psycopg.Error) as caught:
            conn.execute(
                "INSERT INTO ledger.entries (id, transaction_id, account_id, amount, currency, "
                "effective_at) VALUES (%(id)s, %(tx)s, %(account)s, %(amount)s, %(currency)s, "
                "%(at)s), (%(id2)s, %(tx)s, %(account2)s, %(amount2)s, %(currency)s, %(at)s)",
                {
                    **debit[1],
                    "id2": credit[1]["id"],
                    "account2": credit[1]["account"],
                    "amount2": credit[1]["amount"],
                },
            )
        assert caught.value.sqlstate == IMMUTABLE, name
    assert books.balance("1000")["posted"] == 5000


def test_an_unbalanced_transaction_fails_at_commit(app_url: str, books: Books) -> None:
    tx_sql, tx = new_tx()
    state = refused_at_commit(
        app_url,
        books.tenant.id,
        (tx_sql, tx),
        new_entry(tx, books.accounts["1000"], 100),
        new_entry(tx, books.accounts["3000"], -99),
    )
    assert state == UNBALANCED


def test_a_transaction_balanced_only_across_currencies_fails(app_url: str, books: Books) -> None:
    r = books.call(
        "POST",
        "/accounts",
        json={"code": "1000-EUR", "name": "Cash EUR", "type": "asset", "currency": "EUR"},
    )
    assert r.status_code == 201, r.get_json()
    tx_sql, tx = new_tx()
    state = refused_at_commit(
        app_url,
        books.tenant.id,
        (tx_sql, tx),
        new_entry(tx, r.get_json()["id"], 100, "EUR"),
        new_entry(tx, books.accounts["3000"], -100),
    )
    assert state == UNBALANCED


@pytest.mark.parametrize("n_entries", [0, 1])
def test_fewer_than_two_entries_fail_at_commit(app_url: str, books: Books, n_entries: int) -> None:
    tx_sql, tx = new_tx()
    entries = [new_entry(tx, books.accounts["1000"], 100)][:n_entries]
    assert refused_at_commit(app_url, books.tenant.id, (tx_sql, tx), *entries) == UNBALANCED


def _execute_and_commit(conn: psycopg.Connection, *statements: tuple[str, Any]) -> None:
    for sql, params in statements:
        conn.execute(sql, params)
    conn.commit()


def test_the_balance_check_cannot_be_run_early(app_url: str, books: Books) -> None:
    """SET CONSTRAINTS ... IMMEDIATE runs the check early; entries added after it are checked."""
    tx_sql, tx = new_tx()
    with psycopg.connect(app_url) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(books.tenant.id),))
        conn.execute(tx_sql, tx)
        conn.execute(*new_entry(tx, books.accounts["1000"], 100))
        conn.execute(*new_entry(tx, books.accounts["3000"], -100))
        conn.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the balanced check runs and passes
        with pytest.raises(psycopg.Error) as caught:
            _execute_and_commit(conn, new_entry(tx, books.accounts["1000"], 5000))
        conn.rollback()
    assert caught.value.sqlstate == UNBALANCED
    assert books.balance("1000")["posted"] == 0
    txs = books.get("/transactions").get_json()["items"]
    assert txs == []


def test_an_entry_takes_its_accounts_currency(app_url: str, books: Books) -> None:
    tx_sql, tx = new_tx()
    with connect(app_url, books.tenant.id) as conn:
        conn.execute(tx_sql, tx)
        with pytest.raises(psycopg.Error) as caught:
            conn.execute(*new_entry(tx, books.accounts["1000"], 100, "EUR"))
    assert caught.value.sqlstate == FOREIGN_KEY_VIOLATION


def test_an_entry_takes_its_transactions_date(app_url: str, books: Books) -> None:
    tx_sql, tx = new_tx()
    with connect(app_url, books.tenant.id) as conn:
        conn.execute(tx_sql, tx)
        with pytest.raises(psycopg.Error) as caught:
            conn.execute(
                *new_entry({**tx, "at": tx["at"] - timedelta(days=40)}, books.accounts["1000"], 1)
            )
    assert caught.value.sqlstate == FOREIGN_KEY_VIOLATION


def test_no_transaction_is_born_voided(app_url: str, books: Books) -> None:
    tx_sql, tx = new_tx("voided")
    assert refused(app_url, books.tenant.id, tx_sql, tx) == IMMUTABLE


def _last_month_start() -> datetime:
    first = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first - timedelta(days=1)).replace(day=1)


def test_nothing_is_dated_in_a_closed_period(app_url: str, books: Books) -> None:
    month = _last_month_start()
    r = books.call("POST", f"/periods/{month:%Y-%m}/close")
    assert r.status_code == 200, r.get_json()
    for status in ("posted", "pending"):
        tx_sql, tx = new_tx(status, month + timedelta(days=3))
        assert refused(app_url, books.tenant.id, tx_sql, tx) == PERIOD_CLOSED
    # the last microsecond of the month is in it; the next month is open
    tx_sql, tx = new_tx(
        "posted",
        month.replace(month=month.month % 12 + 1, year=month.year + month.month // 12)
        - timedelta(microseconds=1),
    )
    assert refused(app_url, books.tenant.id, tx_sql, tx) == PERIOD_CLOSED
    assert refused(app_url, books.tenant.id, "DELETE FROM ledger.periods") == INSUFFICIENT_PRIVILEGE
    assert (
        refused(app_url, books.tenant.id, "UPDATE ledger.periods SET period = period - 31")
        == INSUFFICIENT_PRIVILEGE
    )


def test_a_pending_transaction_in_a_closed_period_stays_pending(app_url: str, books: Books) -> None:
    """Closing refuses a month with pending transactions; a raw period row written around
    that check still does not let one be settled into the closed month."""
    month = _last_month_start()
    held = books.post(
        [("6000", 700), ("1000", -700)],
        status="pending",
        effective_at=(month + timedelta(days=2)).isoformat(),
    )
    r = books.call("POST", f"/periods/{month:%Y-%m}/close")
    assert r.status_code == 409, r.get_json()
    with psycopg.connect(app_url) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(books.tenant.id),))
        conn.execute(
            "INSERT INTO ledger.periods (id, period, closed_by) "
            "VALUES (gen_random_uuid(), %s, 'raw sql')",
            (month.date(),),
        )
        conn.commit()
    for status in ("posted", "voided"):
        sql = "UPDATE ledger.transactions SET status = %s WHERE id = %s"
        assert refused(app_url, books.tenant.id, sql, (status, held["id"])) == PERIOD_CLOSED
    for action in ("post", "void"):
        r = books.call("POST", f"/transactions/{held['id']}/{action}", json={})
        assert r.status_code == 422, r.get_json()
        assert r.get_json()["type"].endswith("/period-closed")
    cash = books.balance("1000")
    assert (cash["posted"], cash["pending"]) == (0, -700)


def test_a_raw_transaction_that_follows_the_rules_is_accepted(app_url: str, books: Books) -> None:
    """The refusals above are the rules, not a blanket ban: a correct insert commits."""
    tx_sql, tx = new_tx()
    with psycopg.connect(app_url) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(books.tenant.id),))
        conn.execute(tx_sql, tx)
        conn.execute(*new_entry(tx, books.accounts["1000"], 100))
        conn.execute(*new_entry(tx, books.accounts["3000"], -100))
        conn.commit()
    assert books.balance("1000")["posted"] == 100


# -- erp_owner: the purge path may delete, nobody may rewrite -------------------------------


def test_owner_may_delete_but_not_update(owner_url: str, ledger: dict[str, Any]) -> None:
    tenant, tx = ledger["books"].tenant.id, ledger["posted"]["id"]
    sql = "UPDATE ledger.entries SET amount = amount * 2 WHERE transaction_id = %s"
    assert refused(owner_url, tenant, sql, (tx,), role="erp_owner") == INSUFFICIENT_PRIVILEGE
    sql = "UPDATE ledger.transactions SET description = 'rewritten' WHERE id = %s"
    assert refused(owner_url, tenant, sql, (tx,), role="erp_owner") == IMMUTABLE
    for table in ("ledger.entries", "ledger.transactions"):
        state = refused(owner_url, tenant, f"TRUNCATE {table} CASCADE", role="erp_owner")
        assert state == INSUFFICIENT_PRIVILEGE
    with connect(owner_url, tenant, "erp_owner") as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("erp_owner",)
        deleted = conn.execute("DELETE FROM ledger.entries WHERE transaction_id = %s", (tx,))
        assert deleted.rowcount == 2
        deleted = conn.execute("DELETE FROM ledger.transactions WHERE id = %s", (tx,))
        assert deleted.rowcount == 1
        # rolled back: this test only proves the purge path is open
    assert ledger["books"].balance("1000")["posted"] == 5000
