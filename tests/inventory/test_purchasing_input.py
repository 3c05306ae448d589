"""Bad and foreign input to suppliers, purchase orders and receipts: a named
problem+json, and nothing written."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine

from erp.http import ErpFlask
from tests.core.helpers import assert_problem
from tests.inventory.purchasing_helpers import INV, PO, Shop, assert_field, open_shop, written

I64 = 2**63 - 1
FIXED_ID = "0b7e5a0e-0000-4000-8000-000000000001"


@dataclass
class Two:
    """Tenant A with a draft and a sent order; tenant B with its own of everything."""

    a: Shop
    b: Shop
    a_item: str
    a_draft: dict[str, Any]
    a_sent: dict[str, Any]
    b_item: str
    b_supplier: str
    b_location: str
    b_sent: dict[str, Any]
    b_archived_item: str = ""


@pytest.fixture(scope="module")
def two(app: ErpFlask, ops_headers: dict[str, str], app_url: str) -> Two:
    client = app.test_client()
    a, b = open_shop(client, ops_headers, app_url), open_shop(client, ops_headers, app_url)
    a_item, b_item = a.item(), b.item()
    archived = a.item()
    a.archive_item(archived)
    return Two(
        a=a,
        b=b,
        a_item=a_item,
        a_draft=a.po([(a_item, 10, 100)]),
        a_sent=a.sent_po([(a_item, 10, 100)]),
        b_item=b_item,
        b_supplier=b.supplier(),
        b_location=b.location(),
        b_sent=b.sent_po([(b_item, 10, 100)]),
        b_archived_item=archived,
    )


@pytest.fixture
def unchanged(two: Two, owner_engine: Engine) -> Iterator[Two]:
    before = {s.tenant.id: written(owner_engine, s.tenant.id) for s in (two.a, two.b)}
    yield two
    after = {s.tenant.id: written(owner_engine, s.tenant.id) for s in (two.a, two.b)}
    assert after == before


def _po_body(two: Two, **line: Any) -> dict[str, Any]:
    return {
        "supplier_id": two.a_draft["supplier_id"],
        "lines": [{"item_id": two.a_item, "quantity": 5, "unit_cost": 100, **line}],
    }


# -- another tenant's ids --------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("PATCH", "", {"reference": "x"}),
        ("POST", "/send", None),
        ("POST", "/cancel", None),
        ("POST", "/receive", "lines"),
        ("GET", "/receipts", None),
    ],
)
def test_another_tenants_order_is_not_found(
    unchanged: Two, method: str, suffix: str, body: Any
) -> None:
    two = unchanged
    if body == "lines":
        body = {"lines": [{"line_id": two.b_sent["lines"][0]["id"], "quantity": 1}]}
    for po_id in (two.b_sent["id"], str(uuid.uuid4())):
        r = two.a.call(method, f"{PO}/{po_id}{suffix}", body)
        problem = assert_problem(r, 404, "not-found")
        assert "errors" not in problem


def test_another_tenants_supplier_is_not_found(unchanged: Two) -> None:
    two = unchanged
    for method, body in (("GET", None), ("PATCH", {"name": "x"})):
        assert_problem(
            two.a.call(method, f"{INV}/suppliers/{two.b_supplier}", body), 404, "not-found"
        )


@pytest.mark.parametrize(
    ("field", "where"),
    [
        ("supplier_id", "supplier"),
        ("location_id", "location"),
        ("lines.0.item_id", "item"),
    ],
)
def test_another_tenants_ids_in_a_new_order_are_422(unchanged: Two, field: str, where: str) -> None:
    two = unchanged
    body = _po_body(two)
    if where == "supplier":
        body["supplier_id"] = two.b_supplier
    elif where == "location":
        body["location_id"] = two.b_location
    else:
        body["lines"] = [
            {"item_id": two.a_item, "quantity": 1, "unit_cost": 1},
            {"item_id": two.b_item, "quantity": 1, "unit_cost": 1},
        ]
        field = "lines.1.item_id"
    assert_field(two.a.call("POST", PO, body), 422, "validation", field)
    # the same through PATCH of a draft
    patch = {k: v for k, v in body.items() if k != "supplier_id"}
    if where != "supplier":
        assert_field(
            two.a.call("PATCH", f"{PO}/{two.a_draft['id']}", patch), 422, "validation", field
        )


def test_another_tenants_line_or_location_in_a_receipt_is_422(unchanged: Two) -> None:
    two = unchanged
    path = f"{PO}/{two.a_sent['id']}/receive"
    mine = two.a_sent["lines"][0]["id"]
    theirs = two.b_sent["lines"][0]["id"]
    assert_field(
        two.a.call(
            "POST",
            path,
            {"lines": [{"line_id": mine, "quantity": 1}, {"line_id": theirs, "quantity": 1}]},
        ),
        422,
        "validation",
        "lines.1.line_id",
    )
    assert_field(
        two.a.call(
            "POST",
            path,
            {"lines": [{"line_id": mine, "quantity": 1, "location_id": two.b_location}]},
        ),
        422,
        "validation",
        "lines.0.location_id",
    )
    # a line of another order of the same tenant is no line of this one
    other_po = two.a_draft["lines"][0]["id"]
    assert_field(
        two.a.call("POST", path, {"lines": [{"line_id": other_po, "quantity": 1}]}),
        422,
        "validation",
        "lines.0.line_id",
    )


def test_unknown_and_archived_items_are_422(unchanged: Two) -> None:
    two = unchanged
    for item in (str(uuid.uuid4()), two.b_archived_item):
        body = _po_body(two, item_id=item)
        problem = assert_field(two.a.call("POST", PO, body), 422, "validation", "lines.0.item_id")
        assert list(problem["errors"]) == ["lines.0.item_id"]


# -- shapes ----------------------------------------------------------------------------

BAD_QUANTITIES = [0, -1, 1.5, 1.0, "3", True, None, [1], 2**63, -(2**63) - 1, 10**30]


@pytest.mark.parametrize("quantity", BAD_QUANTITIES)
def test_a_bad_line_quantity_is_refused(unchanged: Two, quantity: Any) -> None:
    body = _po_body(unchanged, quantity=quantity)
    assert_field(unchanged.a.call("POST", PO, body), 422, "validation", "lines.0.quantity")


@pytest.mark.parametrize("cost", [-1, 2.5, "100", False, 2**63])
def test_a_bad_unit_cost_is_refused(unchanged: Two, cost: Any) -> None:
    body = _po_body(unchanged, unit_cost=cost)
    assert_field(unchanged.a.call("POST", PO, body), 422, "validation", "lines.0.unit_cost")


def test_an_absurd_total_is_refused(unchanged: Two) -> None:
    """Each number fits in 64 bits; quantity x cost, or the order's total, does not."""
    body = _po_body(unchanged, quantity=I64, unit_cost=2)
    assert_field(unchanged.a.call("POST", PO, body), 422, "validation", "lines.0.unit_cost")
    body = _po_body(unchanged, quantity=2**31, unit_cost=2**31)
    body["lines"] = body["lines"] * 3
    assert_field(unchanged.a.call("POST", PO, body), 422, "validation", "lines")


@pytest.mark.parametrize("quantity", BAD_QUANTITIES)
def test_a_bad_receipt_quantity_is_refused(unchanged: Two, quantity: Any) -> None:
    two = unchanged
    body = {"lines": [{"line_id": two.a_sent["lines"][0]["id"], "quantity": quantity}]}
    r = two.a.call("POST", f"{PO}/{two.a_sent['id']}/receive", body)
    assert_field(r, 422, "validation", "lines.0.quantity")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"lines": []}, "lines"),
        ({"lines": "many"}, "lines"),
        ({"reference": "r" * 201}, "reference"),
        ({"expected_at": "2026-12-24T10:00:00"}, "expected_at"),  # naive
        ({"expected_at": "soon"}, "expected_at"),
        ({"supplier_id": "not-a-uuid"}, "supplier_id"),
        ({"currency": "EUR"}, "currency"),  # fixed: the base currency
        ({"status": "sent"}, "status"),
        ({"id": FIXED_ID}, "id"),
    ],
)
def test_bad_order_fields_are_named(unchanged: Two, change: dict[str, Any], field: str) -> None:
    body = {**_po_body(unchanged), **change}
    assert_field(unchanged.a.call("POST", PO, body), 422, "validation", field)


def test_too_many_lines(unchanged: Two) -> None:
    line = {"item_id": unchanged.a_item, "quantity": 1, "unit_cost": 1}
    body = {**_po_body(unchanged), "lines": [line] * 501}
    assert_field(unchanged.a.call("POST", PO, body), 422, "validation", "lines")
    receipt = {"lines": [{"line_id": unchanged.a_sent["lines"][0]["id"], "quantity": 1}] * 501}
    r = unchanged.a.call("POST", f"{PO}/{unchanged.a_sent['id']}/receive", receipt)
    assert_field(r, 422, "validation", "lines")


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"supplier_id": FIXED_ID}, "supplier_id"),  # fixed at creation
        ({"status": "sent"}, "status"),
        ({"location_id": None}, "location_id"),
        ({"lines": [{"item_id": FIXED_ID, "quantity": 0, "unit_cost": 1}]}, "lines.0.quantity"),
    ],
)
def test_bad_patches_are_named(unchanged: Two, patch: dict[str, Any], field: str) -> None:
    r = unchanged.a.call("PATCH", f"{PO}/{unchanged.a_draft['id']}", patch)
    assert_field(r, 422, "validation", field)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "n" * 201}, "name"),
        ({"name": "Acme", "email": "not an email"}, "email"),
        ({"name": "Acme", "email": "a" * 250 + "@x.example"}, "email"),
        ({"name": "Acme", "phone": "9" * 51}, "phone"),
        ({"name": "Acme", "reference": "r" * 201}, "reference"),
        ({"name": "Acme", "archived": True}, "archived"),
        ({}, "name"),
    ],
)
def test_bad_supplier_fields_are_named(unchanged: Two, body: dict[str, Any], field: str) -> None:
    assert_field(unchanged.a.call("POST", f"{INV}/suppliers", body), 422, "validation", field)


def test_malformed_path_ids_are_named(unchanged: Two) -> None:
    assert_field(unchanged.a.call("GET", f"{PO}/nope"), 422, "validation", "purchase_order_id")
    assert_field(
        unchanged.a.call("POST", f"{PO}/nope/send"), 422, "validation", "purchase_order_id"
    )
