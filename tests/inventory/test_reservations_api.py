"""POST/GET /api/v1/inventory/reservations and .../{id}/release (API.md, Inventory:
Reservations): the reply's shape, short stock as 409 `insufficient-stock` naming
`quantity`, bad input as a named 422 with nothing written, release's states, the list's
filters and cursor, idempotency, and the stock.changed events (one per level and commit).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from erp.http import ErpFlask
from erp.inventory.reservation_commands import ReservationView
from erp.inventory.reservation_schemas import ReservationOut
from tests.inventory.reservations_support import Shop, assert_stock_consistent, new_shop


@pytest.fixture
def shop(app: ErpFlask, client: Any, app_url: str, ops_headers: dict[str, str]) -> Shop:
    return new_shop(app, client, app_url, ops_headers)


def _body(item: uuid.UUID, location: uuid.UUID, quantity: Any, **extra: Any) -> dict[str, Any]:
    return {"item_id": str(item), "location_id": str(location), "quantity": quantity, **extra}


def test_a_reservation_holds_available_stock(shop: Shop) -> None:
    item, loc = shop.item(), shop.location()
    shop.receive(item, loc, 10)
    r = shop.api("POST", "/reservations", _body(item, loc, 4, reference="cart 7"))
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body == {
        "id": body["id"],
        "item_id": str(item),
        "location_id": str(loc),
        "quantity": 4,
        "consumed": 0,
        "status": "held",
        "order_id": None,
        "order_line_id": None,
        "reference": "cart 7",
        "created_at": body["created_at"],
    }
    assert datetime.fromisoformat(body["created_at"]).utcoffset() == UTC.utcoffset(None)
    assert shop.level(item, loc) == (10, 4)
    got = shop.api("GET", f"/reservations/{body['id']}")
    assert got.status_code == 200
    assert got.get_json() == body
    assert_stock_consistent(shop)


def test_the_reply_is_what_the_schema_dumps(shop: Shop) -> None:
    at = datetime(2026, 12, 1, 9, 0, 0, 120, tzinfo=UTC)
    for order in (None, uuid.uuid4()):
        view = ReservationView(
            uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), 3, 1, "held", order,
            order and uuid.uuid4(), "ref \u2028 \"q\"", at,
        )  # fmt: skip
        assert view.to_json() == ReservationOut().dump(view)


def test_short_stock_is_409_naming_quantity_and_writes_nothing(shop: Shop) -> None:
    item, loc = shop.item(), shop.location()
    shop.receive(item, loc, 3)
    before = shop.footprint()
    r = shop.api("POST", "/reservations", _body(item, loc, 5))
    assert r.status_code == 409, r.get_json()
    problem = r.get_json()
    assert problem["type"].endswith("/insufficient-stock")
    assert problem["errors"] == {"quantity": ["5 requested, 3 available."]}
    assert problem["detail"] == "Not enough stock: 5 requested, 3 available."
    assert shop.footprint() == before
    # a level never touched holds nothing
    other = shop.item()
    r = shop.api("POST", "/reservations", _body(other, loc, 1))
    assert r.status_code == 409
    assert r.get_json()["errors"] == {"quantity": ["1 requested, 0 available."]}
    assert shop.footprint() == before


def test_reserved_units_are_not_available_to_the_next(shop: Shop) -> None:
    item, loc = shop.item(), shop.location()
    shop.receive(item, loc, 5)
    assert shop.api("POST", "/reservations", _body(item, loc, 3)).status_code == 201
    r = shop.api("POST", "/reservations", _body(item, loc, 3))
    assert r.status_code == 409
    assert r.get_json()["errors"] == {"quantity": ["3 requested, 2 available."]}
    assert shop.api("POST", "/reservations", _body(item, loc, 2)).status_code == 201
    assert shop.level(item, loc) == (5, 5)


def test_a_location_allowing_negative_stock_reserves_past_on_hand(shop: Shop) -> None:
    item, loc = shop.item(), shop.location(allow_negative=True)
    r = shop.api("POST", "/reservations", _body(item, loc, 7))
    assert r.status_code == 201, r.get_json()
    assert shop.level(item, loc) == (0, 7)
    assert_stock_consistent(shop)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"quantity": 0}, "quantity"),
        ({"quantity": -2}, "quantity"),
        ({"quantity": 1.5}, "quantity"),
        ({"quantity": 2.0}, "quantity"),
        ({"quantity": "2"}, "quantity"),
        ({"quantity": True}, "quantity"),
        ({"quantity": None}, "quantity"),
        ({"quantity": 2**63}, "quantity"),
        ({"item_id": "not-a-uuid"}, "item_id"),
        ({"location_id": 7}, "location_id"),
        ({"reference": "x" * 201}, "reference"),
        ({"order_id": str(uuid.uuid4())}, "order_id"),
        ({"status": "held"}, "status"),
    ],
)
def test_bad_input_is_a_named_422_and_writes_nothing(
    shop: Shop, change: dict[str, Any], field: str
) -> None:
    item, loc = shop.item(), shop.location()
    shop.receive(item, loc, 10)
    before = shop.footprint()
    r = shop.api("POST", "/reservations", {**_body(item, loc, 1), **change})
    assert r.status_code == 422, r.get_json()
    problem = r.get_json()
    assert problem["type"].endswith("/validation")
    assert list(problem["errors"]) == [field], problem
    assert shop.footprint() == before


def test_missing_fields_are_named(shop: Shop) -> None:
    r = shop.api("POST", "/reservations", {})
    assert r.status_code == 422
    assert set(r.get_json()["errors"]) == {"item_id", "location_id", "quantity"}


def test_unknown_foreign_or_archived_items_and_locations_are_named(
    shop: Shop, app: ErpFlask, client: Any, app_url: str, ops_headers: dict[str, str]
) -> None:
    stranger = new_shop(app, client, app_url, ops_headers)
    their_item, their_loc = stranger.item(), stranger.location()
    stranger.receive(their_item, their_loc, 10)
    item, loc = shop.item(), shop.location()
    shop.receive(item, loc, 10)
    archived_item, archived_loc = shop.item(archived=True), shop.location(archived=True)
    cases = [
        (_body(uuid.uuid4(), loc, 1), {"item_id": ["Unknown item."]}),
        (_body(their_item, loc, 1), {"item_id": ["Unknown item."]}),
        (_body(item, uuid.uuid4(), 1), {"location_id": ["Unknown location."]}),
        (_body(item, their_loc, 1), {"location_id": ["Unknown location."]}),
        (_body(their_item, their_loc, 1),
         {"item_id": ["Unknown item."], "location_id": ["Unknown location."]}),
        (_body(archived_item, loc, 1), {"item_id": ["The item is archived."]}),
        (_body(item, archived_loc, 1), {"location_id": ["The location is archived."]}),
    ]  # fmt: skip
    before, theirs = shop.footprint(), stranger.footprint()
    for body, errors in cases:
        r = shop.api("POST", "/reservations", body)
        assert r.status_code == 422, (body, r.get_json())
        assert r.get_json()["type"].endswith("/validation")
        assert r.get_json()["errors"] == errors
    assert shop.footprint() == before
    assert stranger.footprint() == theirs
    assert stranger.level(their_item, their_loc) == (10, 0)


def test_release_frees_the_units_once(shop: Shop) -> None:
    item, loc = shop.item(), shop.location()
    shop.receive(item, loc, 10)
    made = shop.api("POST", "/reservations", _body(item, loc, 6)).get_json()
    r = shop.api("POST", f"/reservations/{made['id']}/release")
    assert r.status_code == 200, r.get_json()
    assert r.get_json() == {**made, "status": "released"}
    assert shop.level(item, loc) == (10, 0)
    again = shop.api("POST", f"/reservations/{made['id']}/release")
    assert again.status_code == 409
    assert again.get_json()["type"].endswith("/conflict")
    assert again.get_json()["detail"] == "The reservation is released, not held."
    assert shop.level(item, loc) == (10, 0)
    assert_stock_consistent(shop)


def test_release_of_unknown_foreign_or_malformed_ids(
    shop: Shop, app: ErpFlask, client: Any, app_url: str, ops_headers: dict[str, str]
) -> None:
    stranger = new_shop(app, client, app_url, ops_headers)
    item, loc = stranger.item(), stranger.location()
    stranger.receive(item, loc, 5)
    theirs = stranger.api("POST", "/reservations", _body(item, loc, 2)).get_json()
    absent = shop.api("POST", f"/reservations/{uuid.uuid4()}/release")
    foreign = shop.api("POST", f"/reservations/{theirs['id']}/release")
    for r in (absent, foreign):
        assert r.status_code == 404, r.get_json()
        assert r.get_json()["type"].endswith("/not-found")
    assert absent.get_json()["detail"] == foreign.get_json()["detail"]
    assert shop.api("GET", f"/reservations/{theirs['id']}").status_code == 404
    assert stranger.level(item, loc) == (5, 2)
    bad = shop.api("POST", "/reservations/nope/release")
    assert bad.status_code == 422
    assert list(bad.get_json()["errors"]) == ["reservation_id"]


def test_an_orders_reservation_is_released_by_cancelling_the_order(shop: Shop) -> None:
    item, loc = shop.item(), shop.location()
    shop.receive(item, loc, 5)
    (held,) = shop.reserve([(item, loc, 2)], order_id=uuid.uuid4())
    r = shop.api("POST", f"/reservations/{held.id}/release")
    assert r.status_code == 409
    assert r.get_json()["type"].endswith("/conflict")
    assert "cancel the order" in r.get_json()["detail"]
    assert shop.level(item, loc) == (5, 2)


def test_release_takes_no_body_fields(shop: Shop) -> None:
    item, loc = shop.item(), shop.location()
    shop.receive(item, loc, 5)
    made = shop.api("POST", "/reservations", _body(item, loc, 1)).get_json()
    r = shop.api("POST", f"/reservations/{made['id']}/release", {"quantity": 1})
    assert r.status_code == 422
    assert shop.level(item, loc) == (5, 1)
    assert shop.api("POST", f"/reservations/{made['id']}/release", {}).status_code == 200


def test_the_list_filters_and_pages(shop: Shop) -> None:
    a, b = shop.item(), shop.item()
    x, y = shop.location(), shop.location()
    for item in (a, b):
        for loc in (x, y):
            shop.receive(item, loc, 10)
    ids = {}
    for item, loc, name in ((a, x, "ax"), (a, y, "ay"), (b, x, "bx")):
        ids[name] = shop.api("POST", "/reservations", _body(item, loc, 1)).get_json()["id"]
    order = uuid.uuid4()
    (by_order,) = shop.reserve([(b, y, 2)], order_id=order)
    ids["by"] = str(by_order.id)
    shop.api("POST", f"/reservations/{ids['ay']}/release")

    def listed(**query: str) -> list[str]:
        r = shop.client.get(
            "/api/v1/inventory/reservations", query_string=query, headers=shop.tenant.headers
        )
        assert r.status_code == 200, r.get_json()
        return [i["id"] for i in r.get_json()["items"]]

    assert set(listed()) == set(ids.values())
    assert set(listed(item_id=str(a))) == {ids["ax"], ids["ay"]}
    assert set(listed(location_id=str(x))) == {ids["ax"], ids["bx"]}
    assert listed(order_id=str(order)) == [ids["by"]]
    assert listed(status="released") == [ids["ay"]]
    assert set(listed(item_id=str(a), status="held")) == {ids["ax"]}
    # newest first, one page at a time, nothing lost or repeated
    seen, cursor = [], None
    while True:
        query = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        r = shop.client.get(
            "/api/v1/inventory/reservations", query_string=query, headers=shop.tenant.headers
        )
        page = r.get_json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == listed()
    for query in ({"status": "gone"}, {"item": str(a)}, {"order_id": "x"}, {"cursor": "junk"}):
        r = shop.client.get(
            "/api/v1/inventory/reservations", query_string=query, headers=shop.tenant.headers
        )
        assert r.status_code == 422, query


def test_one_idempotency_key_makes_one_reservation(shop: Shop) -> None:
    item, loc = shop.item(), shop.location()
    shop.receive(item, loc, 5)
    key = {"Idempotency-Key": f"res-{uuid.uuid4()}"}
    first = shop.api("POST", "/reservations", _body(item, loc, 2), headers=key)
    again = shop.api("POST", "/reservations", _body(item, loc, 2), headers=key)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json() == first.get_json()
    assert shop.level(item, loc) == (5, 2)
    other = shop.api("POST", "/reservations", _body(item, loc, 1), headers=key)
    assert other.status_code == 409
    assert other.get_json()["type"].endswith("/idempotency-mismatch")


def test_scopes(shop: Shop, client: Any, ops_headers: dict[str, str]) -> None:
    from tests.conftest import make_tenant

    reader = make_tenant(client, ops_headers, scopes=["inventory:read"])
    item, loc = uuid.uuid4(), uuid.uuid4()
    r = client.post(
        "/api/v1/inventory/reservations", json=_body(item, loc, 1), headers=reader.headers
    )
    assert r.status_code == 403
    assert client.get("/api/v1/inventory/reservations", headers=reader.headers).status_code == 200


def test_stock_changed_once_per_level_and_commit(shop: Shop) -> None:
    a, b = shop.item(), shop.item()
    loc = shop.location()
    shop.receive(a, loc, 10)
    shop.receive(b, loc, 10)
    already = len(shop.events())
    held = shop.reserve([(a, loc, 2), (b, loc, 1), (a, loc, 3)])
    events = shop.events()[already:]
    assert len(events) == 2, events
    by_item = {e["item_id"]: e for e in events}
    ea, eb = by_item[str(a)], by_item[str(b)]
    assert (ea["on_hand"], ea["reserved"], ea["available"]) == (10, 5, 5)
    assert ea["delta"] == {"on_hand": 0, "reserved": 5}
    assert ea["location_id"] == str(loc)
    assert {s["id"] for s in ea["sources"]} == {str(held[0].id), str(held[2].id)}
    assert {s["type"] for s in ea["sources"]} == {"reservation"}
    assert eb["delta"] == {"on_hand": 0, "reserved": 1}
    assert eb["sources"] == [{"type": "reservation", "id": str(held[1].id)}]
    # a release: one event, the reserved units back
    shop.api("POST", f"/reservations/{held[1].id}/release")
    (released,) = shop.events()[already + 2 :]
    assert released["delta"] == {"on_hand": 0, "reserved": -1}
    assert (released["reserved"], released["available"]) == (0, 10)
    # a refusal: none
    shop.api("POST", "/reservations", _body(a, loc, 99))
    assert len(shop.events()) == already + 3


def test_reserving_below_the_reorder_point_emits_stock_low_once(shop: Shop) -> None:
    item, loc = shop.item(reorder_point=5), shop.location()
    shop.receive(item, loc, 8)
    assert shop.events("stock.low") == []
    for quantity in (2, 2, 1):  # available 6, then 4 (crossing), then 3
        assert shop.api("POST", "/reservations", _body(item, loc, quantity)).status_code == 201
    low = shop.events("stock.low")
    assert [(e["item_id"], e["available"], e["reorder_point"]) for e in low] == [(str(item), 4, 5)]
    # released back to 8 (re-armed), then down again: a second crossing, a second event
    for made in shop.api("GET", f"/reservations?item_id={item}").get_json()["items"]:
        assert shop.api("POST", f"/reservations/{made['id']}/release").status_code == 200
    assert shop.api("POST", "/reservations", _body(item, loc, 6)).status_code == 201
    assert [e["available"] for e in shop.events("stock.low")] == [4, 2]
