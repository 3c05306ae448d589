"""Property-based test of stock levels under reservations and moves: a Hypothesis state
machine against an in-memory model.

Rules: receive, issue, transfer and adjust (inventory.apply_move, the inventory core's
one move function) and reserve (one to three lines, all or none), release and consume
(the reservation services, one unit of work each) over two items and three locations,
one of which allows negative stock. The model predicts every outcome (a refusal is
insufficient-stock exactly when the model says a level is short); after every step
each level equals the model, its on_hand the sum of its moves, its reserved the sum of
its held reservations, and available is never negative outside the location that
allows it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from erp.errors import Problem
from erp.http import ErpFlask
from erp.inventory import services
from erp.inventory.reservation_commands import Consume, ConsumeLine
from tests.inventory.reservations_support import Shop, assert_stock_consistent, new_shop

SETTINGS = settings(
    max_examples=10,
    stateful_step_count=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
ITEMS = 2
LOCATIONS = 3  # the last allows negative stock

T = TypeVar("T")
quantities = st.integers(min_value=1, max_value=8)
item_ix = st.integers(min_value=0, max_value=ITEMS - 1)
loc_ix = st.integers(min_value=0, max_value=LOCATIONS - 1)


def attempt(fn: Callable[[], T]) -> tuple[T | None, Exception | None]:
    """fn's result, or the exception it raised (asserted on by the caller)."""
    try:
        return fn(), None
    except (Problem, psycopg.Error) as exc:
        return None, exc


class StockMachine(RuleBasedStateMachine):
    app: Any = None
    client: Any = None
    app_url: str = ""
    ops_headers: dict[str, str] = {}

    held = Bundle("held")

    def __init__(self) -> None:
        super().__init__()
        self.shop: Shop = new_shop(self.app, self.client, self.app_url, self.ops_headers)
        self.items = [self.shop.item() for _ in range(ITEMS)]
        self.locs = [self.shop.location() for _ in range(LOCATIONS - 1)]
        self.locs.append(self.shop.location(allow_negative=True))
        self.on_hand: dict[tuple[int, int], int] = {}
        self.reserved: dict[tuple[int, int], int] = {}
        # reservation id -> [item, loc, quantity, consumed]
        self.open: dict[uuid.UUID, list[int]] = {}

    # -- the model ------------------------------------------------------------------

    def available(self, i: int, loc: int) -> int:
        return self.on_hand.get((i, loc), 0) - self.reserved.get((i, loc), 0)

    def negative_ok(self, loc: int) -> bool:
        return loc == LOCATIONS - 1

    def add(self, book: dict[tuple[int, int], int], i: int, loc: int, n: int) -> None:
        book[i, loc] = book.get((i, loc), 0) + n

    # -- moves (inventory.apply_move) -------------------------------------------------

    def _move(self, short: bool, kind: str, i: int, q: int, **where: Any) -> bool:
        _, error = attempt(lambda: self.shop.move(kind, self.items[i], q, **where))
        if error is None:
            assert not short, (kind, "accepted though the model says short")
            return True
        assert isinstance(error, psycopg.Error), error
        assert short, (kind, error.sqlstate, str(error))
        assert error.sqlstate == "EI001", str(error)
        return False

    @rule(i=item_ix, loc=loc_ix, q=quantities, cost=st.integers(0, 500))
    def receive(self, i: int, loc: int, q: int, cost: int) -> None:
        self._move(False, "receipt", i, q, dst=self.locs[loc], unit_cost=cost)
        self.add(self.on_hand, i, loc, q)

    @rule(i=item_ix, loc=loc_ix, q=quantities)
    def issue(self, i: int, loc: int, q: int) -> None:
        short = not self.negative_ok(loc) and self.available(i, loc) < q
        if self._move(short, "issue", i, q, src=self.locs[loc]):
            self.add(self.on_hand, i, loc, -q)

    @rule(i=item_ix, src=loc_ix, dst=loc_ix, q=quantities)
    def transfer(self, i: int, src: int, dst: int, q: int) -> None:
        if src == dst:
            return
        short = not self.negative_ok(src) and self.available(i, src) < q
        if self._move(short, "transfer", i, q, src=self.locs[src], dst=self.locs[dst]):
            self.add(self.on_hand, i, src, -q)
            self.add(self.on_hand, i, dst, q)

    @rule(i=item_ix, loc=loc_ix, q=quantities, out=st.booleans())
    def adjust(self, i: int, loc: int, q: int, out: bool) -> None:
        where = {"src": self.locs[loc]} if out else {"dst": self.locs[loc]}
        short = out and not self.negative_ok(loc) and self.available(i, loc) < q
        if self._move(short, "adjustment", i, q, reason_code="correction", **where):
            self.add(self.on_hand, i, loc, -q if out else q)

    # -- reservations (the services) --------------------------------------------------

    @rule(
        target=held,
        lines=st.lists(st.tuples(item_ix, loc_ix, quantities), min_size=1, max_size=3),
    )
    def reserve(self, lines: list[tuple[int, int, int]]) -> Any:
        wanted: dict[tuple[int, int], int] = {}
        for i, loc, q in lines:
            wanted[i, loc] = wanted.get((i, loc), 0) + q
        short_levels = {
            key for key, q in wanted.items()
            if not self.negative_ok(key[1]) and self.available(*key) < q
        }  # fmt: skip
        args = [(self.items[i], self.locs[loc], q) for i, loc, q in lines]
        views, problem = attempt(lambda: self.shop.reserve(args))
        if problem is not None:
            assert isinstance(problem, Problem), problem
            assert short_levels, problem.errors
            assert problem.slug == "insufficient-stock"
            named = {
                f"lines.{n}.quantity" for n, (i, loc, _) in enumerate(lines)
                if (i, loc) in short_levels
            }  # fmt: skip
            assert set(problem.errors or {}) == named
            return multiple()
        assert not short_levels
        for view, (i, loc, q) in zip(views, lines, strict=True):
            self.add(self.reserved, i, loc, q)
            self.open[view.id] = [i, loc, q, 0]
        return multiple(*(v.id for v in views))

    @rule(rid=consumes(held))
    def release(self, rid: uuid.UUID) -> None:
        if rid not in self.open:  # consumed in full since
            _, problem = attempt(lambda: self.shop.run(lambda s: services.release(s, [rid])))
            assert isinstance(problem, Problem), "a consumed reservation was released"
            assert problem.slug == "conflict"
            return
        i, loc, q, used = self.open.pop(rid)
        (view,) = self.shop.run(lambda s: services.release(s, [rid]))
        assert (view.status, view.quantity, view.consumed) == ("released", q, used)
        self.add(self.reserved, i, loc, -(q - used))

    @rule(rid=held, data=st.data())
    def consume(self, rid: uuid.UUID, data: st.DataObject) -> None:
        if rid not in self.open:
            return
        i, loc, q, used = self.open[rid]
        n = data.draw(st.integers(min_value=1, max_value=q - used + 1), label="n")
        cmd = Consume([ConsumeLine(rid, n)])
        lines, problem = attempt(lambda: self.shop.run(lambda s: services.consume(s, cmd)))
        if problem is not None:
            assert isinstance(problem, Problem), problem
            assert n > q - used, problem.errors
            assert problem.slug == "validation"
            return
        assert n <= q - used
        (line,) = lines
        assert line.quantity == n
        assert line.value >= 0
        self.open[rid][3] += n
        self.add(self.reserved, i, loc, -n)
        self.add(self.on_hand, i, loc, -n)
        if used + n == q:
            del self.open[rid]  # consumed: its bundle entry is now a no-op

    # -- invariants -------------------------------------------------------------------

    @invariant()
    def levels_match_the_model_and_their_history(self) -> None:
        found = {
            (row[0], row[1]): (row[2], row[3])
            for row in self.shop.rows(
                "SELECT item_id, location_id, on_hand, reserved FROM inventory.stock_levels"
            )
        }
        for i, item in enumerate(self.items):
            for loc, location in enumerate(self.locs):
                expected = (self.on_hand.get((i, loc), 0), self.reserved.get((i, loc), 0))
                assert found.get((item, location), (0, 0)) == expected, (i, loc)
                if not self.negative_ok(loc):
                    assert expected[0] - expected[1] >= 0
        assert_stock_consistent(self.shop)


def test_stock_state_machine(
    app: ErpFlask, client: Any, app_url: str, ops_headers: dict[str, str]
) -> None:
    StockMachine.app, StockMachine.client = app, client
    StockMachine.app_url, StockMachine.ops_headers = app_url, ops_headers
    run_state_machine_as_test(StockMachine, settings=SETTINGS)
