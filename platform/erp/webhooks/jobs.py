"""RQ entry points of the webhooks domain: tenant id and plain ids in, safe to run twice."""

from __future__ import annotations

import uuid

from erp.context import current_actor
from erp.db import db
from erp.jobs import queue
from erp.webhooks import delivery, dispatcher


def deliver(tenant_id: str, message_ids: list[str]) -> int:
    """Deliver these messages (those still due and not leased by another job)."""
    db.fork_safe()
    token = current_actor.set("system:webhooks")  # who disables an endpoint, in the audit
    try:
        return delivery.deliver(uuid.UUID(tenant_id), [uuid.UUID(m) for m in message_ids])
    finally:
        current_actor.reset(token)


def deliver_due(tenant_id: str, endpoint_id: str) -> int:
    """The push path's job: deliver whatever is due for one endpoint, then clear its
    flag (`dispatcher.enqueue_once`); if work became due meanwhile (a dispatch saw the
    flag and left it to this job, or a slow attempt handed the rest back), enqueue the
    next job at the back of the queue, so other endpoints' jobs go first."""
    db.fork_safe()
    tenant, endpoint = uuid.UUID(tenant_id), uuid.UUID(endpoint_id)
    token = current_actor.set("system:webhooks")
    try:
        try:
            made = delivery.deliver_endpoint(
                tenant, endpoint, None, budget_s=delivery.PUSH_JOB_BUDGET_S
            )
        finally:
            queue.redis.delete(dispatcher.endpoint_flag(tenant_id, endpoint_id))
        if delivery.has_claimable(tenant, endpoint):
            dispatcher.enqueue_once(tenant_id, endpoint_id)
        return made
    finally:
        current_actor.reset(token)


def dispatch(tenant_id: str) -> int:
    """Fan out one tenant's new events and enqueue its due messages."""
    db.fork_safe()
    return dispatcher.dispatch_tenant(uuid.UUID(tenant_id))


def sweep() -> int:
    """Every tenant with due work (`erp scheduler`): the safety net and the retry clock."""
    return dispatcher.sweep()
