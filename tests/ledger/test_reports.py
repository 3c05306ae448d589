"""Reports: trial balance, balance sheet and income statement, as JSON and as CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from erp.http import ErpFlask
from tests.ledger.checks import assert_field_problem
from tests.ledger.conftest import Books, open_books

MARCH = {"from": "2024-03-01T00:00:00Z", "to": "2024-04-01T00:00:00Z"}


@pytest.fixture(scope="module")
def shared(app: ErpFlask, ops_headers: dict[str, str]) -> Books:
    """One tenant for the tests that are refused."""
    return open_books(app.test_client(), ops_headers)


@pytest.fixture
def trading(books: Books) -> Books:
    """A small business's spring: investment, stock, a sale and its cost, rent."""
    books.post([("1010", 500_000), ("3000", -500_000)], effective_at="2024-02-01T00:00:00Z")
    books.post([("1200", 120_000), ("2000", -120_000)], effective_at="2024-02-15T00:00:00Z")
    books.post(
        [("1100", 34_500), ("4000", -30_000), ("2100", -4_500)],
        effective_at=MARCH["from"],  # on `from`: in March
    )
    books.post([("5000", 18_000), ("1200", -18_000)], effective_at="2024-03-10T00:00:00Z")
    books.post([("6000", 80_000), ("1010", -80_000)], effective_at="2024-03-31T23:59:59Z")
    books.post([("1000", 999), ("4000", -999)], effective_at=MARCH["to"])  # on `to`: April
    books.post([("6000", 7_500), ("1010", -7_500)], status="pending")  # never in reports
    return books


def _csv(books: Books, path: str, **query: str) -> list[list[str]]:
    r = books.get(path, headers={"Accept": "text/csv"}, query_string=query)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.mimetype == "text/csv"
    assert "attachment" in r.headers["Content-Disposition"]
    return list(csv.reader(io.StringIO(r.get_data(as_text=True))))


def _by_code(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["code"]: r for r in rows}


def test_trial_balance(trading: Books) -> None:
    tb = trading.get("/reports/trial-balance").get_json()
    rows = _by_code(tb["rows"])
    assert set(rows) == set(trading.accounts)  # every account, zero or not
    for row in tb["rows"]:
        assert set(row) == {"account_id", "code", "name", "type", "currency", "debit", "credit"}
        assert isinstance(row["debit"], int)
        assert isinstance(row["credit"], int)
        assert row["debit"] >= 0
        assert row["credit"] >= 0
        assert row["debit"] == 0 or row["credit"] == 0
        assert row["account_id"] == trading.accounts[row["code"]]
    assert rows["1010"] == {**rows["1010"], "debit": 420_000, "credit": 0, "type": "asset"}
    assert (rows["3000"]["debit"], rows["3000"]["credit"]) == (0, 500_000)
    assert (rows["4000"]["debit"], rows["4000"]["credit"]) == (0, 30_999)
    assert (rows["1000"]["debit"], rows["1000"]["credit"]) == (999, 0)
    assert rows["3100"]["debit"] == rows["3100"]["credit"] == 0
    assert tb["totals"] == [{"currency": "USD", "debit": 655_499, "credit": 655_499}]
    assert sum(r["debit"] for r in tb["rows"]) == sum(r["credit"] for r in tb["rows"]) == 655_499

    march = trading.get("/reports/trial-balance", query_string={"as_of": "2024-03-31T23:59:59Z"})
    assert march.get_json()["totals"] == [{"currency": "USD", "debit": 654_500, "credit": 654_500}]
    early = trading.get("/reports/trial-balance", query_string={"as_of": "2024-01-01T00:00:00Z"})
    assert early.get_json()["totals"] == [{"currency": "USD", "debit": 0, "credit": 0}]


def test_trial_balance_leaves_out_archived_accounts_with_nothing_on_them(trading: Books) -> None:
    for code in ("1000", "3100"):  # 1000 holds 999; 3100 holds nothing
        trading.call("PATCH", f"/accounts/{trading.accounts[code]}", json={"archived": True})
    codes = {r["code"] for r in trading.get("/reports/trial-balance").get_json()["rows"]}
    assert "1000" in codes
    assert "3100" not in codes


def test_balance_sheet(trading: Books) -> None:
    sheet = trading.get("/reports/balance-sheet", query_string={"as_of": "2024-03-31T23:59:59Z"})
    body = sheet.get_json()
    amounts = {
        section: {r["code"]: r["amount"] for r in body[section] if r["amount"]}
        for section in ("assets", "liabilities", "equity")
    }
    assert amounts == {
        "assets": {"1010": 420_000, "1100": 34_500, "1200": 102_000},
        "liabilities": {"2000": 120_000, "2100": 4_500},
        "equity": {"3000": 500_000},
    }
    assert body["totals"] == [
        {
            "currency": "USD",
            "assets": 556_500,
            "liabilities": 124_500,
            "equity": 500_000,
            "current_earnings": -68_000,
            "liabilities_and_equity": 556_500,
            "balanced": True,
        }
    ]
    now = trading.get("/reports/balance-sheet").get_json()["totals"][0]
    assert now["assets"] == now["liabilities_and_equity"] == 557_499
    assert now["balanced"] is True


def test_income_statement_over_a_half_open_range(trading: Books) -> None:
    body = trading.get("/reports/income-statement", query_string=MARCH).get_json()
    assert [(r["code"], r["amount"]) for r in body["revenue"]] == [("4000", 30_000)]
    # 5100 (inventory adjustments, a default account since inventory) has no entries
    assert {r["code"]: r["amount"] for r in body["expenses"]} == {
        "5000": 18_000,
        "5100": 0,
        "6000": 80_000,
    }
    assert body["totals"] == [
        {"currency": "USD", "revenue": 30_000, "expenses": 98_000, "net_income": -68_000}
    ]
    april = {"from": MARCH["to"], "to": "2024-05-01T00:00:00Z"}
    body = trading.get("/reports/income-statement", query_string=april).get_json()
    assert body["totals"] == [{"currency": "USD", "revenue": 999, "expenses": 0, "net_income": 999}]


def test_reports_as_csv(trading: Books) -> None:
    tb = _csv(trading, "/reports/trial-balance")
    assert tb[0] == ["code", "name", "type", "currency", "debit", "credit"]
    assert len(tb) == 1 + len(trading.accounts) + 1
    assert ["1010", "Bank", "asset", "USD", "420000", "0"] in tb
    assert tb[-1] == ["TOTAL", "", "", "USD", "655499", "655499"]

    sheet = _csv(trading, "/reports/balance-sheet", as_of="2024-03-31T23:59:59Z")
    assert sheet[0] == ["section", "code", "name", "currency", "amount"]
    assert ["assets", "1010", "Bank", "USD", "420000"] in sheet
    assert ["equity", "3000", "Owner's equity", "USD", "500000"] in sheet
    assert sheet[-3:] == [
        ["current_earnings", "", "", "USD", "-68000"],
        ["total_assets", "", "", "USD", "556500"],
        ["total_liabilities_and_equity", "", "", "USD", "556500"],
    ]

    income = _csv(trading, "/reports/income-statement", **MARCH)
    assert income == [
        ["section", "code", "name", "currency", "amount"],
        ["revenue", "4000", "Sales revenue", "USD", "30000"],
        ["expenses", "5000", "Cost of goods sold", "USD", "18000"],
        ["expenses", "5100", "Inventory adjustments", "USD", "0"],
        ["expenses", "6000", "Operating expenses", "USD", "80000"],
        ["net_income", "", "", "USD", "-68000"],
    ]
    # without the Accept header, JSON
    r = trading.get("/reports/income-statement", query_string=MARCH)
    assert r.mimetype == "application/json"


@pytest.mark.parametrize("name", ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\tx"])
def test_csv_defuses_formulas_in_names(books: Books, name: str) -> None:
    r = books.call(
        "POST",
        "/accounts",
        json={"code": "6900", "name": name, "type": "expense", "currency": "USD"},
    )
    assert r.status_code == 201, r.get_json()
    books.accounts["6900"] = r.get_json()["id"]
    books.post([("6900", 100), ("1000", -100)], effective_at="2024-03-02T00:00:00Z")
    assert r.get_json()["name"] == name  # stored and served as JSON unchanged
    for path, query in [
        ("/reports/trial-balance", {}),
        ("/reports/income-statement", MARCH),
    ]:
        [row] = [row for row in _csv(books, path, **query) if "6900" in row]
        assert "'" + name in row
        assert name not in row


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/reports/trial-balance", {"as_of": "yesterday"}, "as_of"),
        ("/reports/trial-balance", {"as_of": "2024-03-01T00:00:00"}, "as_of"),
        ("/reports/balance-sheet", {"as_of": "2024-02-30T00:00:00Z"}, "as_of"),
        ("/reports/income-statement", {"to": MARCH["to"]}, "from"),
        ("/reports/income-statement", {"from": MARCH["from"]}, "to"),
        ("/reports/income-statement", {**MARCH, "from": "March"}, "from"),
        ("/reports/income-statement", {**MARCH, "to": "2024-04-01"}, "to"),
        ("/reports/income-statement", {"from": MARCH["to"], "to": MARCH["from"]}, "to"),
        ("/reports/income-statement", {"from": MARCH["from"], "to": MARCH["from"]}, "to"),
    ],
)
def test_reports_refuse_bad_times(
    shared: Books, path: str, query: dict[str, str], field: str
) -> None:
    for accept in ("application/json", "text/csv"):
        r = shared.get(path, query_string=query, headers={"Accept": accept})
        assert_field_problem(r, 422, "validation", field)
