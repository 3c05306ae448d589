"""The inventory API (API.md, Inventory): items, locations, stock, moves, valuation."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from erp.inventory.commands import MoveView
from erp.inventory.schemas import MoveOut
from tests.conftest import TenantHandle, make_tenant

BASE = "/api/v1/inventory"


class Api:
    def __init__(self, client: Any, tenant: TenantHandle) -> None:
        self.client, self.tenant = client, tenant

    def call(
        self, method: str, path: str, body: Any = None, expect: int | None = None, **headers: str
    ) -> Any:
        r = self.client.open(
            f"{BASE}{path}", method=method, json=body, headers={**self.tenant.headers, **headers}
        )
        if expect is not None:
            assert r.status_code == expect, r.get_json()
        return r

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        r = self.call(method, path, body)
        assert r.status_code in (200, 201), r.get_json()
        return r.get_json()

    def item(self, **kw: Any) -> dict[str, Any]:
        body = {"sku": f"SKU-{uuid.uuid4().hex[:8]}", "name": "Mug", "unit": "each", **kw}
        return dict(self.ok("POST", "/items", body))

    def main(self) -> str:
        items = self.ok("GET", "/locations?kind=warehouse")["items"]
        return str(next(x["id"] for x in items if x["default"]))

    def move(self, **body: Any) -> dict[str, Any]:
        return dict(self.ok("POST", "/moves", body))


@pytest.fixture
def api(client: Any, ops_headers: dict[str, str]) -> Api:
    return Api(client, make_tenant(client, ops_headers))


def _problem(r: Any, status: int, slug: str, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.get_json()
    body = r.get_json()
    assert body["type"].endswith(slug), body
    if field is not None:
        assert field in body.get("errors", {}), body
    return dict(body)


# -- items and locations -------------------------------------------------------------------


def test_item_lifecycle(api: Api) -> None:
    item = api.item(sku="MUG-01", reorder_point=10)
    assert item | {"id": item["id"], "created_at": item["created_at"]} == {
        "id": item["id"],
        "sku": "MUG-01",
        "name": "Mug",
        "unit": "each",
        "reorder_point": 10,
        "archived": False,
        "on_hand": 0,
        "reserved": 0,
        "available": 0,
        "value": 0,
        "currency": "USD",
        "created_at": item["created_at"],
    }
    _problem(
        api.call("POST", "/items", {"sku": "MUG-01", "name": "x", "unit": "each"}),
        409,
        "conflict",
        "sku",
    )
    got = api.ok("PATCH", f"/items/{item['id']}", {"name": "Big mug", "reorder_point": None})
    assert (got["name"], got["reorder_point"], got["sku"]) == ("Big mug", None, "MUG-01")
    assert api.ok("PATCH", f"/items/{item['id']}", {}) == got
    _problem(api.call("PATCH", f"/items/{item['id']}", {"sku": "NEW"}), 422, "validation", "sku")
    api.ok("PATCH", f"/items/{item['id']}", {"archived": True})
    listed = api.ok("GET", "/items?include_archived=false")["items"]
    assert item["id"] not in [i["id"] for i in listed]
    assert api.ok("GET", "/items?sku=MUG-01")["items"][0]["archived"] is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"sku": "bad sku", "name": "x", "unit": "each"}, "sku"),
        ({"sku": "A", "name": "", "unit": "each"}, "name"),
        ({"sku": "A", "name": "x", "unit": "Each"}, "unit"),
        ({"sku": "A", "name": "x", "unit": "each", "reorder_point": -1}, "reorder_point"),
        ({"sku": "A", "name": "x", "unit": "each", "reorder_point": 1.5}, "reorder_point"),
        ({"sku": "A", "name": "x", "unit": "each", "id": str(uuid.uuid4())}, "id"),
    ],
)
def test_bad_items(api: Api, body: dict[str, Any], field: str) -> None:
    _problem(api.call("POST", "/items", body), 422, "validation", field)


def test_location_tree_and_default(api: Api) -> None:
    main = api.main()
    zone = api.ok(
        "POST", "/locations", {"code": "Z1", "name": "Zone", "kind": "zone", "parent_id": main}
    )
    binloc = api.ok(
        "POST", "/locations", {"code": "B1", "name": "Bin", "kind": "bin", "parent_id": zone["id"]}
    )
    assert (binloc["parent_id"], binloc["default"]) == (zone["id"], False)
    for body in (
        {"code": "Z2", "name": "z", "kind": "zone"},
        {"code": "Z3", "name": "z", "kind": "zone", "parent_id": binloc["id"]},
        {"code": "W2", "name": "w", "kind": "warehouse", "parent_id": main},
        {"code": "Z4", "name": "z", "kind": "zone", "parent_id": str(uuid.uuid4())},
    ):
        _problem(api.call("POST", "/locations", body), 422, "validation", "parent_id")
    _problem(
        api.call("POST", "/locations", {"code": "Z1", "name": "z", "kind": "warehouse"}),
        409,
        "conflict",
        "code",
    )
    other = api.ok("POST", "/locations", {"code": "W2", "name": "Two", "kind": "warehouse"})
    _problem(api.call("PATCH", f"/locations/{main}", {"archived": True}), 409, "conflict")
    moved = api.ok("PATCH", f"/locations/{other['id']}", {"default": True})
    assert moved["default"] is True
    assert api.ok("GET", f"/locations/{main}")["default"] is False
    assert api.ok("PATCH", f"/locations/{main}", {"archived": True})["archived"] is True
    assert [x["id"] for x in api.ok("GET", f"/locations?parent_id={zone['id']}")["items"]] == [
        binloc["id"]
    ]


def test_a_location_holding_stock_cannot_be_archived(api: Api) -> None:
    item, loc = (
        api.item(),
        api.ok("POST", "/locations", {"code": "W9", "name": "w", "kind": "warehouse"}),
    )
    api.move(kind="receipt", item_id=item["id"], quantity=1, to_location_id=loc["id"], unit_cost=5)
    _problem(api.call("PATCH", f"/locations/{loc['id']}", {"archived": True}), 409, "conflict")


# -- moves --------------------------------------------------------------------------------


def test_receipt_issue_transfer_adjustment_and_their_postings(api: Api) -> None:
    main, item = api.main(), api.item()
    w2 = api.ok("POST", "/locations", {"code": "W2", "name": "w", "kind": "warehouse"})["id"]
    rcv = api.move(
        kind="receipt",
        item_id=item["id"],
        quantity=10,
        to_location_id=main,
        unit_cost=400,
        reason="opening stock",
    )
    assert (rcv["value"], rcv["currency"], rcv["unit_cost"], rcv["source"]) == (
        4000,
        "USD",
        400,
        None,
    )
    assert rcv["transaction_id"] is not None
    xfer = api.move(
        kind="transfer", item_id=item["id"], quantity=4, from_location_id=main, to_location_id=w2
    )
    assert (xfer["value"], xfer["transaction_id"]) == (None, None)
    iss = api.move(kind="issue", item_id=item["id"], quantity=3, from_location_id=w2)
    assert (iss["value"], iss["unit_cost"]) == (1200, None)
    adj = api.move(
        kind="adjustment",
        item_id=item["id"],
        quantity=1,
        from_location_id=main,
        reason_code="damaged",
    )
    assert adj["value"] == 400
    got = api.ok("GET", f"/items/{item['id']}")
    assert (got["on_hand"], got["available"], got["value"]) == (6, 6, 2400)
    levels = api.ok("GET", f"/stock?item_id={item['id']}")["items"]
    assert {(x["location_id"], x["on_hand"]) for x in levels} == {(main, 5), (w2, 1)}
    assert api.ok("GET", f"/moves/{iss['id']}") == iss
    kinds = [m["kind"] for m in api.ok("GET", f"/moves?item_id={item['id']}")["items"]]
    assert sorted(kinds) == ["adjustment", "issue", "receipt", "transfer"]
    assert len(api.ok("GET", f"/moves?location_id={w2}")["items"]) == 2
    # the ledger: receipt Dr inventory / Cr payables; issue Dr COGS; adjustment out Dr adj.
    tx = api.client.get(
        f"/api/v1/ledger/transactions/{iss['transaction_id']}", headers=api.tenant.headers
    ).get_json()
    assert tx["metadata"] == {"move_id": iss["id"]}
    valuation = api.ok("GET", "/valuation")
    assert valuation["total"] == valuation["ledger_balance"] == 2400
    csv = api.call("GET", "/valuation", Accept="text/csv")
    assert csv.mimetype == "text/csv"
    assert "TOTAL,,,2400,USD" in csv.get_data(as_text=True)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "receipt", "quantity": 0, "unit_cost": 1}, "quantity"),
        ({"kind": "receipt", "quantity": -1, "unit_cost": 1}, "quantity"),
        ({"kind": "receipt", "quantity": 1.5, "unit_cost": 1}, "quantity"),
        ({"kind": "receipt", "quantity": "2", "unit_cost": 1}, "quantity"),
        ({"kind": "receipt", "quantity": 1}, "unit_cost"),
        ({"kind": "transfer", "quantity": 1, "from": "main"}, "to_location_id"),
        ({"kind": "issue", "quantity": 1, "to": "main"}, "to_location_id"),
        ({"kind": "adjustment", "quantity": 1, "to": "main"}, "reason_code"),
        ({"kind": "issue", "quantity": 1, "from": "main", "unit_cost": 3}, "unit_cost"),
        ({"kind": "receipt", "quantity": 1, "unit_cost": 1, "to": "nowhere"}, "to_location_id"),
        ({"kind": "receipt", "quantity": 1, "unit_cost": 1, "item": "nothing"}, "item_id"),
        ({"kind": "receipt", "quantity": 1, "unit_cost": 1, "reference": "x" * 201}, "reference"),
    ],
)
def test_bad_moves_write_nothing(api: Api, body: dict[str, Any], field: str) -> None:
    main, item = api.main(), api.item()
    places = {"main": main, "nowhere": str(uuid.uuid4())}
    payload = {k: v for k, v in body.items() if k not in ("from", "to", "item")}
    payload["item_id"] = str(uuid.uuid4()) if body.get("item") else item["id"]
    if body["kind"] != "issue" or "to" in body:
        payload["to_location_id"] = places[body.get("to", "main")]
    if "from" in body or body["kind"] in ("issue",):
        payload["from_location_id"] = places[body.get("from", "main")]
    if body["kind"] == "transfer":
        payload["to_location_id"] = payload["from_location_id"]
    _problem(api.call("POST", "/moves", payload), 422, "validation", field)
    assert api.ok("GET", "/moves")["items"] == []
    assert api.ok("GET", "/stock")["items"] == []


def test_oversell_is_insufficient_stock_and_writes_nothing(api: Api) -> None:
    main, item = api.main(), api.item()
    api.move(kind="receipt", item_id=item["id"], quantity=2, to_location_id=main, unit_cost=1)
    body = _problem(
        api.call(
            "POST",
            "/moves",
            {"kind": "issue", "item_id": item["id"], "quantity": 3, "from_location_id": main},
        ),
        409,
        "insufficient-stock",
        "quantity",
    )
    assert body["errors"]["quantity"] == ["2 available."]
    assert len(api.ok("GET", "/moves")["items"]) == 1
    assert api.ok("GET", f"/items/{item['id']}")["on_hand"] == 2


def test_a_missing_role_is_validation_naming_it(api: Api) -> None:
    main, item = api.main(), api.item()
    accounts = api.client.get(
        "/api/v1/ledger/accounts?limit=200", headers=api.tenant.headers
    ).get_json()["items"]
    payables = next(a["id"] for a in accounts if a["role"] == "accounts_payable")
    api.client.patch(
        f"/api/v1/ledger/accounts/{payables}", json={"archived": True}, headers=api.tenant.headers
    )
    _problem(
        api.call(
            "POST",
            "/moves",
            {
                "kind": "receipt",
                "item_id": item["id"],
                "quantity": 1,
                "to_location_id": main,
                "unit_cost": 5,
            },
        ),
        422,
        "validation",
        "role",
    )
    assert api.ok("GET", "/moves")["items"] == []


def test_other_tenants_rows_are_unknown(api: Api, client: Any, ops_headers: dict[str, str]) -> None:
    them = Api(client, make_tenant(client, ops_headers))
    their_item, their_main = them.item(), them.main()
    api.call("GET", f"/items/{their_item['id']}", expect=404)
    api.call("GET", f"/locations/{their_main}", expect=404)
    api.call("PATCH", f"/items/{their_item['id']}", {"name": "mine"}, expect=404)
    _problem(
        api.call(
            "POST",
            "/moves",
            {
                "kind": "receipt",
                "item_id": their_item["id"],
                "quantity": 1,
                "to_location_id": api.main(),
                "unit_cost": 1,
            },
        ),
        422,
        "validation",
        "item_id",
    )
    _problem(
        api.call(
            "POST",
            "/moves",
            {
                "kind": "receipt",
                "item_id": api.item()["id"],
                "quantity": 1,
                "to_location_id": their_main,
                "unit_cost": 1,
            },
        ),
        422,
        "validation",
        "to_location_id",
    )
    assert them.ok("GET", f"/items/{their_item['id']}")["name"] == "Mug"


def test_idempotent_move(api: Api) -> None:
    main, item = api.main(), api.item()
    body = {
        "kind": "receipt",
        "item_id": item["id"],
        "quantity": 1,
        "to_location_id": main,
        "unit_cost": 1,
    }
    first = api.call("POST", "/moves", body, expect=201, **{"Idempotency-Key": "mv-1"})
    again = api.call("POST", "/moves", body, expect=201, **{"Idempotency-Key": "mv-1"})
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert api.ok("GET", f"/items/{item['id']}")["on_hand"] == 1


def test_move_view_is_the_schemas_dump() -> None:
    from datetime import UTC, datetime

    for source in ((None, None), ("count", uuid.uuid4())):
        view = MoveView(
            id=uuid.uuid4(),
            kind="adjustment",
            item_id=uuid.uuid4(),
            quantity=3,
            from_location_id=None,
            to_location_id=uuid.uuid4(),
            unit_cost=None,
            value=12,
            currency="USD",
            reason_code="count",
            reason="Ünï",
            reference=None,
            source_type=source[0],
            source_id=source[1],
            transaction_id=uuid.uuid4(),
            created_at=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        )
        assert view.to_json() == MoveOut().dump(view)
