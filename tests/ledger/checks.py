"""Assertions and owner-side reads shared by the ledger's API tests."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine

from tests.core.helpers import assert_problem, owner_sql

TX = "/api/v1/ledger/transactions"


def assert_field_problem(response: Any, status: int, slug: str, field: str) -> dict[str, Any]:
    """problem+json of `status`/`slug` whose `errors` names `field`."""
    body = assert_problem(response, status, slug)
    assert field in (body.get("errors") or {}), body
    return body


def counts(engine: Engine, tenant_id: uuid.UUID) -> dict[str, int]:
    """Rows the tenant holds in every table a posting writes."""
    row = owner_sql(
        engine,
        """
        SELECT (SELECT count(*) FROM ledger.transactions WHERE tenant_id = :t) AS transactions,
               (SELECT count(*) FROM ledger.entries WHERE tenant_id = :t) AS entries,
               (SELECT coalesce(sum(abs(posted) + pending_dr - pending_cr), 0)
                  FROM ledger.balance_deltas WHERE tenant_id = :t) AS deltas,
               (SELECT coalesce(sum(abs(posted) + pending_dr - pending_cr), 0)
                  FROM ledger.balance_hours WHERE tenant_id = :t) AS hours,
               (SELECT count(*) FROM webhooks.outbox_events WHERE tenant_id = :t) AS events,
               (SELECT count(*) FROM iam.idempotency_records WHERE tenant_id = :t) AS replays
        """,
        {"t": tenant_id},
        tenant=tenant_id,
    )[0]
    return dict(row._mapping)


def posted_events(engine: Engine, tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    """Payloads of the tenant's ledger.transaction.posted outbox events, oldest first."""
    rows = owner_sql(
        engine,
        "SELECT payload FROM webhooks.outbox_events WHERE tenant_id = :t "
        "AND event_type = 'ledger.transaction.posted' ORDER BY occurred_at, id",
        {"t": tenant_id},
        tenant=tenant_id,
    )
    return [dict(r.payload) for r in rows]
