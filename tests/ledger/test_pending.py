"""Pending transactions: held amounts, posting (in full or for less) and voiding."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import Engine

from erp.http import ErpFlask
from tests.conftest import make_tenant
from tests.core.helpers import assert_problem
from tests.ledger.checks import assert_field_problem, counts
from tests.ledger.conftest import Books, open_books


def _hold(books: Books, amount: int = 700) -> dict[str, Any]:
    return books.post([("6000", amount), ("1000", -amount)], status="pending")


def _settle(books: Books, tx: dict[str, Any], action: str, body: Any = None) -> Any:
    return books.call("POST", f"/transactions/{tx['id']}/{action}", json=body or {})


def _both(books: Books, code: str) -> tuple[int, int]:
    bal = books.balance(code)
    return bal["posted"], bal["pending"]


def test_pending_counts_as_pending_not_posted(books: Books) -> None:
    hold = _hold(books)
    assert hold["status"] == "pending"
    assert hold["posted_at"] is None
    assert _both(books, "1000") == (0, -700)
    assert _both(books, "6000") == (0, 700)
    account = books.get(f"/accounts/{books.accounts['1000']}").get_json()
    assert account["balance"] == {"posted": 0, "pending": -700, "currency": "USD"}


def test_posting_in_full(books: Books) -> None:
    hold = _hold(books)
    r = _settle(books, hold, "post")
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["id"] == hold["id"]
    assert body["status"] == "posted"
    assert body["posted_at"] is not None
    assert body["adjusted_by_id"] is None
    assert body["entries"] == hold["entries"]
    assert _both(books, "1000") == (-700, 0)
    assert _both(books, "6000") == (700, 0)
    # the same amount, given explicitly, needs no adjustment either
    other = _hold(books, 50)
    r = _settle(books, other, "post", {"amount": 50})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["adjusted_by_id"] is None
    assert _both(books, "1000") == (-750, 0)


def test_posting_for_less_books_the_difference_back(books: Books) -> None:
    hold = _hold(books)
    r = _settle(books, hold, "post", {"amount": 500})
    assert r.status_code == 200, r.get_json()
    posted = r.get_json()
    assert posted["status"] == "posted"
    assert posted["entries"] == hold["entries"]  # the original entries never change
    adjustment = books.get(f"/transactions/{posted['adjusted_by_id']}").get_json()
    assert adjustment["kind"] == "adjustment"
    assert adjustment["adjusts_id"] == hold["id"]
    assert adjustment["status"] == "posted"
    assert adjustment["effective_at"] == hold["effective_at"]
    assert {(e["account_id"], e["amount"]) for e in adjustment["entries"]} == {
        (books.accounts["6000"], -200),
        (books.accounts["1000"], 200),
    }
    assert _both(books, "1000") == (-500, 0)
    assert _both(books, "6000") == (500, 0)
    tb = books.get("/reports/trial-balance").get_json()
    assert tb["totals"] == [{"currency": "USD", "debit": 500, "credit": 500}]


@pytest.fixture(scope="module")
def held(app: ErpFlask, ops_headers: dict[str, str]) -> tuple[Books, dict[str, Any]]:
    """A tenant holding 700 in one pending transaction, for the refused settlements."""
    books = open_books(app.test_client(), ops_headers)
    return books, _hold(books)


@pytest.mark.parametrize("amount", [701, 0, -5, 10.5, "500", True])
def test_a_bad_amount_to_post_is_refused(
    held: tuple[Books, dict[str, Any]], owner_engine: Engine, amount: Any
) -> None:
    books, hold = held
    before = counts(owner_engine, books.tenant.id)
    r = _settle(books, hold, "post", {"amount": amount})
    assert_field_problem(r, 422, "validation", "amount")
    assert counts(owner_engine, books.tenant.id) == before
    assert books.get(f"/transactions/{hold['id']}").get_json()["status"] == "pending"
    assert _both(books, "1000") == (0, -700)


def test_a_smaller_amount_needs_a_two_entry_transaction(books: Books) -> None:
    split = books.post([("6000", 600), ("1000", -500), ("1010", -100)], status="pending")
    r = _settle(books, split, "post", {"amount": 300})
    assert_field_problem(r, 422, "validation", "amount")
    assert books.get(f"/transactions/{split['id']}").get_json()["status"] == "pending"
    r = _settle(books, split, "post")
    assert r.status_code == 200, r.get_json()
    assert _both(books, "1010") == (-100, 0)


def test_void_stops_the_entries_counting(books: Books) -> None:
    hold = _hold(books)
    r = _settle(books, hold, "void")
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["status"] == "voided"
    assert r.get_json()["posted_at"] is None
    assert _both(books, "1000") == (0, 0)
    assert _both(books, "6000") == (0, 0)
    listed = books.get("/transactions", query_string={"status": "voided"}).get_json()["items"]
    assert [tx["id"] for tx in listed] == [hold["id"]]


@pytest.mark.parametrize(
    ("first", "then"), [(a, b) for a in ("post", "void") for b in ("post", "void")]
)
def test_settling_twice_is_a_conflict(books: Books, first: str, then: str) -> None:
    hold = _hold(books)
    assert _settle(books, hold, first).status_code == 200
    assert_problem(_settle(books, hold, then), 409, "conflict")
    expected = (-700, 0) if first == "post" else (0, 0)
    assert _both(books, "1000") == expected


def test_a_posted_transaction_is_not_settled_and_a_pending_one_not_reversed(books: Books) -> None:
    tx = books.post([("1000", 100), ("4000", -100)])
    assert_problem(_settle(books, tx, "post"), 409, "conflict")
    assert_problem(_settle(books, tx, "void"), 409, "conflict")
    hold = _hold(books)
    assert_problem(_settle(books, hold, "reverse"), 409, "conflict")
    assert books.get(f"/transactions/{hold['id']}").get_json()["reversed_by_id"] is None
    _settle(books, hold, "void")
    assert_problem(_settle(books, hold, "reverse"), 409, "conflict")


def test_settling_an_unknown_or_foreign_transaction_is_not_found(
    books: Books, client: Any, ops_headers: dict[str, str]
) -> None:
    hold = _hold(books)
    other = make_tenant(client, ops_headers)
    for action in ("post", "void", "reverse"):
        r = client.post(
            f"/api/v1/ledger/transactions/{hold['id']}/{action}", json={}, headers=other.headers
        )
        assert_problem(r, 404, "not-found")
        assert_problem(_settle(books, {"id": uuid.uuid4()}, action), 404, "not-found")
    assert books.get(f"/transactions/{hold['id']}").get_json()["status"] == "pending"


def test_a_hold_on_an_archived_account_still_settles(books: Books) -> None:
    """Archiving stops new entries, not the settling of a hold made before it."""
    hold = _hold(books)
    r = books.call("PATCH", f"/accounts/{books.accounts['6000']}", json={"archived": True})
    assert r.status_code == 200
    r = _settle(books, hold, "post", {"amount": 500})
    assert r.status_code == 200, r.get_json()
    assert _both(books, "6000") == (500, 0)
    # a reversal is new business, and is refused
    r = books.call("POST", f"/transactions/{hold['id']}/reverse", json={})
    assert "archived" in assert_problem(r, 422, "validation")["detail"]
