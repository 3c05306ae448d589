"""ledger.post_transaction (policies/ledger_post.sql): a posting is one SQL call.

Called here directly, as erp_app with the tenant pinned the way the app pins it. Each
refusal is its documented SQLSTATE, with a MESSAGE for the client and a DETAIL naming
the field(s), and the core maps it to the problem the API documents. The locks use the
keys the rest of the ledger uses: closing holds the month's (periods.PERIOD_LOCK_KEY),
a guarded writer the account's; a posting that only adds to a guarded account takes
no lock. (The API-level shapes of the same refusals: test_bad_input, test_accounts,
test_multicurrency, test_periods; the races: test_concurrency.)
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from erp.errors import refusal
from erp.ledger.periods import PERIOD_LOCK_KEY
from tests.ledger.conftest import Books

I64 = 2**63 - 1
CALL = """
    SELECT created_at, posted_at FROM ledger.post_transaction(
        %(id)s, 'direct call', %(status)s, 'standard', %(at)s, '{}', NULL, NULL,
        %(ids)s, %(accounts)s, %(amounts)s, %(currencies)s, %(event_id)s, %(payload)s,
        %(allow_archived)s)
"""


@contextmanager
def pinned(url: str, tenant: uuid.UUID) -> Iterator[psycopg.Connection[Any]]:
    """A transaction as erp_app in `tenant`, rolled back unless committed."""
    with psycopg.connect(url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")  # as the app's connections are
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        try:
            yield conn
        finally:
            conn.rollback()


def params(
    entries: list[tuple[Any, int, str]],
    *,
    status: str = "posted",
    at: datetime | None = None,
    allow_archived: bool = False,
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "status": status,
        "at": at or datetime.now(UTC),
        "ids": [uuid.uuid4() for _ in entries],
        "accounts": [uuid.UUID(str(a)) for a, _, _ in entries],
        "amounts": [n for _, n, _ in entries],
        "currencies": [c for _, _, c in entries],
        "event_id": uuid.uuid4(),
        "payload": json.dumps({"id": "payload from the caller"}),
        "allow_archived": allow_archived,
    }


def refusal_of(url: str, tenant: uuid.UUID, p: dict[str, Any]) -> psycopg.Error:
    with pinned(url, tenant) as conn, pytest.raises(psycopg.Error) as caught:
        conn.execute(CALL, p)
    return caught.value


def as_problem(error: psycopg.Error) -> Any:
    """What the core makes of it (erp.errors.refusal, as the service and the API do)."""
    problem = refusal(DBAPIError.instance(CALL, {}, error, psycopg.Error))
    assert problem is not None, error.sqlstate
    return problem


def _wallet(books: Books) -> str:
    """A guarded (non_negative) asset account, "W"."""
    r = books.call(
        "POST",
        "/accounts",
        json={"code": "1300", "name": "Wallet", "type": "asset", "currency": "USD",
              "guard": "non_negative"},
    )  # fmt: skip
    assert r.status_code == 201, r.get_json()
    books.accounts["W"] = r.get_json()["id"]
    return str(books.accounts["W"])


def _usd(books: Books, *lines: tuple[str, int]) -> list[tuple[Any, int, str]]:
    return [(books.accounts.get(code, code), n, "USD") for code, n in lines]


# -- refusals: SQLSTATE, message, the field named, the problem -----------------------------


def test_too_few_entries_is_el001_naming_entries(app_url: str, books: Books) -> None:
    error = refusal_of(app_url, books.tenant.id, params(_usd(books, ("1000", 100))))
    assert error.sqlstate == "EL001"
    assert error.diag.message_primary == "A transaction needs at least two entries."
    assert error.diag.message_detail == "entries: At least two entries are required."
    problem = as_problem(error)
    assert (problem.slug, problem.status) == ("unbalanced", 422)
    assert problem.detail == "A transaction needs at least two entries."
    assert problem.errors == {"entries": ["At least two entries are required."]}


def test_each_currency_off_balance_is_one_message(app_url: str, books: Books) -> None:
    # judged from the arguments, before any account is read: these ids exist nowhere
    ghost = [uuid.uuid4() for _ in range(4)]
    entries = [(ghost[0], 100, "USD"), (ghost[1], -100, "EUR"), (ghost[2], 7, "CHF"),
               (ghost[3], -7, "CHF")]  # fmt: skip
    error = refusal_of(app_url, books.tenant.id, params(entries))
    assert error.sqlstate == "EL001"
    problem = as_problem(error)
    assert problem.slug == "unbalanced"
    assert problem.detail == ("Entries must sum to zero in each currency; they do not in EUR, USD.")
    assert problem.errors == {"entries": ["EUR sums to -100, not 0.", "USD sums to 100, not 0."]}


def test_debits_past_64_bits_are_el004_naming_entries(app_url: str, books: Books) -> None:
    entries = [
        (uuid.uuid4(), amount, currency)
        for currency in ("USD", "EUR")
        for amount in (2**62, 2**62, -I64, -1)
    ]
    error = refusal_of(app_url, books.tenant.id, params(entries))
    assert error.sqlstate == "EL004"
    problem = as_problem(error)
    assert (problem.slug, problem.status) == ("validation", 422)
    assert problem.detail == "The entries' sum would overflow a 64-bit integer."
    assert problem.errors == {
        "entries": [f"{c} debits exceed 9223372036854775807." for c in ("EUR", "USD")]
    }


def test_the_first_account_at_fault_is_named_in_request_order(app_url: str, books: Books) -> None:
    books.call("PATCH", f"/accounts/{books.accounts['6000']}", json={"archived": True})
    unknown = str(uuid.uuid4())
    cases = [
        # (entries, field, message)
        ([("4000", -100), (unknown, 50), ("6000", 50)], "entries.1.account_id", "Unknown account."),
        ([("4000", -100), ("6000", 50), (unknown, 50)], "entries.1.account_id",
         "The account is archived."),
    ]  # fmt: skip
    for lines, field, message in cases:
        error = refusal_of(app_url, books.tenant.id, params(_usd(books, *lines)))
        assert error.sqlstate == "EL004", lines
        problem = as_problem(error)
        assert problem.slug == "validation"
        assert problem.errors == {field: [message]}
        assert problem.detail == f"{field}: {message}"
    wrong = [(books.accounts["4000"], -100, "EUR"), (books.accounts["3000"], 100, "EUR")]
    problem = as_problem(refusal_of(app_url, books.tenant.id, params(wrong)))
    assert problem.errors == {"entries.0.currency": ["The account's currency is USD."]}


def test_archived_accounts_take_system_postings(app_url: str, books: Books) -> None:
    books.call("PATCH", f"/accounts/{books.accounts['6000']}", json={"archived": True})
    p = params(_usd(books, ("6000", 50), ("3000", -50)), allow_archived=True)
    with pinned(app_url, books.tenant.id) as conn:
        assert conn.execute(CALL, p).fetchone() is not None


def test_a_closed_month_is_el002_naming_effective_at(app_url: str, books: Books) -> None:
    first = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last_month = (first - timedelta(days=1)).replace(day=1)
    r = books.call("POST", f"/periods/{last_month:%Y-%m}/close")
    assert r.status_code == 200, r.get_json()
    p = params(_usd(books, ("6000", 50), ("3000", -50)), at=last_month + timedelta(days=2))
    error = refusal_of(app_url, books.tenant.id, p)
    assert error.sqlstate == "EL002"
    problem = as_problem(error)
    assert (problem.slug, problem.status) == ("period-closed", 422)
    message = f"The period {last_month:%Y-%m} is closed."
    assert problem.errors == {"effective_at": [message]}
    assert problem.detail == f"effective_at: {message}"


def test_a_guarded_account_short_of_funds_is_el005_naming_its_first_entry(
    app_url: str, books: Books
) -> None:
    wallet = _wallet(books)
    books.post([("W", 30), ("3000", -30)])
    # the wallet appears at 1 (adding) and 3 (taking): the first entry on it is named
    p = params(_usd(books, ("6000", 80), ("W", 10), ("3000", -10), ("W", -80)))
    error = refusal_of(app_url, books.tenant.id, p)
    assert error.sqlstate == "EL005"
    problem = as_problem(error)
    assert (problem.slug, problem.status) == ("insufficient-funds", 422)
    assert problem.detail == f"Account {wallet} has 30 available; the transaction needs 80."
    assert problem.errors == {"entries.1.amount": ["Insufficient funds."]}


def test_entry_arrays_of_different_lengths_are_a_bug_not_bad_input(
    app_url: str, books: Books
) -> None:
    p = params(_usd(books, ("6000", 50), ("3000", -50)))
    p["amounts"] = [50]
    error = refusal_of(app_url, books.tenant.id, p)
    assert error.sqlstate == "P0001"  # raise_exception: a 500, logged
    assert refusal(DBAPIError.instance(CALL, {}, error, psycopg.Error)) is None


# -- what it writes ----------------------------------------------------------------------------


def test_entries_are_stored_by_account_and_amount_with_the_event(
    app_url: str, books: Books
) -> None:
    p = params(_usd(books, ("4000", -70), ("1000", 50), ("4000", -30), ("1000", 50)))
    with pinned(app_url, books.tenant.id) as conn:
        row = conn.execute(CALL, p).fetchone()
        assert row is not None
        created_at, posted_at = row
        assert created_at == posted_at  # both now(): the transaction's start
        stored = conn.execute(
            "SELECT id, account_id, amount FROM ledger.entries WHERE transaction_id = %s "
            "ORDER BY ctid",  # the order they were inserted in
            (p["id"],),
        ).fetchall()
        event = conn.execute(
            "SELECT id, event_type, payload FROM webhooks.outbox_events WHERE id = %s",
            (p["event_id"],),
        ).fetchone()
        conn.commit()
    request = list(zip(p["ids"], p["accounts"], p["amounts"], strict=True))
    assert stored == sorted(request, key=lambda e: (str(e[1]), e[2]))
    assert event is not None
    assert event[1] == "ledger.transaction.posted"
    # PostgreSQL's JSON drops trailing zeros of the microseconds: compare the instants.
    assert event[2]["id"] == "payload from the caller"
    assert set(event[2]) == {"id", "posted_at"}
    assert datetime.fromisoformat(event[2]["posted_at"]) == posted_at


def test_a_pending_transaction_has_no_event(app_url: str, books: Books) -> None:
    books.post([("1000", 50), ("3000", -50)])
    p = params(_usd(books, ("6000", 50), ("1000", -50)), status="pending")
    with pinned(app_url, books.tenant.id) as conn:
        row = conn.execute(CALL, p).fetchone()
        assert row is not None
        assert row[1] is None
        events = conn.execute(
            "SELECT count(*) FROM webhooks.outbox_events WHERE id = %s", (p["event_id"],)
        ).fetchone()
        assert events == (0,)


# -- locks: the keys closing and guarded writers use -------------------------------------------


def _blocked(url: str, tenant: uuid.UUID, p: dict[str, Any]) -> bool:
    """Whether the call waits on a lock (lock_timeout), else it posts."""
    with pinned(url, tenant) as conn:
        conn.execute("SET LOCAL lock_timeout = '300ms'")
        try:
            conn.execute(CALL, p)
        except psycopg.errors.LockNotAvailable:
            return True
        return False


def test_a_closing_month_holds_its_postings(app_engine: Engine, app_url: str, books: Books) -> None:
    at = datetime(2024, 5, 10, tzinfo=UTC)
    lines = _usd(books, ("6000", 50), ("3000", -50))
    with app_engine.begin() as closing:
        closing.execute(
            text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(books.tenant.id)}
        )
        # what close_period takes (periods.lock_month, exclusive)
        closing.execute(text(f"SELECT pg_advisory_xact_lock({PERIOD_LOCK_KEY})"), {"m": "2024-05"})
        assert _blocked(app_url, books.tenant.id, params(lines, at=at))
        assert not _blocked(app_url, books.tenant.id, params(lines, at=at + timedelta(days=31)))


def test_only_postings_that_reduce_a_guarded_account_take_its_lock(
    app_engine: Engine, app_url: str, books: Books
) -> None:
    _wallet(books)
    books.post([("W", 500), ("3000", -500)])
    tenant = books.tenant.id
    with app_engine.begin() as other:
        other.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant)})
        other.execute(
            text(
                "SELECT pg_advisory_xact_lock(hashtextextended("
                "current_setting('app.tenant_id') || ':guard:' || :a, 0))"
            ),
            {"a": books.accounts["W"]},
        )
        assert _blocked(app_url, tenant, params(_usd(books, ("6000", 5), ("W", -5))))
        assert not _blocked(app_url, tenant, params(_usd(books, ("W", 5), ("4000", -5))))
        # an unguarded account is never locked
        assert not _blocked(app_url, tenant, params(_usd(books, ("6000", 5), ("1010", -5))))


# -- the function itself -----------------------------------------------------------------------


def test_the_function_runs_as_its_caller_with_a_pinned_search_path(owner_engine: Engine) -> None:
    with owner_engine.connect() as conn:
        row = conn.execute(
            text("""
            SELECT p.prosecdef, p.proconfig,
                   has_function_privilege('erp_app', p.oid, 'EXECUTE') AS app,
                   has_function_privilege('public', p.oid, 'EXECUTE') AS anyone
              FROM pg_proc p WHERE p.oid = 'ledger.post_transaction'::regproc
            """)
        ).one()
    assert row.prosecdef is False  # SECURITY INVOKER: RLS applies as erp_app
    assert "search_path=pg_catalog, pg_temp" in row.proconfig
    assert (row.app, row.anyone) == (True, False)
