"""Reversal: mirrored entries, dated now unless told, linked both ways, once only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from tests.core.helpers import assert_problem
from tests.ledger.checks import assert_field_problem, counts
from tests.ledger.conftest import Books


def _reverse(books: Books, tx: dict[str, Any], body: Any = None) -> Any:
    return books.call("POST", f"/transactions/{tx['id']}/reverse", json=body or {})


def _entries(tx: dict[str, Any]) -> set[tuple[str, int, str]]:
    return {(e["account_id"], e["amount"], e["currency"]) for e in tx["entries"]}


def test_reversal_mirrors_links_and_restores_balances(books: Books) -> None:
    books.post([("1000", 400), ("3000", -400)])
    before = {code: books.balance(code)["posted"] for code in ("1000", "4000", "2100")}
    sale = books.post([("1000", 1150), ("4000", -1000), ("2100", -150)])
    started = datetime.now(UTC)
    r = _reverse(books, sale)
    assert r.status_code == 201, r.get_json()
    rev = r.get_json()
    assert rev["kind"] == "reversal"
    assert rev["status"] == "posted"
    assert rev["reverses_id"] == sale["id"]
    assert rev["reversed_by_id"] is None
    assert _entries(rev) == {(a, -amount, c) for a, amount, c in _entries(sale)}
    assert started <= datetime.fromisoformat(rev["effective_at"]) <= datetime.now(UTC)
    original = books.get(f"/transactions/{sale['id']}").get_json()
    assert original["reversed_by_id"] == rev["id"]
    assert original["reverses_id"] is None
    assert books.get(f"/transactions/{rev['id']}").get_json() == rev
    assert {code: books.balance(code)["posted"] for code in before} == before


def test_reversal_dated_as_given(books: Books) -> None:
    sale = books.post([("1000", 300), ("4000", -300)], effective_at="2024-03-10T12:00:00Z")
    r = _reverse(books, sale, {"effective_at": "2024-05-01T00:00:00Z"})
    assert r.status_code == 201, r.get_json()
    assert datetime.fromisoformat(r.get_json()["effective_at"]) == datetime(2024, 5, 1, tzinfo=UTC)
    assert books.balance("1000", as_of="2024-04-30T23:59:59.999999Z")["posted"] == 300
    assert books.balance("1000", as_of="2024-05-01T00:00:00Z")["posted"] == 0


def test_a_second_reversal_is_a_conflict(books: Books, owner_engine: Engine) -> None:
    sale = books.post([("1000", 300), ("4000", -300)])
    first = _reverse(books, sale).get_json()
    before = counts(owner_engine, books.tenant.id)
    body = assert_problem(_reverse(books, sale), 409, "conflict")
    assert first["id"] in body["detail"]
    assert counts(owner_engine, books.tenant.id) == before
    assert books.balance("1000")["posted"] == 0
    # the reversal itself is a posted transaction, and may be reversed once
    again = _reverse(books, first)
    assert again.status_code == 201, again.get_json()
    assert books.balance("1000")["posted"] == 300


def test_reversal_into_a_closed_period_is_refused(books: Books, owner_engine: Engine) -> None:
    sale = books.post([("1000", 300), ("4000", -300)], effective_at="2024-02-10T09:00:00Z")
    for month in ("2024-02", "2024-05"):
        assert books.call("POST", f"/periods/{month}/close").status_code == 200
    before = counts(owner_engine, books.tenant.id)
    r = _reverse(books, sale, {"effective_at": "2024-05-15T00:00:00Z"})
    assert_field_problem(r, 422, "period-closed", "effective_at")
    assert counts(owner_engine, books.tenant.id) == before
    assert books.get(f"/transactions/{sale['id']}").get_json()["reversed_by_id"] is None
    # a transaction of a closed month is still reversed into an open one (now)
    r = _reverse(books, sale)
    assert r.status_code == 201, r.get_json()
    assert books.balance("4000")["posted"] == 0
    assert books.balance("4000", as_of="2024-12-31T00:00:00Z")["posted"] == -300


def test_reverse_refuses_a_bad_body(books: Books) -> None:
    sale = books.post([("1000", 300), ("4000", -300)])
    for body, field in [
        ({"effective_at": "2024-05-01T00:00:00"}, "effective_at"),
        ({"effective_at": "soon"}, "effective_at"),
        ({"amount": 5}, "amount"),
    ]:
        assert_field_problem(_reverse(books, sale, body), 422, "validation", field)
    assert books.get(f"/transactions/{sale['id']}").get_json()["reversed_by_id"] is None
