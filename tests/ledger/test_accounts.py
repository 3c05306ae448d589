"""Accounts: creation and its rules, listing, renaming and archiving, tenant isolation."""

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

ACCOUNTS = "/api/v1/ledger/accounts"

#: The chart of accounts of the issue, as the default template provisions it.
DEFAULT_CHART = {
    "1000": ("Cash", "asset", "cash"),
    "1010": ("Bank", "asset", None),
    "1100": ("Accounts receivable", "asset", "accounts_receivable"),
    "1200": ("Inventory", "asset", "inventory"),
    "2000": ("Accounts payable", "liability", "accounts_payable"),
    "2100": ("Sales tax payable", "liability", "sales_tax_payable"),
    "3000": ("Owner's equity", "equity", None),
    "3100": ("Retained earnings", "equity", "retained_earnings"),
    "4000": ("Sales revenue", "revenue", "sales_revenue"),
    "5000": ("Cost of goods sold", "expense", "cost_of_goods_sold"),
    "5100": ("Inventory adjustments", "expense", "inventory_adjustments"),
    "6000": ("Operating expenses", "expense", None),
}


@pytest.fixture(scope="module")
def shared(app: ErpFlask, ops_headers: dict[str, str]) -> Books:
    """One tenant for the tests that only read or are refused."""
    return open_books(app.test_client(), ops_headers)


def _create(books: Books, **fields: Any) -> Any:
    body = {"code": "9000", "name": "Test", "type": "asset", "currency": "USD", **fields}
    return books.call("POST", "/accounts", json=body)


def test_create_returns_the_account_with_its_balance(books: Books) -> None:
    r = _create(books, code="1300", name="Prepaid rent", guard="non_negative")
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    uuid.UUID(body["id"])
    assert {
        k: body[k] for k in ("code", "name", "type", "currency", "parent_id", "archived", "guard")
    } == {
        "code": "1300",
        "name": "Prepaid rent",
        "type": "asset",
        "currency": "USD",
        "parent_id": None,
        "archived": False,
        "guard": "non_negative",
    }
    assert body["balance"] == {"posted": 0, "pending": 0, "currency": "USD"}
    got = books.get(f"/accounts/{body['id']}")
    assert got.status_code == 200
    assert got.get_json() == body


def test_guard_defaults_to_none_and_a_child_shares_its_parents_type(books: Books) -> None:
    r = _create(books, code="1001", name="Petty cash", parent_id=books.accounts["1000"])
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["guard"] == "none"
    assert r.get_json()["parent_id"] == books.accounts["1000"]


def test_code_is_unique_per_tenant_but_tenants_may_share_it(
    books: Books, client: Any, ops_headers: dict[str, str]
) -> None:
    assert _create(books, code="7000").status_code == 201
    again = _create(books, code="7000", name="Another")
    assert_field_problem(again, 409, "conflict", "code")
    other = open_books(client, ops_headers)
    assert _create(other, code="7000").status_code == 201
    # the template's codes exist in every tenant too
    assert_field_problem(_create(books, code="1000"), 409, "conflict", "code")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"code": ""}, "code"),
        ({"code": "-lead"}, "code"),
        ({"code": "has space"}, "code"),
        ({"code": "x" * 65}, "code"),
        ({"code": 1000}, "code"),
        ({"name": ""}, "name"),
        ({"name": "n" * 201}, "name"),
        ({"type": "income"}, "type"),
        ({"type": None}, "type"),
        ({"currency": "usd"}, "currency"),
        ({"currency": "XYZ"}, "currency"),
        ({"currency": "US"}, "currency"),
        ({"guard": "positive"}, "guard"),
        ({"parent_id": "not-a-uuid"}, "parent_id"),
        ({"role": "petty_cash"}, "role"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_account_fields_are_422_naming_the_field(
    shared: Books, fields: dict[str, Any], field: str
) -> None:
    body = assert_field_problem(_create(shared, **fields), 422, "validation", field)
    assert field in body["detail"]


def test_missing_fields_are_named(shared: Books) -> None:
    body = assert_problem(shared.call("POST", "/accounts", json={}), 422, "validation")
    assert {"code", "name", "type", "currency"} <= set(body["errors"])


def test_parent_must_exist_in_the_tenant_and_share_the_type(
    books: Books, client: Any, ops_headers: dict[str, str]
) -> None:
    wrong_type = _create(books, parent_id=books.accounts["2000"])
    body = assert_field_problem(wrong_type, 422, "validation", "parent_id")
    assert "liability" in body["errors"]["parent_id"][0]
    unknown = assert_field_problem(
        _create(books, parent_id=str(uuid.uuid4())), 422, "validation", "parent_id"
    )
    other = open_books(client, ops_headers)
    foreign = assert_field_problem(
        _create(books, parent_id=other.accounts["1000"]), 422, "validation", "parent_id"
    )
    # another tenant's account reads exactly like one that does not exist
    assert foreign["errors"] == unknown["errors"]
    assert foreign["detail"] == unknown["detail"]


def test_default_template_provisions_the_chart_of_accounts(books: Books) -> None:
    items = books.get("/accounts?limit=200").get_json()["items"]
    chart = {a["code"]: (a["name"], a["type"], a["role"]) for a in items}
    assert chart == DEFAULT_CHART
    assert {a["currency"] for a in items} == {"USD"}
    assert all(a["balance"] == {"posted": 0, "pending": 0, "currency": "USD"} for a in items)


def test_template_accounts_take_the_tenants_base_currency(
    client: Any, ops_headers: dict[str, str]
) -> None:
    eur = open_books(client, ops_headers, currency="EUR")
    items = eur.get("/accounts?limit=200").get_json()["items"]
    assert {a["currency"] for a in items} == {"EUR"}
    assert len(items) == len(DEFAULT_CHART)


def test_list_pages_with_a_cursor_newest_first(books: Books) -> None:
    for i in range(3):
        assert _create(books, code=f"9{i:03d}").status_code == 201
    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(10):
        query = {"limit": "4", **({"cursor": cursor} if cursor else {})}
        page = books.get("/accounts", query_string=query).get_json()
        assert len(page["items"]) <= 4
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    ids = [a["id"] for a in seen]
    assert len(ids) == len(set(ids)) == len(DEFAULT_CHART) + 3
    keys = [(a["created_at"], a["id"]) for a in seen]
    assert keys == sorted(keys, reverse=True)
    # the newest accounts come first
    assert {a["code"] for a in seen[:3]} == {"9000", "9001", "9002"}


def test_list_refuses_bad_limits_and_cursors(shared: Books) -> None:
    for query in ({"limit": "0"}, {"limit": "201"}, {"limit": "x"}):
        assert_field_problem(
            shared.get("/accounts", query_string=query), 422, "validation", "limit"
        )
    bad = shared.get("/accounts", query_string={"cursor": "garbage"})
    assert_field_problem(bad, 422, "validation", "cursor")
    # a cursor of one list is no good for another
    cursor = shared.get("/accounts", query_string={"limit": "1"}).get_json()["next_cursor"]
    other_list = shared.get("/transactions", query_string={"cursor": cursor})
    assert_field_problem(other_list, 422, "validation", "cursor")


def test_patch_renames_and_archives(books: Books) -> None:
    acct = books.accounts["6000"]
    r = books.call("PATCH", f"/accounts/{acct}", json={"name": "Overheads"})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["name"] == "Overheads"
    assert r.get_json()["archived"] is False
    r = books.call("PATCH", f"/accounts/{acct}", json={"archived": True})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["archived"] is True
    assert r.get_json()["name"] == "Overheads"

    listed = books.get("/accounts?limit=200").get_json()["items"]
    assert acct in {a["id"] for a in listed}
    active = books.get("/accounts?limit=200&include_archived=false").get_json()["items"]
    assert acct not in {a["id"] for a in active}
    assert len(active) == len(DEFAULT_CHART) - 1

    r = books.call("PATCH", f"/accounts/{acct}", json={"archived": False})
    assert r.get_json()["archived"] is False


@pytest.mark.parametrize(
    ("body", "field"),
    [({"name": ""}, "name"), ({"archived": "maybe"}, "archived"), ({"code": "X1"}, "code")],
)
def test_patch_refuses_bad_fields(shared: Books, body: dict[str, Any], field: str) -> None:
    r = shared.call("PATCH", f"/accounts/{shared.accounts['6000']}", json=body)
    assert_field_problem(r, 422, "validation", field)


def test_an_archived_account_refuses_new_entries(books: Books) -> None:
    books.post([("1000", 500), ("6000", -500)])
    books.call("PATCH", f"/accounts/{books.accounts['6000']}", json={"archived": True})
    r = books.call(
        "POST",
        "/transactions",
        json={
            "description": "to an archived account",
            "entries": [
                {"account_id": books.accounts["1000"], "amount": 100, "currency": "USD"},
                {"account_id": books.accounts["6000"], "amount": -100, "currency": "USD"},
            ],
        },
    )
    body = assert_field_problem(r, 422, "validation", "entries.1.account_id")
    assert "archived" in body["errors"]["entries.1.account_id"][0]
    # its history and balance stay readable
    assert books.balance("6000")["posted"] == -500


def test_another_tenants_account_is_not_found(
    books: Books, client: Any, ops_headers: dict[str, str]
) -> None:
    other = make_tenant(client, ops_headers)
    acct = books.accounts["1000"]
    for method, path, body in [
        ("GET", f"{ACCOUNTS}/{acct}", None),
        ("PATCH", f"{ACCOUNTS}/{acct}", {"name": "Mine now"}),
        ("GET", f"{ACCOUNTS}/{acct}/balance", None),
        ("GET", f"{ACCOUNTS}/{acct}/entries", None),
    ]:
        r = client.open(path, method=method, json=body, headers=other.headers)
        assert_problem(r, 404, "not-found")
    assert books.get(f"/accounts/{acct}").get_json()["name"] == "Cash"


def test_unknown_and_malformed_account_ids(books: Books) -> None:
    assert_problem(books.get(f"/accounts/{uuid.uuid4()}"), 404, "not-found")
    assert_problem(books.get(f"/accounts/{uuid.uuid4()}/balance"), 404, "not-found")
    assert_field_problem(books.get("/accounts/nope"), 422, "validation", "account_id")


def test_one_retained_earnings_account_per_currency(books: Books) -> None:
    r = _create(books, code="3101", type="equity", role="retained_earnings")
    body = assert_field_problem(r, 409, "conflict", "role")
    assert "3101" not in body["detail"]
    r = _create(books, code="3102", type="equity", role="retained_earnings", currency="EUR")
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["role"] == "retained_earnings"


def test_a_guarded_account_never_goes_below_zero(books: Books, owner_engine: Engine) -> None:
    r = _create(books, code="1300", name="Wallet", guard="non_negative")
    books.accounts["1300"] = r.get_json()["id"]
    books.post([("1300", 1000), ("3000", -1000)])
    hold = books.post([("6000", 600), ("1300", -600)], status="pending")
    before = counts(owner_engine, books.tenant.id)
    r = books.call(
        "POST",
        "/transactions",
        json={
            "description": "too much",
            "entries": [
                {"account_id": books.accounts["6000"], "amount": 500, "currency": "USD"},
                {"account_id": books.accounts["1300"], "amount": -500, "currency": "USD"},
            ],
        },
    )
    assert_field_problem(r, 422, "insufficient-funds", "entries.1.amount")
    assert counts(owner_engine, books.tenant.id) == before
    assert books.call("POST", f"/transactions/{hold['id']}/void").status_code == 200
    books.post([("6000", 500), ("1300", -500)])
    books.post([("6000", 500), ("1300", -500)])
    books.post([("6000", 1), ("1300", -1)], expect=422)
    assert books.balance("1300")["posted"] == 0


def test_a_cursor_of_another_tenant_is_refused(
    books: Books, client: Any, ops_headers: dict[str, str]
) -> None:
    cursor = books.get("/accounts", query_string={"limit": "2"}).get_json()["next_cursor"]
    other = make_tenant(client, ops_headers)
    r = client.get(ACCOUNTS, query_string={"limit": "2", "cursor": cursor}, headers=other.headers)
    assert_field_problem(r, 422, "validation", "cursor")
