"""The dispatcher: outbox events -> messages, and due messages -> delivery jobs.

`sweep` (run by `erp scheduler`, and safe to run anywhere, any number of times at
once) asks the discovery function which active tenants have work (ids only,
DESIGN.md §3), then per tenant, under RLS:

- claims dispatch rows with FOR UPDATE SKIP LOCKED (two dispatchers never take the
  same event) and turns each into one message per enabled endpoint subscribed to its
  type, deleting the dispatch row in the same transaction;
- finds the messages that are due (new ones, retries whose time came, ones whose
  job died and whose lease ran out)

and, after commit, enqueues delivery jobs carrying the tenant id and message ids.
Redis is only the queue: if it loses the jobs, the next sweep finds the same messages
due in PostgreSQL and enqueues them again; the lease keeps a duplicate job from making
a second attempt.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from functools import partial

from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.orm import Session

from erp.db import db
from erp.jobs import call_after_commit, enqueue_after_commit, queue
from erp.webhooks.commands import TEST_EVENT
from erp.webhooks.services import DELIVER_JOB, QUEUE

log = logging.getLogger("erp.webhooks")

#: The push path's job: whatever is due for one endpoint (erp.webhooks.jobs.deliver_due).
DELIVER_DUE_JOB = "erp.webhooks.jobs.deliver_due"
#: How long an endpoint's "a job is queued or running" flag lives at most (a job that
#: died with it set only delays the push path that long; the sweep never waits on it).
FLAG_TTL_S = 30

#: Events fanned out per tenant and transaction; the sweep loops while there are more.
FANOUT_BATCH = 500
#: Due messages enqueued per tenant and sweep.
DUE_BATCH = 2000
#: ... and at most this many of one endpoint's.
DUE_PER_ENDPOINT = 500
#: Messages per delivery job.
JOB_BATCH = 50
DISCOVERY_BATCH = 500

_DISCOVER = text("SELECT * FROM app.tenants_with_due_webhooks(:limit)")
_FAN_OUT = text("""
    WITH claimed AS (
        DELETE FROM webhooks.dispatch d
         WHERE d.id IN (SELECT c.id FROM webhooks.dispatch c ORDER BY c.created_at
                         LIMIT :limit FOR UPDATE SKIP LOCKED)
        RETURNING d.id
    ), made AS (
        INSERT INTO webhooks.messages (id, endpoint_id, event_id, event_type, status,
                                       next_attempt_at)
        SELECT gen_random_uuid(), e.id, o.id, o.event_type, 'pending', now()
          FROM claimed c
          JOIN webhooks.outbox_events o ON o.id = c.id
          JOIN webhooks.endpoints e
            ON NOT e.disabled AND e.deleted_at IS NULL
           AND (e.event_types IS NULL OR o.event_type = ANY(e.event_types))
         WHERE o.event_type <> :test_event
        ON CONFLICT DO NOTHING
    )
    SELECT count(*) FROM claimed
""")
#: Due messages of endpoints no job is delivering to (none holds a live lease there):
#: a busy endpoint's job claims what is due for it when its batch is done, so a job
#: enqueued for it now would only find it busy (and the threads of `erp worker` would
#: spend themselves on such jobs while a backlog drains).
#: The sweep's: per endpoint no job holds (no leased message), its first due messages
#: in due order, read through ix_messages_endpoint_due one endpoint at a time (LATERAL
#: ... LIMIT), so an endpoint's backlog costs its own LIMIT, never a scan the other
#: endpoints wait behind (the tenant-wide read it replaces filtered a slow endpoint's
#: whole backlog out on every sweep).
_DUE = text("""
    SELECT d.id, e.id AS endpoint_id
      FROM webhooks.endpoints e
     CROSS JOIN LATERAL (
            SELECT m.id, m.next_attempt_at FROM webhooks.messages m
             WHERE m.endpoint_id = e.id AND m.status = 'pending'
               AND m.next_attempt_at <= now()
               AND (m.lease_until IS NULL OR m.lease_until <= now())
             ORDER BY m.next_attempt_at, m.id
             LIMIT :per_endpoint) d
     WHERE (SELECT 1 FROM webhooks.messages b
             WHERE b.endpoint_id = e.id AND b.status = 'pending'
               AND b.lease_until > now()
             ORDER BY b.lease_until DESC LIMIT 1) IS NULL
     ORDER BY d.next_attempt_at
     LIMIT :limit
""")


#: The push path's question: which endpoints have a message due that no job holds.
#: One probe per endpoint (a tenant has few), each the first such row in that
#: endpoint's due order (ix_messages_endpoint_due, whatever the statistics say): a slow
#: endpoint's backlog is not read again by every dispatch. Whether a job is already
#: queued or running for an endpoint is its Redis flag's to say (`enqueue_once`).
_DUE_ENDPOINTS = text("""
    SELECT e.id AS endpoint_id
      FROM webhooks.endpoints e
     CROSS JOIN LATERAL (
            SELECT 1 FROM webhooks.messages m
             WHERE m.endpoint_id = e.id AND m.status = 'pending'
               AND m.next_attempt_at <= now()
               AND (m.lease_until IS NULL OR m.lease_until <= now())
             ORDER BY m.next_attempt_at, m.id
             LIMIT 1) due
""")


def fan_out(s: Session) -> int:
    """One batch of the pinned tenant's events into messages; the events handled."""
    return int(s.execute(_FAN_OUT, {"limit": FANOUT_BATCH, "test_event": TEST_EVENT}).scalar_one())


def endpoint_flag(tenant: str, endpoint: str) -> str:
    """The Redis key saying a push-path job for this endpoint is queued or running."""
    return f"{queue.prefix}:webhooks:job:{tenant}:{endpoint}"


def enqueue_once(tenant: str, endpoint: str) -> bool:
    """Enqueue a `deliver_due` job for the endpoint unless one is queued or running
    (its flag is set); True when enqueued. Redis being away is left to the sweep."""
    try:
        if not queue.redis.set(endpoint_flag(tenant, endpoint), 1, nx=True, ex=FLAG_TTL_S):
            return False
        queue.enqueue(DELIVER_DUE_JOB, tenant, endpoint, queue=QUEUE)
        return True
    except RedisError:
        log.exception("could not enqueue a webhooks delivery job")
        return False


def _enqueue_once(tenant: str, endpoint: str) -> None:
    enqueue_once(tenant, endpoint)


def enqueue_due(s: Session, *, coalesce: bool = False) -> int:
    """Enqueue (after commit) a job per endpoint and JOB_BATCH of the due messages.

    `coalesce` (the push path): at most one job per endpoint queued or running at a
    time, which delivers whatever is due for it (`enqueue_once`): at hundreds of
    dispatches per second a job per dispatch would swamp the forking workers.
    """
    tenant = str(s.execute(text("SELECT app.current_tenant_id()")).scalar_one())
    if coalesce:
        endpoints = list(s.execute(_DUE_ENDPOINTS).scalars())
        for endpoint in endpoints:
            call_after_commit(s, partial(_enqueue_once, tenant, str(endpoint)))
        return len(endpoints)
    by_endpoint: dict[uuid.UUID, list[str]] = defaultdict(list)
    for row in s.execute(_DUE, {"limit": DUE_BATCH, "per_endpoint": DUE_PER_ENDPOINT}):
        by_endpoint[row.endpoint_id].append(str(row.id))
    jobs = 0
    for ids in by_endpoint.values():
        for start in range(0, len(ids), JOB_BATCH):
            enqueue_after_commit(
                s, DELIVER_JOB, tenant, ids[start : start + JOB_BATCH], queue=QUEUE
            )
            jobs += 1
    return jobs


def dispatch_tenant(tenant: uuid.UUID, *, coalesce: bool = False) -> int:
    """Fan out the tenant's events and enqueue its due messages; the jobs enqueued
    (with `coalesce`, the endpoints with due messages: see `enqueue_due`)."""

    def work(s: Session) -> int:
        while fan_out(s) >= FANOUT_BATCH:
            pass
        return enqueue_due(s, coalesce=coalesce)

    return db.unit_of_work(work, tenant=tenant)


def push_tenant(tenant: uuid.UUID) -> int:
    """The listener's dispatch (erp/webhooks/listener.py): coalesced jobs."""
    return dispatch_tenant(tenant, coalesce=True)


def due_tenants(limit: int = DISCOVERY_BATCH) -> list[uuid.UUID]:
    """The active tenants with events to fan out or messages due (the discovery
    function, ids only), outside any tenant's transaction."""
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        return list(conn.execute(_DISCOVER, {"limit": limit}).scalars())


def sweep() -> int:
    """RQ job (`erp scheduler`, every few seconds): dispatch every tenant with work."""
    db.fork_safe()
    jobs = 0
    seen: set[uuid.UUID] = set()
    while True:
        tenants = due_tenants()
        fresh = [t for t in tenants if t not in seen]
        for tenant in fresh:
            jobs += dispatch_tenant(tenant)
        seen.update(fresh)
        if len(tenants) < DISCOVERY_BATCH or not fresh:
            break
    return jobs
