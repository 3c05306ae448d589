"""Purchase orders end to end: draft -> sent -> partially received -> received, or
cancelled; each receipt makes one receipt move per line at the line's unit cost and
ONE ledger transaction (Dr inventory, Cr accounts payable), and emits
purchase_order.received, all in the call's one database transaction."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from sqlalchemy import Engine

from erp.registry import load_event_type
from tests.core.helpers import assert_problem
from tests.inventory.purchasing_helpers import (
    INV,
    PO,
    Shop,
    assert_field,
    events,
    ledger_transactions,
    open_shop,
    written,
)


@pytest.fixture
def shop(client: Any, ops_headers: dict[str, str], app_url: str) -> Shop:
    return open_shop(client, ops_headers, app_url)


RECEIVED_EVENT_SCHEMA = load_event_type("purchase_order.received").schema


def test_the_whole_life_of_a_purchase_order(shop: Shop, owner_engine: Engine) -> None:
    mug, pen = shop.item(), shop.item()
    supplier = shop.supplier()
    po = shop.po([(mug, 10, 999)], supplier=supplier, reference="PO-7")
    assert po["status"] == "draft"
    assert po["currency"] == "USD"
    assert po["location_id"] == shop.default_location
    assert po["reference"] == "PO-7"
    assert po["expected_at"] is None
    assert po["total"] == 9990
    assert [(ln["item_id"], ln["quantity"], ln["received"]) for ln in po["lines"]] == [(mug, 10, 0)]

    # PATCH in draft: `lines` replaces every line; fields not sent stay
    patched = shop.ok(
        "PATCH",
        f"{PO}/{po['id']}",
        {
            "expected_at": "2026-12-24T10:00:00+02:00",
            "lines": [
                {"item_id": mug, "quantity": 100, "unit_cost": 400},
                {"item_id": pen, "quantity": 50, "unit_cost": 120},
            ],
        },
    )
    assert patched["reference"] == "PO-7"
    assert patched["expected_at"].startswith("2026-12-24T08:00:00")
    assert patched["total"] == 100 * 400 + 50 * 120
    assert [ln["item_id"] for ln in patched["lines"]] == [mug, pen]
    assert shop.ok("PATCH", f"{PO}/{po['id']}", {}) == patched  # {} changes nothing
    mug_line, pen_line = (ln["id"] for ln in patched["lines"])

    assert shop.ok("POST", f"{PO}/{po['id']}/send")["status"] == "sent"
    assert written(owner_engine, shop.tenant.id)["moves"] == 0  # sending moves nothing

    first = shop.receive(po["id"], [(mug_line, 40)])
    assert first["purchase_order_id"] == po["id"]
    [line] = first["lines"]
    assert line["line_id"] == mug_line
    assert (line["item_id"], line["quantity"], line["unit_cost"]) == (mug, 40, 400)
    assert line["location_id"] == shop.default_location
    assert first["transaction_id"] is not None
    after_first = shop.get_po(po["id"])
    assert after_first["status"] == "partially_received"
    assert [ln["received"] for ln in after_first["lines"]] == [40, 0]

    second = shop.receive(po["id"], [(mug_line, 60), (pen_line, 50)])
    assert len(second["lines"]) == 2
    done = shop.get_po(po["id"])
    assert done["status"] == "received"
    assert [ln["received"] for ln in done["lines"]] == [100, 50]

    # stock, moves and their source
    assert shop.stock(mug)["on_hand"] == 100
    assert shop.stock(pen)["on_hand"] == 50
    for receipt in (first, second):
        for ln in receipt["lines"]:
            move = shop.move(ln["move_id"])
            assert (move["kind"], move["item_id"]) == ("receipt", ln["item_id"])
            assert (move["source_type"], move["source_id"]) == ("receipt", receipt["id"])
            assert move["to_location_id"] == shop.default_location
            assert move["unit_cost"] == ln["unit_cost"]
            assert move["value"] == ln["quantity"] * ln["unit_cost"]
            assert move["transaction_id"] == receipt["transaction_id"]
            assert move["reference"] == "PO-7"
    assert written(owner_engine, shop.tenant.id)["moves"] == 3

    # the receipts list, newest first
    listed = shop.ok("GET", f"{PO}/{po['id']}/receipts")
    assert [r["id"] for r in listed["items"]] == [second["id"], first["id"]]
    assert listed["items"][1] == first

    # ledger: one balanced transaction per receipt, Dr inventory / Cr payables
    txs = ledger_transactions(owner_engine, shop.tenant.id)
    assert [t["id"] for t in txs] == [first["transaction_id"], second["transaction_id"]]
    inv, ap = shop.accounts["1200"], shop.accounts["2000"]
    assert txs[0]["entries"] == [(ap, -16000), (inv, 16000)]
    assert txs[1]["entries"] == [(ap, -30000), (inv, 30000)]
    assert shop.balance("1200") == 46000
    assert shop.balance("2000") == -46000
    valuation = shop.valuation()
    assert valuation["total"] == valuation["ledger_balance"] == 46000
    # the same through the API's own reads (Valuation, Moves)
    report = shop.ok("GET", f"{INV}/valuation")
    assert report["total"] == report["ledger_balance"] == 46000
    move = shop.ok("GET", f"{INV}/moves/{first['lines'][0]['move_id']}")
    assert move["source"] == {"type": "receipt", "id": first["id"]}
    assert move["transaction_id"] == first["transaction_id"]

    # one purchase_order.received per receipt: the order as GET answers, plus the receipt
    received = events(owner_engine, shop.tenant.id, "purchase_order.received")
    assert [e["receipt"]["id"] for e in received] == [first["id"], second["id"]]
    assert received[0]["status"] == "partially_received"
    assert received[1]["status"] == "received"
    assert received[1]["id"] == po["id"]
    assert [ln["received"] for ln in received[1]["lines"]] == [100, 50]
    assert received[1]["total"] == done["total"]
    assert received[0]["receipt"] == first
    assert received[1]["receipt"] == second
    # `data` is the order as GET answers it at commit time, plus the receipt
    assert {k: v for k, v in received[1].items() if k != "receipt"} == done
    checker = Draft202012Validator(RECEIVED_EVENT_SCHEMA, format_checker=FormatChecker())
    for payload in received:
        checker.validate(payload)


def test_a_cancelled_order_takes_nothing_more(shop: Shop) -> None:
    mug = shop.item()
    draft = shop.po([(mug, 5, 100)])
    assert shop.ok("POST", f"{PO}/{draft['id']}/cancel")["status"] == "cancelled"
    sent = shop.sent_po([(mug, 5, 100)])
    assert shop.ok("POST", f"{PO}/{sent['id']}/cancel")["status"] == "cancelled"


def _to(shop: Shop, state: str) -> dict[str, Any]:
    """A purchase order of two lines in `state`."""
    a, b = shop.item(), shop.item()
    po = shop.po([(a, 10, 100), (b, 10, 100)])
    if state == "draft":
        return po
    if state == "cancelled":
        return dict(shop.ok("POST", f"{PO}/{po['id']}/cancel"))
    shop.ok("POST", f"{PO}/{po['id']}/send")
    lines = [ln["id"] for ln in po["lines"]]
    if state == "partially_received":
        shop.receive(po["id"], [(lines[0], 10)])
    elif state == "received":
        shop.receive(po["id"], [(lines[0], 10), (lines[1], 10)])
    return shop.get_po(po["id"])


ACTIONS = {"patch", "send", "cancel", "receive"}
ALLOWED = {
    "draft": {"patch", "send", "cancel"},
    "sent": {"cancel", "receive"},
    "partially_received": {"receive"},
    "received": set(),
    "cancelled": set(),
}


def _act(shop: Shop, po: dict[str, Any], action: str) -> Any:
    path = f"{PO}/{po['id']}"
    if action == "patch":
        return shop.call("PATCH", path, {"reference": "changed"})
    if action == "receive":
        body = {"lines": [{"line_id": po["lines"][1]["id"], "quantity": 1}], "over_receipt": True}
        return shop.call("POST", f"{path}/receive", body)
    return shop.call("POST", f"{path}/{action}")


@pytest.mark.parametrize(
    ("state", "action"),
    [(s, a) for s in ALLOWED for a in sorted(ACTIONS - ALLOWED[s])],
)
def test_every_other_transition_is_409_and_writes_nothing(
    shop: Shop, owner_engine: Engine, state: str, action: str
) -> None:
    po = _to(shop, state)
    before = written(owner_engine, shop.tenant.id)
    problem = assert_problem(_act(shop, po, action), 409, "conflict")
    assert state in problem["detail"]
    assert problem["errors"] == {"status": [f"The purchase order is {state}."]}
    assert written(owner_engine, shop.tenant.id) == before
    assert shop.get_po(po["id"]) == po


@pytest.mark.parametrize(("state", "action"), [(s, a) for s in ALLOWED for a in sorted(ALLOWED[s])])
def test_the_allowed_transitions_succeed(shop: Shop, state: str, action: str) -> None:
    po = _to(shop, state)
    assert _act(shop, po, action).status_code in (200, 201)


def test_receiving_more_than_ordered_needs_the_flag(shop: Shop, owner_engine: Engine) -> None:
    mug, pen = shop.item(), shop.item()
    po = shop.sent_po([(mug, 10, 250), (pen, 4, 50)])
    mug_line, pen_line = (ln["id"] for ln in po["lines"])
    shop.receive(po["id"], [(mug_line, 6)])
    before = written(owner_engine, shop.tenant.id)
    problem = assert_field(
        shop.call(
            "POST",
            f"{PO}/{po['id']}/receive",
            {"lines": [{"line_id": pen_line, "quantity": 4}, {"line_id": mug_line, "quantity": 5}]},
        ),
        422,
        "validation",
        "lines.1.quantity",
    )
    assert list(problem["errors"]) == ["lines.1.quantity"]
    assert "4" in problem["errors"]["lines.1.quantity"][0]  # what is left to receive
    # the same line twice adds up: 3 + 2 > 4 left
    assert_field(
        shop.call(
            "POST",
            f"{PO}/{po['id']}/receive",
            {"lines": [{"line_id": mug_line, "quantity": 3}, {"line_id": mug_line, "quantity": 2}]},
        ),
        422,
        "validation",
        "lines.1.quantity",
    )
    assert written(owner_engine, shop.tenant.id) == before

    over = shop.receive(po["id"], [(mug_line, 7)], over_receipt=True)
    assert over["lines"][0]["quantity"] == 7
    got = shop.get_po(po["id"])
    assert [ln["received"] for ln in got["lines"]] == [13, 0]
    assert got["status"] == "partially_received"  # the pen line is still open
    shop.receive(po["id"], [(pen_line, 4)])
    assert shop.get_po(po["id"])["status"] == "received"
    assert shop.stock(mug)["on_hand"] == 13
    valuation = shop.valuation()
    assert valuation["total"] == valuation["ledger_balance"] == 13 * 250 + 4 * 50


def test_a_receipt_to_another_location_and_at_zero_cost(shop: Shop, owner_engine: Engine) -> None:
    free, mug = shop.item(), shop.item()
    other = shop.location()
    po = shop.sent_po([(free, 5, 0), (mug, 2, 300)])
    free_line, mug_line = (ln["id"] for ln in po["lines"])
    zero = shop.call(
        "POST",
        f"{PO}/{po['id']}/receive",
        {"lines": [{"line_id": free_line, "quantity": 5, "location_id": other}]},
        expect=201,
    ).get_json()
    assert zero["transaction_id"] is None  # no value moved: nothing posted
    assert zero["lines"][0]["location_id"] == other
    assert shop.stock(free, other)["on_hand"] == 5
    assert ledger_transactions(owner_engine, shop.tenant.id) == []
    paid = shop.receive(po["id"], [(mug_line, 2)])
    [tx] = ledger_transactions(owner_engine, shop.tenant.id)
    assert tx["id"] == paid["transaction_id"]
    assert sum(amount for _, amount in tx["entries"]) == 0


def test_lists_filter_by_supplier_and_status(shop: Shop) -> None:
    mug = shop.item()
    acme, other = shop.supplier("Acme"), shop.supplier("Other")
    a1 = shop.po([(mug, 1, 1)], supplier=acme)
    a2 = shop.sent_po([(mug, 1, 1)], supplier=acme)
    b1 = shop.po([(mug, 1, 1)], supplier=other)
    ids = [p["id"] for p in shop.ok("GET", PO)["items"]]
    assert ids == [b1["id"], a2["id"], a1["id"]]
    assert [p["id"] for p in shop.ok("GET", PO, supplier_id=acme)["items"]] == [a2["id"], a1["id"]]
    assert [p["id"] for p in shop.ok("GET", PO, status="sent")["items"]] == [a2["id"]]
    assert shop.ok("GET", PO, supplier_id=other, status="sent")["items"] == []
    page = shop.ok("GET", PO, limit=2)
    rest = shop.ok("GET", PO, limit=2, cursor=page["next_cursor"])
    assert [p["id"] for p in page["items"] + rest["items"]] == ids
    assert rest["next_cursor"] is None
    assert_field(shop.call("GET", PO, status="open"), 422, "validation", "status")
    assert_field(shop.call("GET", PO, supplier="x"), 422, "validation", "supplier")


def test_one_idempotency_key_makes_one_receipt(shop: Shop, owner_engine: Engine) -> None:
    mug = shop.item()
    po = shop.sent_po([(mug, 10, 100)])
    body = {"lines": [{"line_id": po["lines"][0]["id"], "quantity": 3}]}
    path = f"{PO}/{po['id']}/receive"
    first = shop.call("POST", path, body, key="rcv-1", expect=201)
    again = shop.call("POST", path, body, key="rcv-1", expect=201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert written(owner_engine, shop.tenant.id)["receipts"] == 1
    assert_problem(
        shop.call("POST", path, {**body, "over_receipt": True}, key="rcv-1"),
        409,
        "idempotency-mismatch",
    )


def test_suppliers(shop: Shop) -> None:
    created = shop.ok(
        "POST",
        f"{INV}/suppliers",
        {"name": "Acme", "email": "buy@acme.example", "phone": "+1 555 0100", "reference": "V-9"},
    )
    assert created["archived"] is False
    sid = created["id"]
    assert shop.ok("GET", f"{INV}/suppliers/{sid}") == created
    patched = shop.ok("PATCH", f"{INV}/suppliers/{sid}", {"email": None, "archived": True})
    assert patched == {**created, "email": None, "archived": True}
    assert shop.ok("GET", f"{INV}/suppliers")["items"] == [patched]
    assert shop.ok("GET", f"{INV}/suppliers", include_archived="false")["items"] == []
    # an archived supplier takes no new purchase order
    assert_field(
        shop.call(
            "POST",
            PO,
            {
                "supplier_id": sid,
                "lines": [{"item_id": shop.item(), "quantity": 1, "unit_cost": 1}],
            },
        ),
        422,
        "validation",
        "supplier_id",
    )
    assert_problem(shop.call("GET", f"{INV}/suppliers/{uuid.uuid4()}"), 404, "not-found")
    assert_field(shop.call("GET", f"{INV}/suppliers/nope"), 422, "validation", "supplier_id")


def test_the_event_producer_emits_payloads_that_fit_the_schema(
    request: pytest.FixtureRequest, client: Any, shop: Shop, owner_engine: Engine
) -> None:
    """tests/inventory/event_payloads.py (for the webhooks' generic check) emits real
    purchase_order.received payloads, each valid against the served schema."""
    from tests.inventory.event_payloads import PRODUCERS

    PRODUCERS["purchase_order.received"](request, client, shop.tenant)
    payloads = events(owner_engine, shop.tenant.id, "purchase_order.received")
    assert [p["status"] for p in payloads] == ["partially_received", "received"]
    checker = Draft202012Validator(RECEIVED_EVENT_SCHEMA, format_checker=FormatChecker())
    for payload in payloads:
        checker.validate(payload)
