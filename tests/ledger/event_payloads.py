"""Real payloads of the ledger's outbox event types, for the generic schema check
(tests/webhooks/test_event_schemas.py; docs/domains.md, Events)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import TenantHandle
from tests.webhooks.conftest import post_transaction


def _posted(request: pytest.FixtureRequest, client: Any, tenant: TenantHandle) -> None:
    post_transaction(client, tenant)


PRODUCERS = {"ledger.transaction.posted": _posted}
