"""Transactions: the posted shape, reading, filtered and paged lists, balances in time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from erp.http import ErpFlask
from tests.conftest import make_tenant
from tests.core.helpers import assert_problem
from tests.ledger.checks import assert_field_problem, counts
from tests.ledger.conftest import Books, open_books

T = "2024-03-10T12:00:00Z"
T_MINUS_1US = "2024-03-10T11:59:59.999999Z"

TX_KEYS = {
    "id",
    "description",
    "status",
    "effective_at",
    "posted_at",
    "metadata",
    "reverses_id",
    "reversed_by_id",
    "entries",
}


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def test_post_returns_the_transaction(books: Books) -> None:
    before = datetime.now(UTC)
    tx = books.post(
        [("1000", 2500), ("4000", -2500)], description="Sale #1", metadata={"order": "1"}
    )
    assert set(tx) >= TX_KEYS
    uuid.UUID(tx["id"])
    assert tx["description"] == "Sale #1"
    assert tx["status"] == "posted"
    assert tx["metadata"] == {"order": "1"}
    assert tx["reverses_id"] is None
    assert tx["reversed_by_id"] is None
    # dated now by default, posted now
    assert before <= at(tx["effective_at"]) <= datetime.now(UTC)
    assert before - timedelta(seconds=1) <= at(tx["posted_at"]) <= datetime.now(UTC)
    assert {(e["account_id"], e["amount"], e["currency"]) for e in tx["entries"]} == {
        (books.accounts["1000"], 2500, "USD"),
        (books.accounts["4000"], -2500, "USD"),
    }
    for e in tx["entries"]:
        assert set(e) == {"id", "account_id", "amount", "currency"}
        uuid.UUID(e["id"])
    assert books.get(f"/transactions/{tx['id']}").get_json() == tx


def test_times_come_back_in_utc(books: Books) -> None:
    tx = books.post([("1000", 100), ("4000", -100)], effective_at="2024-03-10T14:00:00+02:00")
    assert at(tx["effective_at"]) == at(T)
    assert at(tx["effective_at"]).utcoffset() == timedelta(0)
    got = books.get(f"/transactions/{tx['id']}").get_json()
    assert at(got["effective_at"]).utcoffset() == timedelta(0)
    assert at(got["posted_at"]).utcoffset() == timedelta(0)


def test_get_unknown_foreign_or_malformed_transaction(
    books: Books, client: Any, ops_headers: dict[str, str]
) -> None:
    tx = books.post([("1000", 100), ("4000", -100)])
    other = make_tenant(client, ops_headers)
    r = client.get(f"/api/v1/ledger/transactions/{tx['id']}", headers=other.headers)
    assert_problem(r, 404, "not-found")
    assert_problem(books.get(f"/transactions/{uuid.uuid4()}"), 404, "not-found")
    assert_field_problem(books.get("/transactions/42"), 422, "validation", "transaction_id")


def test_idempotency_key_replays_the_posting(books: Books, owner_engine: Engine) -> None:
    body = {
        "description": "once",
        "entries": [
            {"account_id": books.accounts["1000"], "amount": 300, "currency": "USD"},
            {"account_id": books.accounts["4000"], "amount": -300, "currency": "USD"},
        ],
    }
    headers = {**books.tenant.headers, "Idempotency-Key": "sale-42"}
    first = books.client.post("/api/v1/ledger/transactions", json=body, headers=headers)
    assert first.status_code == 201, first.get_json()
    before = counts(owner_engine, books.tenant.id)
    again = books.client.post("/api/v1/ledger/transactions", json=body, headers=headers)
    assert again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json() == first.get_json()
    assert counts(owner_engine, books.tenant.id) == before
    assert books.balance("1000")["posted"] == 300
    changed = {**body, "description": "twice"}
    r = books.client.post("/api/v1/ledger/transactions", json=changed, headers=headers)
    assert_problem(r, 409, "idempotency-mismatch")
    assert counts(owner_engine, books.tenant.id) == before


# -- lists ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared(app: ErpFlask, ops_headers: dict[str, str]) -> Books:
    """A tenant for the tests that only read (after `dated`) or are refused."""
    return open_books(app.test_client(), ops_headers)


@pytest.fixture(scope="module")
def dated(shared: Books) -> dict[str, dict[str, Any]]:
    """Five transactions in early 2024; b and c share their effective_at."""
    return {
        "e": shared.post([("1000", 10), ("3000", -10)], effective_at="2024-02-10T09:00:00Z"),
        "a": shared.post(
            [("1000", 100), ("4000", -100)],
            effective_at="2024-03-01T00:00:00Z",
            metadata={"order": "A1", "channel": "web"},
        ),
        "b": shared.post(
            [("6000", 50), ("1010", -50)],
            effective_at="2024-03-15T12:00:00Z",
            metadata={"order": "B2"},
        ),
        "c": shared.post(
            [("1000", 70), ("4000", -70)], effective_at="2024-03-15T12:00:00Z", status="pending"
        ),
        "d": shared.post(
            [("1100", 30), ("4000", -30)],
            effective_at="2024-04-01T00:00:00Z",
            metadata={"channel": "pos"},
        ),
    }


def _names(books: Books, dated: dict[str, dict[str, Any]], **query: str) -> list[str]:
    r = books.get("/transactions", query_string={"limit": "200", **query})
    assert r.status_code == 200, r.get_json()
    by_id = {tx["id"]: name for name, tx in dated.items()}
    return [by_id[tx["id"]] for tx in r.get_json()["items"]]


def test_list_is_newest_first_by_effective_at_then_id(
    shared: Books, dated: dict[str, dict[str, Any]]
) -> None:
    items = shared.get("/transactions?limit=200").get_json()["items"]
    keys = [(at(tx["effective_at"]), tx["id"]) for tx in items]
    assert keys == sorted(keys, reverse=True)
    assert items[0]["id"] == dated["d"]["id"]
    assert sorted(_names(shared, dated)[1:3]) == ["b", "c"]
    assert _names(shared, dated)[3:] == ["a", "e"]
    assert items[-1] == shared.get(f"/transactions/{dated['e']['id']}").get_json()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"status": "pending"}, {"c"}),
        ({"status": "posted"}, {"a", "b", "d", "e"}),
        ({"effective_from": "2024-03-15T12:00:00Z"}, {"b", "c", "d"}),
        ({"effective_to": "2024-03-15T12:00:00Z"}, {"a", "e"}),
        ({"effective_from": "2024-03-01T00:00:00Z", "effective_to": "2024-04-01T00:00:00Z"},
         {"a", "b", "c"}),
        ({"effective_from": "2024-03-01T00:00:00.000001Z"}, {"b", "c", "d"}),
        ({"metadata_key": "channel"}, {"a", "d"}),
        ({"metadata_key": "order", "metadata_value": "B2"}, {"b"}),
        ({"metadata_key": "order", "metadata_value": "nope"}, set()),
        ({"status": "voided"}, set()),
    ],
)  # fmt: skip
def test_list_filters(
    shared: Books, dated: dict[str, dict[str, Any]], query: dict[str, str], expected: set[str]
) -> None:
    assert set(_names(shared, dated, **query)) == expected


def test_list_filters_by_account_and_combines_filters(
    shared: Books, dated: dict[str, dict[str, Any]]
) -> None:
    cash, revenue = shared.accounts["1000"], shared.accounts["4000"]
    assert _names(shared, dated, account_id=cash) == ["c", "a", "e"]
    assert _names(shared, dated, account_id=revenue, status="posted") == ["d", "a"]
    assert _names(shared, dated, account_id=str(uuid.uuid4())) == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"status": "settled"}, "status"),
        ({"account_id": "cash"}, "account_id"),
        ({"effective_from": "2024-03-01"}, "effective_from"),
        ({"effective_to": "2024-03-01T00:00:00"}, "effective_to"),
        ({"metadata_value": "x"}, "metadata_value"),
        ({"limit": "500"}, "limit"),
    ],
)
def test_list_refuses_bad_filters(shared: Books, query: dict[str, str], field: str) -> None:
    assert_field_problem(shared.get("/transactions", query_string=query), 422, "validation", field)


def _walk(books: Books, limit: int, **query: str) -> list[str]:
    ids: list[str] = []
    cursor: str | None = None
    for _ in range(20):
        page = books.get(
            "/transactions",
            query_string={"limit": str(limit), **query, **({"cursor": cursor} if cursor else {})},
        ).get_json()
        assert len(page["items"]) <= limit
        ids += [tx["id"] for tx in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids
    raise AssertionError("the cursor never ended")


def test_cursor_pages_have_no_duplicates_or_gaps(
    shared: Books, dated: dict[str, dict[str, Any]]
) -> None:
    whole = [tx["id"] for tx in shared.get("/transactions?limit=200").get_json()["items"]]
    assert len(whole) == 5
    for limit in (1, 2, 3):
        assert _walk(shared, limit) == whole
    cash = shared.accounts["1000"]
    assert _walk(shared, 1, account_id=cash) == [dated[n]["id"] for n in ("c", "a", "e")]
    last = shared.get("/transactions?limit=5").get_json()
    assert last["next_cursor"] is None


# -- balances in time ----------------------------------------------------------------


def test_balance_as_of_is_inclusive_on_effective_at(books: Books) -> None:
    books.post([("1000", 1000), ("4000", -1000)], effective_at=T)
    bal = books.balance("1000", as_of=T)
    assert bal == {
        "account_id": books.accounts["1000"],
        "as_of": bal["as_of"],
        "posted": 1000,
        "pending": 0,
        "currency": "USD",
    }
    assert at(bal["as_of"]) == at(T)
    assert books.balance("1000", as_of=T_MINUS_1US)["posted"] == 0
    assert books.balance("4000", as_of=T)["posted"] == -1000
    assert books.balance("1000")["posted"] == 1000


def test_back_dated_postings_count_from_their_date(books: Books) -> None:
    """Later the same day, and on later days, with pending amounts too."""
    books.post([("1000", 1000), ("4000", -1000)], effective_at=T)
    books.post([("1000", 200), ("4000", -200)], effective_at="2024-03-10T18:00:00Z")
    books.post(
        [("1000", 300), ("4000", -300)], effective_at="2024-03-10T20:00:00Z", status="pending"
    )
    books.post([("1000", 40), ("4000", -40)], effective_at="2024-03-12T08:00:00Z")
    expect = {
        "2024-03-09T23:59:59Z": (0, 0),
        T: (1000, 0),
        "2024-03-10T17:59:59Z": (1000, 0),
        "2024-03-10T18:00:00Z": (1200, 0),
        "2024-03-10T20:00:00Z": (1200, 300),
        "2024-03-11T00:00:00Z": (1200, 300),
        "2024-03-12T08:00:00Z": (1240, 300),
        "2024-03-12T09:00:00+01:00": (1240, 300),
        "2024-03-12T08:59:59+01:00": (1200, 300),
    }
    for as_of, (posted, pending) in expect.items():
        bal = books.balance("1000", as_of=as_of)
        assert (bal["posted"], bal["pending"]) == (posted, pending), as_of
    assert books.balance("1000")["posted"] == 1240
    assert books.balance("4000")["pending"] == -300


def test_balance_as_of_any_moment_of_a_day_with_hours_pending_and_voids(books: Books) -> None:
    """Postings spread over one day's hours (minutes before and after each :30, the
    hour's first and last microsecond, morning and afternoon), with pending, posted-later
    and voided ones: the balance as of every one of those moments, a microsecond either
    side, and every hour and half-hour edge, equals the sum of what the entries say."""
    day = datetime(2024, 5, 20, tzinfo=UTC)
    moments = [
        day,
        day + timedelta(minutes=10),
        day + timedelta(hours=5, minutes=29, seconds=59, microseconds=999999),
        day + timedelta(hours=5, minutes=30),
        day + timedelta(hours=5, minutes=59, seconds=59, microseconds=999999),
        day + timedelta(hours=11, minutes=45),
        day + timedelta(hours=12),
        day + timedelta(hours=12, minutes=30),
        day + timedelta(hours=17, minutes=5),
        day + timedelta(hours=23, minutes=31),
        day + timedelta(hours=23, minutes=59, seconds=59, microseconds=999999),
        day + timedelta(days=1),
    ]
    # (moment, amount, final status): pending ones are posted or voided after all posts
    book: list[tuple[datetime, int, str]] = []
    settle: list[tuple[str, str]] = []
    for i, moment in enumerate(moments):
        status = ("posted", "pending", "posted", "voided", "posted", "pending")[i % 6]
        amount = 100 * (i + 1) + i
        tx = books.post(
            [("1000", amount), ("4000", -amount)],
            effective_at=iso(moment),
            status="posted" if status == "posted" else "pending",
        )
        if status == "voided" or (status == "pending" and i % 4 == 1):
            final = "voided" if status == "voided" else "posted"
            settle.append((tx["id"], "void" if final == "voided" else "post"))
            status = final
        book.append((moment, amount, status))
    for tx_id, action in settle:
        assert books.call("POST", f"/transactions/{tx_id}/{action}", {}).status_code == 200
    probes = {m + d for m, *_ in book for d in (-timedelta(microseconds=1), timedelta(0))}
    probes |= {m + timedelta(microseconds=1) for m, *_ in book}
    probes |= {day + timedelta(minutes=30 * k) for k in range(-1, 50)}
    for as_of in sorted(probes):
        upto = [(a, st) for m, a, st in book if m <= as_of]
        posted = sum(a for a, st in upto if st == "posted")
        pending = sum(a for a, st in upto if st == "pending")
        bal = books.balance("1000", as_of=iso(as_of))
        assert (bal["posted"], bal["pending"]) == (posted, pending), iso(as_of)


def test_future_dated_postings_count_only_from_their_date(books: Books) -> None:
    later = datetime.now(UTC) + timedelta(days=10)
    books.post([("1000", 500), ("4000", -500)], effective_at=iso(later))
    books.post([("1000", 7), ("4000", -7)])
    assert books.balance("1000")["posted"] == 7
    assert books.balance("1000", as_of=iso(later - timedelta(microseconds=1)))["posted"] == 7
    assert books.balance("1000", as_of=iso(later))["posted"] == 507
    assert books.balance("1000", as_of=iso(later + timedelta(days=1)))["posted"] == 507
    account = books.get(f"/accounts/{books.accounts['1000']}").get_json()
    assert account["balance"]["posted"] == 7


@pytest.mark.parametrize("as_of", ["yesterday", "2024-03-10", "2024-03-10T12:00:00"])
def test_balance_refuses_a_bad_as_of(shared: Books, as_of: str) -> None:
    r = shared.get(f"/accounts/{shared.accounts['1000']}/balance", query_string={"as_of": as_of})
    assert_field_problem(r, 422, "validation", "as_of")


# -- an account's entries ------------------------------------------------------------


def test_account_entries(books: Books) -> None:
    sale = books.post([("1000", 900), ("4000", -900)], effective_at=T)
    hold = books.post([("6000", 120), ("1000", -120)], status="pending")
    dropped = books.post([("6000", 5), ("1000", -5)], status="pending")
    assert books.call("POST", f"/transactions/{dropped['id']}/void", json={}).status_code == 200
    books.post([("6000", 1), ("1010", -1)])  # another account's
    page = books.get(f"/accounts/{books.accounts['1000']}/entries").get_json()
    assert page["next_cursor"] is None
    items = page["items"]
    for item in items:
        assert set(item) == {"id", "transaction_id", "amount", "currency", "effective_at", "status"}
    # newest effective_at first; the voided hold is not listed
    assert [(i["transaction_id"], i["amount"], i["status"]) for i in items] == [
        (hold["id"], -120, "pending"),
        (sale["id"], 900, "posted"),
    ]
    cash_entry = next(e for e in sale["entries"] if e["account_id"] == books.accounts["1000"])
    assert items[1]["id"] == cash_entry["id"]
    assert items[1]["currency"] == "USD"
    assert at(items[1]["effective_at"]) == at(T)
    first = books.get(f"/accounts/{books.accounts['1000']}/entries?limit=1").get_json()
    assert [i["id"] for i in first["items"]] == [items[0]["id"]]
    rest = books.get(
        f"/accounts/{books.accounts['1000']}/entries",
        query_string={"limit": "1", "cursor": first["next_cursor"]},
    ).get_json()
    assert [i["id"] for i in rest["items"]] == [items[1]["id"]]
    assert rest["next_cursor"] is None
