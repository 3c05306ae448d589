"""Several currencies: each balances on its own; FX goes through trading accounts."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from tests.core.helpers import assert_problem
from tests.ledger.checks import assert_field_problem, counts
from tests.ledger.conftest import Books


def _account(books: Books, code: str, name: str, type_: str, currency: str) -> str:
    body = {"code": code, "name": name, "type": type_, "currency": currency}
    r = books.call("POST", "/accounts", json=body)
    assert r.status_code == 201, r.get_json()
    books.accounts[code] = r.get_json()["id"]
    return str(r.get_json()["id"])


@pytest.fixture
def fx(books: Books) -> Books:
    """The default USD chart plus EUR cash and a trading (equity) account per currency."""
    _account(books, "1050", "Cash EUR", "asset", "EUR")
    _account(books, "4050", "Sales EUR", "revenue", "EUR")
    _account(books, "3900", "FX trading USD", "equity", "USD")
    _account(books, "3950", "FX trading EUR", "equity", "EUR")
    return books


def _post(books: Books, lines: list[tuple[str, int, str]], **extra: Any) -> Any:
    body = {
        "description": "fx",
        "entries": [
            {"account_id": books.accounts[code], "amount": amount, "currency": currency}
            for code, amount, currency in lines
        ],
        **extra,
    }
    return books.call("POST", "/transactions", json=body)


def test_each_currency_summing_to_zero_is_accepted(fx: Books) -> None:
    r = _post(fx, [("1000", 500, "USD"), ("4000", -500, "USD"), ("1050", 300, "EUR"),
                   ("4050", -300, "EUR")])  # fmt: skip
    assert r.status_code == 201, r.get_json()
    eur = fx.balance("1050")
    assert (eur["posted"], eur["pending"], eur["currency"]) == (300, 0, "EUR")
    assert fx.balance("1000")["posted"] == 500


def test_summing_to_zero_only_overall_is_unbalanced(fx: Books, owner_engine: Engine) -> None:
    before = counts(owner_engine, fx.tenant.id)
    r = _post(fx, [("1000", 100, "USD"), ("4050", -100, "EUR")])
    body = assert_field_problem(r, 422, "unbalanced", "entries")
    assert "EUR" in body["detail"]
    assert "USD" in body["detail"]
    messages = " ".join(body["errors"]["entries"])
    assert "USD sums to 100" in messages
    assert "EUR sums to -100" in messages
    # one currency off, the other fine: only the wrong one is named
    r = _post(fx, [("1000", 100, "USD"), ("4000", -100, "USD"), ("1050", 5, "EUR"),
                   ("4050", -4, "EUR")])  # fmt: skip
    body = assert_field_problem(r, 422, "unbalanced", "entries")
    assert "EUR" in body["detail"]
    assert "USD" not in body["detail"]
    assert counts(owner_engine, fx.tenant.id) == before


def test_fx_through_trading_accounts_balances_per_currency(fx: Books) -> None:
    # buy 900.00 EUR for 1,000.00 USD
    r = _post(fx, [("1050", 90_000, "EUR"), ("3950", -90_000, "EUR"), ("3900", 100_000, "USD"),
                   ("1000", -100_000, "USD")])  # fmt: skip
    assert r.status_code == 201, r.get_json()
    # a EUR sale
    assert _post(fx, [("1050", 20_000, "EUR"), ("4050", -20_000, "EUR")]).status_code == 201
    tb = fx.get("/reports/trial-balance").get_json()
    assert tb["totals"] == [
        {"currency": "EUR", "debit": 110_000, "credit": 110_000},
        {"currency": "USD", "debit": 100_000, "credit": 100_000},
    ]
    rows = {r["code"]: r for r in tb["rows"]}
    assert (rows["3950"]["credit"], rows["3950"]["currency"]) == (90_000, "EUR")
    assert (rows["3900"]["debit"], rows["3900"]["currency"]) == (100_000, "USD")
    sheet = fx.get("/reports/balance-sheet").get_json()
    assert {t["currency"]: t["balanced"] for t in sheet["totals"]} == {"EUR": True, "USD": True}
    eur = next(t for t in sheet["totals"] if t["currency"] == "EUR")
    assert (eur["assets"], eur["equity"], eur["current_earnings"]) == (110_000, 90_000, 20_000)
    income = fx.get(
        "/reports/income-statement",
        query_string={"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"},
    ).get_json()
    assert income["totals"] == [
        {"currency": "EUR", "revenue": 20_000, "expenses": 0, "net_income": 20_000},
        {"currency": "USD", "revenue": 0, "expenses": 0, "net_income": 0},
    ]


def test_an_entry_in_another_currency_than_its_account_is_refused(
    fx: Books, owner_engine: Engine
) -> None:
    before = counts(owner_engine, fx.tenant.id)
    r = _post(fx, [("1000", 100, "USD"), ("4000", -100, "USD"), ("1050", 100, "USD"),
                   ("3900", -100, "USD")])  # fmt: skip
    body = assert_field_problem(r, 422, "validation", "entries.2.currency")
    assert "EUR" in body["errors"]["entries.2.currency"][0]
    assert counts(owner_engine, fx.tenant.id) == before


def test_a_eur_tenant_can_keep_usd_accounts(client: Any, ops_headers: dict[str, str]) -> None:
    from tests.ledger.conftest import open_books

    eur = open_books(client, ops_headers, currency="EUR")
    _account(eur, "1060", "Cash USD", "asset", "USD")
    r = _post(eur, [("1000", 100, "EUR"), ("4000", -100, "EUR"), ("1060", 7, "USD")])
    assert_problem(r, 422, "unbalanced")
    r = _post(eur, [("1060", 7, "USD"), ("1000", -7, "USD")])
    assert_field_problem(r, 422, "validation", "entries.1.currency")


def test_year_end_closes_each_currency_into_its_own_retained_earnings(fx: Books) -> None:
    at = {"effective_at": "2024-05-01T00:00:00Z"}
    assert _post(fx, [("1050", 500, "EUR"), ("4050", -500, "EUR")], **at).status_code == 201
    assert _post(fx, [("1000", 200, "USD"), ("4000", -200, "USD")], **at).status_code == 201
    assert fx.call("POST", "/periods/2024-05/close").status_code == 200
    r = fx.call("POST", "/periods/2024-12/close")
    body = assert_field_problem(r, 422, "validation", "period")
    assert "EUR" in body["detail"]
    assert [p["period"] for p in fx.get("/periods").get_json()["items"]] == ["2024-05"]

    retained = {"role": "retained_earnings"}
    r = fx.call(
        "POST",
        "/accounts",
        json={
            "code": "3960",
            "name": "Retained EUR",
            "type": "equity",
            "currency": "EUR",
            **retained,
        },
    )
    assert r.status_code == 201, r.get_json()
    fx.accounts["3960"] = r.get_json()["id"]
    r = fx.call("POST", "/periods/2024-12/close")
    assert r.status_code == 200, r.get_json()
    closing = fx.get(f"/transactions/{r.get_json()['closing_transaction_id']}").get_json()
    by_id = {v: k for k, v in fx.accounts.items()}
    assert {(by_id[e["account_id"]], e["amount"], e["currency"]) for e in closing["entries"]} == {
        ("4050", 500, "EUR"),
        ("3960", -500, "EUR"),
        ("4000", 200, "USD"),
        ("3100", -200, "USD"),
    }
