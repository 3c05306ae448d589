"""Placing orders (API.md, Orders: Placing): pricing and rounding, validation (problem+json,
nothing written), shortage refused or backordered, deduplication by (channel,
external_id) and by Idempotency-Key, races for the last unit and for one external_id,
tenant isolation, the reads (GET /orders, GET /orders/{id})."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import pytest

from erp.http import ErpFlask
from tests.conftest import AppFactory
from tests.ledger.helpers_concurrency import Reply, request, serve, together
from tests.orders.placement_support import ORDERS, Shop, new_shop, order_body

ORDER_KEYS = [
    "id", "status", "external_id", "channel_id", "currency", "customer", "location_id",
    "lines", "shipping", "subtotal", "tax", "total", "paid", "credited", "balance_due",
    "metadata", "created_at",
]  # fmt: skip
LINE_KEYS = [
    "id", "item_id", "sku", "quantity", "unit_price", "tax_code", "subtotal", "tax", "total",
    "backordered", "fulfilled", "cancelled", "returned",
]  # fmt: skip


@pytest.fixture
def shop(client: Any, ops_headers: dict[str, str], app_url: str) -> Shop:
    return new_shop(client, ops_headers, app_url)


# -- pricing ---------------------------------------------------------------------------


def test_an_order_is_priced_reserved_written_and_announced(shop: Shop) -> None:
    mug, mug_sku = shop.item(stock=10)
    tee, tee_sku = shop.item(stock=5)
    shop.tax_rate("NY", 88_750)
    body = order_body(
        {"item_id": mug, "quantity": 2, "unit_price": 1500},
        {"sku": tee_sku, "quantity": 3, "unit_price": 999, "discount": 97, "tax_code": "NY"},
        {"sku": mug_sku, "quantity": 1, "unit_price": 500, "tax": 40},
        shipping={"amount": 495, "tax_code": "NY"},
        external_id="shop-1001",
        metadata={"note": "gift"},
    )
    r = shop.post(ORDERS, body)
    assert r.status_code == 201, r.get_json()
    order = r.get_json()
    assert list(order) == ORDER_KEYS
    assert [list(line) for line in order["lines"]] == [LINE_KEYS] * 3
    # 2997 - 97 = 2900; 2900 * 8.875 % = 257.375 -> 257; shipping 495 * 8.875 % = 43.93 -> 44
    assert [(ln["sku"], ln["subtotal"], ln["tax"], ln["total"]) for ln in order["lines"]] == [
        (mug_sku, 3000, 0, 3000),
        (tee_sku, 2900, 257, 3157),
        (mug_sku, 500, 40, 540),
    ]
    assert order["lines"][1]["item_id"] == tee
    assert order["lines"][2]["item_id"] == mug
    assert order["shipping"] == {"amount": 495, "tax_code": "NY", "tax": 44, "total": 539}
    assert (order["subtotal"], order["tax"], order["total"]) == (6895, 341, 7236)
    assert (order["paid"], order["credited"], order["balance_due"]) == (0, 0, 7236)
    assert order["status"] == "confirmed"
    assert order["external_id"] == "shop-1001"
    assert order["location_id"] == str(shop.main)
    assert order["channel_id"] is None
    assert order["customer"]["email"] == "ada@example.com"
    assert order["metadata"] == {"note": "gift"}
    assert all(ln["backordered"] == 0 for ln in order["lines"])
    assert shop.level(mug) == (10, 3)
    assert shop.level(tee) == (5, 3)
    reservations = shop.rows(
        "SELECT r.order_line_id, r.quantity FROM inventory.reservations r"
        " JOIN orders.order_lines l ON l.reservation_id = r.id WHERE r.order_id = %s"
        " ORDER BY l.line_no",
        order["id"],
    )
    assert [(str(a), b) for a, b in reservations] == [
        (ln["id"], ln["quantity"]) for ln in order["lines"]
    ]
    got = shop.client.get(f"{ORDERS}/{order['id']}", headers=shop.tenant.headers)
    assert got.status_code == 200
    assert got.get_json() == order
    events = shop.rows(
        "SELECT id, payload FROM webhooks.outbox_events WHERE event_type = 'order.created'"
    )
    assert [e[1] for e in events] == [order]


@pytest.mark.parametrize(
    ("unit_price", "quantity", "rate_ppm", "tax"),
    [
        (4, 1, 125_000, 1),  # 0.5 exactly: up
        (2, 1, 250_000, 1),  # 0.5 exactly: up
        (10, 1, 50_000, 1),  # 0.5 exactly: up
        (30, 1, 50_000, 2),  # 1.5 exactly: up
        (1, 1, 499_999, 0),  # 0.499999: down
        (3, 1, 166_667, 1),  # 0.500001: up
        (7, 1, 71_428, 0),  # 0.499996: down
        (1000, 1, 88_750, 89),  # 88.75
        (1, 1, 1_000_000, 1),  # 100 %
        (0, 5, 200_000, 0),
        (1, 1, 0, 0),
        (999_999_999_999, 9, 200_000, 1_799_999_999_998),  # 1,799,999,999,998.2
        (1_000_000_000_000_001, 1, 500_000, 500_000_000_000_001),  # .5 above 2**53
    ],
)
def test_tax_rounds_half_up_in_integer_minor_units(
    shop: Shop, unit_price: int, quantity: int, rate_ppm: int, tax: int
) -> None:
    item, _ = shop.item(stock=quantity)
    shop.tax_rate("T", rate_ppm)
    line = {"item_id": item, "quantity": quantity, "unit_price": unit_price, "tax_code": "T"}
    r = shop.post(ORDERS, order_body(line))
    assert r.status_code == 201, r.get_json()
    got = r.get_json()["lines"][0]
    assert (got["subtotal"], got["tax"], got["total"]) == (
        unit_price * quantity,
        tax,
        unit_price * quantity + tax,
    )
    assert got["tax_code"] == "T"


# -- validation: 422 problem+json naming the field, nothing written --------------------


def _line(item: str, **kw: Any) -> dict[str, Any]:
    return {"item_id": item, "quantity": 1, "unit_price": 100, **kw}


BAD_BODIES: list[tuple[str, Any, str]] = [
    ("no lines", lambda s, i, k: order_body(), "lines"),
    ("501 lines", lambda s, i, k: order_body(*[_line(i)] * 501), "lines"),
    ("no customer", lambda s, i, k: {"currency": "USD", "lines": [_line(i)]}, "customer"),
    ("bad email", lambda s, i, k: {**order_body(_line(i)), "customer": {"name": "A", "email": "x"}},
     "customer.email"),
    ("no currency", lambda s, i, k: {**order_body(_line(i)), "currency": None}, "currency"),
    ("unknown currency", lambda s, i, k: {**order_body(_line(i)), "currency": "XXX"}, "currency"),
    ("a currency without the order accounts", lambda s, i, k: {**order_body(_line(i)),
     "currency": "EUR"}, "currency"),
    ("item_id and sku", lambda s, i, k: order_body(_line(i, sku=k)), "lines.0.item_id"),
    ("neither item_id nor sku", lambda s, i, k: order_body({"quantity": 1, "unit_price": 1}),
     "lines.0.item_id"),
    ("tax_code and tax", lambda s, i, k: order_body(_line(i, tax_code="STD", tax=1)),
     "lines.0.tax"),
    ("discount above the line", lambda s, i, k: order_body(_line(i, quantity=2, discount=201)),
     "lines.0.discount"),
    ("negative discount", lambda s, i, k: order_body(_line(i, discount=-1)), "lines.0.discount"),
    ("quantity 0", lambda s, i, k: order_body(_line(i, quantity=0)), "lines.0.quantity"),
    ("negative quantity", lambda s, i, k: order_body(_line(i, quantity=-3)), "lines.0.quantity"),
    ("float quantity", lambda s, i, k: order_body(_line(i, quantity=1.0)), "lines.0.quantity"),
    ("string price", lambda s, i, k: order_body(_line(i, unit_price="1.00")),
     "lines.0.unit_price"),
    ("negative price", lambda s, i, k: order_body(_line(i, unit_price=-1)), "lines.0.unit_price"),
    ("price past int64", lambda s, i, k: order_body(_line(i, unit_price=2**63)),
     "lines.0.unit_price"),
    ("price * quantity past int64", lambda s, i, k: order_body(_line(i, quantity=2,
     unit_price=2**62)), "lines.0.quantity"),
    ("total past int64", lambda s, i, k: order_body(_line(i, unit_price=2**62),
     _line(i, unit_price=2**62)), "lines"),
    ("unknown item", lambda s, i, k: order_body(_line(str(uuid.uuid4()))), "lines.0.item_id"),
    ("unknown sku", lambda s, i, k: order_body({"sku": "NOPE-1", "quantity": 1,
     "unit_price": 1}), "lines.0.sku"),
    ("malformed item id", lambda s, i, k: order_body(_line("nope")), "lines.0.item_id"),
    ("unknown tax code", lambda s, i, k: order_body(_line(i), _line(i, tax_code="NOPE")),
     "lines.1.tax_code"),
    ("archived tax code", lambda s, i, k: order_body(_line(i, tax_code="OLD")),
     "lines.0.tax_code"),
    ("unknown shipping tax code", lambda s, i, k: order_body(_line(i),
     shipping={"amount": 1, "tax_code": "NOPE"}), "shipping.tax_code"),
    ("shipping tax and code", lambda s, i, k: order_body(_line(i),
     shipping={"amount": 1, "tax_code": "STD", "tax": 1}), "shipping.tax"),
    ("unknown channel", lambda s, i, k: order_body(_line(i), channel_id=str(uuid.uuid4())),
     "channel_id"),
    ("archived channel", lambda s, i, k: order_body(_line(i),
     channel_id=s.channel(archived=True)), "channel_id"),
    ("unknown location", lambda s, i, k: order_body(_line(i), location_id=str(uuid.uuid4())),
     "location_id"),
    ("empty external_id", lambda s, i, k: order_body(_line(i), external_id=""), "external_id"),
    ("long external_id", lambda s, i, k: order_body(_line(i), external_id="x" * 256),
     "external_id"),
    ("unknown field", lambda s, i, k: {**order_body(_line(i)), "tenant_id": "x"}, "tenant_id"),
    ("unknown line field", lambda s, i, k: order_body(_line(i, price=1)), "lines.0.price"),
    ("metadata value", lambda s, i, k: order_body(_line(i), metadata={"a": [1]}), "metadata"),
    ("51 metadata keys", lambda s, i, k: order_body(_line(i),
     metadata={f"k{n}": n for n in range(51)}), "metadata"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("make", "field"), [b[1:] for b in BAD_BODIES], ids=[b[0] for b in BAD_BODIES]
)
def test_a_refused_order_names_the_field_and_writes_nothing(
    shop: Shop, make: Any, field: str
) -> None:
    item, sku = shop.item(stock=10)
    shop.tax_rate("STD", 200_000)
    shop.tax_rate("OLD", 100_000, archived=True)
    body = make(shop, item, sku)
    before = shop.written()
    r = shop.post(ORDERS, body)
    assert r.status_code == 422, r.get_json()
    assert r.mimetype == "application/problem+json"
    problem = r.get_json()
    assert problem["type"].endswith("/validation")
    assert problem["status"] == 422
    assert field in problem["errors"], problem
    assert shop.written() == before
    assert shop.level(item) == (10, 0)


def test_every_line_fault_is_named_at_once(shop: Shop) -> None:
    item, _ = shop.item(stock=1)
    shop.execute("UPDATE inventory.items SET archived = true WHERE id = %s", item)
    body = order_body(
        _line(item),
        {"sku": "GONE-1", "quantity": 1, "unit_price": 1, "tax_code": "NOPE"},
        location_id=str(uuid.uuid4()),
    )
    r = shop.post(ORDERS, body)
    assert r.status_code == 422
    assert r.get_json()["errors"] == {
        "location_id": ["Unknown location."],
        "lines.0.item_id": ["The item is archived."],
        "lines.1.sku": ["Unknown SKU."],
        "lines.1.tax_code": ["Unknown tax code."],
    }


@pytest.mark.parametrize(
    "raw",
    [
        b'{"customer": {"name": "A\\u0000", "email": "a@example.com"}, "currency": "USD",'
        b' "lines": [{"sku": "X", "quantity": 1, "unit_price": 1}]}',
        b'{"customer": {"name": "\\ud800", "email": "a@example.com"}, "currency": "USD",'
        b' "lines": [{"sku": "X", "quantity": 1, "unit_price": 1}]}',
        b'{"customer": 1, "currency": "USD", "lines": 2}',
        b'{"customer": {}, "currency": [], "lines": [null, 1, "x", {}]}',
        b'{"lines": [{"quantity": 1e400, "unit_price": 99999999999999999999999999}]}',
        b'{"lines": [{"sku": "' + b"A" * 5000 + b'", "quantity": 1, "unit_price": 1}]}',
        b"[" * 2000 + b"]" * 2000,
        b"\xff\xfe",
        b'{"customer": {"name": "A", "email": "a@example.com"}, "currency": "USD",'
        b' "lines": [{"sku": "X", "quantity": 1, "unit_price": 1}], "metadata": {"k": 1e999}}',
        b"null",
    ],
)
def test_bad_input_is_a_4xx_never_a_500(shop: Shop, raw: bytes) -> None:
    r = shop.client.post(
        ORDERS, data=raw, headers={**shop.tenant.headers, "Content-Type": "application/json"}
    )
    assert 400 <= r.status_code < 500, (r.status_code, r.get_data()[:300])
    assert shop.count("orders.orders") == 0


# -- stock: all or nothing, or backordered --------------------------------------------


def test_a_shortage_refuses_the_order_naming_each_short_line(shop: Shop) -> None:
    a, _ = shop.item(stock=5)
    b, _ = shop.item(stock=1)
    c, _ = shop.item()
    before = shop.written()
    r = shop.post(ORDERS, order_body(_line(a, quantity=2), _line(b, quantity=2), _line(c)))
    assert r.status_code == 409
    problem = r.get_json()
    assert problem["type"].endswith("/insufficient-stock")
    assert problem["errors"] == {
        "lines.1.quantity": ["2 requested, 1 available."],
        "lines.2.quantity": ["1 requested, 0 available."],
    }
    assert shop.written() == before
    assert [shop.level(x) for x in (a, b, c)] == [(5, 0), (1, 0), (0, 0)]


def test_lines_of_one_item_share_its_stock(shop: Shop) -> None:
    a, sku = shop.item(stock=3)
    r = shop.post(
        ORDERS, order_body(_line(a, quantity=2), {"sku": sku, "quantity": 2, "unit_price": 1})
    )
    assert r.status_code == 409
    assert set(r.get_json()["errors"]) == {"lines.0.quantity", "lines.1.quantity"}
    assert shop.level(a) == (3, 0)


def test_a_backorder_channel_places_the_order_with_the_missing_units_backordered(
    shop: Shop,
) -> None:
    a, _ = shop.item(stock=5)
    b, _ = shop.item(stock=1)
    c, _ = shop.item()
    channel = shop.channel("backorder")
    lines = [_line(a, quantity=2), _line(b, quantity=3), _line(c, quantity=4), _line(a, quantity=4)]
    r = shop.post(ORDERS, order_body(*lines, channel_id=channel))
    assert r.status_code == 201, r.get_json()
    order = r.get_json()
    assert order["channel_id"] == channel
    assert [ln["backordered"] for ln in order["lines"]] == [0, 2, 4, 1]
    assert [shop.level(x) for x in (a, b, c)] == [(5, 5), (1, 1), (0, 0)]
    held = shop.rows(
        "SELECT l.line_no, r.quantity FROM orders.order_lines l"
        " LEFT JOIN inventory.reservations r ON r.id = l.reservation_id"
        " WHERE l.order_id = %s ORDER BY l.line_no",
        order["id"],
    )
    assert [tuple(h) for h in held] == [(0, 2), (1, 1), (2, None), (3, 3)]


def test_the_channels_location_is_the_default_and_a_given_one_wins(shop: Shop) -> None:
    elsewhere = shop.location()
    item, _ = shop.item(stock=2)
    shop.receive(item, 4, elsewhere)
    channel = shop.channel(location=elsewhere)
    r = shop.post(ORDERS, order_body(_line(item, quantity=3), channel_id=channel))
    assert r.status_code == 201
    assert r.get_json()["location_id"] == str(elsewhere)
    r = shop.post(ORDERS, order_body(_line(item), channel_id=channel, location_id=str(shop.main)))
    assert r.status_code == 201
    assert r.get_json()["location_id"] == str(shop.main)
    assert (shop.level(item, elsewhere), shop.level(item)) == ((4, 3), (2, 1))


def test_a_customer_is_matched_by_email_whatever_its_case(shop: Shop) -> None:
    item, _ = shop.item(stock=5)
    first = shop.post(ORDERS, order_body(_line(item))).get_json()["customer"]
    again = order_body(_line(item))
    again["customer"] = {"name": "Ada L.", "email": "ADA@Example.com"}
    second = shop.post(ORDERS, again).get_json()["customer"]
    assert second == first
    assert shop.count("orders.customers") == 1


# -- deduplication ---------------------------------------------------------------------


def test_the_same_external_id_and_body_is_the_same_order(shop: Shop) -> None:
    item, _ = shop.item(stock=5)
    body = order_body(_line(item, quantity=2), external_id="shop-7")
    first = shop.post(ORDERS, body)
    assert first.status_code == 201
    # the same body, keys in another order and a default spelled out
    again = {**body, "lines": [{"discount": 0, **_line(item, quantity=2)}], "metadata": {}}
    second = shop.post(ORDERS, dict(reversed(list(again.items()))))
    assert second.status_code == 200
    assert second.get_json() == first.get_json()
    assert shop.count("orders.orders") == 1
    assert shop.level(item) == (5, 2)
    assert shop.count("webhooks.outbox_events WHERE event_type = 'order.created'") == 1


def test_the_same_external_id_with_another_body_is_a_conflict(shop: Shop) -> None:
    item, _ = shop.item(stock=5)
    assert shop.post(ORDERS, order_body(_line(item), external_id="shop-8")).status_code == 201
    r = shop.post(ORDERS, order_body(_line(item, quantity=2), external_id="shop-8"))
    assert r.status_code == 409
    assert r.get_json()["type"].endswith("/conflict")
    assert list(r.get_json()["errors"]) == ["external_id"]
    assert shop.count("orders.orders") == 1
    assert shop.level(item) == (5, 1)


def test_external_ids_are_unique_per_channel(shop: Shop) -> None:
    item, _ = shop.item(stock=5)
    one, two = shop.channel(), shop.channel()
    ids = set()
    for channel in (None, one, two):
        extra = {"channel_id": channel} if channel else {}
        r = shop.post(ORDERS, order_body(_line(item), external_id="same", **extra))
        assert r.status_code == 201, r.get_json()
        ids.add(r.get_json()["id"])
    assert len(ids) == 3


def test_an_idempotency_key_replays_the_placement(shop: Shop) -> None:
    item, _ = shop.item(stock=5)
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    first = shop.post(ORDERS, order_body(_line(item)), key)
    assert first.status_code == 201
    replay = shop.post(ORDERS, order_body(_line(item)), key)
    assert replay.status_code == 201
    assert replay.get_json() == first.get_json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    other = shop.post(ORDERS, order_body(_line(item, quantity=2)), key)
    assert other.status_code == 409
    assert other.get_json()["type"].endswith("/idempotency-mismatch")
    assert shop.count("orders.orders") == 1
    assert shop.level(item) == (5, 1)


# -- races -----------------------------------------------------------------------------

BUYERS = 16


@pytest.fixture
def racing_app(make_app: AppFactory) -> Any:
    app = make_app(db_pool_size=2, db_max_overflow=BUYERS + 4, db_pool_timeout=60)
    yield app
    from erp.extensions import db

    with app.app_context():
        db.dispose()


def test_the_last_unit_bought_at_once_goes_to_exactly_one_order(
    shop: Shop, racing_app: ErpFlask
) -> None:
    item, _ = shop.item(stock=1)
    with serve(racing_app) as url:

        def buy(i: int) -> Reply:
            body = order_body(_line(item))
            body["customer"] = {"name": f"Buyer {i}", "email": f"buyer{i}@example.com"}
            return request(url, "POST", ORDERS, body, shop.tenant.headers)

        replies = together(BUYERS, buy)
    assert Counter(r.status for r in replies) == {201: 1, 409: BUYERS - 1}, [
        r.body for r in replies
    ]
    assert {r.slug for r in replies if r.status == 409} == {"insufficient-stock"}
    assert shop.level(item) == (1, 1)
    assert shop.count("orders.orders") == 1
    assert shop.count("inventory.reservations") == 1


def test_concurrent_duplicates_of_one_external_id_make_one_order(
    shop: Shop, racing_app: ErpFlask
) -> None:
    item, _ = shop.item(stock=100)
    body = order_body(_line(item), external_id="dup-1")
    with serve(racing_app) as url:
        replies = together(
            BUYERS, lambda _i: request(url, "POST", ORDERS, body, shop.tenant.headers)
        )
    assert Counter(r.status for r in replies) == {201: 1, 200: BUYERS - 1}, [
        r.body for r in replies
    ]
    assert len({r.body["id"] for r in replies}) == 1
    assert shop.count("orders.orders") == 1
    assert shop.level(item) == (100, 1)
    assert shop.count("orders.customers") == 1


# -- tenants ---------------------------------------------------------------------------


def test_another_tenants_rows_are_unknown(
    shop: Shop, client: Any, ops_headers: dict[str, str], app_url: str
) -> None:
    other = new_shop(client, ops_headers, app_url)
    theirs, their_sku = other.item(stock=5)
    their_channel = other.channel()
    other.tax_rate("THEIRS", 100_000)
    their_order = other.post(ORDERS, order_body(_line(theirs), external_id="x")).get_json()
    mine, _ = shop.item(stock=5)
    cases = [
        (order_body(_line(theirs)), "lines.0.item_id"),
        (order_body({"sku": their_sku, "quantity": 1, "unit_price": 1}), "lines.0.sku"),
        (order_body(_line(mine), channel_id=their_channel), "channel_id"),
        (order_body(_line(mine), location_id=str(other.main)), "location_id"),
        (order_body(_line(mine, tax_code="THEIRS")), "lines.0.tax_code"),
    ]
    for body, field in cases:
        r = shop.post(ORDERS, body)
        assert r.status_code == 422, (field, r.get_json())
        assert field in r.get_json()["errors"], (field, r.get_json())
    got = shop.client.get(f"{ORDERS}/{their_order['id']}", headers=shop.tenant.headers)
    assert got.status_code == 404
    listed = shop.client.get(ORDERS, headers=shop.tenant.headers).get_json()
    assert listed == {"items": [], "next_cursor": None}
    # their external_id is not ours: ours is a new order
    assert shop.post(ORDERS, order_body(_line(mine), external_id="x")).status_code == 201
    assert other.level(theirs) == (5, 1)
    assert other.count("orders.orders") == 1


# -- reads -----------------------------------------------------------------------------


def test_orders_are_listed_newest_first_filtered_and_paged(shop: Shop) -> None:
    item, _ = shop.item(stock=100)
    channel = shop.channel()
    made = []
    for n in range(5):
        extra: dict[str, Any] = {"external_id": f"e-{n}"}
        if n % 2:
            extra["channel_id"] = channel
        made.append(shop.post(ORDERS, order_body(_line(item), **extra)).get_json())
    headers = shop.tenant.headers
    seen: list[str] = []
    url = f"{ORDERS}?limit=2"
    while True:
        page = shop.client.get(url, headers=headers).get_json()
        seen += [o["id"] for o in page["items"]]
        if page["next_cursor"] is None:
            break
        url = f"{ORDERS}?limit=2&cursor={page['next_cursor']}"
    assert seen == [o["id"] for o in reversed(made)]
    by_channel = shop.client.get(f"{ORDERS}?channel_id={channel}", headers=headers).get_json()
    assert [o["id"] for o in by_channel["items"]] == [made[3]["id"], made[1]["id"]]
    assert by_channel["items"][0] == made[3]
    one = shop.client.get(f"{ORDERS}?external_id=e-2", headers=headers).get_json()
    assert [o["id"] for o in one["items"]] == [made[2]["id"]]
    customer = made[0]["customer"]["id"]
    mine = shop.client.get(f"{ORDERS}?customer_id={customer}&status=confirmed", headers=headers)
    assert len(mine.get_json()["items"]) == 5
    none = shop.client.get(f"{ORDERS}?status=cancelled", headers=headers).get_json()
    assert none["items"] == []
    for bad in ("status=open", "channel_id=x", "colour=red", "cursor=abc", "limit=0"):
        r = shop.client.get(f"{ORDERS}?{bad}", headers=headers)
        assert r.status_code == 422, bad
    assert shop.client.get(f"{ORDERS}/nope", headers=headers).status_code == 422
    assert shop.client.get(f"{ORDERS}/{uuid.uuid4()}", headers=headers).status_code == 404


def test_scopes(shop: Shop, client: Any, ops_headers: dict[str, str]) -> None:
    from tests.conftest import make_tenant

    reader = make_tenant(client, ops_headers, scopes=["orders:read"])
    r = client.post(ORDERS, json=order_body(), headers=reader.headers)
    assert r.status_code == 403
    assert client.get(ORDERS, headers=reader.headers).status_code == 200
    nobody = make_tenant(client, ops_headers, scopes=["inventory:read"])
    assert client.get(ORDERS, headers=nobody.headers).status_code == 403


# -- the one round trip, the fast load --------------------------------------------------


def test_a_placement_without_a_key_is_one_message(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BEGIN, the pin, orders.place_order and COMMIT go to PostgreSQL as one message
    (erp.db's one-flight path); with an Idempotency-Key the call joins the key's
    transaction instead."""
    import erp.db

    sent: list[str] = []
    real = erp.db._one_flight

    def spy(bind: Any, statement: str, params: Any) -> Any:
        sent.append(statement)
        return real(bind, statement, params)

    item, _ = shop.item(stock=5)
    monkeypatch.setattr(erp.db, "_one_flight", spy)
    assert shop.post(ORDERS, order_body(_line(item))).status_code == 201
    assert len(sent) == 1
    assert "orders.place_order" in sent[0]
    keyed = shop.post(ORDERS, order_body(_line(item)), {"Idempotency-Key": "one-flight"})
    assert keyed.status_code == 201
    assert len(sent) == 1


def test_a_clean_order_body_takes_the_fast_load_path() -> None:
    from erp.fields import _compile, _fast_load, _Plan
    from erp.orders.placement_schemas import OrderIn
    from tests.core.test_fast_load import marshmallow_load

    schema = OrderIn()
    body = order_body(
        {"item_id": str(uuid.uuid4()), "quantity": 2, "unit_price": 100, "tax_code": "STD"},
        {"sku": "MUG-01", "quantity": 1, "unit_price": 5, "discount": 1, "tax": 0},
        external_id="x-1",
        metadata={"a": 1},
    )
    plan = _compile(schema)
    assert isinstance(plan, _Plan)
    assert _fast_load(plan, body) == marshmallow_load(schema, body)[1]


def _order_bodies() -> Any:
    from hypothesis import strategies as st

    from tests.core.test_fast_load import field, junk, objects, uuids

    amounts = st.integers(min_value=0, max_value=2**63 - 1)
    lines = objects(
        {
            "item_id": field(uuids | st.none(), "not-a-uuid"),
            "sku": field(st.sampled_from(["MUG-01", "A"]) | st.none(), "", "-x", "x" * 65),
            "quantity": field(st.integers(min_value=1, max_value=10), 0, -1, 1.5, "2"),
            "unit_price": field(amounts, -1, 2**63, True),
            "discount": field(amounts, -1),
            "tax_code": field(st.sampled_from(["STD"]) | st.none(), "", "a b"),
            "tax": field(amounts | st.none(), -5),
        },
        "quantity",
        "unit_price",
    )
    customers = objects(
        {
            "name": field(st.text(min_size=1, max_size=5), "", "x" * 201),
            "email": field(st.sampled_from(["a@example.com"]), "nope", ""),
        },
        "name",
        "email",
    )
    return (
        objects(
            {
                "customer": field(customers, "ada", [None]),
                "currency": field(st.sampled_from(["USD", "EUR"]), "usd", "XXX"),
                "lines": field(st.lists(lines, max_size=3), [None], [5]),
                "shipping": field(
                    st.none() | st.fixed_dictionaries({"amount": amounts}), {"amount": -1}
                ),
                "location_id": field(uuids | st.none(), "x"),
                "channel_id": field(uuids | st.none(), "x"),
                "external_id": field(st.text(min_size=1, max_size=4) | st.none(), ""),
                "metadata": field(
                    st.dictionaries(st.text(min_size=1, max_size=3), st.integers(), max_size=2)
                ),
            },
            "customer",
            "currency",
            "lines",
        )
        | junk
    )


@pytest.mark.parametrize("seed", [0])
def test_the_order_schema_loads_and_refuses_as_marshmallow_does(seed: int) -> None:
    from hypothesis import given, settings

    from erp.orders.placement_schemas import OrderIn
    from tests.core.test_fast_load import fast_load, marshmallow_load

    @settings(max_examples=300, deadline=None, database=None)
    @given(body=_order_bodies())
    def check(body: Any) -> None:
        schema = OrderIn()
        assert fast_load(schema, body) == marshmallow_load(schema, body)

    check()


def test_backorders_under_contention_never_reserve_more_than_is_on_hand(
    shop: Shop, racing_app: ErpFlask
) -> None:
    """16 buyers of 3 units each on a backorder channel, 10 on hand: every order is
    placed, exactly 10 units are reserved, the other 38 are backordered."""
    item, _ = shop.item(stock=10)
    other, _ = shop.item(stock=100)
    channel = shop.channel("backorder")
    with serve(racing_app) as url:

        def buy(i: int) -> Reply:
            lines = [_line(item, quantity=3), _line(other)]
            body = order_body(*(lines if i % 2 else lines[::-1]), channel_id=channel)
            return request(url, "POST", ORDERS, body, shop.tenant.headers)

        replies = together(BUYERS, buy)
    assert Counter(r.status for r in replies) == {201: BUYERS}, [r.body for r in replies]
    backordered = sum(
        ln["backordered"] for r in replies for ln in r.body["lines"] if ln["item_id"] == item
    )
    assert backordered == 3 * BUYERS - 10
    assert shop.level(item) == (10, 10)
    assert shop.level(other) == (100, BUYERS)
    assert (
        shop.one("SELECT sum(quantity) FROM inventory.reservations WHERE item_id = %s", item) == 10
    )
