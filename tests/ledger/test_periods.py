"""Periods: closing a month (audited, final), postings refused in it, the year-end close."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from erp.http import ErpFlask
from tests.core.helpers import assert_problem, owner_sql
from tests.ledger.checks import assert_field_problem, counts
from tests.ledger.conftest import Books, open_books

YEAR_END = "2024-12-31T23:59:59.999999Z"


@pytest.fixture(scope="module")
def shared(app: ErpFlask, ops_headers: dict[str, str]) -> Books:
    """A tenant with 2024-03 closed, for the tests that are refused."""
    books = open_books(app.test_client(), ops_headers)
    assert _close(books, "2024-03").status_code == 200
    return books


def _close(books: Books, period: str) -> Any:
    return books.call("POST", f"/periods/{period}/close")


def test_closing_a_month(books: Books, owner_engine: Engine) -> None:
    r = _close(books, "2024-03")
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["period"] == "2024-03"
    assert body["status"] == "closed"
    assert body["closing_transaction_id"] is None
    assert body["closed_by"] == f"api_key:{books.tenant.key_id}"
    assert datetime.now(UTC) - datetime.fromisoformat(body["closed_at"]) < timedelta(minutes=1)
    assert _close(books, "2024-01").status_code == 200
    page = books.get("/periods").get_json()
    assert page["next_cursor"] is None
    listed = page["items"]
    assert [p["period"] for p in listed] == ["2024-03", "2024-01"]
    assert listed[0] == body
    audit = owner_sql(
        owner_engine,
        "SELECT actor, subject_type, subject_id, request_id FROM iam.audit_log "
        "WHERE tenant_id = :t AND action = 'ledger.period.closed' ORDER BY occurred_at",
        {"t": books.tenant.id},
    )
    assert [(a.subject_type, a.subject_id) for a in audit] == [
        ("period", "2024-03"),
        ("period", "2024-01"),
    ]
    assert audit[0].actor == body["closed_by"]
    assert audit[0].request_id == r.headers["X-Request-Id"]


@pytest.mark.parametrize(
    ("effective_at", "status"),
    [
        ("2024-03-01T00:00:00Z", "posted"),
        ("2024-03-31T23:59:59.999999Z", "posted"),
        ("2024-04-01T01:00:00+02:00", "posted"),  # 2024-03-31T23:00Z: months are UTC
        ("2024-03-15T12:00:00Z", "pending"),
    ],
)
def test_a_posting_dated_in_a_closed_month_is_refused(
    shared: Books, owner_engine: Engine, effective_at: str, status: str
) -> None:
    before = counts(owner_engine, shared.tenant.id)
    r = shared.call(
        "POST",
        "/transactions",
        json={
            "description": "late",
            "status": status,
            "effective_at": effective_at,
            "entries": [
                {"account_id": shared.accounts["1000"], "amount": 100, "currency": "USD"},
                {"account_id": shared.accounts["4000"], "amount": -100, "currency": "USD"},
            ],
        },
    )
    body = assert_field_problem(r, 422, "period-closed", "effective_at")
    assert "2024-03" in body["detail"]
    assert counts(owner_engine, shared.tenant.id) == before


def test_the_months_around_a_closed_one_stay_open(books: Books) -> None:
    assert _close(books, "2024-03").status_code == 200
    books.post([("1000", 1), ("4000", -1)], effective_at="2024-02-29T23:59:59.999999Z")
    books.post([("1000", 1), ("4000", -1)], effective_at="2024-04-01T00:00:00Z")
    assert books.balance("1000")["posted"] == 2


def test_closing_twice_is_a_conflict(books: Books, owner_engine: Engine) -> None:
    assert _close(books, "2024-03").status_code == 200
    assert_problem(_close(books, "2024-03"), 409, "conflict")
    assert len(books.get("/periods").get_json()["items"]) == 1


def test_a_month_not_yet_ended_is_not_closed(shared: Books) -> None:
    now = datetime.now(UTC)
    nxt = (now.replace(day=1) + timedelta(days=32)).replace(day=1)
    for period in (f"{now:%Y-%m}", f"{nxt:%Y-%m}", "2999-01"):
        assert_problem(_close(shared, period), 409, "conflict")
    assert [p["period"] for p in shared.get("/periods").get_json()["items"]] == ["2024-03"]


@pytest.mark.parametrize("period", ["2024-13", "2024-00", "2024-3", "24-03", "2024-03-01", "x"])
def test_a_malformed_period_is_422(shared: Books, period: str) -> None:
    assert_field_problem(_close(shared, period), 422, "validation", "period")


def test_a_month_with_pending_transactions_is_not_closed(books: Books) -> None:
    hold = books.post(
        [("6000", 50), ("1000", -50)], status="pending", effective_at="2024-03-20T00:00:00Z"
    )
    body = assert_problem(_close(books, "2024-03"), 409, "conflict")
    assert "pending" in body["detail"]
    assert books.call("POST", f"/transactions/{hold['id']}/void").status_code == 200
    assert _close(books, "2024-03").status_code == 200


# -- the year-end close --------------------------------------------------------------


def _a_year_of_trading(books: Books) -> None:
    books.post([("1000", 10_000), ("4000", -10_000)], effective_at="2024-03-05T10:00:00Z")
    books.post([("6000", 3_000), ("1000", -3_000)], effective_at="2024-06-10T10:00:00Z")
    books.post([("5000", 1_000), ("1200", -1_000)], effective_at="2024-12-20T10:00:00Z")
    books.post([("1200", 5_000), ("3000", -5_000)], effective_at="2024-01-02T10:00:00Z")
    dropped = books.post(
        [("6000", 999), ("1000", -999)], status="pending", effective_at="2024-08-01T00:00:00Z"
    )
    books.call("POST", f"/transactions/{dropped['id']}/void")


def test_year_end_needs_january_to_november_closed(books: Books) -> None:
    _a_year_of_trading(books)
    body = assert_problem(_close(books, "2024-12"), 409, "conflict")
    assert "2024-01" in body["detail"]
    assert "2024-03" in body["detail"]
    assert "2024-06" in body["detail"]
    assert "2024-08" not in body["detail"]  # only a voided transaction there
    for month in ("2024-01", "2024-03"):
        assert _close(books, month).status_code == 200
    body = assert_problem(_close(books, "2024-12"), 409, "conflict")
    assert "2024-06" in body["detail"]
    assert books.balance("4000", as_of=YEAR_END)["posted"] == -10_000


def test_year_end_moves_income_into_retained_earnings(books: Books) -> None:
    _a_year_of_trading(books)
    for month in ("2024-01", "2024-03", "2024-06"):
        assert _close(books, month).status_code == 200
    r = _close(books, "2024-12")
    assert r.status_code == 200, r.get_json()
    closing_id = r.get_json()["closing_transaction_id"]
    assert closing_id
    closing = books.get(f"/transactions/{closing_id}").get_json()
    assert closing["kind"] == "closing"
    assert closing["status"] == "posted"
    assert datetime.fromisoformat(closing["effective_at"]) == datetime.fromisoformat(YEAR_END)
    by_code = {v: k for k, v in books.accounts.items()}
    assert {(by_code[e["account_id"]], e["amount"]) for e in closing["entries"]} == {
        ("4000", 10_000),
        ("6000", -3_000),
        ("5000", -1_000),
        ("3100", -6_000),
    }
    for code in ("4000", "5000", "6000"):
        assert books.balance(code, as_of=YEAR_END)["posted"] == 0
        assert books.balance(code)["posted"] == 0
    assert books.balance("3100", as_of=YEAR_END)["posted"] == -6_000
    assert books.balance("3100", as_of="2024-12-31T23:59:59.999998Z")["posted"] == 0

    income = books.get(
        "/reports/income-statement",
        query_string={"from": "2024-01-01T00:00:00Z", "to": "2025-01-01T00:00:00Z"},
    ).get_json()
    assert income["totals"] == [
        {"currency": "USD", "revenue": 10_000, "expenses": 4_000, "net_income": 6_000}
    ]
    sheet = books.get("/reports/balance-sheet", query_string={"as_of": YEAR_END}).get_json()
    [totals] = sheet["totals"]
    assert totals["balanced"] is True
    assert totals["current_earnings"] == 0
    assert totals["equity"] == 11_000  # owner's 5,000 + retained 6,000
    assert books.get("/periods").get_json()["items"][0]["closing_transaction_id"] == closing_id
    # December is closed like any month
    r = books.call(
        "POST",
        "/transactions",
        json={
            "description": "late",
            "effective_at": "2024-12-31T10:00:00Z",
            "entries": [
                {"account_id": books.accounts["1000"], "amount": 1, "currency": "USD"},
                {"account_id": books.accounts["4000"], "amount": -1, "currency": "USD"},
            ],
        },
    )
    assert_field_problem(r, 422, "period-closed", "effective_at")


def test_year_end_of_a_quiet_year_posts_nothing(books: Books) -> None:
    books.post([("1000", 100), ("4000", -100)], effective_at="2024-06-01T00:00:00Z")
    r = _close(books, "2023-12")
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["closing_transaction_id"] is None
    assert len(books.get("/transactions").get_json()["items"]) == 1


def test_after_year_end_no_month_of_that_year_takes_postings(books: Books) -> None:
    """The empty months close with the year, or a late posting would reopen its income."""
    books.post([("1000", 100), ("4000", -100)], effective_at="2024-06-01T00:00:00Z")
    assert _close(books, "2024-06").status_code == 200
    assert _close(books, "2024-12").status_code == 200
    months = [p["period"] for p in books.get("/periods").get_json()["items"]]
    assert months == [f"2024-{m:02d}" for m in range(12, 0, -1)]
    r = books.call(
        "POST",
        "/transactions",
        json={
            "description": "late",
            "effective_at": "2024-05-20T00:00:00Z",
            "entries": [
                {"account_id": books.accounts["1000"], "amount": 1, "currency": "USD"},
                {"account_id": books.accounts["4000"], "amount": -1, "currency": "USD"},
            ],
        },
    )
    assert_field_problem(r, 422, "period-closed", "effective_at")
    assert books.balance("4000", as_of=YEAR_END)["posted"] == 0
    books.post([("1000", 1), ("4000", -1)], effective_at="2025-01-01T00:00:00Z")


def test_year_end_also_closes_archived_accounts(books: Books) -> None:
    """Archiving stops new entries from clients, not the year-end close of a balance."""
    books.post([("1000", 800), ("4000", -800)], effective_at="2024-04-01T00:00:00Z")
    r = books.call("PATCH", f"/accounts/{books.accounts['4000']}", json={"archived": True})
    assert r.status_code == 200
    assert _close(books, "2024-04").status_code == 200
    r = _close(books, "2024-12")
    assert r.status_code == 200, r.get_json()
    assert books.balance("4000", as_of=YEAR_END)["posted"] == 0
    assert books.balance("3100", as_of=YEAR_END)["posted"] == -800
