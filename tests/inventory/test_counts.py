"""Cycle counts: each non-zero difference between what was counted and what was on
hand becomes an `adjustment` move (reason_code `count`), posted in the call's one
transaction; a count below what is reserved is 409 insufficient-stock; bad or
foreign input is a named 422; a refusal writes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from erp.extensions import db
from erp.http import ErpFlask
from tests.core.helpers import assert_problem
from tests.inventory.purchasing_helpers import (
    INV,
    Shop,
    assert_field,
    ledger_transactions,
    open_shop,
    written,
)
from tests.ledger.helpers_concurrency import Reply, request, serve, together

COUNTS = f"{INV}/counts"


@pytest.fixture
def shop(client: Any, ops_headers: dict[str, str], app_url: str) -> Shop:
    return open_shop(client, ops_headers, app_url)


def _count(shop: Shop, lines: list[tuple[str, int]], **extra: Any) -> Any:
    body = {
        "location_id": extra.pop("location_id", shop.default_location),
        "lines": [{"item_id": i, "counted": n} for i, n in lines],
        **extra,
    }
    return shop.call("POST", COUNTS, body)


def test_a_count_posts_its_differences(shop: Shop, owner_engine: Engine) -> None:
    up, down, same, never = shop.item(), shop.item(), shop.item(), shop.item()
    shop.receive_direct(up, 10, 300)
    shop.receive_direct(down, 10, 200)
    shop.receive_direct(down, 10, 100)  # moving average 150
    shop.receive_direct(same, 5, 70)
    before = written(owner_engine, shop.tenant.id)
    r = _count(shop, [(up, 12), (down, 17), (same, 5), (never, 0)], reason="December count")
    assert r.status_code == 201, r.get_json()
    count = r.get_json()
    assert count["reason"] == "December count"
    assert count["location_id"] == shop.default_location
    lines = count["lines"]
    assert [(ln["item_id"], ln["expected"], ln["counted"], ln["difference"]) for ln in lines] == [
        (up, 10, 12, 2),
        (down, 20, 17, -3),
        (same, 5, 5, 0),
        (never, 0, 0, 0),
    ]
    assert lines[2]["move_id"] is None
    assert lines[3]["move_id"] is None
    assert shop.ok("GET", f"{COUNTS}/{count['id']}") == count
    assert shop.ok("GET", COUNTS)["items"] == [count]

    for ln, kind_of in ((lines[0], "to_location_id"), (lines[1], "from_location_id")):
        move = shop.move(ln["move_id"])
        assert move["kind"] == "adjustment"
        assert move["reason_code"] == "count"
        assert move["quantity"] == abs(ln["difference"])
        assert move[kind_of] == shop.default_location
        assert (move["source_type"], move["source_id"]) == ("count", count["id"])
        assert move["reason"] == "December count"
    assert shop.stock(up)["on_hand"] == 12
    assert shop.stock(down)["on_hand"] == 17
    assert shop.stock(same)["on_hand"] == 5

    after = written(owner_engine, shop.tenant.id)
    assert after["moves"] - before["moves"] == 2
    assert after["counts"] == 1
    # in: valued at the moving average (300 each); out: 3 x 150
    assert shop.balance("1200") == 10 * 300 + 20 * 150 + 5 * 70 + 2 * 300 - 3 * 150
    valuation = shop.valuation()
    assert valuation["total"] == valuation["ledger_balance"] == shop.balance("1200")
    report = shop.ok("GET", f"{INV}/valuation")
    assert report["total"] == report["ledger_balance"] == shop.balance("1200")
    move = shop.ok("GET", f"{INV}/moves/{lines[1]['move_id']}")
    assert move["source"] == {"type": "count", "id": count["id"]}
    assert (move["reason_code"], move["quantity"], move["value"]) == ("count", 3, 450)
    for tx in ledger_transactions(owner_engine, shop.tenant.id):
        assert sum(amount for _, amount in tx["entries"]) == 0


def test_a_count_of_nothing_different_moves_nothing(shop: Shop, owner_engine: Engine) -> None:
    mug = shop.item()
    shop.receive_direct(mug, 4, 10)
    before = written(owner_engine, shop.tenant.id)
    r = _count(shop, [(mug, 4)])
    assert r.status_code == 201
    after = written(owner_engine, shop.tenant.id)
    assert (after["moves"], after["transactions"]) == (before["moves"], before["transactions"])
    assert after["counts"] == before["counts"] + 1


def test_counting_below_what_is_reserved_is_refused(shop: Shop, owner_engine: Engine) -> None:
    mug, pen = shop.item(), shop.item()
    shop.receive_direct(mug, 10, 100)
    shop.receive_direct(pen, 10, 100)
    shop.reserve(mug, 6)
    before = written(owner_engine, shop.tenant.id)
    problem = assert_field(
        _count(shop, [(pen, 9), (mug, 5)]), 409, "insufficient-stock", "lines.1.counted"
    )
    assert list(problem["errors"]) == ["lines.1.counted"]
    assert written(owner_engine, shop.tenant.id) == before
    assert shop.stock(mug)["on_hand"] == 10
    # exactly what is reserved is a count the shelf can hold
    r = _count(shop, [(mug, 6)])
    assert r.status_code == 201, r.get_json()
    level = shop.stock(mug)
    assert (level["on_hand"], level["reserved"], level["available"]) == (6, 6, 0)


def test_counts_racing_reservations_never_leave_available_negative(
    app: ErpFlask, shop: Shop
) -> None:
    """Half the threads count the shelf down to 4 (through the API), half reserve 3
    (as a reservation writes, item lock first): whichever order they commit in, a count
    below what is reserved is refused and reserved never exceeds on hand."""
    mug = shop.item()
    shop.receive_direct(mug, 20, 10)
    try:
        with serve(app) as url:

            def work(i: int) -> Reply | str:
                if i % 2:
                    body = {
                        "location_id": shop.default_location,
                        "lines": [{"item_id": mug, "counted": 4}],
                    }
                    return request(url, "POST", COUNTS, body, shop.tenant.headers)
                try:
                    shop.reserve(mug, 3)
                except AssertionError:
                    return "short"
                return "reserved"

            results = together(8, work)
    finally:
        with app.app_context():
            db.dispose()
    replies = [r for r in results if isinstance(r, Reply)]
    assert all(r.status == 201 or r.slug == "insufficient-stock" for r in replies), [
        r.body for r in replies
    ]
    level = shop.stock(mug)
    assert level["available"] >= 0
    assert level["reserved"] == 3 * results.count("reserved")
    assert any(r.status == 201 for r in replies) or level["on_hand"] == 20


def test_one_idempotency_key_makes_one_count(shop: Shop, owner_engine: Engine) -> None:
    mug = shop.item()
    shop.receive_direct(mug, 5, 10)
    body = {"location_id": shop.default_location, "lines": [{"item_id": mug, "counted": 2}]}
    first = shop.call("POST", COUNTS, body, key="count-1", expect=201)
    again = shop.call("POST", COUNTS, body, key="count-1", expect=201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    state = written(owner_engine, shop.tenant.id)
    assert (state["counts"], state["count_lines"]) == (1, 1)
    assert shop.stock(mug)["on_hand"] == 2


# -- refusals ----------------------------------------------------------------------------


@pytest.fixture
def frozen(shop: Shop, owner_engine: Engine) -> Iterator[Shop]:
    before = written(owner_engine, shop.tenant.id)
    yield shop
    assert written(owner_engine, shop.tenant.id) == before


@pytest.mark.parametrize("counted", [-1, 1.5, 2.0, "3", True, None, [], 2**63])
def test_a_bad_counted_is_named(frozen: Shop, counted: Any) -> None:
    assert_field(_count(frozen, [(frozen.item(), counted)]), 422, "validation", "lines.0.counted")


def test_bad_counts_are_named(
    frozen: Shop, client: Any, ops_headers: dict[str, str], app_url: str
) -> None:
    shop = frozen
    mug = shop.item()
    archived = shop.item()
    shop.archive_item(archived)
    other = open_shop(client, ops_headers, app_url)
    foreign_item, foreign_location = other.item(), other.location()

    assert_field(_count(shop, []), 422, "validation", "lines")
    assert_field(_count(shop, [(mug, 1)] * 501), 422, "validation", "lines")
    assert_field(_count(shop, [(mug, 1), (mug, 2)]), 422, "validation", "lines.1.item_id")
    for item in (str(uuid.uuid4()), foreign_item, archived):
        assert_field(_count(shop, [(mug, 1), (item, 1)]), 422, "validation", "lines.1.item_id")
    for location in (str(uuid.uuid4()), foreign_location, "nope"):
        r = _count(shop, [(mug, 1)], location_id=location)
        assert_field(r, 422, "validation", "location_id")
    assert_field(_count(shop, [(mug, 1)], reason="r" * 501), 422, "validation", "reason")
    assert_field(_count(shop, [(mug, 1)], extra=1), 422, "validation", "extra")
    r = shop.call("POST", COUNTS, {"lines": [{"item_id": mug, "counted": 1}]})
    assert_field(r, 422, "validation", "location_id")


def test_another_tenants_count_is_not_found(
    shop: Shop, client: Any, ops_headers: dict[str, str], app_url: str
) -> None:
    mug = shop.item()
    count = _count(shop, [(mug, 0)]).get_json()
    other = open_shop(client, ops_headers, app_url)
    assert_problem(other.call("GET", f"{COUNTS}/{count['id']}"), 404, "not-found")
    assert other.ok("GET", COUNTS)["items"] == []
    assert_field(other.call("GET", f"{COUNTS}/nope"), 422, "validation", "count_id")
