"""The reservation services the order pipeline calls (erp.inventory.services): reserve
several lines all or none, release (an order's, by the order), consume on shipment.
Each call is its own unit of work here, as an order step's would be."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from erp.errors import Problem
from erp.http import ErpFlask
from erp.inventory import services
from erp.inventory.reservation_commands import Consume, ConsumeLine
from tests.inventory.reservations_support import Shop, assert_stock_consistent, new_shop


@pytest.fixture
def shop(app: ErpFlask, client: Any, app_url: str, ops_headers: dict[str, str]) -> Shop:
    return new_shop(app, client, app_url, ops_headers)


def _refused(shop: Shop, fn: Any) -> Problem:
    with pytest.raises(Problem) as caught:
        shop.run(fn)
    return caught.value


def test_all_lines_or_none_and_every_short_line_named(shop: Shop) -> None:
    a, b, c = shop.item(), shop.item(), shop.item()
    x, y = shop.location(), shop.location()
    shop.receive(a, x, 5)
    shop.receive(b, x, 1)
    shop.receive(c, y, 9)
    before = shop.footprint()
    lines = [(a, x, 5), (b, x, 2), (c, y, 9), (a, y, 1)]
    with pytest.raises(Problem) as caught:
        shop.reserve(lines)
    problem = caught.value
    assert (problem.slug, problem.status) == ("insufficient-stock", 409)
    assert problem.errors == {
        "lines.1.quantity": ["2 requested, 1 available."],
        "lines.3.quantity": ["1 requested, 0 available."],
    }
    assert problem.detail == "Not enough stock for lines 1, 3; nothing was reserved."
    assert shop.footprint() == before
    # with the short lines fixed, all of it
    held = shop.reserve([(a, x, 5), (b, x, 1), (c, y, 9)])
    assert [v.quantity for v in held] == [5, 1, 9]
    assert len({v.id for v in held}) == 3
    assert {v.created_at for v in held} != {None}
    assert (shop.level(a, x), shop.level(b, x), shop.level(c, y)) == ((5, 5), (1, 1), (9, 9))
    assert_stock_consistent(shop)


def test_lines_on_one_level_are_reserved_together(shop: Shop) -> None:
    item, loc = shop.item(), shop.location()
    shop.receive(item, loc, 5)
    with pytest.raises(Problem) as caught:
        shop.reserve([(item, loc, 3), (item, loc, 3)])
    assert caught.value.errors == {
        "lines.0.quantity": ["3 requested (6 with lines 0, 1 at this location), 5 available."],
        "lines.1.quantity": ["3 requested (6 with lines 0, 1 at this location), 5 available."],
    }
    assert shop.level(item, loc) == (5, 0)
    shop.reserve([(item, loc, 3), (item, loc, 2)])
    assert shop.level(item, loc) == (5, 5)


def test_bad_lines_are_named_and_nothing_is_written(shop: Shop) -> None:
    item, loc = shop.item(), shop.location()
    shop.receive(item, loc, 5)
    before = shop.footprint()
    with pytest.raises(Problem) as caught:
        shop.reserve([(item, loc, 1), (item, loc, 0), (uuid.uuid4(), loc, -3)])
    assert caught.value.slug == "validation"
    assert caught.value.errors == {
        "lines.1.quantity": ["Must be greater than 0."],
        "lines.2.quantity": ["Must be greater than 0."],
    }
    with pytest.raises(Problem) as caught:
        shop.reserve([(item, loc, 1), (uuid.uuid4(), uuid.uuid4(), 1)])
    assert caught.value.errors == {
        "lines.1.item_id": ["Unknown item."],
        "lines.1.location_id": ["Unknown location."],
    }
    assert shop.footprint() == before


def test_consume_takes_units_from_on_hand_and_reserved_together(shop: Shop) -> None:
    item, loc = shop.item(), shop.location()
    shop.receive(item, loc, 4, cost=100)
    shop.receive(item, loc, 6, cost=200)  # value 1600 over 10: 160 each
    order, fulfilment = uuid.uuid4(), uuid.uuid4()
    (held,) = shop.reserve([(item, loc, 5)], order_id=order)
    moves_before = shop.count("inventory.stock_moves")

    def ship(n: int) -> Any:
        cmd = Consume([ConsumeLine(held.id, n)], source_id=fulfilment)
        return lambda s: services.consume(s, cmd)

    (first,) = shop.run(ship(2))
    assert (first.reservation_id, first.item_id, first.location_id) == (held.id, item, loc)
    assert (first.quantity, first.value) == (2, 320)
    assert shop.level(item, loc) == (8, 3)
    move = shop.rows(
        "SELECT kind, quantity, from_location_id, source_type, source_id, transaction_id"
        " FROM inventory.stock_moves WHERE id = %s",
        (first.move_id,),
    )
    assert move == [("issue", 2, loc, "fulfilment", fulfilment, None)]
    (second,) = shop.run(ship(3))
    assert second.value == 480
    assert shop.level(item, loc) == (5, 0)
    status = shop.rows(
        "SELECT status, consumed FROM inventory.reservations WHERE id = %s", (held.id,)
    )
    assert status == [("consumed", 5)]
    assert shop.count("inventory.stock_moves") == moves_before + 2
    # consumed units cannot leave twice, nor be released
    problem = _refused(shop, ship(1))
    assert (problem.slug, problem.errors) == (
        "conflict",
        {"lines.0.reservation_id": ["The reservation is consumed, not held."]},
    )
    problem = _refused(shop, lambda s: services.release(s, [held.id], order_id=order))
    assert problem.slug == "conflict"
    assert_stock_consistent(shop)


def test_consume_more_than_is_held_is_refused(shop: Shop) -> None:
    item, loc = shop.item(), shop.location()
    shop.receive(item, loc, 10)
    (held,) = shop.reserve([(item, loc, 2)])
    before = shop.footprint()
    problem = _refused(shop, lambda s: services.consume(s, Consume([ConsumeLine(held.id, 3)])))
    assert (problem.slug, problem.errors) == (
        "validation",
        {"lines.0.quantity": ["3 requested, 2 reserved and not yet consumed."]},
    )
    problem = _refused(shop, lambda s: services.consume(s, Consume([ConsumeLine(uuid.uuid4(), 1)])))
    assert problem.errors == {"lines.0.reservation_id": ["Unknown reservation."]}
    problem = _refused(shop, lambda s: services.consume(s, Consume([ConsumeLine(held.id, 0)])))
    assert problem.errors == {"lines.0.quantity": ["Must be greater than 0."]}
    assert shop.footprint() == before


def test_release_frees_what_was_not_consumed(shop: Shop) -> None:
    item, loc = shop.item(), shop.location()
    shop.receive(item, loc, 10)
    order = uuid.uuid4()
    first, second = shop.reserve([(item, loc, 4), (item, loc, 3)], order_id=order)
    shop.run(lambda s: services.consume(s, Consume([ConsumeLine(first.id, 1)])))
    assert shop.level(item, loc) == (9, 6)
    released = shop.run(lambda s: services.release(s, [first.id, second.id], order_id=order))
    assert sorted((v.quantity, v.consumed, v.status) for v in released) == [
        (3, 0, "released"),
        (4, 1, "released"),
    ]
    assert shop.level(item, loc) == (9, 0)
    assert_stock_consistent(shop)


def test_release_by_another_order_finds_nothing(shop: Shop) -> None:
    item, loc = shop.item(), shop.location()
    shop.receive(item, loc, 10)
    (held,) = shop.reserve([(item, loc, 4)], order_id=uuid.uuid4())
    problem = _refused(shop, lambda s: services.release(s, [held.id], order_id=uuid.uuid4()))
    assert problem.slug == "not-found"
    assert shop.level(item, loc) == (10, 4)


def test_a_refusal_inside_a_savepoint_leaves_the_callers_transaction_usable(shop: Shop) -> None:
    """The order pipeline may try a reservation and go on (a backorder channel)."""
    item, loc = shop.item(), shop.location()
    shop.receive(item, loc, 1)

    def work(s: Any) -> int:
        from erp.inventory.reservation_commands import Reserve, ReserveLine

        refused = ""
        try:
            with s.begin_nested():
                services.reserve(s, Reserve([ReserveLine(item, loc, 2)]))
        except Problem as problem:
            refused = problem.slug
        assert refused == "insufficient-stock"
        held = services.reserve(s, Reserve([ReserveLine(item, loc, 1)]))
        return len(held)

    assert shop.run(work) == 1
    assert shop.level(item, loc) == (1, 1)
