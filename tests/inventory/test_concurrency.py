"""Races on stock, with real threads on real connections (erp_app, tenant pinned).

Opposite transfers between two locations never deadlock (the item is locked first and
a transfer's legs in location order); concurrent issues of the last units never
oversell (one conditional UPDATE per leg, no read-then-write window).
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import psycopg

from tests.inventory.conftest import Stock, pinned

THREADS = 8
ROUNDS = 15


def _run_together(n: int, work: Any) -> list[BaseException]:
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def body(i: int) -> None:
        try:
            barrier.wait(10)
            work(i)
        except BaseException as exc:  # collected, asserted by the test
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return errors


def test_opposite_transfers_do_not_deadlock(stock: Stock) -> None:
    a, b = stock.location(), stock.location()
    items = [stock.item() for _ in range(2)]
    for item in items:
        stock.committed_move("receipt", item, 1000, to=a, unit_cost=1)
        stock.committed_move("receipt", item, 1000, to=b, unit_cost=1)

    def work(i: int) -> None:
        frm, to = (a, b) if i % 2 else (b, a)
        with psycopg.connect(stock.url) as conn:
            conn.execute("SET lock_timeout = '20s'")
            for r in range(ROUNDS):
                with conn.transaction():
                    conn.execute(
                        "SELECT set_config('app.tenant_id', %s, true)", (str(stock.tenant.id),)
                    )
                    # two items per transaction, locked in id order first (LOCK ORDER)
                    conn.execute("SELECT inventory.lock_items(%s)", (items,))
                    for item in items if r % 2 else reversed(items):
                        stock.move(conn, "transfer", item, 3, frm=frm, to=to)

    errors = _run_together(THREADS, work)
    assert errors == []
    for item in items:
        totals = stock.one(
            "SELECT sum(on_hand), count(*) FROM inventory.stock_levels WHERE item_id = %s", item
        )
        assert totals == (2000, 2)
        # every transfer is recorded, and the levels equal the sum of the moves
        assert (
            stock.one(
                "SELECT count(*) FROM inventory.stock_moves"
                " WHERE item_id = %s AND kind = 'transfer'",
                item,
            )
            == THREADS * ROUNDS
        )
    assert _levels_equal_moves(stock)


def test_concurrent_issues_never_oversell(stock: Stock) -> None:
    item = stock.item()
    stock.committed_move("receipt", item, 10, to=stock.main, unit_cost=7)
    done: list[uuid.UUID] = []
    refused: list[str] = []

    def work(i: int) -> None:
        for _ in range(2):
            try:
                with pinned(stock.url, stock.tenant.id, commit=True) as conn:
                    stock.move(conn, "issue", item, 1, frm=stock.main)
                done.append(item)
            except psycopg.Error as exc:
                refused.append(str(exc.sqlstate))

    errors = _run_together(THREADS * 2, work)
    assert errors == []
    assert len(done) == 10
    assert set(refused) == {"EI001"}
    assert stock.one("SELECT on_hand FROM inventory.stock_levels WHERE item_id = %s", item) == 0
    # the moving average hands out all the value, exactly
    assert stock.one("SELECT value FROM inventory.items WHERE id = %s", item) == 0
    assert (
        stock.one(
            "SELECT sum(value) FROM inventory.stock_moves WHERE item_id = %s AND kind = 'issue'",
            item,
        )
        == 70
    )


def _levels_equal_moves(stock: Stock) -> bool:
    mismatched = stock.one(
        """SELECT count(*) FROM inventory.stock_levels l
            WHERE l.on_hand <> (
                SELECT coalesce(sum(CASE WHEN m.to_location_id = l.location_id
                                         THEN m.quantity ELSE -m.quantity END), 0)
                  FROM inventory.stock_moves m
                 WHERE m.item_id = l.item_id
                   AND l.location_id IN (m.from_location_id, m.to_location_id))"""
    )
    return bool(mismatched == 0)
