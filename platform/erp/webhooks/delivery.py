"""Delivering messages: claim them (a lease), POST each, record the attempt.

A job delivers one tenant's messages, endpoint by endpoint (DESIGN.md §4: batched per
job, since RQ's forking worker caps near 26 jobs/s). For each endpoint it

1. claims up to BATCH of the given messages that are pending, due and not leased,
   under a per-endpoint advisory lock, and only if no other job holds leases on that
   endpoint: the per-endpoint concurrency cap is one job at a time, so a slow endpoint
   ties up one worker at most and never delays another endpoint's messages;
2. POSTs each (erp.webhooks.sender), then in one transaction records the attempt,
   moves the message on (delivered, the next retry, failed) and extends the lease of
   the rest of the batch.

A lease outlives the longest attempt (connect 5 s + 15 s), so a message is attempted
again only after its job died (SIGKILL, lost host): at least once, never twice
concurrently. The dispatcher's sweep finds such messages again once the lease ends.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from erp.db import db
from erp.webhooks import sender, services, signing
from erp.webhooks.commands import SCHEDULE
from erp.webhooks.models import Endpoint

log = logging.getLogger("erp.webhooks")

JITTER = 0.10
#: Messages per claim; a job claims again for the same endpoint until none is due.
BATCH = 50
#: Longer than one attempt can take (connect 5 s, whole attempt 15 s, DNS).
LEASE = timedelta(seconds=45)
#: A job stops taking more work for an endpoint after this long.
JOB_BUDGET_S = 30.0
#: A push-path job (jobs.deliver_due) claims no more after this long and queues its
#: successor at the back of the queue: endpoints sharing a worker take turns.
PUSH_JOB_BUDGET_S = 0.5
#: An attempt slower than this ends its job's batch (the rest are left for later jobs).
SLOW_ATTEMPT_MS = 1000
#: An endpoint failing this long is disabled.
FAILING_LIMIT = timedelta(days=5)


@dataclass(frozen=True)
class Claimed:
    message_id: uuid.UUID
    event_id: uuid.UUID
    body: bytes


_CLAIM = text("""
    WITH busy AS (
        SELECT 1 FROM webhooks.messages b
         WHERE b.endpoint_id = :endpoint AND b.status = 'pending' AND b.lease_until > now()
         LIMIT 1
    ), picked AS (
        SELECT m.id FROM webhooks.messages m
         WHERE m.endpoint_id = :endpoint AND m.status = 'pending'
           AND m.next_attempt_at <= now()
           AND (m.lease_until IS NULL OR m.lease_until <= now())
           AND (CAST(:ids AS uuid[]) IS NULL OR m.id = ANY(CAST(:ids AS uuid[])))
           AND NOT EXISTS (SELECT 1 FROM busy)
         ORDER BY m.next_attempt_at, m.id
         LIMIT :limit
         FOR UPDATE OF m SKIP LOCKED
    )
    UPDATE webhooks.messages m
       SET lease_until = now() + CAST(:lease AS interval), updated_at = now()
      FROM picked, webhooks.outbox_events o
     WHERE m.id = picked.id AND o.id = m.event_id
    RETURNING m.id, m.event_id, o.event_type, o.occurred_at, o.payload
""")
_LOCK_ENDPOINT = text(
    "SELECT pg_advisory_xact_lock(hashtextextended("
    "current_setting('app.tenant_id') || '/webhook-endpoint/' || :endpoint, 0))"
)


def body_of(event_type: str, occurred_at: datetime, payload: dict[str, Any]) -> bytes:
    """The delivered JSON: the same bytes at every attempt (jsonb's key order is fixed)."""
    stamp = occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    doc = {"type": event_type, "timestamp": stamp, "data": payload}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def claim(
    s: Session, endpoint_id: uuid.UUID, message_ids: list[uuid.UUID] | None
) -> tuple[Endpoint | None, list[Claimed]]:
    """Lease due messages of one enabled endpoint (all due ones when `message_ids` is None)."""
    s.execute(_LOCK_ENDPOINT, {"endpoint": str(endpoint_id)})
    endpoint = s.get(Endpoint, endpoint_id, populate_existing=True)
    if endpoint is None:
        return None, []
    if endpoint.disabled or endpoint.deleted_at is not None:
        # A message the fan-out made while the endpoint was being disabled or deleted
        # (it read the endpoint before that committed) settles like the others did.
        services.settle_inactive(s, endpoint)
        return None, []
    ids = None if message_ids is None else "{" + ",".join(map(str, message_ids)) + "}"
    rows = list(
        s.execute(
            _CLAIM,
            {"endpoint": endpoint_id, "ids": ids, "limit": BATCH, "lease": f"{LEASE.seconds} s"},
        )
    )
    rows.sort(key=lambda r: (r.occurred_at, r.id))
    return endpoint, [
        Claimed(r.id, r.event_id, body_of(r.event_type, r.occurred_at, r.payload)) for r in rows
    ]


def next_attempt(step: int, now: datetime) -> datetime | None:
    """When retry number `step` (0-based) is due, with ±10 % jitter; None: no more."""
    if step >= len(SCHEDULE):
        return None
    delay = SCHEDULE[step].total_seconds() * (1 + random.uniform(-JITTER, JITTER))
    return now + timedelta(seconds=delay)


#: One statement: the attempt row, the message's next state (the next retry from the
#: jittered delays, or failed when the schedule is spent), the leases of the rest of
#: the job's batch renewed, and the endpoint's failing clock.
_RECORD = text("""
    WITH attempt AS (
        INSERT INTO webhooks.attempts (id, message_id, endpoint_id, status, response_status,
                                       response_body, error, duration_ms)
        VALUES (:attempt_id, :message, :endpoint, :status, :response_status, :response_body,
                :error, :duration_ms)
    ), rest AS (
        UPDATE webhooks.messages r SET lease_until = now() + CAST(:lease AS interval)
         WHERE r.id = ANY(CAST(:rest AS uuid[])) AND r.status = 'pending'
    ), moved AS (
        UPDATE webhooks.messages m
           SET attempts = m.attempts + 1,
               status = CASE WHEN :ok THEN 'delivered'
                             WHEN m.schedule_step >= :steps THEN 'failed'
                             ELSE 'pending' END,
               next_attempt_at = CASE
                   WHEN :ok OR m.schedule_step >= :steps THEN NULL
                   ELSE now() + make_interval(
                       secs => (CAST(:delays AS float8[]))[m.schedule_step + 1]) END,
               schedule_step = m.schedule_step + CASE WHEN :ok THEN 0 ELSE 1 END,
               lease_until = NULL,
               updated_at = now()
         WHERE m.id = :message AND m.status = 'pending'
    )
    UPDATE webhooks.endpoints e
       SET failing_since = CASE WHEN :ok THEN NULL ELSE coalesce(e.failing_since, now()) END
     WHERE e.id = :endpoint
    RETURNING e.failing_since
""")
#: An attempt's record need not wait for its WAL flush: if PostgreSQL crashes before
#: the flush, the record is lost, the lease taken at the claim (committed durably) runs
#: out, and the message is sent again with the same webhook-id, as after any unknown
#: outcome. Saves a disk flush per delivery.
_ASYNC_COMMIT = text("SET LOCAL synchronous_commit = off")


def jittered_delays() -> str:
    """The retry delays (seconds) with ±10 % jitter each, as a float8[] literal."""
    return (
        "{"
        + ",".join(
            f"{d.total_seconds() * (1 + random.uniform(-JITTER, JITTER)):.3f}" for d in SCHEDULE
        )
        + "}"
    )


def record(
    s: Session,
    endpoint_id: uuid.UUID,
    claimed: Claimed,
    outcome: sender.Outcome,
    rest: list[uuid.UUID],
) -> bool:
    """The attempt, the message's next state, the endpoint's health: one transaction.
    True when the endpoint got disabled by it (410, or failing for 5 days)."""
    now = datetime.now(UTC)
    s.execute(_ASYNC_COMMIT)
    failing_since = s.execute(
        _RECORD,
        {
            "attempt_id": uuid.uuid4(),
            "message": claimed.message_id,
            "endpoint": endpoint_id,
            "status": "succeeded" if outcome.succeeded else "failed",
            "ok": outcome.succeeded,
            "response_status": outcome.status,
            "response_body": outcome.body,
            "error": outcome.error,
            "duration_ms": outcome.duration_ms,
            "steps": len(SCHEDULE),
            "delays": jittered_delays(),
            "rest": "{" + ",".join(map(str, rest)) + "}",
            "lease": f"{LEASE.seconds} s",
        },
    ).scalar_one()
    if outcome.status == 410:
        services.disable_by_system(s, endpoint_id, "gone")
        return True
    if failing_since is not None and now - failing_since >= FAILING_LIMIT:
        services.disable_by_system(s, endpoint_id, "failing")
        return True
    return False


_ENDPOINTS_OF = text(
    "SELECT id, endpoint_id FROM webhooks.messages WHERE id = ANY(CAST(:ids AS uuid[]))"
)


def deliver(tenant: uuid.UUID, message_ids: list[uuid.UUID]) -> int:
    """Deliver these messages of `tenant` (those still due), then whatever else is due
    for the same endpoints, within a time budget. Returns the attempts made."""
    ids = "{" + ",".join(map(str, message_ids)) + "}"
    by_endpoint: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for row in db.unit_of_work(
        lambda s: s.execute(_ENDPOINTS_OF, {"ids": ids}).all(), tenant=tenant
    ):
        by_endpoint[row.endpoint_id].append(row.id)
    made = 0
    for endpoint_id, mine in by_endpoint.items():
        made += deliver_endpoint(tenant, endpoint_id, mine)
    return made


def deliver_endpoint(
    tenant: uuid.UUID,
    endpoint_id: uuid.UUID,
    message_ids: list[uuid.UUID] | None,
    budget_s: float = JOB_BUDGET_S,
) -> int:
    allowed = db.settings.webhook_allowed_hosts
    started = time.monotonic()
    made = 0
    wanted: list[uuid.UUID] | None = message_ids
    while time.monotonic() - started < budget_s:

        def _claim(
            s: Session, wanted: list[uuid.UUID] | None = wanted
        ) -> tuple[str, list[str], list[Claimed]]:
            endpoint, batch = claim(s, endpoint_id, wanted)
            if endpoint is None or not batch:
                return "", [], []
            return endpoint.url, services.signing_secrets(endpoint, datetime.now(UTC)), batch

        url, secrets, batch = db.unit_of_work(_claim, tenant=tenant)
        if not batch:
            break
        for i, item in enumerate(batch):
            stamp = int(time.time())
            headers = signing.headers(str(item.event_id), stamp, item.body, secrets)
            outcome = sender.post(url, item.body, headers, allowed)
            rest = [c.message_id for c in batch[i + 1 :]]

            def _record(
                s: Session,
                item: Claimed = item,
                outcome: sender.Outcome = outcome,
                rest: list[uuid.UUID] = rest,
            ) -> bool:
                return record(s, endpoint_id, item, outcome, rest)

            made += 1
            if db.unit_of_work(_record, tenant=tenant):
                return made  # disabled: its pending messages failed with it
            if outcome.duration_ms > SLOW_ATTEMPT_MS and rest:
                # A slow endpoint gives its worker back after each attempt: the rest
                # go to a later job (the sweep finds them due) instead of holding this
                # worker for the whole batch.
                db.unit_of_work(partial(_release, message_ids=rest), tenant=tenant)
                return made
        wanted = None  # then anything else due for this endpoint
    return made


_CLAIMABLE = text("""
    SELECT EXISTS (SELECT 1 FROM webhooks.messages m
                    WHERE m.endpoint_id = :endpoint AND m.status = 'pending'
                      AND m.next_attempt_at <= now()
                      AND (m.lease_until IS NULL OR m.lease_until <= now()))
       AND NOT EXISTS (SELECT 1 FROM webhooks.messages b
                        WHERE b.endpoint_id = :endpoint AND b.status = 'pending'
                          AND b.lease_until > now())
""")


def has_claimable(tenant: uuid.UUID, endpoint_id: uuid.UUID) -> bool:
    """Whether a job starting now would claim something for this endpoint (messages
    due and no other job holding leases on it)."""
    return bool(
        db.unit_of_work(
            lambda s: s.execute(_CLAIMABLE, {"endpoint": endpoint_id}).scalar_one(),
            tenant=tenant,
        )
    )


_RELEASE = text(
    "UPDATE webhooks.messages SET lease_until = NULL "
    "WHERE id = ANY(CAST(:ids AS uuid[])) AND status = 'pending'"
)


def _release(s: Session, message_ids: list[uuid.UUID]) -> None:
    s.execute(_RELEASE, {"ids": "{" + ",".join(map(str, message_ids)) + "}"})
