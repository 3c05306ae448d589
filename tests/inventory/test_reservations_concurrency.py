"""Reservations under real concurrency: 64 threads, each with its own PostgreSQL
connection, through the services (one unit of work each, as the order pipeline) and
through a real threaded HTTP server.

The last unit goes to exactly one buyer, every round; a multi-line reservation is all
or nothing while others race for the same levels; reservations listing the same levels
in opposite orders never deadlock (no 40P01 and no retry-exhausted 409 reaches anyone).
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from erp.errors import Problem
from erp.extensions import db
from erp.http import ErpFlask
from erp.inventory import services
from tests.conftest import AppFactory
from tests.inventory.reservations_support import Shop, assert_stock_consistent, new_shop
from tests.ledger.helpers_concurrency import Reply, request, serve, together

BUYERS = 64
ROUNDS = 5


@pytest.fixture
def racing_app(make_app: AppFactory) -> Iterator[ErpFlask]:
    """An app whose pool gives each of the 64 threads its own connection at once."""
    app = make_app(db_pool_size=2, db_max_overflow=BUYERS + 4, db_pool_timeout=60)
    yield app
    with app.app_context():
        db.dispose()


@pytest.fixture
def shop(racing_app: ErpFlask, client: Any, app_url: str, ops_headers: dict[str, str]) -> Shop:
    return new_shop(racing_app, client, app_url, ops_headers)


def _deadlocks(shop: Shop) -> int:
    """Deadlocks PostgreSQL detected in this database so far. Retries (40P01 re-runs the
    unit of work) would hide one from the outcomes; this counter does not. A backend
    reports its count when it ends: the racing app's pool is closed first."""
    with shop.app.app_context():
        db.dispose()
    rows = shop.rows(
        "SELECT pg_stat_clear_snapshot(), deadlocks FROM pg_stat_database"
        " WHERE datname = current_database()"
    )
    return int(rows[0][1])


def _outcome(shop: Shop, lines: list[tuple[uuid.UUID, uuid.UUID, int]]) -> str:
    try:
        shop.reserve(lines)
        return "reserved"
    except Problem as problem:
        return problem.slug


def test_the_last_unit_goes_to_exactly_one_buyer_through_the_services(shop: Shop) -> None:
    item, loc = shop.item(), shop.location()
    for round_ in range(ROUNDS):
        shop.receive(item, loc, 1)
        outcomes = together(BUYERS, lambda _i: _outcome(shop, [(item, loc, 1)]))
        assert Counter(outcomes) == {"reserved": 1, "insufficient-stock": BUYERS - 1}, round_
        assert shop.level(item, loc) == (round_ + 1, round_ + 1)
    assert shop.count("inventory.reservations") == ROUNDS
    assert_stock_consistent(shop)


def test_the_last_unit_goes_to_exactly_one_buyer_through_the_api(
    shop: Shop, racing_app: ErpFlask
) -> None:
    item, loc = shop.item(), shop.location()
    body = {"item_id": str(item), "location_id": str(loc), "quantity": 1}
    with serve(racing_app) as url:

        def buy(_i: int) -> Reply:
            return request(url, "POST", "/api/v1/inventory/reservations", body, shop.tenant.headers)

        for round_ in range(ROUNDS):
            shop.receive(item, loc, 1)
            replies = together(BUYERS, buy)
            statuses = Counter(r.status for r in replies)
            assert statuses == {201: 1, 409: BUYERS - 1}, [r.body for r in replies]
            assert {r.slug for r in replies if r.status == 409} == {"insufficient-stock"}
            assert {tuple(r.body["errors"]["quantity"]) for r in replies if r.status == 409} == {
                ("1 requested, 0 available.",)
            }
            assert shop.level(item, loc) == (round_ + 1, round_ + 1)
    assert shop.count("inventory.reservations") == ROUNDS
    assert_stock_consistent(shop)


def test_multi_line_reservations_are_all_or_nothing_under_contention(shop: Shop) -> None:
    """Stock for 10 of each of two items; 64 buyers each want one of each, lines in
    either order: exactly 10 get both and nobody gets one without the other."""
    a, b = shop.item(), shop.item()
    loc = shop.location()
    shop.receive(a, loc, 10)
    shop.receive(b, loc, 15)
    deadlocks = _deadlocks(shop)

    def buy(i: int) -> str:
        lines = [(a, loc, 1), (b, loc, 1)]
        return _outcome(shop, lines if i % 2 else lines[::-1])

    outcomes = Counter(together(BUYERS, buy))
    assert outcomes == {"reserved": 10, "insufficient-stock": BUYERS - 10}
    assert (shop.level(a, loc), shop.level(b, loc)) == ((10, 10), (15, 10))
    assert _deadlocks(shop) == deadlocks
    assert_stock_consistent(shop)


def test_opposite_multi_line_reservations_never_deadlock(shop: Shop) -> None:
    """Reservations listing the same levels in opposite orders, with releases and
    consumption of earlier ones racing them: every one succeeds (plenty of stock), so a
    deadlock would show as an error, not as a refusal."""
    items = [shop.item() for _ in range(3)]
    locs = [shop.location() for _ in range(2)]
    for item in items:
        for loc in locs:
            shop.receive(item, loc, 10_000)
    levels = [(item, loc) for item in items for loc in locs]
    deadlocks = _deadlocks(shop)

    def work(i: int) -> list[str]:
        rng = random.Random(i)
        out = []
        for _ in range(6):
            chosen = rng.sample(levels, 4)
            lines = [(item, loc, rng.randint(1, 5)) for item, loc in chosen]
            if i % 2:
                lines.reverse()
            try:
                held = shop.reserve(lines)
            except Exception as exc:  # any failure is the finding
                out.append(f"{type(exc).__name__}: {exc}")
                continue
            out.append("reserved")
            if rng.random() < 0.5:
                shop.run(lambda s, h=held: services.release(s, [v.id for v in h]))
        return out

    results = [r for batch in together(BUYERS // 2, work) for r in batch]
    assert set(results) == {"reserved"}, Counter(results).most_common(5)
    assert _deadlocks(shop) == deadlocks
    assert_stock_consistent(shop)
