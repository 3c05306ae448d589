"""inventory.reserve / release_reservations / consume_reservations
(policies/inventory_reservations.sql), called directly as erp_app with the tenant pinned.

Each refusal is its SQLSTATE with a MESSAGE for the client and a DETAIL naming the
field(s), and the core makes the documented problem of it. The locks follow the
inventory lock order: a reservation waits for its item's lock (held by a move or
another reservation) and for its level's row; once a level is short it takes no more
locks (the rest are only read, to name every short line).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from sqlalchemy.exc import DBAPIError

from erp.errors import refusal
from erp.http import ErpFlask
from tests.inventory.reservations_support import Shop, new_shop, pinned

CALL = "SELECT inventory.reserve(%s, %s, %s, %s, NULL, NULL, NULL, %s)"


@pytest.fixture
def shop(app: ErpFlask, client: Any, app_url: str, ops_headers: dict[str, str]) -> Shop:
    return new_shop(app, client, app_url, ops_headers)


def _args(lines: list[tuple[uuid.UUID, uuid.UUID, int]], single: bool = False) -> list[Any]:
    return [
        [uuid.uuid4() for _ in lines],
        [i for i, _, _ in lines],
        [loc for _, loc, _ in lines],
        [q for _, _, q in lines],
        single,
    ]


def _refusal(
    shop: Shop, lines: list[tuple[uuid.UUID, uuid.UUID, int]], single: bool = False
) -> Any:
    with pinned(shop.app_url, shop.tenant.id) as conn, pytest.raises(psycopg.Error) as caught:
        conn.execute(CALL, _args(lines, single))
    error = caught.value
    problem = refusal(DBAPIError.instance(CALL, {}, error, psycopg.Error))
    assert problem is not None, error.sqlstate
    return error, problem


def test_short_lines_are_ei001_each_named(shop: Shop) -> None:
    a, b = shop.item(), shop.item()
    loc = shop.location()
    shop.receive(a, loc, 2)
    error, problem = _refusal(shop, [(a, loc, 3), (a, loc, 1), (b, loc, 1)])
    assert error.sqlstate == "EI001"
    assert error.diag.message_primary == (
        "Not enough stock for lines 0, 1, 2; nothing was reserved."
    )
    assert error.diag.message_detail.splitlines() == [
        "lines.0.quantity: 3 requested (4 with lines 0, 1 at this location), 2 available.",
        "lines.1.quantity: 1 requested (4 with lines 0, 1 at this location), 2 available.",
        "lines.2.quantity: 1 requested, 0 available.",
    ]
    assert (problem.slug, problem.status) == ("insufficient-stock", 409)
    assert set(problem.errors) == {"lines.0.quantity", "lines.1.quantity", "lines.2.quantity"}
    error, problem = _refusal(shop, [(a, loc, 3)], single=True)
    assert error.diag.message_primary == "Not enough stock: 3 requested, 2 available."
    assert problem.errors == {"quantity": ["3 requested, 2 available."]}


def test_bad_arguments_are_ei002_before_any_lock(shop: Shop) -> None:
    item, loc = shop.item(), shop.location()
    error, problem = _refusal(shop, [(item, loc, 0), (uuid.uuid4(), loc, 1)])
    # quantities are judged from the arguments alone, before the items are read
    assert error.sqlstate == "EI002"
    assert error.diag.message_detail == "lines.0.quantity: Must be greater than 0."
    assert problem.errors == {"lines.0.quantity": ["Must be greater than 0."]}
    error, problem = _refusal(shop, [(item, loc, 1), (uuid.uuid4(), uuid.uuid4(), 1)])
    assert error.diag.message_primary == "Several lines failed validation."
    assert problem.errors == {
        "lines.1.item_id": ["Unknown item."],
        "lines.1.location_id": ["Unknown location."],
    }


def test_arrays_of_different_lengths_are_the_callers_bug(shop: Shop) -> None:
    item, loc = shop.item(), shop.location()
    args = _args([(item, loc, 1)])
    args[3] = [1, 2]
    with pinned(shop.app_url, shop.tenant.id) as conn, pytest.raises(psycopg.Error) as caught:
        conn.execute(CALL, args)
    assert caught.value.sqlstate == "P0001"  # a plain RAISE: a 500, not bad input


@contextmanager
def holding(shop: Shop, sql: str, *params: Any) -> Iterator[None]:
    """Another transaction holding the row locks `sql` takes, until the block ends."""
    with pinned(shop.app_url, shop.tenant.id) as conn:
        conn.execute(sql, params)
        yield
        conn.rollback()


def _waits(shop: Shop, lines: list[tuple[uuid.UUID, uuid.UUID, int]]) -> bool | str:
    """True if the call waits on a lock (lock_timeout), else its outcome's SQLSTATE or ""."""
    with pinned(shop.app_url, shop.tenant.id) as conn:
        conn.execute("SET LOCAL lock_timeout = '300ms'")
        try:
            conn.execute(CALL, _args(lines))
        except psycopg.errors.LockNotAvailable:
            return True
        except psycopg.Error as exc:
            return str(exc.sqlstate)
        finally:
            conn.rollback()
        return ""


def test_a_reservation_waits_for_its_items_lock_then_its_levels(shop: Shop) -> None:
    a, b = shop.item(), shop.item()
    loc = shop.location()
    shop.receive(a, loc, 5)
    shop.receive(b, loc, 5)
    lock_item = "SELECT 1 FROM inventory.items WHERE id = %s FOR NO KEY UPDATE"
    lock_level = (
        "SELECT 1 FROM inventory.stock_levels WHERE item_id = %s AND location_id = %s"
        " FOR NO KEY UPDATE"
    )
    with holding(shop, lock_item, a):
        assert _waits(shop, [(a, loc, 1)]) is True
        assert _waits(shop, [(b, loc, 1)]) == ""
    with holding(shop, lock_level, a, loc):
        assert _waits(shop, [(a, loc, 1)]) is True
        assert _waits(shop, [(b, loc, 1)]) == ""


def test_after_a_short_level_no_more_locks_are_taken(shop: Shop) -> None:
    """Levels are visited in (item, location) order; once one is short the call only
    reads the rest to name them, so a doomed reservation never queues behind others."""
    a, b = sorted([shop.item(), shop.item()])
    loc = shop.location()
    shop.receive(a, loc, 1)
    shop.receive(b, loc, 5)
    lock_level = (
        "SELECT 1 FROM inventory.stock_levels WHERE item_id = %s AND location_id = %s"
        " FOR NO KEY UPDATE"
    )
    with holding(shop, lock_level, b, loc):
        # a is short (first in order): b's locked level is only read, and fits
        assert _waits(shop, [(b, loc, 1), (a, loc, 2)]) == "EI001"
        # a fits: b's level is then updated, and waits
        assert _waits(shop, [(b, loc, 1), (a, loc, 1)]) is True
