"""Real payloads of inventory's outbox event types, for the generic schema check of
the webhooks' event types (tests/webhooks/test_event_schemas.py, docs/domains.md,
Events, where that check has landed): `produce(request, client, tenant)` makes the
domain emit the type in `tenant` through the API."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.conftest import TenantHandle
from tests.inventory.test_api import Api

INV = "/api/v1/inventory"


def _ok(client: Any, tenant: TenantHandle, path: str, body: Any = None) -> Any:
    r = client.post(path, json=body, headers=tenant.headers)
    assert r.status_code in (200, 201), r.get_json()
    return r.get_json()


def _received(request: pytest.FixtureRequest, client: Any, tenant: TenantHandle) -> None:
    """A purchase order of two lines received in two receipts (partially, then fully)."""
    items = [
        _ok(client, tenant, f"{INV}/items", {"sku": f"EV-{uuid.uuid4().hex[:8]}", "name": "Ev",
                                             "unit": "each"})["id"]
        for _ in range(2)
    ]  # fmt: skip
    supplier = _ok(client, tenant, f"{INV}/suppliers", {"name": "Events Ltd"})["id"]
    po = _ok(
        client,
        tenant,
        f"{INV}/purchase-orders",
        {
            "supplier_id": supplier,
            "reference": "EV-1",
            "expected_at": "2026-12-24T10:00:00Z",
            "lines": [{"item_id": i, "quantity": 4, "unit_cost": 250} for i in items],
        },
    )
    path = f"{INV}/purchase-orders/{po['id']}"
    _ok(client, tenant, f"{path}/send")
    first, second = (ln["id"] for ln in po["lines"])
    _ok(client, tenant, f"{path}/receive", {"lines": [{"line_id": first, "quantity": 4}]})
    _ok(client, tenant, f"{path}/receive", {"lines": [{"line_id": second, "quantity": 4}]})


def _changed(request: pytest.FixtureRequest, client: Any, tenant: TenantHandle) -> None:
    api = Api(client, tenant)
    item = api.item()
    api.move(
        kind="receipt", item_id=item["id"], quantity=5, to_location_id=api.main(), unit_cost=400
    )


def _low(request: pytest.FixtureRequest, client: Any, tenant: TenantHandle) -> None:
    api = Api(client, tenant)
    item, main = api.item(reorder_point=10), api.main()
    api.move(kind="receipt", item_id=item["id"], quantity=20, to_location_id=main, unit_cost=400)
    api.move(kind="issue", item_id=item["id"], quantity=15, from_location_id=main)


PRODUCERS = {
    "purchase_order.received": _received,
    "stock.changed": _changed,
    "stock.low": _low,
}
