from __future__ import annotations

from tests.ledger.conftest import Books


def test_post_and_balances(books: Books) -> None:
    tx = books.post([("1000", 2500), ("4000", -2500)])
    assert tx["status"] == "posted"
    assert tx["posted_at"]
    assert books.balance("1000")["posted"] == 2500
    assert books.balance("4000")["posted"] == -2500
    pend = books.post([("6000", 700), ("1000", -700)], status="pending")
    assert books.balance("1000")["pending"] == -700
    r = books.call("POST", f"/transactions/{pend['id']}/post", json={"amount": 500})
    assert r.status_code == 200, r.get_json()
    assert books.balance("1000")["posted"] == 2000
    assert books.balance("1000")["pending"] == 0
    r = books.call("POST", f"/transactions/{tx['id']}/reverse", json={})
    assert r.status_code == 201, r.get_json()
    assert books.balance("4000")["posted"] == 0
    r = books.call("POST", f"/transactions/{tx['id']}/reverse", json={})
    assert r.status_code == 409
    tb = books.get("/reports/trial-balance").get_json()
    assert tb["totals"][0]["debit"] == tb["totals"][0]["credit"]
    bs = books.get("/reports/balance-sheet").get_json()
    assert all(t["balanced"] for t in bs["totals"])
    csv = books.get("/reports/trial-balance", headers={"Accept": "text/csv"})
    assert csv.mimetype == "text/csv"
    assert csv.get_data(as_text=True).startswith("code,")
