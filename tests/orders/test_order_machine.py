"""Property-based test of the order lifecycle through the API: a Hypothesis state
machine of place / fulfil / pay / cancel / return over two items (one short, ordered
through a backorder channel) and a handful of orders.

Each rule predicts from the order as GET answers it whether the step is accepted (201 /
200) or refused (409 / 422), and checks it. After every step: the trial balance
balances in every currency; the receivable account equals, order by order, what was
fulfilled less what was credited and paid (and the order's own `credited`, `paid`);
stock levels equal the moves and the held reservations; item values equal the
inventory account; the outbox holds exactly one order.* event per accepted step.
"""

from __future__ import annotations

from typing import Any

import psycopg
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.inventory.conftest import pinned
from tests.orders.placement_support import ORDERS, Shop, new_shop, order_body

SETTINGS = settings(
    max_examples=12,
    stateful_step_count=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
MAX_ORDERS = 5
order_ix = st.integers(min_value=0, max_value=MAX_ORDERS - 1)
quantities = st.integers(min_value=1, max_value=4)


class OrderMachine(RuleBasedStateMachine):
    client: Any = None
    app_url: str = ""
    ops_headers: dict[str, str] = {}

    def __init__(self) -> None:
        super().__init__()
        self.shop: Shop = new_shop(self.client, self.ops_headers, self.app_url)
        self.shop.tax_rate("M", 75_000)
        self.items = [self.shop.item(stock=30)[0], self.shop.item(stock=2)[0]]
        self.channel = self.shop.channel("backorder")
        self.orders: list[str] = []
        self.events = 0

    # -- helpers --------------------------------------------------------------------

    def post(self, path: str, body: Any) -> Any:
        r = self.shop.post(path, body)
        event(f"{path.rsplit('/', 1)[-1] if path != ORDERS else 'place'}: {r.status_code}")
        return r

    def order(self, ix: int) -> dict[str, Any]:
        oid = self.orders[ix % len(self.orders)]
        r = self.shop.client.get(f"{ORDERS}/{oid}", headers=self.shop.tenant.headers)
        assert r.status_code == 200
        data: dict[str, Any] = r.get_json()
        return data

    def available(self, item_id: str) -> int:
        on_hand, reserved = self.shop.level(item_id)
        return on_hand - reserved

    def accepted(self, r: Any, ok: int) -> None:
        assert r.status_code == ok, r.get_json()
        self.events += 1

    # -- rules ----------------------------------------------------------------------

    @precondition(lambda self: len(self.orders) < MAX_ORDERS)
    @rule(
        q0=quantities,
        q1=st.integers(min_value=0, max_value=3),
        price=st.integers(min_value=1, max_value=999),
        shipping=st.sampled_from([None, 0, 250]),
    )
    def place(self, q0: int, q1: int, price: int, shipping: int | None) -> None:
        lines = [{"item_id": self.items[0], "quantity": q0, "unit_price": price, "tax_code": "M"}]
        if q1:
            lines.append({"item_id": self.items[1], "quantity": q1, "unit_price": 333, "tax": 7})
        extra: dict[str, Any] = {"channel_id": self.channel}
        if shipping is not None:
            extra["shipping"] = {"amount": shipping, "tax_code": "M"}
        r = self.post(ORDERS, order_body(*lines, **extra))
        self.accepted(r, 201)
        self.orders.append(r.get_json()["id"])

    @rule(q=quantities)
    def receive(self, q: int) -> None:
        """More of the short item arrives (backordered units can then ship)."""
        self.shop.receive(self.items[1], q)

    @precondition(lambda self: self.orders)
    @rule(ix=order_ix, line=st.integers(0, 1), q=quantities, over=st.integers(0, 5))
    def fulfil(self, ix: int, line: int, q: int, over: int) -> None:
        """Mostly at most the open quantity; now and then more (422)."""
        order = self.order(ix)
        ln = order["lines"][line % len(order["lines"])]
        open_n = ln["quantity"] - ln["fulfilled"] - ln["cancelled"]
        if over and open_n:
            q = min(q, open_n)
        reserved_open = open_n - ln["backordered"]
        short = max(0, q - reserved_open) > self.available(ln["item_id"])
        r = self.post(
            f"{ORDERS}/{order['id']}/fulfilments",
            {"lines": [{"line_id": ln["id"], "quantity": q}]},
        )
        if order["status"] not in ("confirmed", "partially_fulfilled"):
            assert r.status_code == 409, r.get_json()
        elif q > open_n:
            assert r.status_code == 422, r.get_json()
        elif short:
            assert r.status_code == 409, r.get_json()
            assert r.get_json()["type"].endswith("insufficient-stock")
        else:
            self.accepted(r, 201)

    @precondition(lambda self: self.orders)
    @rule(ix=order_ix)
    def fulfil_all(self, ix: int) -> None:
        """Every open unit of an order in one step (short backordered units: 409)."""
        order = self.order(ix)
        wanted = [(ln, ln["quantity"] - ln["fulfilled"] - ln["cancelled"]) for ln in order["lines"]]
        wanted = [(ln, n) for ln, n in wanted if n]
        if not wanted or order["status"] not in ("confirmed", "partially_fulfilled"):
            return
        short = any(ln["backordered"] > self.available(ln["item_id"]) for ln, _ in wanted)
        r = self.post(
            f"{ORDERS}/{order['id']}/fulfilments",
            {"lines": [{"line_id": ln["id"], "quantity": n} for ln, n in wanted]},
        )
        if short:
            assert r.status_code == 409, r.get_json()
        else:
            self.accepted(r, 201)
            assert r.get_json()["lines"]

    @precondition(lambda self: self.orders)
    @rule(ix=order_ix, amount=st.integers(min_value=-3000, max_value=3000).filter(bool),
          part=st.booleans())  # fmt: skip
    def pay(self, ix: int, amount: int, part: bool) -> None:
        """An amount at random, or (part) a share of the balance due."""
        order = self.order(ix)
        due = order["balance_due"]
        if part and due:
            amount = due // 2 or due
        r = self.post(f"{ORDERS}/{order['id']}/payments", {"amount": amount, "method": "card"})
        ok = amount <= due if amount > 0 else (due < 0 and amount >= due)
        if ok:
            self.accepted(r, 201)
        else:
            assert r.status_code == 422, r.get_json()
            assert set(r.get_json()["errors"]) == {"amount"}

    @precondition(lambda self: self.orders)
    @rule(ix=order_ix)
    def pay_in_full(self, ix: int) -> None:
        order = self.order(ix)
        if order["balance_due"] != 0:
            r = self.post(
                f"{ORDERS}/{order['id']}/payments",
                {"amount": order["balance_due"], "method": "cash"},
            )
            self.accepted(r, 201)

    @precondition(lambda self: self.orders)
    @rule(ix=order_ix, now=st.integers(0, 2))
    def cancel(self, ix: int, now: int) -> None:
        """One time in three (else orders rarely ship)."""
        if now:
            return
        order = self.order(ix)
        r = self.post(f"{ORDERS}/{order['id']}/cancel", {"reason": "machine"})
        if order["status"] in ("confirmed", "partially_fulfilled"):
            self.accepted(r, 200)
            assert r.get_json()["status"] == "cancelled"
        else:
            assert r.status_code == 409, r.get_json()

    @precondition(lambda self: self.orders)
    @rule(
        ix=order_ix,
        line=st.integers(0, 1),
        q=quantities,
        restock=st.booleans(),
        over=st.integers(0, 5),
    )
    def give_back(self, ix: int, line: int, q: int, restock: bool, over: int) -> None:
        """Mostly at most what can come back; now and then more (422)."""
        order = self.order(ix)
        ln = order["lines"][line % len(order["lines"])]
        back = ln["fulfilled"] - ln["returned"]
        if over and back:
            q = min(q, back)
        r = self.post(
            f"{ORDERS}/{order['id']}/returns",
            {"lines": [{"line_id": ln["id"], "quantity": q}], "restock": restock},
        )
        if not any(x["fulfilled"] for x in order["lines"]):
            assert r.status_code == 409, r.get_json()
        elif q > ln["fulfilled"] - ln["returned"]:
            assert r.status_code == 422, r.get_json()
        else:
            self.accepted(r, 201)

    # -- invariants: one connection for all of them ------------------------------------

    @invariant()
    def books_stock_and_outbox_agree(self) -> None:
        with pinned(self.app_url, self.shop.tenant.id) as conn:
            check_trial_balance(conn)
            check_receivables(conn)
            check_stock(conn)
            n = conn.execute(
                "SELECT count(*) FROM webhooks.outbox_events WHERE event_type LIKE 'order.%'"
            ).fetchone()
            assert n is not None
            assert n[0] == self.events, "one order.* event per accepted step"


def check_trial_balance(conn: psycopg.Connection[Any]) -> None:
    off = conn.execute(
        "SELECT currency, sum(amount) FROM ledger.entries GROUP BY currency HAVING sum(amount) <> 0"
    ).fetchall()
    assert off == []


def check_receivables(conn: psycopg.Connection[Any]) -> None:
    """Order by order: the receivable booked = fulfilled - credited - paid."""
    rows = conn.execute(
        """
        SELECT o.id, o.credited, o.paid,
               (SELECT coalesce(sum(f.subtotal + f.tax + f.shipping_subtotal
                                    + f.shipping_tax), 0)
                  FROM orders.fulfilments f WHERE f.order_id = o.id),
               (SELECT coalesce(sum(r.subtotal + r.tax), 0)
                  FROM orders.returns r WHERE r.order_id = o.id),
               (SELECT coalesce(sum(p.amount), 0)
                  FROM orders.payments p WHERE p.order_id = o.id),
               (SELECT coalesce(sum(e.amount), 0)
                  FROM ledger.entries e
                  JOIN ledger.transactions t ON t.id = e.transaction_id
                  JOIN ledger.accounts a ON a.id = e.account_id
                 WHERE a.role = 'accounts_receivable'
                   AND t.metadata ->> 'order_id' = o.id::text)
          FROM orders.orders o
        """
    ).fetchall()
    total_ar = 0
    for _, credited, paid, fulfilled, returned, payments, receivable in rows:
        assert (credited, paid) == (returned, payments)
        assert receivable == fulfilled - credited - paid
        total_ar += receivable
    balance = conn.execute(
        "SELECT coalesce(sum(e.amount), 0) FROM ledger.entries e"
        " JOIN ledger.accounts a ON a.id = e.account_id"
        " WHERE a.role = 'accounts_receivable'"
    ).fetchone()
    assert balance is not None
    assert balance[0] == total_ar


def check_stock(conn: psycopg.Connection[Any]) -> None:
    """Levels equal their moves and held reservations; item values equal the books."""
    bad = conn.execute(
        """
        WITH moved AS (
            SELECT item_id, location_id, sum(q) AS q FROM (
                SELECT item_id, to_location_id AS location_id, quantity AS q
                  FROM inventory.stock_moves WHERE to_location_id IS NOT NULL
                UNION ALL
                SELECT item_id, from_location_id, -quantity
                  FROM inventory.stock_moves WHERE from_location_id IS NOT NULL) m
             GROUP BY 1, 2),
        held AS (
            SELECT item_id, location_id, sum(quantity - consumed) AS q
              FROM inventory.reservations WHERE status = 'held' GROUP BY 1, 2)
        SELECT l.item_id, l.on_hand, coalesce(m.q, 0), l.reserved, coalesce(h.q, 0)
          FROM inventory.stock_levels l
          LEFT JOIN moved m ON m.item_id = l.item_id AND m.location_id = l.location_id
          LEFT JOIN held h ON h.item_id = l.item_id AND h.location_id = l.location_id
         WHERE l.on_hand <> coalesce(m.q, 0) OR l.reserved <> coalesce(h.q, 0)
            OR l.on_hand - l.reserved < 0
        """
    ).fetchall()
    assert bad == []
    values = conn.execute(
        "SELECT (SELECT coalesce(sum(value), 0) FROM inventory.items),"
        " (SELECT coalesce(sum(e.amount), 0) FROM ledger.entries e"
        "  JOIN ledger.accounts a ON a.id = e.account_id WHERE a.role = 'inventory')"
    ).fetchone()
    assert values is not None
    assert values[0] == values[1]


def test_order_state_machine(client: Any, app_url: str, ops_headers: dict[str, str]) -> None:
    OrderMachine.client, OrderMachine.app_url = client, app_url
    OrderMachine.ops_headers = ops_headers
    run_state_machine_as_test(OrderMachine, settings=SETTINGS)
