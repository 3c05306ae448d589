"""An order's steps (API.md, Orders: Steps): cancel, fulfil, pay, return — each rule,
each 409/422 with nothing half done, the postings and their rounding, Idempotency-Key,
and two steps racing on one order."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from erp.http import ErpFlask
from tests.conftest import AppFactory
from tests.ledger.helpers_concurrency import request, serve, together
from tests.orders.placement_support import ORDERS, Shop, new_shop, order_body


@pytest.fixture
def shop(client: Any, ops_headers: dict[str, str], app_url: str) -> Shop:
    return new_shop(client, ops_headers, app_url)


def place(shop: Shop, *lines: dict[str, Any], **extra: Any) -> dict[str, Any]:
    r = shop.post(ORDERS, order_body(*lines, **extra))
    assert r.status_code == 201, r.get_json()
    order: dict[str, Any] = r.get_json()
    return order


def events(shop: Shop, event_type: str) -> list[Any]:
    return [
        row[0]
        for row in shop.rows(
            "SELECT payload FROM webhooks.outbox_events WHERE event_type = %s ORDER BY occurred_at",
            event_type,
        )
    ]


def step_rows(shop: Shop) -> dict[str, int]:
    """What a step writes, to show a refused one wrote nothing."""
    return {
        t: shop.count(t)
        for t in (
            "orders.fulfilments",
            "orders.fulfilment_lines",
            "orders.payments",
            "orders.returns",
            "orders.return_lines",
            "inventory.stock_moves",
            "ledger.transactions",
            "webhooks.outbox_events",
        )
    }


# -- cancel ----------------------------------------------------------------------------


def test_cancel_releases_the_open_units_and_announces_it(shop: Shop) -> None:
    mug, _ = shop.item(stock=10)
    order = place(shop, {"item_id": mug, "quantity": 3, "unit_price": 1000})
    assert shop.level(mug) == (10, 3)
    r = shop.post(f"{ORDERS}/{order['id']}/cancel", {"reason": "changed mind"})
    assert r.status_code == 200, r.get_json()
    got = r.get_json()
    assert got["status"] == "cancelled"
    assert got["lines"][0]["cancelled"] == 3
    assert (got["subtotal"], got["tax"], got["total"], got["balance_due"]) == (0, 0, 0, 0)
    assert shop.level(mug) == (10, 0)
    assert events(shop, "order.cancelled") == [got]
    again = shop.post(f"{ORDERS}/{order['id']}/cancel", {})
    assert again.status_code == 409
    assert again.get_json()["type"].endswith("conflict")
    assert len(events(shop, "order.cancelled")) == 1


def test_cancel_of_an_unknown_order_is_404(shop: Shop) -> None:
    r = shop.post(f"{ORDERS}/{uuid.uuid4()}/cancel", {})
    assert r.status_code == 404


# -- helpers for the books -------------------------------------------------------------


def role_balance(shop: Shop, role: str, currency: str = "USD") -> int:
    value = shop.one(
        "SELECT coalesce(sum(e.amount), 0) FROM ledger.entries e"
        " JOIN ledger.accounts a ON a.id = e.account_id WHERE a.role = %s AND a.currency = %s",
        role,
        currency,
    )
    return int(value)


def fulfil(shop: Shop, order_id: str, *lines: tuple[str, int], status: int = 201) -> Any:
    r = shop.post(
        f"{ORDERS}/{order_id}/fulfilments",
        {"lines": [{"line_id": lid, "quantity": q} for lid, q in lines]},
    )
    assert r.status_code == status, r.get_json()
    return r.get_json()


def get_order(shop: Shop, order_id: str) -> dict[str, Any]:
    r = shop.client.get(f"{ORDERS}/{order_id}", headers=shop.tenant.headers)
    assert r.status_code == 200
    data: dict[str, Any] = r.get_json()
    return data


# -- fulfil ----------------------------------------------------------------------------


def test_fulfilment_issues_stock_and_posts_one_transaction(shop: Shop) -> None:
    mug, _ = shop.item(stock=10)  # at 100 each
    shop.tax_rate("T20", 200_000)
    order = place(
        shop,
        {"item_id": mug, "quantity": 3, "unit_price": 1000, "tax_code": "T20"},
        shipping={"amount": 500, "tax_code": "T20"},
    )
    line = order["lines"][0]["id"]
    f = fulfil(shop, order["id"], (line, 1))
    assert list(f) == ["id", "order_id", "lines", "transaction_id", "created_at"]
    assert f["lines"][0]["quantity"] == 1
    assert f["lines"][0]["cost"] == 100
    assert shop.level(mug) == (9, 2)
    got = get_order(shop, order["id"])
    assert got["status"] == "partially_fulfilled"
    assert got["lines"][0]["fulfilled"] == 1
    # 1/3 of 3000 + 600 tax, and the whole shipping 500 + 100
    assert role_balance(shop, "accounts_receivable") == 1000 + 200 + 600
    assert role_balance(shop, "sales_revenue") == -1500
    assert role_balance(shop, "sales_tax_payable") == -300
    assert role_balance(shop, "cost_of_goods_sold") == 100
    tx = shop.rows("SELECT metadata FROM ledger.transactions WHERE id = %s", f["transaction_id"])
    assert tx[0][0] == {"order_id": order["id"], "fulfilment_id": f["id"]}
    fulfil(shop, order["id"], (line, 2))
    got = get_order(shop, order["id"])
    assert got["status"] == "fulfilled"
    assert role_balance(shop, "accounts_receivable") == got["total"] == 3000 + 600 + 600
    assert role_balance(shop, "cost_of_goods_sold") == 300
    assert shop.level(mug) == (7, 0)
    evs = events(shop, "order.fulfilled")
    assert len(evs) == 2
    assert evs[1]["status"] == "fulfilled"
    assert "fulfilment" in evs[1]
    listed = shop.client.get(f"{ORDERS}/{order['id']}/fulfilments", headers=shop.tenant.headers)
    assert [x["id"] for x in listed.get_json()["items"]][1] == f["id"]


def slug(r: Any) -> str:
    return str(r.get_json()["type"]).rsplit("/", 1)[-1]


def test_partial_fulfilments_book_cumulative_shares_and_a_whole_line_its_totals(
    shop: Shop,
) -> None:
    mug, _ = shop.item(stock=10)
    shop.tax_rate("T7", 70_000)
    # subtotal 1000, tax 70: thirds of them round 333/23, 667/47, then the rest
    order = place(shop, {"item_id": mug, "quantity": 3, "unit_price": 1000, "discount": 2000,
                         "tax_code": "T7"})  # fmt: skip
    line = order["lines"][0]["id"]
    booked = []
    for _ in range(3):
        fulfil(shop, order["id"], (line, 1))
        booked.append(
            (-role_balance(shop, "sales_revenue"), -role_balance(shop, "sales_tax_payable"))
        )
    assert booked == [(333, 23), (667, 47), (1000, 70)]
    assert role_balance(shop, "accounts_receivable") == 1070


def test_a_refused_fulfilment_writes_nothing(shop: Shop) -> None:
    mug, _ = shop.item(stock=5)
    order = place(shop, {"item_id": mug, "quantity": 2, "unit_price": 100})
    line = order["lines"][0]["id"]
    before, level = step_rows(shop), shop.level(mug)
    r = shop.post(
        f"{ORDERS}/{order['id']}/fulfilments", {"lines": [{"line_id": line, "quantity": 3}]}
    )
    assert r.status_code == 422
    assert r.get_json()["errors"] == {"lines.0.quantity": ["3 requested, 2 open."]}
    r = shop.post(
        f"{ORDERS}/{order['id']}/fulfilments",
        {"lines": [{"line_id": str(uuid.uuid4()), "quantity": 1}]},
    )
    assert r.status_code == 422
    assert "lines.0.line_id" in r.get_json()["errors"]
    r = shop.post(
        f"{ORDERS}/{order['id']}/fulfilments",
        {"lines": [{"line_id": line, "quantity": 1}, {"line_id": line, "quantity": 1}]},
    )
    assert r.status_code == 422
    assert "lines.1.line_id" in r.get_json()["errors"]
    r = shop.post(
        f"{ORDERS}/{order['id']}/fulfilments", {"lines": [{"line_id": line, "quantity": 0}]}
    )
    assert r.status_code == 422
    r = shop.post(
        f"{ORDERS}/{uuid.uuid4()}/fulfilments", {"lines": [{"line_id": line, "quantity": 1}]}
    )
    assert r.status_code == 404
    assert step_rows(shop) == before
    assert shop.level(mug) == level
    assert get_order(shop, order["id"])["lines"][0]["fulfilled"] == 0


def test_fulfilling_a_cancelled_or_fulfilled_order_is_409(shop: Shop) -> None:
    mug, _ = shop.item(stock=5)
    a = place(shop, {"item_id": mug, "quantity": 1, "unit_price": 100})
    fulfil(shop, a["id"], (a["lines"][0]["id"], 1))
    fulfil(shop, a["id"], (a["lines"][0]["id"], 1), status=409)
    assert shop.post(f"{ORDERS}/{a['id']}/cancel", {}).status_code == 409
    b = place(shop, {"item_id": mug, "quantity": 1, "unit_price": 100})
    assert shop.post(f"{ORDERS}/{b['id']}/cancel", {}).status_code == 200
    r = fulfil(shop, b["id"], (b["lines"][0]["id"], 1), status=409)
    assert r["type"].endswith("conflict")


def test_backordered_units_ship_from_available_stock_or_409(shop: Shop) -> None:
    mug, _ = shop.item(stock=2)
    channel = shop.channel("backorder")
    order = place(shop, {"item_id": mug, "quantity": 5, "unit_price": 100}, channel_id=channel)
    line = order["lines"][0]["id"]
    assert order["lines"][0]["backordered"] == 3
    before, level = step_rows(shop), shop.level(mug)
    r = shop.post(
        f"{ORDERS}/{order['id']}/fulfilments", {"lines": [{"line_id": line, "quantity": 3}]}
    )
    assert r.status_code == 409, r.get_json()
    assert slug(r) == "insufficient-stock"
    assert "lines.0.quantity" in r.get_json()["errors"]
    assert step_rows(shop) == before
    assert shop.level(mug) == level
    shop.receive(mug, 2)  # 4 on hand, 2 reserved
    f = fulfil(shop, order["id"], (line, 3))  # 2 reserved + 1 from available
    assert sorted(ln["quantity"] for ln in f["lines"]) == [1, 2]
    assert shop.level(mug) == (1, 0)
    got = get_order(shop, order["id"])
    assert (got["lines"][0]["fulfilled"], got["lines"][0]["backordered"]) == (3, 2)
    assert role_balance(shop, "cost_of_goods_sold") == 300
    cancelled = shop.post(f"{ORDERS}/{order['id']}/cancel", {}).get_json()
    assert cancelled["lines"][0]["cancelled"] == 2
    assert (cancelled["subtotal"], cancelled["total"]) == (300, 300)
    assert shop.level(mug) == (1, 0)


def test_cancelling_a_partly_fulfilled_order_keeps_the_shipped_share(shop: Shop) -> None:
    mug, _ = shop.item(stock=10)
    shop.tax_rate("T9", 90_000)
    order = place(
        shop,
        {"item_id": mug, "quantity": 3, "unit_price": 333, "tax_code": "T9"},
        shipping={"amount": 100},
    )
    fulfil(shop, order["id"], (order["lines"][0]["id"], 1))
    got = shop.post(f"{ORDERS}/{order['id']}/cancel", {"reason": "late"}).get_json()
    assert got["status"] == "cancelled"
    assert got["lines"][0]["cancelled"] == 2
    # line 999 / tax 90: a third is 333 / 30; shipping (booked) stays
    assert (got["subtotal"], got["tax"], got["total"]) == (433, 30, 463)
    assert got["balance_due"] == role_balance(shop, "accounts_receivable") == 463
    assert shop.level(mug) == (9, 0)
    unshipped = place(
        shop, {"item_id": mug, "quantity": 1, "unit_price": 50}, shipping={"amount": 100}
    )
    got = shop.post(f"{ORDERS}/{unshipped['id']}/cancel", {}).get_json()
    assert (got["total"], got["balance_due"]) == (0, 0)


# -- pay -------------------------------------------------------------------------------


def pay(shop: Shop, order_id: str, amount: int, status: int = 201, **extra: Any) -> Any:
    r = shop.post(f"{ORDERS}/{order_id}/payments", {"amount": amount, "method": "card", **extra})
    assert r.status_code == status, r.get_json()
    return r.get_json()


def test_payments_refunds_and_their_limits(shop: Shop) -> None:
    mug, _ = shop.item(stock=10)
    order = place(shop, {"item_id": mug, "quantity": 2, "unit_price": 1000})
    oid = order["id"]
    before = step_rows(shop)
    assert pay(shop, oid, 2001, 422)["errors"].keys() == {"amount"}
    assert pay(shop, oid, 0, 422)["errors"].keys() == {"amount"}
    assert pay(shop, oid, -1, 422)["errors"].keys() == {"amount"}
    assert step_rows(shop) == before
    p = pay(shop, oid, 1500, reference="ch_1")
    assert list(p) == ["id", "order_id", "amount", "currency", "method", "account_id",
                       "reference", "transaction_id", "created_at"]  # fmt: skip
    assert (p["amount"], p["currency"], p["reference"]) == (1500, "USD", "ch_1")
    # paid before shipping: the receivable shows a credit
    assert role_balance(shop, "accounts_receivable") == -1500
    assert role_balance(shop, "cash") == 1500
    got = shop.post(f"{ORDERS}/{oid}/cancel", {}).get_json()
    assert (got["total"], got["paid"], got["balance_due"]) == (0, 1500, -1500)
    pay(shop, oid, -1501, 422)
    pay(shop, oid, 1, 422)
    pay(shop, oid, -1000)
    pay(shop, oid, -500)
    got = get_order(shop, oid)
    assert (got["paid"], got["balance_due"]) == (0, 0)
    assert role_balance(shop, "accounts_receivable") == 0
    assert len(events(shop, "order.paid")) == 3
    listed = shop.client.get(f"{ORDERS}/{oid}/payments", headers=shop.tenant.headers).get_json()
    assert [x["amount"] for x in listed["items"]] == [-500, -1000, 1500]


def test_a_payment_to_another_account_and_bad_accounts(shop: Shop) -> None:
    mug, _ = shop.item(stock=1)
    order = place(shop, {"item_id": mug, "quantity": 1, "unit_price": 1000})
    accounts = {}
    for code, currency in (("1015", "USD"), ("1016", "EUR")):
        body = {"code": code, "name": f"Bank {currency}", "type": "asset", "currency": currency}
        r = shop.post("/api/v1/ledger/accounts", body)
        assert r.status_code == 201, r.get_json()
        accounts[currency] = r.get_json()["id"]
    assert "account_id" in pay(shop, order["id"], 10, 422, account_id=str(uuid.uuid4()))["errors"]
    assert "account_id" in pay(shop, order["id"], 10, 422, account_id=accounts["EUR"])["errors"]
    p = pay(shop, order["id"], 10, account_id=accounts["USD"], method="bank_transfer")
    assert (p["account_id"], p["method"]) == (accounts["USD"], "bank_transfer")
    assert role_balance(shop, "accounts_receivable") == -10


# -- return ----------------------------------------------------------------------------


def give_back(shop: Shop, order_id: str, *lines: tuple[str, int], status: int = 201,
              **extra: Any) -> Any:  # fmt: skip
    body = {
        "lines": [{"line_id": lid, "quantity": q} for lid, q in lines],
        "restock": True,
        **extra,
    }
    r = shop.post(f"{ORDERS}/{order_id}/returns", body)
    assert r.status_code == status, r.get_json()
    return r.get_json()


def test_returns_credit_the_units_and_restock_them_at_their_issue_cost(shop: Shop) -> None:
    mug, _ = shop.item(stock=3)  # 300 of value at 100 each
    shop.tax_rate("T7", 70_000)
    order = place(shop, {"item_id": mug, "quantity": 3, "unit_price": 1000, "discount": 2000,
                         "tax_code": "T7"})  # fmt: skip
    oid, line = order["id"], order["lines"][0]["id"]
    before = step_rows(shop)
    assert give_back(shop, oid, (line, 1), status=409)["type"].endswith("conflict")
    assert step_rows(shop) == before
    fulfil(shop, oid, (line, 2))
    assert "lines.0.quantity" in give_back(shop, oid, (line, 3), status=422)["errors"]
    back = give_back(shop, oid, (line, 1), reason="broken")
    assert list(back) == ["id", "order_id", "lines", "restock", "location_id", "reason",
                          "transaction_id", "created_at"]  # fmt: skip
    assert back["lines"][0]["cost"] == 100
    assert back["location_id"] == str(shop.main)
    assert shop.level(mug) == (2, 1)
    assert role_balance(shop, "cost_of_goods_sold") == 100
    got = get_order(shop, oid)
    assert got["lines"][0]["returned"] == 1
    assert got["credited"] == 333 + 23  # the first third of 1000 / 70
    assert role_balance(shop, "accounts_receivable") == 667 + 47 - 356
    assert "location_id" in give_back(shop, oid, (line, 1), status=422,
                                      location_id=str(uuid.uuid4()))["errors"]  # fmt: skip
    gone = give_back(shop, oid, (line, 1), restock=False)
    assert gone["lines"][0]["move_id"] is None
    assert shop.level(mug) == (2, 1)
    assert role_balance(shop, "cost_of_goods_sold") == 100
    assert get_order(shop, oid)["credited"] == 667 + 47
    assert give_back(shop, oid, (line, 1), status=422)["errors"]
    assert len(events(shop, "order.returned")) == 2
    listed = shop.client.get(f"{ORDERS}/{oid}/returns", headers=shop.tenant.headers).get_json()
    assert [x["id"] for x in listed["items"]] == [gone["id"], back["id"]]


# -- idempotency and races ---------------------------------------------------------------


def test_a_step_with_an_idempotency_key_happens_once(shop: Shop) -> None:
    mug, _ = shop.item(stock=5)
    order = place(shop, {"item_id": mug, "quantity": 2, "unit_price": 100})
    body = {"lines": [{"line_id": order["lines"][0]["id"], "quantity": 1}]}
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    first = shop.post(f"{ORDERS}/{order['id']}/fulfilments", body, key)
    again = shop.post(f"{ORDERS}/{order['id']}/fulfilments", body, key)
    assert first.status_code == again.status_code == 201
    assert first.get_json() == again.get_json()
    assert shop.count("orders.fulfilments") == 1
    assert shop.level(mug) == (4, 1)
    pkey = {"Idempotency-Key": f"p-{uuid.uuid4()}"}
    for _ in range(2):
        r = shop.post(f"{ORDERS}/{order['id']}/payments", {"amount": 50, "method": "cash"}, pkey)
        assert r.status_code == 201
    assert get_order(shop, order["id"])["paid"] == 50


RACERS = 4


@pytest.fixture
def racing_app(make_app: AppFactory) -> Iterator[ErpFlask]:
    app = make_app(db_pool_size=2, db_max_overflow=RACERS + 4, db_pool_timeout=60)
    yield app
    from erp.extensions import db

    with app.app_context():
        db.dispose()


def test_steps_racing_on_one_order_never_double_fulfil(shop: Shop, racing_app: ErpFlask) -> None:
    mug, _ = shop.item(stock=10)
    order = place(shop, {"item_id": mug, "quantity": 2, "unit_price": 100})
    body = {"lines": [{"line_id": order["lines"][0]["id"], "quantity": 2}]}
    path = f"{ORDERS}/{order['id']}/fulfilments"
    with serve(racing_app) as url:
        replies = together(RACERS, lambda _i: request(url, "POST", path, body, shop.tenant.headers))
    assert Counter(r.status for r in replies) == {201: 1, 409: RACERS - 1}, [
        r.body for r in replies
    ]
    assert shop.level(mug) == (8, 0)
    assert role_balance(shop, "accounts_receivable") == 200
    assert len(events(shop, "order.fulfilled")) == 1


# -- tenants ---------------------------------------------------------------------------


def test_another_tenants_order_is_404_to_every_step_and_list(
    shop: Shop, client: Any, ops_headers: dict[str, str], app_url: str
) -> None:
    mug, _ = shop.item(stock=5)
    order = place(shop, {"item_id": mug, "quantity": 2, "unit_price": 100})
    oid, line = order["id"], order["lines"][0]["id"]
    fulfil(shop, oid, (line, 1))
    other = new_shop(client, ops_headers, app_url)
    before = step_rows(shop)
    lines = {"lines": [{"line_id": line, "quantity": 1}]}
    for path, body in (
        ("cancel", {}),
        ("fulfilments", lines),
        ("payments", {"amount": 1, "method": "cash"}),
        ("returns", {**lines, "restock": True}),
    ):
        assert other.post(f"{ORDERS}/{oid}/{path}", body).status_code == 404, path
    for path in ("fulfilments", "payments", "returns"):
        r = other.client.get(f"{ORDERS}/{oid}/{path}", headers=other.tenant.headers)
        assert r.status_code == 404, path
    assert step_rows(shop) == before
    assert get_order(shop, oid)["lines"][0]["fulfilled"] == 1


def test_a_step_refused_on_its_last_line_undoes_the_first(shop: Shop) -> None:
    mug, _ = shop.item(stock=5)
    tee, _ = shop.item(stock=1)
    channel = shop.channel("backorder")
    order = place(
        shop,
        {"item_id": mug, "quantity": 2, "unit_price": 100},
        {"item_id": tee, "quantity": 3, "unit_price": 100},
        channel_id=channel,
    )
    first, second = (ln["id"] for ln in order["lines"])
    before, levels = step_rows(shop), (shop.level(mug), shop.level(tee))
    r = shop.post(
        f"{ORDERS}/{order['id']}/fulfilments",
        {"lines": [{"line_id": first, "quantity": 2}, {"line_id": second, "quantity": 3}]},
    )
    assert r.status_code == 409, r.get_json()
    assert list(r.get_json()["errors"]) == ["lines.1.quantity"]
    assert step_rows(shop) == before
    assert (shop.level(mug), shop.level(tee)) == levels
    got = get_order(shop, order["id"])
    assert [(ln["fulfilled"], ln["backordered"]) for ln in got["lines"]] == [(0, 0), (0, 2)]
    assert role_balance(shop, "accounts_receivable") == 0
