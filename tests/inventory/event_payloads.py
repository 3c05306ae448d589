"""Real payloads of the inventory's outbox event types, for the generic schema check
(tests/webhooks/test_event_schemas.py; docs/domains.md, Events)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import TenantHandle
from tests.inventory.test_api import Api


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


PRODUCERS = {"stock.changed": _changed, "stock.low": _low}
