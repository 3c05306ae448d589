"""RQ entry points of the webhooks domain: tenant id and plain ids in, safe to run twice."""

from __future__ import annotations

import uuid

from erp.context import current_actor
from erp.db import db
from erp.webhooks import delivery, dispatcher


def deliver(tenant_id: str, message_ids: list[str]) -> int:
    """Deliver these messages (those still due and not leased by another job)."""
    db.fork_safe()
    token = current_actor.set("system:webhooks")  # who disables an endpoint, in the audit
    try:
        return delivery.deliver(uuid.UUID(tenant_id), [uuid.UUID(m) for m in message_ids])
    finally:
        current_actor.reset(token)


def dispatch(tenant_id: str) -> int:
    """Fan out one tenant's new events and enqueue its due messages."""
    db.fork_safe()
    return dispatcher.dispatch_tenant(uuid.UUID(tenant_id))


def sweep() -> int:
    """Every tenant with due work (`erp scheduler`): the safety net and the retry clock."""
    return dispatcher.sweep()
