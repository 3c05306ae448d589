"""RQ entry points of the orders domain: tenant id and plain ids in, safe to run twice."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from erp.db import db
from erp.jobs import tenant_job
from erp.orders import intake


def _process(s: Session, message_id: str) -> str | None:
    """Turn one inbound message into an order (or a failed, ignored or duplicate
    message); None when it was applied already or another job holds it."""
    return intake.process(s, uuid.UUID(message_id))


#: process(tenant_id, message_id), in one transaction of that tenant
process = tenant_job(_process)


def drain(tenant_id: str, slot: int | None) -> int:
    """Apply the tenant's `received` messages (the hook's job: `erp.orders.kicks`)."""
    from erp.context import current_actor

    db.fork_safe()
    token = current_actor.set("system:job:erp.orders.jobs.drain")
    try:
        return intake.drain(uuid.UUID(tenant_id), slot)
    finally:
        current_actor.reset(token)


def sweep() -> int:
    """Enqueue the inbound messages left `received` (`erp scheduler`)."""
    db.fork_safe()
    return intake.sweep()
