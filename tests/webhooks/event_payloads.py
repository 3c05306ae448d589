"""Real payloads of the webhooks domain's outbox event types, for the generic schema
check (tests/webhooks/test_event_schemas.py; docs/domains.md, Events)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import TenantHandle
from tests.webhooks.conftest import create_endpoint, deliver_all, post_transaction


def _disabled(request: pytest.FixtureRequest, client: Any, tenant: TenantHandle) -> None:
    """An endpoint answering 410 is disabled by the system, which emits the event."""
    gone = request.getfixturevalue("make_receiver")(statuses=[410])
    create_endpoint(client, tenant, gone.url, description="answers 410")
    post_transaction(client, tenant)
    deliver_all(request.getfixturevalue("hooks_queue"), tenant)


PRODUCERS = {"webhook_endpoint.disabled": _disabled}
